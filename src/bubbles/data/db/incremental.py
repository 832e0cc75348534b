"""Incremental extraction: read only the rows past the stored watermark.

``read_incremental(conn, "orders", cursor="updated_at")`` (or ``query="SELECT ..."``) runs
``SELECT * FROM "orders" WHERE "updated_at" > :watermark ORDER BY "updated_at"`` (no ``WHERE`` on
the first run), and *proposes* the largest ``updated_at`` it read as the new watermark. The
proposal commits only when the load committed:

* inside a run (a task of a Workflow, Pipeline or ``@bubbles`` flow) the watermark is proposed
  under the run id and committed by the run when every task succeeded; a failed run discards it,
  so the next run reads the same rows again;
* outside a run, call :func:`commit_watermarks` after your load committed (or pass
  ``commit=True`` to commit at once, accepting that a failed load will not re-read).

Loading those rows with ``write_table(..., mode="merge", key=...)`` makes a re-read harmless, so
rows are neither skipped nor loaded twice. ``lookback`` re-reads a window before the watermark
for sources whose rows can commit late with an older cursor value (again: merge makes it safe).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..._context import current_task, log_metric
from ..._errors import ConfigError
from ..state import StateStore
from .base import Connection, display_table, qualified, quote_ident, split_table, using
from .read import read_sql

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["commit_watermarks", "read_incremental", "watermark_name"]


def watermark_name(conn: Connection, table: str | Sequence[str | None] | None, cursor: str, *,
                   query: str | None = None) -> str:
    """The default state name: ``<connection>:<table>:<cursor>`` (a query is named by its hash)."""
    if query is not None:
        what = "query-" + hashlib.sha256(" ".join(query.split()).encode()).hexdigest()[:12]
    else:
        what = display_table(table)  # type: ignore[arg-type]
    return f"{conn.name}:{what}:{cursor}"


def read_incremental(
    conn: Connection | str,
    table: str | Sequence[str | None] | None = None,
    cursor: str = "updated_at",
    key: str | Sequence[str] | None = None,
    *,
    query: str | None = None,
    name: str | None = None,
    initial: Any = None,
    lookback: Any = None,
    params: Mapping[str, Any] | None = None,
    commit: bool = False,
    state: StateStore | None = None,
) -> pa.Table:
    """Read the rows of a table or query whose ``cursor`` column is past the stored watermark.

    Args:
        conn: a connection, URL or connection name.
        table: a table name (``"orders"``, ``"sales.orders"``, ``("sales", "my table")``), always
            quoted as an identifier: whatever its text, it is never run as SQL.
        cursor: the column that only grows (an update timestamp or an increasing id).
        key: the row key; recorded for documentation and used to order ties.
        query: instead of ``table``, a ``SELECT`` query (run as a subquery); its own ``:name``
            placeholders take ``params``.
        name: the watermark's name in the state store (default: connection, table or query hash, cursor).
        initial: the lower bound for the first run (default: read everything).
        lookback: subtract this from the watermark before reading (a ``timedelta`` for
            timestamps, a number for ids): re-reads late rows, safe with ``mode="merge"``.
        params: parameters of ``query``, a mapping for its ``:name`` placeholders.
        commit: commit the new watermark now instead of when the run (or your load) commits.
        state: the state store (default: ``$BUBBLES_HOME/state.db``).

    Returns:
        The new rows as an Arrow table, in cursor order (empty if nothing changed).

    Example:
        >>> import bubbles
        >>> @bubbles.task
        ... def extract():
        ...     return bubbles.read_incremental("source", "orders", cursor="updated_at", key="id")
        >>> @bubbles.task
        ... def extract_paid():
        ...     return bubbles.read_incremental("source", query="SELECT * FROM orders WHERE status = :s",
        ...                                     params={"s": "paid"}, cursor="updated_at")
    """
    if (table is None) == (query is None):
        raise ConfigError("read_incremental() needs a table or a query=..., not both: "
                          "read_incremental(conn, 'orders', ...) or read_incremental(conn, query='SELECT ...', ...).")
    if isinstance(table, str) and re.match(r"\s*(select|with)\s", table, re.IGNORECASE):
        # refused, not run: a table name is always quoted as an identifier
        raise ConfigError(f"read_incremental(table={table[:60]!r}) looks like a query, but a table name is always "
                          "quoted as an identifier, never run as SQL. Pass it as query='SELECT ...'.")
    if query is None:
        split_table(table)  # type: ignore[arg-type]  # validates, before anything is run
    if params is not None and query is None:
        raise ConfigError("read_incremental(params=...) only goes with query=...: a table takes no parameters.")
    with using(conn) as c:
        return _read_incremental(c, table, query, cursor, key, name, initial, lookback, params, commit, state)


def _read_incremental(
    conn: Connection,
    table: str | Sequence[str | None] | None,
    query: str | None,
    cursor: str,
    key: str | Sequence[str] | None,
    name: str | None,
    initial: Any,
    lookback: Any,
    params: Mapping[str, Any] | None,
    commit: bool,
    state: StateStore | None,
) -> pa.Table:
    store = state or StateStore()
    keys = [key] if isinstance(key, str) else list(key or [])
    wm_name = name or watermark_name(conn, table, cursor, query=query)
    watermark = store.get(wm_name, initial)
    if watermark is not None and lookback is not None:
        watermark = watermark - lookback
    if query is not None:
        source = f"({query.strip().rstrip(';')}) AS bubbles_src"
    else:
        source = qualified(table)  # type: ignore[arg-type]
    values: dict[str, Any] = {}
    if params is not None:
        if not isinstance(params, Mapping):
            raise ConfigError("read_incremental(params=...) must be a mapping used with :name placeholders in the query.")
        values.update(params)
    where = ""
    if watermark is not None:
        values["bubbles_watermark"] = watermark
        where = f" WHERE {quote_ident(cursor)} > :bubbles_watermark"
    order = ", ".join([quote_ident(cursor), *(quote_ident(k) for k in keys)])
    sql = f"SELECT * FROM {source}{where} ORDER BY {order}"
    result = read_sql(conn, sql, values or None, lazy=False)  # the watermark is of the rows read now
    if cursor not in result.column_names:
        raise ConfigError(
            f"read_incremental(): cursor column {cursor!r} is not in the result (columns: {', '.join(result.column_names)})."
        )
    if result.num_rows:
        import pyarrow.compute as pc

        col = result.column(cursor)
        if col.null_count:
            raise ConfigError(
                f"read_incremental({wm_name!r}): cursor column {cursor!r} has {col.null_count} null value(s); rows with a null "
                "cursor can never be read incrementally. Use a NOT NULL column, or coalesce it in the query."
            )
        newest = pc.max(col).as_py()
        ctx = current_task()
        store.propose(wm_name, newest, ctx.run_id if ctx else None, commit=commit)
    log_metric("db_rows_incremental", result.num_rows, add=True)
    return result


def commit_watermarks(state: StateStore | None = None) -> list[str]:
    """Commit the watermarks proposed outside a run (after your load committed); returns their names.

    Example:
        >>> rows = read_incremental(src, "orders", cursor="updated_at")  # doctest: +SKIP
        >>> write_table(dwh, "orders", rows, mode="merge", key="id")  # doctest: +SKIP
        >>> commit_watermarks()  # doctest: +SKIP
        ['source:orders:updated_at']
    """
    ctx = current_task()
    store = state or StateStore()
    return store.commit_run(ctx.run_id if ctx else None)

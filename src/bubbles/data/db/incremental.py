"""Incremental extraction: read only the rows past the stored watermark.

``read_incremental(conn, "orders", cursor="updated_at")`` runs
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
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..._context import current_task, log_metric
from ..._errors import ConfigError
from ..state import StateStore
from .base import Connection, qualified, quote_ident, using
from .read import read_sql

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["commit_watermarks", "read_incremental", "watermark_name"]


def _is_query(text: str) -> bool:
    return any(ch.isspace() for ch in text.strip()) or text.lstrip().lower().startswith(("select", "with"))


def watermark_name(conn: Connection, table_or_query: str | Sequence[str], cursor: str) -> str:
    """The default state name: ``<connection>:<table>:<cursor>`` (a query is named by its hash)."""
    if isinstance(table_or_query, str) and _is_query(table_or_query):
        what = "query-" + hashlib.sha256(" ".join(table_or_query.split()).encode()).hexdigest()[:12]
    else:
        what = table_or_query if isinstance(table_or_query, str) else ".".join(table_or_query)
    return f"{conn.name}:{what}:{cursor}"


def read_incremental(
    conn: Connection | str,
    table_or_query: str | Sequence[str],
    cursor: str = "updated_at",
    key: str | Sequence[str] | None = None,
    *,
    name: str | None = None,
    initial: Any = None,
    lookback: Any = None,
    params: Sequence[Any] | Mapping[str, Any] | None = None,
    commit: bool = False,
    state: StateStore | None = None,
) -> pa.Table:
    """Read the rows of a table or query whose ``cursor`` column is past the stored watermark.

    Args:
        conn: a connection, URL or connection name.
        table_or_query: a table name (``"orders"``, ``"sales.orders"``) or a ``SELECT`` query
            (wrapped as a subquery; its own placeholders take ``params``, given as a mapping).
        cursor: the column that only grows (an update timestamp or an increasing id).
        key: the row key; recorded for documentation and used to order ties.
        name: the watermark's name in the state store (default: connection, table, cursor).
        initial: the lower bound for the first run (default: read everything).
        lookback: subtract this from the watermark before reading (a ``timedelta`` for
            timestamps, a number for ids): re-reads late rows, safe with ``mode="merge"``.
        params: parameters of ``table_or_query`` when it is a query.
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
        ... def load(rows):
        ...     bubbles.write_table("warehouse", "orders", rows, mode="merge", key="id")
    """
    with using(conn) as c:
        return _read_incremental(c, table_or_query, cursor, key, name, initial, lookback, params, commit, state)


def _read_incremental(
    conn: Connection,
    table_or_query: str | Sequence[str],
    cursor: str,
    key: str | Sequence[str] | None,
    name: str | None,
    initial: Any,
    lookback: Any,
    params: Sequence[Any] | Mapping[str, Any] | None,
    commit: bool,
    state: StateStore | None,
) -> pa.Table:
    store = state or StateStore()
    keys = [key] if isinstance(key, str) else list(key or [])
    wm_name = name or watermark_name(conn, table_or_query, cursor)
    watermark = store.get(wm_name, initial)
    if watermark is not None and lookback is not None:
        watermark = watermark - lookback
    if isinstance(table_or_query, str) and _is_query(table_or_query):
        source = f"({table_or_query.strip().rstrip(';')}) AS bubbles_src"
    else:
        source = qualified(table_or_query)
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
    table = read_sql(conn, sql, values or None)
    if cursor not in table.column_names:
        raise ConfigError(
            f"read_incremental(): cursor column {cursor!r} is not in the result (columns: {', '.join(table.column_names)})."
        )
    if table.num_rows:
        import pyarrow.compute as pc

        col = table.column(cursor)
        if col.null_count:
            raise ConfigError(
                f"read_incremental({wm_name!r}): cursor column {cursor!r} has {col.null_count} null value(s); rows with a null "
                "cursor can never be read incrementally. Use a NOT NULL column, or coalesce it in the query."
            )
        newest = pc.max(col).as_py()
        ctx = current_task()
        store.propose(wm_name, newest, ctx.run_id if ctx else None, commit=commit)
    log_metric("db_rows_incremental", table.num_rows, add=True)
    return table


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

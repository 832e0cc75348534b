"""Reading query results as Arrow: whole tables, or streams of record batches for big results."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..._context import log_metric
from .. import lineage
from ..lazy import LazyTable, wanted
from ..lazy.dbscan import plan_query
from .base import Connection, _driver_error, display_table, qualified, using
from .connect import connect

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["read_batches", "read_sql", "read_table", "read_tables"]

Params = Sequence[Any] | Mapping[str, Any] | None


def read_batches(
    conn: Connection | str, query: str, params: Params = None, *, batch_size: int | None = None
) -> pa.RecordBatchReader:
    """Stream the result of ``query`` as Arrow record batches (the connector's one-method seam).

    The database connection is held until the reader is exhausted or closed, so memory stays at
    about one batch whatever the result size. PostgreSQL results arrive through binary COPY
    (ADBC); DuckDB hands over its own Arrow batches.

    Args:
        conn: a connection, URL or connection name.
        query: SQL; values as ``?`` (with a list) or ``:name`` (with a mapping) placeholders.
        params: the values, always sent as bound parameters.
        batch_size: rows per batch where the driver lets us choose (DuckDB, SQLite).

    Example:
        >>> reader = read_batches(conn, "SELECT * FROM orders WHERE day >= ?", [day])  # doctest: +SKIP
        >>> for batch in reader: ...  # doctest: +SKIP
    """
    import pyarrow as pa

    owned = not isinstance(conn, Connection)
    conn = connect(conn)
    rows = batch_size or conn.batch_rows
    ctx = conn.session()
    session = ctx.__enter__()

    def release() -> None:
        ctx.__exit__(None, None, None)
        if owned:  # opened here from a URL or name: nobody else will close it
            conn.close()

    try:
        reader = session.query_reader(query, params, rows)
        translated = None
    except BaseException as exc:
        release()
        translated = session.translate(exc, action="run a query", query=query) if _driver_error(exc) else exc
        if translated is exc:
            raise
    if translated is not None:
        raise translated  # (outside the handler: see base._driver_error)

    origin = lineage.db_query(conn, query, reader.schema.names)

    def stream() -> Iterator[pa.RecordBatch]:
        total = 0
        try:
            for batch in reader:
                total += batch.num_rows
                yield batch
            lineage.db_read_done(origin, total, reader.schema)
        except Exception as exc:
            failed = session.translate(exc, action="read a query result", query=query) if _driver_error(exc) else exc
            if failed is exc:
                raise
        else:
            return
        finally:
            release()
            log_metric("db_rows_read", total, add=True)
        raise failed  # (outside the handler: see base._driver_error)

    return lineage.remember(pa.RecordBatchReader.from_batches(reader.schema, stream()), origin)


def read_sql(conn: Connection | str, query: str, params: Params = None, *, batch_size: int | None = None,
             lazy: bool | None = None) -> pa.Table:
    """Run ``query`` and return its result as an Arrow table.

    For results bigger than memory use :func:`read_batches`, which streams. Inside a task the
    query is planned instead (its columns are asked for, which checks it): the result is a
    :class:`~bubbles.data.lazy.LazyTable` that runs the query where it is used — streamed into the
    DuckDB statement of the ``bubbles.sql`` or writer it is handed to, without a full copy, or
    read whole when Python uses it. It then reads the tables as they are at that moment.

    Args:
        conn: a connection, URL or connection name (``"warehouse"``).
        query: SQL with ``?`` or ``:name`` placeholders.
        params: the values, bound (never pasted into the SQL).
        batch_size: rows per batch while reading.
        lazy: plan the query (``True``) or run it now (``False``); default: the ``lazy`` setting
            (``auto``: plan inside tasks). In-memory DuckDB databases are always read now.

    Raises:
        QueryError: the database rejected the query; the message quotes the database, the task
            and the query.

    Example:
        >>> import bubbles
        >>> conn = bubbles.connect("duckdb:///:memory:")
        >>> bubbles.read_sql(conn, "SELECT ? + 1 AS n", [41]).column("n").to_pylist()
        [42]
    """
    if wanted(lazy):
        with using(conn) as c:
            scan = plan_query(c, query, params, batch_size)
            if scan is not None:
                return lineage.remember(LazyTable(scan), lineage.db_query(c, query, scan.schema.names))  # type: ignore[no-any-return]
    reader = read_batches(conn, query, params, batch_size=batch_size)
    return lineage.copy_origin(reader.read_all(), reader)


def read_table(conn: Connection | str, table: str | Sequence[str], *, columns: Sequence[str] | None = None) -> pa.Table:
    """Read a whole table (or some ``columns`` of it); names are quoted as identifiers.

    Example:
        >>> read_table(conn, "sales.orders", columns=["id", "total"])  # doctest: +SKIP
    """
    from .base import quote_ident

    cols = ", ".join(quote_ident(c) for c in columns) if columns else "*"
    return read_sql(conn, f"SELECT {cols} FROM {qualified(table)}")


def _read_one(table: str, conn: Connection) -> pa.Table:
    return read_table(conn, table)


def read_tables(
    conn: Connection | str, tables: Sequence[str], *, max_concurrent: int = 4, executor: str = "threads"
) -> dict[str, pa.Table]:
    """Read several tables in parallel through the engine's fan-out (``Workflow.map``).

    Each table is one task (retries and metrics apply); PostgreSQL gives each its own pooled
    connection, so raise ``pool_size`` with ``max_concurrent``.

    Example:
        >>> data = read_tables("source", ["customers", "orders", "items"], max_concurrent=3)  # doctest: +SKIP
        >>> data["orders"].num_rows  # doctest: +SKIP
    """
    from ...api.workflow import Workflow

    with using(conn) as c:
        wf = Workflow("read_tables")
        wf.map(_read_one, list(tables), max_concurrent=max_concurrent, name="read_table", kwargs={"conn": c})
        result = wf.run(executor=executor, max_workers=max_concurrent)
        outputs = result.tasks["read_table"].result
    return {display_table(t): out for t, out in zip(tables, outputs, strict=True)}

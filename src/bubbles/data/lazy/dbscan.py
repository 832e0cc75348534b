"""A database query read inside a plan: streamed into the DuckDB statement that uses it.

``read_sql`` inside a task plans the query: it asks the database for the result's columns
(``SELECT * FROM (<query>) LIMIT 0``, with the same bound parameters), which also checks the query
where it was written. When the plan runs, the query runs on a connection of its own (opened
from the same URL or name, so the task that planned it may have closed its connection) and its
Arrow batches stream into DuckDB as DuckDB pulls them (PostgreSQL: binary COPY through ADBC);
nothing is copied whole. A plan that reads the same query twice runs it twice.

The query runs when the plan runs, in the task that uses its result: it sees the tables as they
are then. A query over tables that another task changes in between should be read at once
(``read_sql(..., lazy=False)``). Only PostgreSQL queries are planned: DuckDB and SQLite
databases are read at once (see :func:`plan_query`). A query plan is never kept for resume (the
tables may change in between): a kept output is the query's result.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .plan import Binder, Node

if TYPE_CHECKING:
    import pyarrow as pa

    from ..db.base import Connection

__all__ = ["DbScan", "plan_query"]


class DbScan(Node):
    """A planned database query."""

    step = "read_sql"

    def __init__(self, conn: Connection, query: str, params: Sequence[Any] | Mapping[str, Any] | None,
                 batch_size: int | None, schema: pa.Schema, planned_by: str | None) -> None:
        self.conn = conn
        self.query = query
        self.params = params
        self.batch_size = batch_size
        self.schema = schema
        self.planned_by = planned_by

    def source(self) -> str:
        return f"{self.conn.name}: {' '.join(self.query.split())[:100]}"

    def bind(self, b: Binder) -> str:
        if b.mode == "plan":
            return b.empty(self.schema)
        return b.register(self.reader(b.sink))

    def reader(self, sink: Any = None) -> pa.RecordBatchReader:
        """The query's result as a stream, on a connection of its own (closed when the stream ends)."""
        from ..db.connect import connect
        from ..db.read import read_batches
        from ..files._common import pulled_for
        from .csvscan import attributed

        with attributed(self):
            fresh = connect(self.conn._source, **self.conn._options)
            try:
                stream = read_batches(fresh, self.query, self.params, batch_size=self.batch_size)
            except BaseException:
                fresh.close()
                raise
        return pulled_for(stream, lambda: sink, on_end=fresh.close)


def plan_query(conn: Connection, query: str, params: Any, batch_size: int | None) -> DbScan | None:
    """The planned query, or ``None`` when it is read at once (in-memory DuckDB, or its columns cannot be asked for)."""
    from ..._context import current_task

    if conn.dialect != "postgresql":
        # Embedded databases are read at once. An in-memory DuckDB is not seen by another connection;
        # a DuckDB file is locked by the process that has it open (a plan run in another worker process
        # could not open it); a SQLite connection's reader holds its lock on the thread that opened it,
        # and DuckDB pulls a planned stream on threads of its own (closing it there deadlocked the run).
        return None
    wrapped = f"SELECT * FROM (\n{query.strip().rstrip(';')}\n) AS bubbles_columns LIMIT 0"
    try:  # (a session, not read_batches: asking for the columns is no read, for metrics and lineage)
        with conn.session() as session:
            reader = session.query_reader(wrapped, params, 1)
            schema = reader.schema
            reader.read_all()
    except Exception:
        return None  # the query as written is read at once: its own error (if any) comes from there
    ctx = current_task()
    return DbScan(conn, query, params, batch_size, schema, ctx.task if ctx is not None else None)

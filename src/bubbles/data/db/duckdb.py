"""DuckDB, the default embedded warehouse: Arrow in and out without copies.

One database handle per :class:`DuckDBConnection`; each operation runs on its own cursor
(DuckDB's thread-safe way to share a database between threads). Loads register the incoming
Arrow stream as a view and ``INSERT ... SELECT`` from it, so DuckDB scans the batches directly.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ..._context import native_work
from ..._errors import ConfigError
from .base import Connection, Session, bind_params, qualified, quote_ident, split_table
from .errors import ConnectionFailed, ConstraintViolation, QueryError, in_task
from .url import ConnSpec

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["DuckDBConnection"]


class DuckDBSession(Session):
    dialect = "duckdb"

    def __init__(self, cur: Any, spec: ConnSpec) -> None:
        self.cur = cur
        self.spec = spec

    def execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> None:
        sql, values = bind_params(sql, params, "dollar")
        self.cur.execute(sql, values).fetchall()  # DuckDB 2 wants every result finished

    def query_reader(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None, batch_rows: int) -> pa.RecordBatchReader:
        sql, values = bind_params(sql, params, "dollar")
        # A relation streams Arrow without the extra copy a DB-API result makes.
        rel = self.cur.sql(sql, params=values)
        # DuckDB 2 renamed record_batch() to to_arrow_reader()
        to_reader = getattr(rel, "to_arrow_reader", None) or rel.record_batch
        return to_reader(batch_rows)  # type: ignore[no-any-return]

    def begin(self) -> None:
        self.cur.begin()

    def commit(self) -> None:
        self.cur.commit()

    def rollback(self) -> None:
        self.cur.rollback()

    def table_types(self, table: str | Sequence[str]) -> dict[str, pa.DataType | None] | None:
        schema, name = split_table(table)
        found = self.cur.execute(
            "SELECT count(*) FROM information_schema.tables "
            "WHERE table_name = $1 AND table_schema = coalesce($2, current_schema())",
            [name, schema],
        ).fetchall()[0][0]
        if not found:
            return None
        reader = self.query_reader(f"SELECT * FROM {qualified(table)} LIMIT 0", None, 1)
        return {f.name: f.type for f in reader.schema}

    def unique_keys(self, table: str | Sequence[str]) -> list[tuple[str, ...]]:
        schema, name = split_table(table)
        rows = self.cur.execute(
            "SELECT constraint_column_names FROM duckdb_constraints() WHERE table_name = $1 "
            "AND schema_name = coalesce($2, current_schema()) AND constraint_type IN ('PRIMARY KEY', 'UNIQUE')",
            [name, schema],
        ).fetchall()
        return [tuple(r[0]) for r in rows]

    def insert_arrow(self, table: str | Sequence[str], reader: pa.RecordBatchReader, *, temporary: bool = False) -> int:
        view = f"__bubbles_src_{secrets.token_hex(4)}"
        cols = ", ".join(quote_ident(n) for n in reader.schema.names)
        self.cur.register(view, reader)
        try:
            row = self.cur.execute(f"INSERT INTO {qualified(table)} ({cols}) SELECT {cols} FROM {quote_ident(view)}").fetchall()
        finally:
            try:
                self.cur.unregister(view)
            except Exception:  # after a failed INSERT the transaction is aborted; the INSERT's error matters
                pass
        return int(row[0][0]) if row else -1

    def translate(self, exc: BaseException, *, action: str, query: str | None = None, table: str | None = None) -> BaseException:
        import duckdb

        if not isinstance(exc, duckdb.Error):
            return exc
        where = f"{self.spec.where}{in_task()}"
        fields: dict[str, Any] = {"database": self.spec.redacted}
        if table:
            fields["table"] = table
        if query:
            fields["query"] = query
        said = " ".join(str(exc).split())
        if isinstance(exc, duckdb.ConstraintException):
            return ConstraintViolation(
                f"Load into table {table!r} in {where} violated a constraint and was rolled back (the table is unchanged): "
                f"{said}. Fix or deduplicate the offending rows, or load with mode='merge' and key=[...].",
                **fields,
            )
        if isinstance(exc, duckdb.IOException):
            return ConnectionFailed(f"Cannot {action}: opening {where} failed: {said}.", **fields)
        shown = f" Query: {query.strip()}" if query else ""
        return QueryError(f"Cannot {action} in {where}: DuckDB said: {said}.{shown}", **fields)


class DuckDBConnection(Connection):
    """A DuckDB database file (or ``:memory:``), shared by every thread through per-operation cursors."""

    dialect = "duckdb"

    def __init__(self, spec: ConnSpec, source: str, options: dict[str, Any]) -> None:
        super().__init__(spec, source, options)
        import duckdb

        config: dict[str, Any] = {k: v for k, v in spec.options.items() if k not in ("batch_size", "pool_size")}
        try:
            with native_work():  # opening a file replays its write-ahead log: C work, waited for on a cancel
                self._db: Any = duckdb.connect(spec.path, read_only=bool(options.get("read_only", False)), config=config)
        except duckdb.Error as exc:
            raise ConnectionFailed(
                f"Cannot open {spec.where}: {exc}. Check the path, its permissions, "
                "and that no other process holds it for writing.",
                database=spec.redacted,
            ) from None
        self._lock = threading.Lock()

    @contextmanager
    def session(self) -> Iterator[DuckDBSession]:
        with self._lock:
            if self._db is None:
                raise ConfigError(f"{self!r} is closed; connect() again.")
            cur = self._db.cursor()
        try:
            with native_work(cur.interrupt):  # a cancelled run interrupts the query and waits for it
                yield DuckDBSession(cur, self.spec)
        finally:
            with native_work(cleanup=True):
                cur.close()

    @property
    def duckdb(self) -> Any:
        """The underlying ``duckdb.DuckDBPyConnection`` (for DuckDB-specific work)."""
        return self._db

    def close(self) -> None:
        with self._lock:
            db, self._db = self._db, None
        if db is not None:
            with native_work(cleanup=True):  # (a checkpoint of the file: C work, waited for on a cancel)
                db.close()

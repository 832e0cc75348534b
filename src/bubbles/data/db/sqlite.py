"""SQLite, the small embedded option: stdlib ``sqlite3``, bound parameters, one transaction per load.

SQLite has no bulk path; loads are ``executemany`` over each Arrow batch inside one transaction,
which is as fast as SQLite goes. Dates and timestamps are stored as ISO-8601 text, booleans as
0/1, decimals as text; the declared column types (``DATE``, ``TIMESTAMP``, ``BOOLEAN``, ...) let
reads of whole tables turn them back into Arrow types.

One ``sqlite3`` connection per :class:`SQLiteConnection`, guarded by a lock (SQLite serializes
writers anyway); ``:memory:`` databases therefore work across threads too.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ..._context import native_work
from ..._errors import ConfigError
from .base import Connection, Session, bind_params, qualified, quote_ident, split_table
from .errors import ConnectionFailed, ConstraintViolation, QueryError, in_task
from .types import arrow_from_sqlite_decl
from .url import ConnSpec

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["SQLiteConnection"]


def _to_python(col: pa.Array | pa.ChunkedArray) -> list[Any]:
    """Column values as types sqlite3 binds without deprecated adapters."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.types as pt

    t = col.type
    if pt.is_dictionary(t):
        col, t = col.cast(t.value_type), t.value_type
    if pt.is_timestamp(t) or pt.is_date(t) or pt.is_time(t):
        fmt = "%Y-%m-%d" if pt.is_date(t) else "%Y-%m-%d %H:%M:%S"  # Arrow's %S includes the fraction
        if pt.is_time(t):
            return [None if v is None else v.isoformat() for v in col.to_pylist()]
        if pt.is_timestamp(t):  # one text form (microseconds, UTC) so that text comparison is time order
            col = col.cast(pa.timestamp("us", "UTC" if t.tz else None))
        text = pc.strftime(col, format=fmt)
        return text.to_pylist()  # type: ignore[no-any-return]
    if pt.is_decimal(t):
        return col.cast(pa.string()).to_pylist()  # type: ignore[no-any-return]
    if pt.is_boolean(t):
        return col.cast(pa.int8()).to_pylist()  # type: ignore[no-any-return]
    if pt.is_duration(t):
        return col.cast(pa.int64()).to_pylist()  # type: ignore[no-any-return]
    return col.to_pylist()  # type: ignore[no-any-return]


def _typed_column(values: list[Any], target: pa.DataType | None) -> pa.Array:
    import pyarrow as pa
    import pyarrow.types as pt

    if target is not None:
        try:
            if pt.is_decimal(target):
                from decimal import Decimal

                return pa.array([None if v is None else Decimal(str(v)) for v in values], target)
            if (pt.is_timestamp(target) or pt.is_date(target) or pt.is_time(target)) and any(isinstance(v, str) for v in values):
                return pa.array(values, pa.string()).cast(target)
            return pa.array(values, target)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError):
            pass  # SQLite is dynamically typed: a column may hold other types than declared
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([None if v is None else str(v) for v in values], pa.string())


def _param(value: Any) -> Any:
    """A parameter in the text form the columns were stored in (see :func:`_to_python`)."""
    import datetime as dt
    from decimal import Decimal

    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC)
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _params(values: tuple[Any, ...] | dict[str, Any] | None) -> tuple[Any, ...] | dict[str, Any]:
    if values is None:
        return ()
    if isinstance(values, dict):
        return {k: _param(v) for k, v in values.items()}
    return tuple(_param(v) for v in values)


class SQLiteSession(Session):
    dialect = "sqlite"

    def __init__(self, db: sqlite3.Connection, spec: ConnSpec) -> None:
        self.db = db
        self.spec = spec

    def execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> None:
        sql, values = bind_params(sql, params, "native")
        self.db.execute(sql, _params(values))

    def query_reader(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None, batch_rows: int) -> pa.RecordBatchReader:
        import pyarrow as pa

        sql, values = bind_params(sql, params, "native")
        cur = self.db.execute(sql, _params(values))
        names = [d[0] for d in cur.description or ()]
        declared = self._declared_types(sql, names)
        first = cur.fetchmany(batch_rows)
        columns = list(zip(*first, strict=True)) if first else [() for _ in names]
        arrays = [_typed_column(list(c), declared.get(n)) for c, n in zip(columns, names, strict=True)]
        schema = pa.schema([pa.field(n, a.type) for n, a in zip(names, arrays, strict=True)])

        def batches() -> Iterator[pa.RecordBatch]:
            rows = first
            while rows:
                cols = list(zip(*rows, strict=True))
                yield pa.RecordBatch.from_arrays(
                    [_typed_column(list(c), f.type).cast(f.type) for c, f in zip(cols, schema, strict=True)],
                    schema=schema,
                )
                rows = cur.fetchmany(batch_rows)
            cur.close()

        return pa.RecordBatchReader.from_batches(schema, batches())

    def _declared_types(self, sql: str, names: list[str]) -> dict[str, pa.DataType]:
        """Declared column types when ``sql`` reads one table (``SELECT ... FROM t ...``)."""
        import re

        m = re.search(r"\bFROM\s+(\"(?:[^\"]|\"\")+\"|[A-Za-z_][\w]*)(?:\s|$|;)", sql, re.IGNORECASE)
        if not m or re.search(r"\bJOIN\b", sql, re.IGNORECASE):
            return {}
        name = m.group(1)
        name = name[1:-1].replace('""', '"') if name.startswith('"') else name
        out = {}
        for _cid, col, decl, *_ in self.db.execute(f"PRAGMA table_info({quote_ident(name)})"):
            t = arrow_from_sqlite_decl(decl)
            if t is not None and col in names:
                out[col] = t
        return out

    def begin(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self.db.execute("COMMIT")

    def rollback(self) -> None:
        if self.db.in_transaction:
            self.db.execute("ROLLBACK")

    def table_types(self, table: str | Sequence[str]) -> dict[str, pa.DataType | None] | None:
        schema, name = split_table(table)
        prefix = f"{quote_ident(schema)}." if schema else ""
        rows = self.db.execute(f"PRAGMA {prefix}table_info({quote_ident(name)})").fetchall()
        if not rows:
            return None
        return {col: arrow_from_sqlite_decl(decl) for _cid, col, decl, *_ in rows}

    def unique_keys(self, table: str | Sequence[str]) -> list[tuple[str, ...]]:
        schema, name = split_table(table)
        prefix = f"{quote_ident(schema)}." if schema else ""
        keys = []
        pk = [(r[5], r[1]) for r in self.db.execute(f"PRAGMA {prefix}table_info({quote_ident(name)})") if r[5]]
        if pk:
            keys.append(tuple(c for _, c in sorted(pk)))
        for _seq, index, unique, _origin, partial in self.db.execute(
            f"PRAGMA {prefix}index_list({quote_ident(name)})"
        ).fetchall():
            if unique and not partial:
                cols = [r[2] for r in self.db.execute(f"PRAGMA {prefix}index_info({quote_ident(index)})")]
                keys.append(tuple(cols))
        return keys

    def insert_arrow(self, table: str | Sequence[str], reader: pa.RecordBatchReader, *, temporary: bool = False) -> int:
        names = reader.schema.names
        sql = (
            f"INSERT INTO {qualified(table)} ({', '.join(quote_ident(n) for n in names)}) VALUES ({', '.join('?' * len(names))})"
        )
        total = 0
        for batch in reader:
            cols = [_to_python(c) for c in batch.columns]
            self.db.executemany(sql, zip(*cols, strict=True))
            total += batch.num_rows
        return total

    def translate(self, exc: BaseException, *, action: str, query: str | None = None, table: str | None = None) -> BaseException:
        if not isinstance(exc, sqlite3.Error):
            return exc
        where = f"{self.spec.where}{in_task()}"
        fields: dict[str, Any] = {"database": self.spec.redacted}
        if table:
            fields["table"] = table
        if query:
            fields["query"] = query
        if isinstance(exc, sqlite3.IntegrityError):
            return ConstraintViolation(
                f"Load into table {table!r} in {where} violated a constraint and was rolled back (the table is unchanged): "
                f"{exc}. Fix or deduplicate the offending rows, or load with mode='merge' and key=[...].",
                **fields,
            )
        if isinstance(exc, sqlite3.OperationalError) and "unable to open" in str(exc):
            return ConnectionFailed(f"Cannot {action}: opening {where} failed: {exc}.", **fields)
        shown = f" Query: {query.strip()}" if query else ""
        return QueryError(f"Cannot {action} in {where}: SQLite said: {exc}.{shown}", **fields)


class SQLiteConnection(Connection):
    """A SQLite database file (or ``:memory:``)."""

    dialect = "sqlite"

    def __init__(self, spec: ConnSpec, source: str, options: dict[str, Any]) -> None:
        super().__init__(spec, source, options)
        try:
            self._db: sqlite3.Connection | None = sqlite3.connect(
                spec.path, timeout=30, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise ConnectionFailed(
                f"Cannot open {spec.where}: {exc}. Check that the folder exists and is writable.", database=spec.redacted
            ) from None
        self._lock = threading.RLock()

    @contextmanager
    def session(self) -> Iterator[SQLiteSession]:
        with self._lock:
            if self._db is None:
                raise ConfigError(f"{self!r} is closed; connect() again.")
            s = SQLiteSession(self._db, self.spec)
            try:
                with native_work(self._db.interrupt):  # a cancelled run interrupts the statement
                    yield s
            finally:
                s.rollback()

    def close(self) -> None:
        with self._lock:
            db, self._db = self._db, None
        if db is not None:
            db.close()

"""PostgreSQL through ADBC (libpq): COPY-speed reads and bulk loads as Arrow, with a small pool.

* **Reads** run through ``adbc_driver_postgresql``, which fetches a query's result with
  ``COPY (query) TO STDOUT (FORMAT binary)`` and decodes it straight into Arrow record batches:
  no Python object per row, batches streamed.
* **Loads** use ADBC bulk ingest (``COPY ... FROM STDIN (FORMAT binary)`` fed from Arrow batches),
  inside the caller's transaction, so a failed load leaves the table as it was.
* **Pool**: a :class:`PostgresConnection` lends one libpq connection per operation (up to
  ``pool_size``, default 4) and keeps the idle ones; parallel tasks that share the object get
  their own connections. A connection that failed at the network level is dropped, not reused.

Errors are translated with the server's SQLSTATE: class 08 and 28 (connection, authentication)
become :class:`ConnectionFailed` (transient, naming host and database, never the password),
class 23 (integrity) :class:`ConstraintViolation` with the server's ``DETAIL`` (the offending key).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ..._context import native_work
from ..._errors import MissingDependencyError
from ..._secrets import mask
from .base import SQL_SKIP, Connection, Session, bind_params, qualified, split_table
from .errors import ConnectionFailed, ConstraintViolation, DatabaseError, QueryError, in_task
from .url import ConnSpec

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["PostgresConnection"]

_IDLE_CHECK_SECONDS = 30.0


def _driver() -> Any:
    try:
        import adbc_driver_postgresql.dbapi as pgdbapi
    except ImportError:
        raise MissingDependencyError("PostgreSQL connections", "adbc-driver-postgresql", "postgres") from None
    return pgdbapi


def _sqlstate(exc: BaseException) -> str:
    state = getattr(exc, "sqlstate", None)
    if state:
        return str(state)
    m = re.search(r"SQLSTATE: ([0-9A-Z]{5})", str(exc))
    return m.group(1) if m else ""


def _server_message(exc: BaseException) -> str:
    """The server's words from an ADBC error, without the driver's prefixes."""
    text = str(exc)
    text = re.sub(r"^[A-Z_]+: (\[libpq\] )?", "", text)
    text = re.sub(r"(Failed to (execute|prepare) (query|COPY statement)|Failed to connect): (PGRES_FATAL_ERROR )?", "", text)
    text = re.sub(r"\n?Query was:.*", "", text, flags=re.DOTALL)
    text = re.sub(r"\s*\. SQLSTATE: [0-9A-Z]{5}\s*$", "", text)
    text = re.sub(r"\s*SQLSTATE: [0-9A-Z]{5}\s*$", "", text)
    return mask(" ".join(text.split()))


def _fix_numeric(schema: pa.Schema) -> tuple[pa.Schema, bool]:
    """ADBC returns NUMERIC as an opaque string extension; give NUMERIC(p, s) columns a decimal type."""
    import pyarrow as pa

    fields, changed = [], False
    for f in schema:
        t = f.type
        if isinstance(t, pa.BaseExtensionType) and getattr(t, "type_name", "") == "numeric":
            typmod = int((f.metadata or {}).get(b"POSTGRESQL:typmod", b"-1"))
            if typmod >= 4:
                precision, scale = ((typmod - 4) >> 16) & 0xFFFF, (typmod - 4) & 0xFFFF
                t = pa.decimal128(precision, scale) if precision <= 38 else pa.decimal256(precision, scale)
            else:
                t = pa.string()
            changed = True
        elif isinstance(t, pa.BaseExtensionType):
            t, changed = t.storage_type, True
        fields.append(pa.field(f.name, t, f.nullable))
    return pa.schema(fields), changed


def _normalize_reader(reader: pa.RecordBatchReader) -> pa.RecordBatchReader:
    import pyarrow as pa

    schema, changed = _fix_numeric(reader.schema)
    if not changed:
        return pa.RecordBatchReader.from_batches(pa.schema([pa.field(f.name, f.type, f.nullable) for f in schema]), reader)

    def convert() -> Iterator[pa.RecordBatch]:
        for batch in reader:
            cols = []
            for col, f in zip(batch.columns, schema, strict=True):
                if isinstance(col.type, pa.BaseExtensionType):
                    col = col.storage
                cols.append(col if col.type.equals(f.type) else col.cast(f.type))
            yield pa.RecordBatch.from_arrays(cols, schema=schema)

    return pa.RecordBatchReader.from_batches(schema, convert())


_DOLLAR = re.compile(SQL_SKIP + r"|\$(?P<n>\d+)(?!\w)", re.VERBOSE | re.DOTALL)


def _setting_cast(value: Any) -> str | None:
    """The PostgreSQL type a bound value would have, or ``None`` if it cannot travel as text."""
    import datetime as dt
    from decimal import Decimal

    if value is None:
        return "text"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "bigint"
    if isinstance(value, float):
        return "double precision"
    if isinstance(value, Decimal):
        return "numeric"
    if isinstance(value, str):
        return "text"
    if isinstance(value, dt.datetime):
        return "timestamptz" if value.tzinfo is not None else "timestamp"
    if isinstance(value, dt.date):
        return "date"
    if isinstance(value, dt.time):
        return "time"
    return None


def _setting_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return str(value)


class PostgresSession(Session):
    dialect = "postgresql"

    def __init__(self, raw: Any, spec: ConnSpec) -> None:
        self.raw = raw
        self.spec = spec
        self._cursors: list[Any] = []

    def close(self) -> None:
        """Close the cursors of streamed results (ADBC wants every statement closed explicitly)."""
        for cur in self._cursors:
            _close_quietly(cur)
        self._cursors.clear()

    def execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> None:
        sql, values = bind_params(sql, params, "dollar")
        with self.raw.cursor() as cur:
            cur.execute(sql, values)

    def query_reader(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None, batch_rows: int) -> pa.RecordBatchReader:
        sql, values = bind_params(sql, params, "dollar")
        if values:
            sql, values = self._settings_for(sql, tuple(values))
        cur = self.raw.cursor()
        self._cursors.append(cur)
        cur.execute(sql, values)
        return _normalize_reader(cur.fetch_record_batch())

    def _settings_for(self, sql: str, values: tuple[Any, ...]) -> tuple[str, tuple[Any, ...] | None]:
        """Move bound values into transaction-local settings, so that the query itself has no parameters.

        libpq can only stream a result through ``COPY``, and ``COPY`` takes no parameters: with
        them, ADBC buffers the whole result (measured: 2.8x the memory, 1.5x the time for 1M
        rows). So each value is bound (never pasted into SQL) to ``set_config('bubbles.pN', $N,
        true)``, and the query reads it back as ``current_setting('bubbles.pN')::type`` -- a
        stable expression, usable by indexes. Values of other types keep ordinary binding.
        """
        casts = [_setting_cast(v) for v in values]
        if any(c is None for c in casts):
            return sql, values
        texts = tuple(_setting_text(v) for v in values)
        calls = ", ".join(f"set_config('bubbles.p{i}', ${i}, true)" for i in range(1, len(values) + 1))
        with self.raw.cursor() as cur:
            cur.execute(f"SELECT {calls}", texts)
            cur.fetchall()

        def sub(m: re.Match[str]) -> str:
            if m.group("skip"):
                return m.group("skip")
            i = int(m.group("n"))
            if values[i - 1] is None:
                return "NULL"
            return f"current_setting('bubbles.p{i}')::{casts[i - 1]}"

        return _DOLLAR.sub(sub, sql), None

    def begin(self) -> None:
        # ADBC runs with autocommit off: a transaction is always open; begin is where the last ended.
        pass

    def commit(self) -> None:
        self.raw.commit()

    def rollback(self) -> None:
        self.raw.rollback()

    def table_types(self, table: str | Sequence[str]) -> dict[str, pa.DataType | None] | None:
        if not self.query_all("SELECT to_regclass(?) IS NOT NULL", (qualified(table),))[0][0]:
            return None
        reader = self.query_reader(f"SELECT * FROM {qualified(table)} LIMIT 0", None, 1)
        reader.read_all()
        return {f.name: f.type for f in reader.schema}

    def unique_keys(self, table: str | Sequence[str]) -> list[tuple[str, ...]]:
        rows = self.query_all(
            "SELECT array_agg(a.attname::text ORDER BY k.ord) FROM pg_index i "
            "CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) "
            "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
            "WHERE i.indrelid = to_regclass(?) AND i.indisunique AND i.indpred IS NULL GROUP BY i.indexrelid",
            (qualified(table),),
        )
        return [tuple(r[0]) for r in rows]

    def insert_arrow(self, table: str | Sequence[str], reader: pa.RecordBatchReader, *, temporary: bool = False) -> int:
        schema, name = split_table(table)
        with self.raw.cursor() as cur:
            count = cur.adbc_ingest(name, reader, mode="append", db_schema_name=schema, temporary=temporary)
        return int(count) if count is not None and count >= 0 else -1

    def empty_table(self, table: str | Sequence[str]) -> None:
        """TRUNCATE (transactional in PostgreSQL, and no dead rows to vacuum), unless other tables'
        foreign keys reference it: then DELETE, which checks each reference."""
        referenced = self.query_all(
            "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND confrelid = to_regclass(?)", (qualified(table),)
        )[0][0]
        self.execute(f"{'DELETE FROM' if referenced else 'TRUNCATE'} {qualified(table)}")

    def temp_table_sql(self, name: str, columns: str) -> str:
        return f"CREATE TEMP TABLE {qualified((name,))} ({columns}) ON COMMIT DROP"

    def translate(self, exc: BaseException, *, action: str, query: str | None = None, table: str | None = None) -> BaseException:
        import adbc_driver_manager

        if not isinstance(exc, adbc_driver_manager.Error):
            return exc
        return translate(exc, self.spec, action=action, query=query, table=table)


def translate(
    exc: BaseException, spec: ConnSpec, *, action: str, query: str | None = None, table: str | None = None
) -> BaseException:
    """A bubbles error for an ADBC/libpq exception."""
    state = _sqlstate(exc)
    said = _server_message(exc)
    where = f"{spec.where}{in_task()}"
    fields: dict[str, Any] = {"database": spec.redacted, "sqlstate": state or None}
    if table:
        fields["table"] = table
    if query:
        fields["query"] = query
    if state.startswith(("08", "28", "57P")) or (not state and _looks_like_connection(said)):
        return ConnectionFailed(
            f"Cannot {action}: connecting to {where} failed: {said.rstrip('.?! ')}. Check that the server is up and reachable, "
            "and that the user and password (from the environment or .bubbles/secrets.toml) are right.",
            **fields,
        )
    if state.startswith("23"):
        detail = re.search(r"DETAIL:\s*(.*?)(?:\s*CONTEXT:|$)", said)
        key = detail.group(1) if detail else ""
        target = f"table {table!r}" if table else "the target table"
        fields["key"] = key or None
        return ConstraintViolation(
            f"Load into {target} in {where} violated a constraint and was rolled back (the table is unchanged): "
            f"{said}. Fix or deduplicate the offending rows, or load with mode='merge' and key=[...].",
            **fields,
        )
    if state.startswith("40") or state.startswith("53"):
        return DatabaseError(f"Cannot {action} in {where}: {said}. The database asked to try again.", transient=True,
                             **fields)
    shown = f" Query: {query.strip()}" if query else ""
    return QueryError(f"Cannot {action} in {where}: the database said: {said}.{shown}", **fields)


def _looks_like_connection(text: str) -> bool:
    return any(
        s in text for s in ("Failed to connect", "connection to server", "server closed the connection", "could not connect")
    )


class PostgresConnection(Connection):
    """A pool of libpq connections to one PostgreSQL database (via ADBC)."""

    dialect = "postgresql"

    def __init__(self, spec: ConnSpec, source: str, options: dict[str, Any]) -> None:
        super().__init__(spec, source, options)
        self._driver = _driver()
        self.pool_size = int(spec.options.get("pool_size") or options.get("pool_size") or 4)
        self._slots = threading.BoundedSemaphore(self.pool_size)
        self._idle: list[tuple[Any, float]] = []
        self._lock = threading.Lock()
        self._closed = False

    def _open(self) -> Any:
        try:
            return self._driver.connect(self.spec.libpq_uri())
        except Exception as exc:
            error = translate(exc, self.spec, action="connect")
        raise error  # (outside the handler: see errors.py, drivers' exceptions are not kept)

    def _take(self) -> Any:
        with self._lock:
            while self._idle:
                raw, since = self._idle.pop()
                if time.monotonic() - since < _IDLE_CHECK_SECONDS or self._alive(raw):
                    return raw
                _close_quietly(raw)
        return self._open()

    @staticmethod
    def _alive(raw: Any) -> bool:
        try:
            with raw.cursor() as cur:
                cur.execute("SELECT 1")
                cur.fetchall()
            raw.rollback()
            return True
        except Exception:
            return False

    @contextmanager
    def session(self) -> Iterator[PostgresSession]:
        if self._closed:
            from ..._errors import ConfigError

            raise ConfigError(f"{self!r} is closed; connect() again.")
        self._slots.acquire()
        raw = None
        try:
            raw = self._take()
            session = PostgresSession(raw, self.spec)
            # a cancelled run sends the server a cancel request and waits for the query to stop
            cancel = getattr(raw, "adbc_cancel", None) or getattr(raw, "cancel_safe", None) or raw.cancel
            try:
                with native_work(cancel):
                    yield session
            finally:
                session.close()
        except BaseException as exc:
            if raw is not None and (
                isinstance(exc, ConnectionFailed) or _looks_like_connection(str(exc)) or not self._reset(raw)
            ):
                _close_quietly(raw)
                raw = None
            raise
        finally:
            if raw is not None:
                if self._reset(raw):
                    with self._lock:
                        self._idle.append((raw, time.monotonic()))
                else:
                    _close_quietly(raw)
            self._slots.release()

    @staticmethod
    def _reset(raw: Any) -> bool:
        try:
            raw.rollback()
            return True
        except Exception:
            return False

    def close(self) -> None:
        self._closed = True
        with self._lock:
            idle, self._idle = self._idle, []
        for raw, _ in idle:
            _close_quietly(raw)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


def _close_quietly(raw: Any) -> None:
    try:
        raw.close()
    except Exception:
        pass

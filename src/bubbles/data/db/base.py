"""What every database connection offers: the seam between the readers/writers and a driver.

A :class:`Connection` is what :func:`~bubbles.data.db.connect` returns: thread-safe, picklable
(it pickles as its URL or name, never its password, and reconnects on the other side, so it can
be passed to tasks on the processes and Dask executors), and cheap to share. Work happens in a
:class:`Session` borrowed for one operation (a pooled libpq connection, a DuckDB cursor, a SQLite
connection), so parallel tasks never share a driver handle.

A driver module (``duckdb.py``, ``sqlite.py``, ``postgres.py``) implements the few primitives of
:class:`Session`; ``read.py``, ``write.py`` and ``incremental.py`` hold the logic, once.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ..._errors import ConfigError
from .url import ConnSpec

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["Connection", "Session", "bind_params", "quote_ident", "split_table"]

DEFAULT_BATCH_ROWS = 65_536


def quote_ident(name: str) -> str:
    """``name`` as a quoted SQL identifier (double quotes, inner quotes doubled); the same in all three dialects.

    The one place identifiers are validated: a name must be a non-empty string without NUL
    characters. Any other text is a valid identifier once quoted (``my table``, ``select``, ``a"b``).
    """
    if not isinstance(name, str) or not name or "\x00" in name:
        raise ConfigError(f"{name!r} is not a valid table or column name: use a non-empty string without NUL characters.",
                          source=str(name))
    return '"' + name.replace('"', '""') + '"'


def split_table(table: str | Sequence[str | None]) -> tuple[str | None, str]:
    """``"sales.orders"`` or ``("sales", "orders")`` -> ``("sales", "orders")``; ``"orders"`` -> ``(None, "orders")``.

    A name that itself contains a dot is passed as a tuple: ``(None, "odd.name")`` or ``("odd.name",)``.
    This is the only place table names are split; the parts are validated here and quoted by
    :func:`qualified`, so any text (``"my table"``, ``"select"``) is a table name, never SQL.
    """
    parts: list[str | None]
    if isinstance(table, str):
        head, dot, tail = table.rpartition(".")
        parts = [head if dot else None, tail]
    elif isinstance(table, Sequence) and 1 <= len(table) <= 2:
        parts = [None, *table] if len(table) == 1 else list(table)
    else:
        raise ConfigError(f"Table name {table!r} must be 'table', 'schema.table' or a (schema, table) pair.")
    schema, name = parts
    if schema is not None:
        quote_ident(schema)  # validates
    quote_ident(name)  # type: ignore[arg-type]
    return schema, name  # type: ignore[return-value]


def qualified(table: str | Sequence[str | None]) -> str:
    """The quoted, schema-qualified table name for SQL text."""
    schema, name = split_table(table)
    return (quote_ident(schema) + "." if schema else "") + quote_ident(name)


def display_table(table: str | Sequence[str | None]) -> str:
    schema, name = split_table(table)
    return f"{schema}.{name}" if schema else name


# Text in which a placeholder is not a placeholder: string literals (standard, and PostgreSQL's
# E'...' with backslash escapes), quoted identifiers, comments, dollar-quoted bodies ($$...$$ and
# $tag$...$tag$) and ``::`` casts. One pattern, shared by every rewrite of SQL text.
SQL_SKIP = r"""(?P<skip>
        (?<![\w$])[eE]'(?:[^'\\]|\\.|'')*'      # E'...' (backslash escapes)
      | '(?:[^']|'')*'                           # string literal
      | "(?:[^"]|"")*"                           # quoted identifier
      | --[^\n]*                                 # line comment
      | /\*.*?\*/                                # block comment
      | (?<![\w$])\$(?P<tag>(?:[A-Za-z_]\w*)?)\$.*?\$(?P=tag)\$   # $$...$$ or $tag$...$tag$
      | ::                                       # PostgreSQL cast, not a parameter
    )"""

_TOKENS = re.compile(
    SQL_SKIP + r"""
      | (?P<qmark>\?)                             # positional parameter
      | (?<![:\w]):(?P<name>[A-Za-z_]\w*)        # named parameter
    """,
    re.VERBOSE | re.DOTALL,
)


def bind_params(
    sql: str, params: Sequence[Any] | Mapping[str, Any] | None, style: str
) -> tuple[str, tuple[Any, ...] | dict[str, Any] | None]:
    """Rewrite ``?`` or ``:name`` placeholders to the driver's ``style`` and order the values.

    ``style`` is ``"dollar"`` (``$1, $2``: PostgreSQL and DuckDB) or ``"native"`` (SQLite takes
    ``?`` and ``:name`` itself). Placeholders inside string literals, quoted identifiers and
    comments are left alone; ``::type`` casts are not parameters. Values are never put into the
    SQL text: they travel as bound parameters.
    """
    if params is None:
        return sql, None
    if style == "native":
        return sql, dict(params) if isinstance(params, Mapping) else tuple(params)
    named = isinstance(params, Mapping)
    values: list[Any] = []
    index: dict[str, int] = {}
    positional = iter(() if named else tuple(params))  # type: ignore[arg-type]

    def sub(m: re.Match[str]) -> str:
        if m.group("qmark"):
            if named:
                raise ConfigError("The query uses '?' placeholders but params is a mapping; pass a list or use :name.")
            try:
                values.append(next(positional))
            except StopIteration:
                raise ConfigError(f"The query has more '?' placeholders than the {len(values)} params given.") from None
            return f"${len(values)}"
        if m.group("name"):
            key = m.group("name")
            if not named:
                raise ConfigError(f"The query uses :{key} but params is a list; pass a mapping {{'{key}': ...}}.")
            if key not in params:  # type: ignore[operator]
                raise ConfigError(
                    f"The query uses :{key} but params has no {key!r} (has: {', '.join(map(str, params)) or 'none'})."
                )
            if key not in index:
                values.append(params[key])  # type: ignore[index]
                index[key] = len(values)
            return f"${index[key]}"
        return m.group(0)

    out = _TOKENS.sub(sub, sql)
    if not named and not values and re.search(r"\$\d", _TOKENS.sub(lambda m: " " if m.group("skip") else m.group(0), sql)):
        return sql, tuple(params)  # type: ignore[arg-type]  # already in $1 style
    if not named and next(positional, _END) is not _END:
        raise ConfigError(f"params has more values than the query has '?' placeholders ({len(values)}).")
    return out, tuple(values)


_END = object()


class Session(ABC):
    """One borrowed driver connection, for one operation. Not thread-safe; not shared."""

    dialect: str
    spec: ConnSpec

    @abstractmethod
    def execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> None:
        """Run a statement that returns no rows."""

    @abstractmethod
    def query_reader(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None, batch_rows: int) -> pa.RecordBatchReader:
        """Run a query and stream its result as Arrow record batches."""

    def query_all(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Small result as Python tuples (catalog look-ups)."""
        table = self.query_reader(sql, params, DEFAULT_BATCH_ROWS).read_all()
        cols = [c.to_pylist() for c in table.columns]
        return list(zip(*cols, strict=True)) if cols else []

    @abstractmethod
    def begin(self) -> None: ...

    @abstractmethod
    def commit(self) -> None: ...

    @abstractmethod
    def rollback(self) -> None: ...

    @abstractmethod
    def table_types(self, table: str | Sequence[str]) -> dict[str, pa.DataType | None] | None:
        """Column name -> Arrow type of an existing table (``None`` type: any), or ``None`` if no such table."""

    @abstractmethod
    def unique_keys(self, table: str | Sequence[str]) -> list[tuple[str, ...]]:
        """The column sets with a primary-key or unique constraint on ``table``."""

    @abstractmethod
    def insert_arrow(self, table: str | Sequence[str], reader: pa.RecordBatchReader, *, temporary: bool = False) -> int:
        """Bulk-insert every batch of ``reader`` (columns by name) inside the open transaction; rows inserted."""

    @abstractmethod
    def translate(self, exc: BaseException, *, action: str, query: str | None = None, table: str | None = None) -> BaseException:
        """The bubbles error for a driver exception raised while doing ``action``; other exceptions come back as they are."""

    def empty_table(self, table: str | Sequence[str]) -> None:
        """Delete every row of ``table`` inside the open transaction, keeping the table's definition."""
        self.execute(f"DELETE FROM {qualified(table)}")

    def temp_table_sql(self, name: str, columns: str) -> str:
        return f"CREATE TEMP TABLE {quote_ident(name)} ({columns})"


class Connection(ABC):
    """A database to read from and write to. Made by :func:`bubbles.connect`.

    Example:
        >>> import bubbles
        >>> with bubbles.connect("duckdb:///:memory:") as conn:  # doctest: +SKIP
        ...     bubbles.read_sql(conn, "SELECT 42 AS answer").to_pylist()
        [{'answer': 42}]
    """

    dialect: str = ""

    def __init__(self, spec: ConnSpec, source: str, options: dict[str, Any]) -> None:
        self.spec = spec
        self._source = source
        self._options = options
        self.batch_rows = int(spec.options.get("batch_size") or options.get("batch_size") or DEFAULT_BATCH_ROWS)

    @property
    def name(self) -> str:
        """The connection's name in ``bubbles.toml``, else its redacted URL."""
        return self.spec.name or self.spec.redacted

    def __repr__(self) -> str:
        named = f" {self.spec.name!r}" if self.spec.name else ""
        return f"<{type(self).__name__}{named} {self.spec.redacted}>"

    def __reduce__(self) -> tuple[Any, ...]:
        from .connect import connect

        return (_reconnect, (connect, self._source, self._options))

    @abstractmethod
    def session(self) -> Any:
        """A context manager yielding a :class:`Session` for one operation."""

    @abstractmethod
    def close(self) -> None:
        """Close every driver connection this object holds."""

    def ping(self) -> None:
        """Run ``SELECT 1``; raises :class:`~bubbles.data.db.errors.ConnectionFailed` if the database is unreachable."""
        with self.session() as s:
            s.query_all("SELECT 1")

    def execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> None:
        """Run one statement (DDL, UPDATE, ...) in its own transaction, with bound ``params``.

        Example:
            >>> conn.execute("DELETE FROM orders WHERE day < ?", [cutoff])  # doctest: +SKIP
        """
        with self.session() as s, transaction(s, action="execute a statement", query=sql):
            s.execute(sql, params)

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextmanager
def using(conn: Connection | str) -> Iterator[Connection]:
    """The connection for one call: a Connection the caller passed stays open; one opened here
    from a URL or a name is closed when the call ends."""
    if isinstance(conn, Connection):
        yield conn
        return
    from .connect import connect

    opened = connect(conn)
    try:
        yield opened
    finally:
        opened.close()


def _reconnect(connect: Any, source: str, options: dict[str, Any]) -> Connection:
    return connect(source, **options)  # type: ignore[no-any-return]


@contextmanager
def transaction(s: Session, *, action: str, query: str | None = None, table: str | None = None) -> Iterator[Session]:
    """Run the block in one transaction: commit at the end, roll back (and translate) on error."""
    s.begin()
    try:
        yield s
        s.commit()
        return
    except BaseException as exc:
        try:
            s.rollback()
        except Exception:  # the connection may be gone; the original error is what matters
            pass
        translated = s.translate(exc, action=action, query=query, table=table) if _driver_error(exc) else exc
        if translated is exc:
            raise
    raise translated  # (outside the handler: see errors.py, drivers' exceptions are not kept)


def _driver_error(exc: BaseException) -> bool:
    """Whether ``exc`` is a driver's error that a session translates into a bubbles one.

    A translated error is raised outside the handler that caught the driver's, so that it carries no
    driver exception as its context: ADBC's do not unpickle (their __init__ wants keyword arguments),
    and tblib (installed by Dask) pickles an error with its context — a task's ConnectionFailed then
    failed to reach the caller from a Dask worker. The driver's message is in the bubbles error's own.
    """
    from ..._errors import BubblesError

    return isinstance(exc, Exception) and not isinstance(exc, BubblesError)

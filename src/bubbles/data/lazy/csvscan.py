"""A CSV file read inside a plan: parsed by DuckDB where it reads the file as the bubbles reader does.

**Planning** (``read_csv`` inside a task) reads only the file's first block (1 MiB, up to the
next line end) with the bubbles reader's own code: it gives the column names and types
exactly as the reader infers them, and the checks the reader applies (no rejected rows, no
column bent by a few bad values, no text column whose type the rest of the file could still
decide). The file's identity (size, mtime, inode) is recorded. A read whose options DuckDB
cannot honour the same way (another encoding, an escape character, ``newlines_in_values``,
``timestamp_formats``, ``strings_can_be_null``, object storage, bz2/zstd) is not planned: it is
read at once, as before.

**Running** it, DuckDB's CSV reader parses every column as text, in strict mode, and the
statement converts each typed column itself, behind a guard: a value is converted only if it
has a shape on which DuckDB and the bubbles reader agree (``-?[0-9]{1,18}`` for int64,
``YYYY-MM-DD[ HH:MM[:SS]]`` for timestamp[s], at most ``s`` decimals for decimal(p, s), ...).
The guard also stops the statement at a line with too few or too many fields (an extra column
that must stay empty catches the trailing delimiters DuckDB would drop), at a null marker other
than the empty text, and DuckDB's strict parser stops it at an unclosed quote, a quoted line
break, mixed line ends and invalid UTF-8. Whatever stops the statement, the plan runs again with
this file read by the bubbles reader (its exact path: bad lines raised or quarantined with
their line numbers, types inferred from the whole file), so the result is always the one the
reader gives: DuckDB only ever makes it faster. See docs/lazy.md for the table of shapes.
"""

from __future__ import annotations

import re
import threading
from typing import TYPE_CHECKING, Any

from ..._errors import BubblesError
from .._fingerprint import digest
from ..files._common import sql_string
from .identity import FileIdentity, where
from .plan import Binder, Node

if TYPE_CHECKING:
    from collections.abc import Iterator

    import pyarrow as pa

    from ..files.csv import _Spec

__all__ = ["CsvScan", "plan_csv"]

FIRST_BYTES = 1 << 20
_MAX_FIRST = 8 << 20  # a first block must hold whole lines, and enough rows for the reader's type screen
_SCREEN_ROWS = 4000
_NO_NULL = "\x01bubbles-no-null\x01"  # DuckDB's null text: never in a file, so every value stays text
_EXTRA = "__bubbles_extra"
GUARD = "bubbles-guard"

# DuckDB refuses a month, day, minute or second out of range itself (the plan then stops); it reads hour 24 and
# year 0 where the reader does not, so the shapes exclude those
_DATE = r"[1-9][0-9]{3}-[0-9]{2}-[0-9]{2}"
_TIME = r"([01][0-9]|2[0-3]):[0-9]{2}"
_FLOAT = r"-?[0-9]+([.][0-9]*)?([eE][-+]?[0-9]{1,2})?"
_BOOL = "true|false|True|False|TRUE|FALSE|1|0"
_INTS = {"int8": ("TINYINT", 3, True), "int16": ("SMALLINT", 5, True), "int32": ("INTEGER", 10, True),
         "int64": ("BIGINT", 18, True), "uint8": ("UTINYINT", 3, False), "uint16": ("USMALLINT", 5, False),
         "uint32": ("UINTEGER", 10, False), "uint64": ("UBIGINT", 19, False)}
_TIMESTAMPS = {"s": ("TIMESTAMP_S", 0), "ms": ("TIMESTAMP_MS", 3), "us": ("TIMESTAMP", 6), "ns": ("TIMESTAMP_NS", 9)}


def duck_type(t: pa.DataType) -> tuple[str, str | None] | None:
    """DuckDB's type for an Arrow column type and the shape its text must have (``None``: any text), or
    ``None`` when the plan does not read such a column (the file is then read by the bubbles reader)."""
    import pyarrow as pa

    if pa.types.is_string(t):
        return "VARCHAR", None
    if pa.types.is_integer(t):
        name, digits, signed = _INTS[str(t)]
        return name, ("-?" if signed else "") + f"[0-9]{{1,{digits}}}"
    if pa.types.is_float64(t):
        return "DOUBLE", _FLOAT
    if pa.types.is_boolean(t):
        return "BOOLEAN", _BOOL
    if pa.types.is_date32(t):
        return "DATE", _DATE
    if pa.types.is_timestamp(t) and t.tz is None:
        name, digits = _TIMESTAMPS[t.unit]
        seconds = f"(:[0-9]{{2}}([.][0-9]{{1,{digits}}})?)?" if digits else "(:[0-9]{2})?"
        return name, f"{_DATE}([ T]{_TIME}{seconds})?"
    if pa.types.is_decimal(t) and t.bit_width == 128 and 1 <= t.precision - t.scale and t.precision <= 38:
        whole = t.precision - t.scale
        fraction = rf"([.][0-9]{{0,{t.scale}}})?" if t.scale else ""
        return f"DECIMAL({t.precision},{t.scale})", f"-?[0-9]{{1,{whole}}}{fraction}"
    return None


def _duck_compression(spec: _Spec) -> str | None:
    """DuckDB's name of the file's compression, or ``None`` when DuckDB should not read it."""
    if spec.compression is None:
        return "none"
    if spec.compression == "gzip":
        return "gzip"
    if spec.compression == "detect":
        lower = spec.loc.path.lower()
        if lower.endswith((".gz", ".gzip")):
            return "gzip"
        if lower.endswith((".bz2", ".zst", ".zstd", ".lz4", ".br", ".snappy", ".xz")):
            return None
        return "none"
    return None


def _dialect_ok(spec: _Spec) -> bool:
    return (spec.loc.is_local and spec.encoding == "utf-8" and not spec.escapechar and not spec.newlines_in_values
            and not spec.strings_can_be_null and not spec.timestamp_formats and len(spec.delimiter) == 1
            and spec.delimiter not in "\r\n" and (spec.quotechar is None or len(spec.quotechar) == 1)
            and spec.delimiter != spec.quotechar and (spec.null_values is None or "" in spec.null_values)
            and _duck_compression(spec) is not None)


def plan_csv(spec: _Spec) -> CsvScan | None:
    """The planned read of ``spec``'s file, or ``None`` when it must be read now by the bubbles reader."""
    from ..._context import current_task

    if not _dialect_ok(spec):
        return None
    try:
        identity = FileIdentity.of(spec.loc.path)
    except OSError:
        return None  # the reader says why, now
    first = _first_block(spec)
    if first is None:
        return None
    table, names = first
    schema = _schema(table, names, spec)
    if schema is None:
        return None
    ctx = current_task()
    return CsvScan(spec, identity, names, schema, ctx.task if ctx is not None else None, table.num_rows)


def _first_block(spec: _Spec) -> tuple[pa.Table, list[str]] | None:
    """The file's first block as the reader reads it (every column), with the file's column names."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    from ..files.csv import _lost_rows, _Rejected

    try:
        with spec.open() as stream:
            data = stream.read(FIRST_BYTES)
            eof = len(data) < FIRST_BYTES
            while not eof and b"\n" not in data[-FIRST_BYTES:]:  # (a long last line: read on to its end)
                more = stream.read(FIRST_BYTES)
                eof = len(more) < FIRST_BYTES
                data += more
                if len(data) > _MAX_FIRST:
                    return None
            if not eof:
                data = data[: data.rfind(b"\n") + 1]
            if _spaced_quotes(data, spec):
                return None
            rejected = _Rejected()
            convert = spec.convert_options()
            convert.include_columns = []
            table = pacsv.read_csv(pa.BufferReader(data), spec.read_options(), spec.parse_options(rejected), convert)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError, BubblesError):
        # Not planned: read_csv then reads the file at once with the bubbles reader, which raises the
        # error that names the file and line (or quarantines the lines) as it does without plans.
        return None
    if rejected.count or _lost_rows(data, table.num_rows + rejected.count, spec, first=True):
        return None
    if not eof and table.num_rows < _SCREEN_ROWS:
        return None  # too few rows for the reader's type screen to be decided by this block
    names = list(table.schema.names)
    if len(set(names)) != len(names) or _EXTRA in names:
        return None
    return table, names


def _spaced_quotes(data: bytes, spec: _Spec) -> bool:
    """Whether a quoted field of the block has blanks outside its quotes (``1, "x"`` or ``1,"x" ``).

    DuckDB drops those blanks (and the quotes of ``, "x"``) where the reader keeps them as text, and
    nothing in DuckDB's result shows it: such a file is read by the reader. A writer that puts them
    there does so on every line, so the first block tells; a file that starts clean and has them
    only later is read by DuckDB (docs/lazy.md says so).
    """
    if not spec.quotechar:
        return False
    q, d = re.escape(spec.quotechar.encode()), re.escape(spec.delimiter.encode())
    # (an escaped quote inside a quoted field is doubled: a blank followed by one lone quote opens a field)
    pattern = rb"(?m)(?:^|" + d + rb")[ \t]+" + q + rb"(?!" + q + rb")|(?:^|" + d + rb")[ \t]+" + q + q + rb"(?=" + d \
        + rb"|\r?$)|" + q + rb"[ \t]+(?:" + d + rb"|\r?$)"
    return re.search(pattern, data) is not None


def _schema(table: pa.Table, names: list[str], spec: _Spec) -> pa.Schema | None:
    """The types the reader gives these columns, if the plan can read every one of them."""
    import pyarrow as pa

    from ..files import _csvsafe as exact
    from ..files.csv import _check

    selected = spec.include_columns if spec.include_columns is not None else names
    if any(c not in names for c in selected):
        return None
    block = table.select(selected)
    targets, problem = _check(block, spec)
    if problem:
        return None
    for f in targets:
        if duck_type(f.type) is None:
            return None
        column = block.column(f.name).combine_chunks()
        if pa.types.is_string(f.type) and f.name not in spec.column_types and not exact.settled(column, spec):
            return None  # the rest of the file decides this column's type: the reader must see all of it
    return targets


class CsvScan(Node):
    """The planned read of one CSV file (see the module docstring)."""

    step = "read_csv"

    def __init__(self, spec: _Spec, identity: FileIdentity, names: list[str], schema: pa.Schema,
                 planned_by: str | None, first_rows: int = 1) -> None:
        self.spec = spec
        self.first_rows = first_rows  # rows of the first block (0: the file has no data rows)
        self.identity = identity
        self.names = names  # every column of the file, in order
        self.schema = schema  # the columns read, with the reader's types
        self.planned_by = planned_by
        self.exact = False  # DuckDB could not read it as the reader does: from now on the reader reads it
        self.set_aside = False  # the reader read it whole and put its bad lines in quarantine (see _reading_spec)
        self.exact_reads = 0  # reads of it by the reader (see engine.restartable)
        self.exact_reason: str | None = None
        self._hash: str | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("_hash", None)
        state.pop("_lock", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._hash = None

    def source(self) -> str:
        return str(self.spec.loc)

    # -- identity ----------------------------------------------------------------------------------
    def check(self) -> None:
        self.identity.check(self.planned_by)

    def fingerprint(self) -> str | None:
        if self._hash is None:
            self._hash = self.identity.content_hash()
        spec = self.spec
        options = repr((spec.delimiter, spec.quotechar, spec.header, spec.column_names, spec.null_values, spec.skip_rows,
                        spec.compression, sorted((k, str(v)) for k, v in spec.column_types.items()), spec.include_columns,
                        spec.on_bad_lines, spec.quarantine))
        return digest("read_csv", self.identity.path, options, self._hash, self.schema.to_string())

    def keepable(self) -> bool:
        return True

    # -- binding -------------------------------------------------------------------------------------
    def bind(self, b: Binder) -> str:
        if b.mode == "plan":
            return b.empty(self.schema)
        b.files.append(self)
        if self.exact:
            return b.register(self.read_exact())
        if b.mode == "stream":
            return b.register(self.read_stream())
        b.guarded.append(self)
        return self.scan_sql()

    def scan_sql(self) -> str:
        """The guarded DuckDB scan of the file (see the module docstring)."""
        from ..db.base import quote_ident

        spec = self.spec
        columns = ", ".join(f"{sql_string(n)}: 'VARCHAR'" for n in [*self.names, _EXTRA])
        quote = spec.quotechar or ""
        options = [
            f"header = {'true' if spec.header else 'false'}", f"skip = {int(spec.skip_rows)}", "auto_detect = false",
            f"columns = {{{columns}}}", f"delim = {sql_string(spec.delimiter)}", f"quote = {sql_string(quote)}",
            f"escape = {sql_string(quote)}", "strict_mode = true", "null_padding = true",
            f"nullstr = {sql_string(_NO_NULL)}", "allow_quoted_nulls = false",
            f"compression = {sql_string(_duck_compression(spec) or 'none')}",
        ]
        # Every column the query sees is an expression (a cast, or a coalesce that stops at a null): a filter
        # of the query is never pushed into the scan below the guard, so the guard sees every row of the file.
        stop = f"error({sql_string(f'{GUARD}: a value of {self.identity.path} has a shape the plan does not read')})"
        last = quote_ident(self.names[-1])
        select, checks = [], [f"{quote_ident(_EXTRA)} IS NULL", f"{last} IS NOT NULL"]
        for f in self.schema:
            col = quote_ident(f.name)
            duck, shape = duck_type(f.type)  # type: ignore[misc]
            if shape is None:
                select.append(f"coalesce({col}, {stop}) AS {col}")
            else:
                select.append(f"CAST(NULLIF({col}, '') AS {duck}) AS {col}")
                checks.append(f"({col} = '' OR regexp_full_match({col}, {sql_string(shape)}))")
        return (f"(SELECT {', '.join(select)} FROM read_csv({sql_string(self.identity.path)}, {', '.join(options)}) "
                f"WHERE CASE WHEN {' AND '.join(checks)} THEN true ELSE {stop} END)")

    # -- the bubbles reader ------------------------------------------------------------------------------
    def read_exact(self) -> pa.Table:
        """The file read by the bubbles reader, as ``read_csv`` outside a plan reads it."""
        from ..files.csv import _read_table

        self.check()
        self.exact_reads = getattr(self, "exact_reads", 0) + 1
        with _reading_lock(self), attributed(self):  # (two consumers at once: one quarantines, the other skips)
            table = _read_table(self._reading_spec(), None)
            self.set_aside = self.spec.on_bad_lines == "quarantine"
        self.check()
        return table

    def read_stream(self, batch_size: int = 65_536) -> pa.RecordBatchReader:
        """The file streamed by the bubbles reader, with the planned types (values that do not fit are bad lines)."""
        import dataclasses

        import pyarrow as pa

        from ..files.csv import _read_stream

        self.check()
        spec = dataclasses.replace(self._reading_spec(), column_types={f.name: f.type for f in self.schema},
                                   block_size=1 << 20)
        self.exact_reads = getattr(self, "exact_reads", 0) + 1
        with attributed(self):
            reader = _read_stream(spec, batch_size, None)

        def batches() -> Iterator[pa.RecordBatch]:
            yield from reader
            self.set_aside = self.spec.on_bad_lines == "quarantine"  # (read to its end: its bad lines are set aside)

        return pa.RecordBatchReader.from_batches(reader.schema, batches())

    def _reading_spec(self) -> _Spec:
        """How the reader reads the file: once its bad lines are in quarantine, a read again (a second consumer
        of the plan, a writer starting over, a retry) skips them instead of quarantining them twice."""
        import dataclasses

        if getattr(self, "set_aside", False):  # (a plan kept by an earlier version has no such field)
            return dataclasses.replace(self.spec, on_bad_lines="skip")
        return self.spec

    def fall_back(self, reason: str) -> None:
        """DuckDB stopped: from now on, this file is read by the bubbles reader."""
        self.exact = True
        self.exact_reason = reason


_LOCKS_GUARD = threading.Lock()


def _reading_lock(scan: CsvScan) -> threading.Lock:
    """The lock that makes reads of one planned file by the reader one at a time (made on first use: a plan
    that travelled to another process has its own)."""
    with _LOCKS_GUARD:
        lock = scan.__dict__.get("_lock")
        if lock is None:
            lock = scan.__dict__["_lock"] = threading.Lock()
        return lock


class attributed:
    """Errors of a planned read name the task that planned it, and the task running it (a context manager)."""

    def __init__(self, node: Node) -> None:
        self.node = node

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        if isinstance(exc, BubblesError):
            attributed_exc = with_planner(exc, self.node)
            if attributed_exc is not exc:
                raise attributed_exc from exc


def with_planner(exc: BubblesError, node: Node) -> BubblesError:
    """A copy of ``exc`` whose message says which task planned the read it happened in, and which ran it."""
    from ..._context import current_task

    ctx = current_task()
    running = ctx.task if ctx is not None else None
    planner = node.planned_by
    if planner is None or planner == running or getattr(exc, "planned_by", None):
        return exc
    text = (f"{where(planner).capitalize()} planned this {node.step} (of {node.source()}); it ran in {where(running)}, "
            f"fused with the steps that use it. {exc.message}")
    fields = {**getattr(exc, "_fields", {}), "planned_by": planner}
    copy = type(exc)(text, **fields)
    copy.__dict__.update({k: v for k, v in exc.__dict__.items() if k not in ("message", "_fields")})
    copy.planned_by = planner  # type: ignore[attr-defined]
    return copy


def guard_stopped(text: str) -> bool:
    """Whether a DuckDB error is a guard (or DuckDB's CSV reader) stopping a guarded scan."""
    return GUARD in text or bool(re.search(r"CSV|Conversion Error|Could not convert|unicode|UTF-?8", text, re.I))

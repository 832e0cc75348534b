"""Reading CSV into Arrow: a whole table, or a stream of record batches for files larger than memory.

The fast path is Arrow's multi-threaded CSV reader. Bad lines are handled in two places:

* **Structure** (wrong number of columns, an unbalanced quote that swallows the rest of a
  line): Arrow calls our handler for each such row; it is recorded, then raised, quarantined or
  skipped according to ``on_bad_lines``.
* **Values** (a value that does not fit its declared or inferred type, bytes that are not valid
  in the encoding): Arrow's error does not say which row. Only then, the file is read again with
  every column as raw bytes and each column is converted with bisection (convert a slice; if it
  fails, split it), which finds the k bad rows in O(k log n) conversions. Their physical line
  numbers and raw text come from one pass of Python's ``csv`` module over the file.

So a clean file costs exactly one Arrow read, and the slow work is paid only for bad input.
"""

from __future__ import annotations

import codecs
import csv as _pycsv
import io
import json
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..._context import log_metric
from ..._errors import ConfigError, DataError
from ._atomic import atomic_file
from ._common import BadLineError, as_output, check_on_bad_lines, count_read, counted, prefetch
from ._fs import Location, locate
from ._types import as_schema

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["read_csv"]

_COMPRESSIONS = {"infer": "detect", "detect": "detect", None: None, "none": None, "gzip": "gzip", "gz": "gzip",
                 "bz2": "bz2", "zstd": "zstd", "zst": "zstd", "lz4": "lz4"}
# Arrow reports a value that does not fit its column in two forms: "CSV conversion error to int64:
# invalid value 'x'" and, for decimals, "The string 'x' is not a valid decimal128 number".
_CONVERSION = re.compile(
    r"In CSV column #(\d+): (?:Row #\d+: )?"
    r"(?:CSV conversion error to ([^:]+): (.*)|The string ('.*') is not a valid (\w+) number(.*))",
    re.S,
)
_PARSE = re.compile(r"CSV parse error: (.*?)(?::\s(.*))?$", re.S)


@dataclass
class _Spec:
    """Everything needed to (re)open and parse one CSV source."""

    loc: Location
    delimiter: str
    quotechar: str | None
    escapechar: str | None
    header: bool
    column_names: list[str] | None
    encoding: str
    null_values: list[str] | None
    skip_rows: int
    compression: str | None
    newlines_in_values: bool
    column_types: dict[str, pa.DataType]
    include_columns: list[str] | None
    timestamp_formats: list[str] | None
    strings_can_be_null: bool
    block_size: int | None
    on_bad_lines: str
    quarantine: str | None
    bad: list[dict[str, Any]] = field(default_factory=list)
    chunked: bool = False  # line numbers Arrow reports are relative to a chunk

    def open(self) -> Any:
        try:
            return self.loc.fs.open_input_stream(self.loc.path, compression=self.compression)
        except FileNotFoundError:
            raise DataError(f"CSV file {self.loc} does not exist. Check the path.", source=str(self.loc)) from None

    def read_options(self, *, use_threads: bool = True) -> Any:
        import pyarrow.csv as pacsv

        opts: dict[str, Any] = {"use_threads": use_threads, "skip_rows": self.skip_rows, "encoding": self.encoding}
        if self.block_size:
            opts["block_size"] = self.block_size
        if self.column_names is not None:
            opts["column_names"] = self.column_names
            if self.header:
                opts["skip_rows"] += 1
        elif not self.header:
            opts["autogenerate_column_names"] = True
        return pacsv.ReadOptions(**opts)

    def parse_options(self, handler: Callable[[Any], str] | None) -> Any:
        import pyarrow.csv as pacsv

        return pacsv.ParseOptions(
            delimiter=self.delimiter,
            quote_char=self.quotechar if self.quotechar else False,
            double_quote=True,
            escape_char=self.escapechar if self.escapechar else False,
            newlines_in_values=self.newlines_in_values,
            invalid_row_handler=handler,
        )

    def convert_options(self, column_types: dict[str, pa.DataType] | None = None) -> Any:
        import pyarrow.csv as pacsv

        opts: dict[str, Any] = {"column_types": self.column_types if column_types is None else column_types,
                                "strings_can_be_null": self.strings_can_be_null}
        if self.null_values is not None:
            opts["null_values"] = self.null_values
        if self.include_columns is not None:
            opts["include_columns"] = self.include_columns
        if self.timestamp_formats:
            opts["timestamp_parsers"] = self.timestamp_formats
        return pacsv.ConvertOptions(**opts)

    def handler(self) -> Callable[[Any], str]:
        action = "error" if self.on_bad_lines == "error" else "skip"

        def on_invalid_row(row: Any) -> str:
            # Arrow's line numbers do not count line breaks inside quoted values: recount those ourselves
            line = None if self.newlines_in_values or self.chunked else row.number
            self.bad.append({"line": line, "reason": f"expected {row.expected_columns} columns, "
                             f"found {row.actual_columns}", "raw": row.text, "column": None, "row": None})
            return action

        return on_invalid_row


def read_csv(
    path: str | os.PathLike[str],
    *,
    schema: Any = None,
    columns: Sequence[str] | None = None,
    delimiter: str = ",",
    quotechar: str | None = '"',
    escapechar: str | None = None,
    header: bool = True,
    column_names: Sequence[str] | None = None,
    encoding: str = "utf-8",
    null_values: Sequence[str] | None = None,
    strings_can_be_null: bool = False,
    skip_rows: int = 0,
    timestamp_formats: Sequence[str] | None = None,
    newlines_in_values: bool = False,
    compression: str | None = "infer",
    on_bad_lines: str = "error",
    quarantine: str | os.PathLike[str] | None = None,
    batch_size: int | None = None,
    block_size: int | None = None,
    storage_options: dict[str, Any] | None = None,
    output: str = "arrow",
) -> Any:
    """Read a CSV file into an Arrow table, or with ``batch_size`` into a stream of record batches.

    Args:
        path: local path or fsspec URL (``s3://bucket/key.csv``). ``.gz``, ``.bz2`` and ``.zst``
            are decompressed (``compression="infer"``); pass ``compression=None`` to disable.
        schema: declared column types, a ``pyarrow.Schema`` or ``{"amount": "decimal(12,2)"}``.
            Columns not named are inferred. With ``header=False`` a full schema also names the columns.
        columns: read only these columns (in this order).
        delimiter, quotechar, escapechar: the dialect. ``quotechar=None`` disables quoting.
        header: whether the first line holds column names.
        column_names: names to use (the header line, if any, is skipped).
        encoding: ``"utf-8"`` (a BOM is skipped; ``"utf-8-sig"`` is accepted), ``"latin-1"``, ...
        null_values: texts meaning null (default: Arrow's list, e.g. ``""``, ``"NULL"``, ``"NA"``).
        strings_can_be_null: whether string columns turn ``null_values`` into nulls too.
        skip_rows: lines to skip before the header.
        timestamp_formats: strptime formats for timestamp columns (only ISO 8601 is inferred;
            give formats for anything else instead of parsing strings later).
        newlines_in_values: allow line breaks inside quoted values (slower to parse).
        on_bad_lines: ``"error"`` raises :class:`BadLineError` naming file, line, column and the raw
            text; ``"quarantine"`` writes each bad line, its line number and reason to a JSON-lines
            file (``quarantine=``, default ``<path>.bad.jsonl``) and goes on; ``"skip"`` drops them,
            counted in the ``bad_lines`` metric.
        batch_size: stream record batches of at most this many rows instead of a table, so a file
            larger than memory flows through the pipeline.
        block_size: bytes parsed per block (Arrow's unit of parallelism and of streaming memory).
        storage_options: passed to fsspec for URLs (credentials, ``endpoint_url``...).
        output: ``"arrow"`` (default), ``"pandas"`` or ``"polars"`` for a frame; streams stay Arrow.

    Returns:
        A ``pyarrow.Table`` (or frame, see ``output``), or a ``pyarrow.RecordBatchReader`` when
        ``batch_size`` is given.

    Example:
        >>> import bubbles
        >>> orders = bubbles.read_csv("orders.csv", schema={"amount": "decimal(12,2)"})  # doctest: +SKIP
        >>> for batch in bubbles.read_csv("big.csv.gz", batch_size=100_000): ...  # doctest: +SKIP
    """
    check_on_bad_lines(on_bad_lines)
    loc = locate(path, storage_options)
    if compression not in _COMPRESSIONS:
        raise ConfigError(f"compression={compression!r} is not one of 'infer', None, 'gzip', 'bz2', 'zstd'.")
    declared: dict[str, pa.DataType] = {}
    names = list(column_names) if column_names is not None else None
    if schema is not None:
        sch = as_schema(schema)
        declared = {f.name: f.type for f in sch}
        if not header and names is None:
            names = list(sch.names)
    enc = codecs.lookup(encoding).name
    if enc == "utf-8-sig":  # Arrow skips a UTF-8 BOM itself
        enc = "utf-8"
    if batch_size is not None and batch_size < 1:
        raise ConfigError(f"batch_size must be a positive number of rows, got {batch_size}.")
    q = None
    if on_bad_lines == "quarantine":
        q = os.fspath(quarantine) if quarantine is not None else f"{loc}.bad.jsonl"
    spec = _Spec(
        loc=loc, delimiter=delimiter, quotechar=quotechar, escapechar=escapechar, header=header, column_names=names,
        encoding=enc, null_values=list(null_values) if null_values is not None else None, skip_rows=skip_rows,
        compression=_COMPRESSIONS[compression], newlines_in_values=newlines_in_values, column_types=declared,
        include_columns=list(columns) if columns is not None else None,
        timestamp_formats=list(timestamp_formats) if timestamp_formats else None,
        strings_can_be_null=strings_can_be_null, block_size=block_size, on_bad_lines=on_bad_lines, quarantine=q,
    )
    if batch_size is not None:
        if not block_size:
            spec.block_size = 1 << 20  # larger blocks make Arrow read further ahead: memory grows with the file
        return _read_stream(spec, batch_size, storage_options)
    return as_output(_read_table(spec, storage_options), output)


# -- whole table ------------------------------------------------------------------------------------
def _read_table(spec: _Spec, storage_options: dict[str, Any] | None) -> pa.Table:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    try:
        with spec.open() as stream:
            table = pacsv.read_csv(stream, spec.read_options(), spec.parse_options(spec.handler()),
                                   spec.convert_options())
    except (pa.ArrowInvalid, OSError) as exc:
        if spec.bad and spec.on_bad_lines == "error":
            _locate_structural(spec)
            raise _bad_line_error(spec, spec.bad[0]) from None
        if not _CONVERSION.search(str(exc)):
            raise _translate(exc, spec) from None
        table = None
    if table is None or _undeclared_binary(table, spec):
        spec.bad.clear()  # the raw read below meets the structural bad lines again
        table = _convert_safely(_read_raw(spec), _targets(spec), spec, row_offset=0)
    if spec.bad:
        _locate_structural(spec)
        _finish_bad(spec, storage_options)
    count_read(table.num_rows, table.nbytes)
    return table


def _undeclared_binary(table: pa.Table, spec: _Spec) -> bool:
    """Arrow infers ``binary`` for a column with bytes invalid in the encoding: treat those as bad values."""
    import pyarrow as pa

    return any(f.type == pa.binary() and f.name not in spec.column_types for f in table.schema)


def _targets(spec: _Spec) -> pa.Schema:
    """The types each column should have: declared ones, others as Arrow infers from the first block."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    try:
        with spec.open() as stream:
            inferred = pacsv.open_csv(stream, spec.read_options(), spec.parse_options(lambda row: "skip"),
                                      spec.convert_options()).schema
    except (pa.ArrowInvalid, OSError) as exc:
        if not _CONVERSION.search(str(exc)):
            raise _translate(exc, spec) from None
        # the first block itself holds a bad value: infer from raw text instead
        with spec.open() as stream:
            raw = pacsv.open_csv(stream, spec.read_options(), spec.parse_options(lambda row: "skip"),
                                 spec.convert_options({}))
            inferred = raw.schema
    fields = []
    for f in inferred:
        t = spec.column_types.get(f.name, f.type)
        fields.append(pa.field(f.name, pa.string() if t == pa.binary() and f.name not in spec.column_types else t))
    return pa.schema(fields)


def _read_raw(spec: _Spec) -> pa.Table:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    names = _column_names(spec)
    raw_types = {n: pa.binary() for n in names}
    with spec.open() as stream:
        try:
            return pacsv.read_csv(stream, spec.read_options(use_threads=False), spec.parse_options(spec.handler()),
                                  _raw_convert(spec, raw_types))
        except (pa.ArrowInvalid, OSError) as exc:
            if spec.bad and spec.on_bad_lines == "error":
                _locate_structural(spec)
                raise _bad_line_error(spec, spec.bad[0]) from None
            raise _translate(exc, spec) from None


def _raw_convert(spec: _Spec, raw_types: dict[str, pa.DataType]) -> Any:
    import pyarrow.csv as pacsv

    opts: dict[str, Any] = {"column_types": raw_types, "strings_can_be_null": True}
    if spec.null_values is not None:
        opts["null_values"] = spec.null_values
    if spec.include_columns is not None:
        opts["include_columns"] = spec.include_columns
    return pacsv.ConvertOptions(**opts)


def _column_names(spec: _Spec) -> list[str]:
    import pyarrow.csv as pacsv

    with spec.open() as stream:
        reader = pacsv.open_csv(stream, spec.read_options(), spec.parse_options(lambda row: "skip"),
                                _raw_convert(spec, {}))
        return list(reader.schema.names)


# -- per-value conversion with bisection --------------------------------------------------------------
def _convert_safely(raw: pa.Table | pa.RecordBatch, targets: pa.Schema, spec: _Spec, *, row_offset: int) -> Any:
    """Convert raw byte columns to ``targets``; bad values become bad lines (or the error)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    bad_rows: dict[int, tuple[str, str]] = {}
    converters: dict[str, Callable[[pa.Array], pa.Array]] = {}
    for name in raw.schema.names:
        target = targets.field(name).type if name in targets.names else pa.string()
        converters[name] = _converter(target, spec)
        column = raw.column(name)
        arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        for index, reason in _bisect(arr, converters[name], target):
            bad_rows.setdefault(index, (name, reason))
    if bad_rows and spec.on_bad_lines == "error":
        first = min(bad_rows)
        name, reason = bad_rows[first]
        info = {"row": row_offset + first, "column": name, "reason": reason, "line": None, "raw": None}
        _locate_rows(spec, [info])
        raise _bad_line_error(spec, info)
    if bad_rows:
        keep = pa.array([i not in bad_rows for i in range(raw.num_rows)])
        raw = raw.filter(keep)
        for index in sorted(bad_rows):
            name, reason = bad_rows[index]
            spec.bad.append({"row": row_offset + index, "column": name, "reason": reason, "line": None, "raw": None})
    arrays = []
    for name in raw.schema.names:
        column = raw.column(name)
        arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        converted = converters[name](arr)
        if not spec.strings_can_be_null and pa.types.is_string(converted.type):
            converted = pc.fill_null(converted, "")
        arrays.append(converted)
    names = raw.schema.names
    if isinstance(raw, pa.RecordBatch):
        return pa.RecordBatch.from_arrays(arrays, names=names)
    return pa.Table.from_arrays(arrays, names=names)


def _converter(target: pa.DataType, spec: _Spec) -> Callable[[pa.Array], pa.Array]:
    import pyarrow as pa
    import pyarrow.compute as pc

    def to_text(arr: pa.Array) -> pa.Array:
        return pc.cast(arr, pa.string())

    if pa.types.is_binary(target) or pa.types.is_large_binary(target):
        return lambda arr: arr
    if pa.types.is_string(target) or pa.types.is_large_string(target):
        return lambda arr: pc.cast(to_text(arr), target)
    if pa.types.is_timestamp(target) and spec.timestamp_formats:
        formats = spec.timestamp_formats

        def parse(arr: pa.Array) -> pa.Array:
            text = to_text(arr)
            try:
                return pc.cast(text, target)
            except pa.ArrowInvalid:
                pass
            result = None
            for fmt in formats:
                parsed = pc.strptime(text, format=fmt, unit=target.unit, error_is_null=True)
                result = parsed if result is None else pc.coalesce(result, parsed)
            if pc.sum(pc.and_(pc.is_null(result), pc.is_valid(text))).as_py():
                raise pa.ArrowInvalid(f"does not match {formats}")
            return pc.cast(result, target)

        return parse
    if pa.types.is_boolean(target):
        def to_bool(arr: pa.Array) -> pa.Array:
            return pc.cast(pc.utf8_lower(to_text(arr)), target)

        return to_bool
    return lambda arr: pc.cast(to_text(arr), target)


def _bisect(arr: pa.Array, convert: Callable[[pa.Array], pa.Array], target: pa.DataType,
            offset: int = 0) -> Iterator[tuple[int, str]]:
    import pyarrow as pa

    try:
        convert(arr)
        return
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        if len(arr) == 1:
            value = arr[0].as_py()
            if isinstance(value, bytes):
                try:
                    text = value.decode("utf-8")
                except UnicodeDecodeError:
                    yield offset, f"undecodable bytes {value[:40]!r}"
                    return
                yield offset, f"value {text[:80]!r} is not a valid {target}"
                return
            yield offset, f"cannot convert to {target}: {exc}"
            return
    half = len(arr) // 2
    yield from _bisect(arr.slice(0, half), convert, target, offset)
    yield from _bisect(arr.slice(half), convert, target, offset + half)


# -- streams ------------------------------------------------------------------------------------------
def _read_stream(spec: _Spec, batch_size: int, storage_options: dict[str, Any] | None) -> pa.RecordBatchReader:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    safe = spec.on_bad_lines != "error"
    stream = spec.open()
    try:
        if safe:
            targets = _targets(spec)
            if spec.include_columns is not None:
                targets = pa.schema([targets.field(n) for n in spec.include_columns])
            names = _column_names(spec)
            reader = pacsv.open_csv(stream, spec.read_options(use_threads=False), spec.parse_options(spec.handler()),
                                    _raw_convert(spec, {n: pa.binary() for n in names}))
            schema = targets
        elif not spec.newlines_in_values and "\n".encode(spec.encoding) == b"\n":  # line ends cut cleanly
            spec.chunked = True
            reader = _ChunkedReader(stream, spec)
            schema = reader.schema
        else:
            reader = pacsv.open_csv(stream, spec.read_options(), spec.parse_options(spec.handler()),
                                    spec.convert_options())
            schema = reader.schema
    except (pa.ArrowInvalid, OSError) as exc:
        stream.close()
        if spec.bad:
            _locate_structural(spec)
            raise _bad_line_error(spec, spec.bad[0]) from None
        if _CONVERSION.search(str(exc)):
            raise _conversion_error(spec, exc) from None
        raise _translate(exc, spec) from None

    def batches() -> Iterator[pa.RecordBatch]:
        rows = 0
        try:
            while True:
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    break
                except (pa.ArrowInvalid, OSError) as exc:
                    if spec.bad and spec.on_bad_lines == "error":
                        _locate_structural(spec)
                        raise _bad_line_error(spec, spec.bad[0]) from None
                    if _CONVERSION.search(str(exc)):
                        raise _conversion_error(spec, exc) from None
                    raise _translate(exc, spec) from None
                if safe:
                    structural = len(spec.bad)
                    batch = _convert_safely(batch, schema, spec, row_offset=rows)
                    rows += batch.num_rows + len(spec.bad) - structural
                for start in range(0, batch.num_rows, batch_size):
                    yield batch.slice(start, batch_size)
            if spec.bad:
                _locate_structural(spec)
                _finish_bad(spec, storage_options)
        finally:
            stream.close()

    # parsing runs ahead on its own thread; rows are counted where they are consumed, in that task
    return counted(prefetch(pa.RecordBatchReader.from_batches(schema, batches()), depth=8))


_CHUNK_BYTES = 8 << 20


class _ChunkedReader:
    """A CSV stream parsed in parallel: chunks of the file cut at line ends, each read by Arrow's
    multi-threaded reader. Arrow's own streaming reader parses one block at a time on one core.

    Only used when values cannot hold line breaks, so that every line end ends a record. The first
    chunk fixes the column names and types, as Arrow's streaming reader does with its first block.
    """

    def __init__(self, stream: Any, spec: _Spec, chunk_bytes: int | None = None) -> None:
        import pyarrow as pa
        import pyarrow.csv as pacsv

        self.stream, self.spec, self.chunk_bytes = stream, spec, chunk_bytes or _CHUNK_BYTES
        self.rest = b""
        first = self._next_chunk() or b""
        header = pacsv.open_csv(pa.BufferReader(first), spec.read_options(), spec.parse_options(lambda row: "skip"),
                                pacsv.ConvertOptions(column_types={n: pa.string() for n in spec.column_types}))
        self.names = list(header.schema.names)
        table = self._parse(first, first=True)
        self.schema = table.schema
        self.types = {f.name: f.type for f in table.schema}
        self.pending = table.to_batches()
        self.pending.reverse()

    def _next_chunk(self) -> bytes | None:
        while True:
            data = self.stream.read(self.chunk_bytes)
            if not data:
                tail, self.rest = self.rest, b""
                return tail or None
            buf = self.rest + data
            cut = buf.rfind(b"\n")
            if cut < 0:
                self.rest = buf
                continue
            self.rest = buf[cut + 1:]
            return buf[: cut + 1]

    def _parse(self, data: bytes, *, first: bool) -> pa.Table:
        import pyarrow as pa
        import pyarrow.csv as pacsv

        options = self.spec.read_options()
        convert = self.spec.convert_options()
        if not first:
            options = pacsv.ReadOptions(use_threads=True, block_size=options.block_size, encoding=options.encoding,
                                        column_names=self.names)
            convert = self.spec.convert_options(dict(self.types))
        return pacsv.read_csv(pa.BufferReader(data), options, self.spec.parse_options(self.spec.handler()), convert)

    def read_next_batch(self) -> pa.RecordBatch:
        while not self.pending:
            data = self._next_chunk()
            if data is None:
                raise StopIteration
            self.pending = self._parse(data, first=False).to_batches()
            self.pending.reverse()
        return self.pending.pop()


def _conversion_error(spec: _Spec, exc: Exception) -> DataError:
    """A bad value met while streaming with ``on_bad_lines="error"``: find its line by value."""
    m = _CONVERSION.search(str(exc))
    assert m is not None
    col_index, target, detail = int(m.group(1)), m.group(2), m.group(3)
    if target is None:  # the decimal form: normalise it to the "invalid value" form
        target, detail = m.group(5), f"invalid value {m.group(4)}"
    names = _column_names(spec)
    name = names[col_index] if col_index < len(names) else str(col_index)
    value = re.search(r"invalid value '(.*)'", detail, re.S)
    info: dict[str, Any] = {"row": None, "column": name, "reason": f"value is not a valid {target}: {detail.strip()}",
                            "line": None, "raw": None}
    if value:
        for line, raw, fields in _records(spec):
            if col_index < len(fields) and fields[col_index] == value.group(1):
                info["line"], info["raw"] = line, raw
                break
    return _bad_line_error(spec, info)


# -- where bad rows are: line numbers and raw text ------------------------------------------------------
def _records(spec: _Spec) -> Iterator[tuple[int, str, list[str]]]:
    """(first physical line, raw text, fields) of each data record, as Arrow counts them."""
    stream = spec.open()
    text = io.TextIOWrapper(stream, encoding=spec.encoding if spec.encoding != "utf-8" else "utf-8-sig",
                            errors="replace", newline="")
    lines = _Lines(text)
    reader = _pycsv.reader(lines, delimiter=spec.delimiter, quotechar=spec.quotechar or '"',
                           quoting=_pycsv.QUOTE_MINIMAL if spec.quotechar else _pycsv.QUOTE_NONE,
                           escapechar=spec.escapechar, doublequote=True, strict=False)
    skip = spec.skip_rows + (1 if spec.header else 0)
    try:
        for fields in reader:
            physical = lines.taken
            raw = "".join(lines.buf).rstrip("\r\n")
            lines.buf.clear()
            if skip:
                skip -= 1
                continue
            if not fields:
                continue
            yield physical - raw.count("\n"), raw, fields
    finally:
        text.close()


class _Lines:
    def __init__(self, f: Any) -> None:
        self.f = f
        self.buf: list[str] = []
        self.taken = 0

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = next(self.f)
        self.taken += 1
        self.buf.append(line)
        return line


def _locate_rows(spec: _Spec, infos: list[dict[str, Any]]) -> None:
    """Fill ``line`` and ``raw`` of bad *values* from their row index among well-formed records."""
    wanted = {info["row"]: info for info in infos if info.get("row") is not None and info.get("line") is None}
    if not wanted:
        return
    ncols = _expected_columns(spec)
    index = 0
    last = max(wanted)
    for line, raw, fields in _records(spec):
        if len(fields) != ncols:
            continue  # a structural bad line: Arrow skipped it too
        if index in wanted:
            wanted[index]["line"], wanted[index]["raw"] = line, raw
        if index >= last:
            break
        index += 1


def _expected_columns(spec: _Spec) -> int:
    """Fields per record: the given names, else the header line (or first record) as Arrow reads it."""
    if spec.column_names is not None:
        return len(spec.column_names)
    header = spec.header
    spec.header = False  # so that _records yields the header line itself
    try:
        first = next(_records(spec), None)
    finally:
        spec.header = header
    return len(first[2]) if first else 0


def _locate_structural(spec: _Spec) -> None:
    """Arrow gives no line numbers when reading in parallel: find them by the raw text."""
    missing = [b for b in spec.bad if b.get("line") is None and b.get("raw") is not None]
    if missing:
        pending: dict[str, list[dict[str, Any]]] = {}
        for b in missing:
            pending.setdefault(b["raw"].split("\n", 1)[0].rstrip("\r"), []).append(b)
        for line, raw, _fields in _records(spec):
            first = raw.split("\n", 1)[0]
            if first in pending:
                b = pending[first].pop(0)
                b["line"] = line
                if not pending[first]:
                    del pending[first]
                if not pending:
                    break
    _locate_rows(spec, spec.bad)


def _finish_bad(spec: _Spec, storage_options: dict[str, Any] | None) -> None:
    spec.bad.sort(key=lambda b: (b.get("line") or 0))
    log_metric("bad_lines", len(spec.bad), add=True)
    if spec.on_bad_lines != "quarantine" or not spec.quarantine:
        return
    loc = locate(spec.quarantine, storage_options)
    with atomic_file(loc) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for b in spec.bad:
            record = {"source": str(spec.loc), "line": b.get("line"), "column": b.get("column"),
                      "reason": b["reason"], "raw": b.get("raw")}
            f.write(json.dumps(record, ensure_ascii=False) + "\n")


def _bad_line_error(spec: _Spec, info: dict[str, Any]) -> BadLineError:
    where = f"line {info['line']}" if info.get("line") else "a line"
    column = f", column {info['column']!r}" if info.get("column") else ""
    raw = info.get("raw")
    shown = f" Raw line: {raw[:200]!r}." if raw is not None else ""
    return BadLineError(
        f"Bad line in CSV file {spec.loc}, {where}{column}: {info['reason']}.{shown} Fix the file, declare the column's "
        "type/format (schema=, timestamp_formats=), or pass on_bad_lines='quarantine' to set bad lines aside.",
        source=str(spec.loc), line=info.get("line"), column=info.get("column"), raw=raw, reason=info["reason"],
    )


def _translate(exc: BaseException, spec: _Spec) -> DataError:
    text = str(exc)
    where = str(spec.loc)
    if "Empty CSV file" in text:
        return DataError(f"CSV file {where} is empty: no header line and no rows. Check that the producer finished "
                         "writing it (or pass column_names= and expect no rows).", source=where)
    if "Truncated" in text or "compressed" in text.lower() or "gzip" in text.lower() or "zstd" in text.lower():
        return DataError(f"CSV file {where} cannot be decompressed: {text}. The file is probably truncated or not "
                         f"in the format its name says; fetch it again or pass compression= explicitly.", source=where)
    if m := _PARSE.search(text):
        return BadLineError(f"CSV file {where} cannot be parsed: {m.group(1)}. Check delimiter=, quotechar= and "
                            "newlines_in_values=.", source=where, raw=m.group(2), reason=m.group(1))
    if isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError):
        return DataError(f"CSV file {where} cannot be read: {text}.", source=where)
    return DataError(f"CSV file {where} cannot be read: {text}. Check the dialect options and the declared schema.",
                     source=where)


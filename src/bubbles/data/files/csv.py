"""Reading CSV into Arrow: a whole table, or a stream of record batches for files larger than memory.

A clean file is read once, by Arrow's multi-threaded CSV reader, and checked on the way out:
no row was rejected, no value spans lines where records cannot (the mark of a quote that was
never closed), no column was inferred as text only because a few values do not fit a narrower
type. If any check fails, or Arrow raises, the file is read again by the exact path of
:mod:`._csvsafe`, which accounts for every physical line (good row, or bad line with its number,
column and reason). The text of Arrow's error messages is never parsed: whatever Arrow objects
to, the exact path finds and names.

A stream checks each batch before handing it on; at the first problem it continues on the
exact path after the rows it already handed on, with the column types it announced.
"""

from __future__ import annotations

import codecs
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..._errors import ConfigError
from .. import lineage
from ..lazy import LazyTable, wanted
from ..lazy.csvscan import plan_csv
from . import _csvsafe as exact
from ._badlines import BadLines
from ._common import (
    as_output,
    check_on_bad_lines,
    count_read,
    counted,
    missing_file,
    prefetch,
)
from ._fs import Location, locate
from ._types import as_schema

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["read_csv"]

_COMPRESSIONS = {"infer": "detect", "detect": "detect", None: None, "none": None, "gzip": "gzip", "gz": "gzip",
                 "bz2": "bz2", "zstd": "zstd", "zst": "zstd", "lz4": "lz4"}


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
    names: list[str] | None = None  # the file's column names, once the exact path has read the header

    def open(self) -> Any:
        try:
            return self.loc.fs.open_input_stream(self.loc.path, compression=self.compression)
        except FileNotFoundError:
            raise missing_file("CSV file", self.loc) from None

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


class _QuoteCounter:
    """A file object over a (decompressing) pyarrow stream that counts quote characters as Arrow reads
    it: with ``newlines_in_values``, an odd count at the end means a quote was never closed (Arrow
    then reads the rest of the file as one value, without a word)."""

    def __init__(self, stream: Any, quotechar: str) -> None:
        self.stream = stream
        self.quote = quotechar.encode()
        self.quotes = 0
        self.closed = self.eof = False

    def read(self, n: int = -1) -> bytes:
        data: bytes = self.stream.read(n)
        self.eof = self.eof or not data or n is None or n < 0
        self.quotes += data.count(self.quote)
        return data

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def writable(self) -> bool:
        return False

    def close(self) -> None:
        self.closed = True
        self.stream.close()


class _Rejected:
    """Counts the rows Arrow's parser rejects (wrong number of fields); the exact path says which and why."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, row: Any) -> str:
        self.count += 1
        return "skip"


def _bad_lines(spec: _Spec) -> BadLines:
    return BadLines("CSV file", str(spec.loc), spec.on_bad_lines, spec.quarantine,
                    "Fix the file, or declare the column's type/format (schema=, timestamp_formats=).")


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
    lazy: bool | None = None,
) -> Any:
    """Read a CSV file into an Arrow table, or with ``batch_size`` into a stream of record batches.

    Inside a task the read is planned, not run: the result is a :class:`~bubbles.data.lazy.LazyTable`
    that reads the file where it is used — inside the DuckDB statement of a ``bubbles.sql`` or a
    writer it is handed to (in this task or a later one), or in full, once, when Python code uses
    it (``.num_rows``, ``.column(...)``, ``.to_pandas()``). DuckDB parses the file there only where
    it reads it exactly as this reader does; everything below holds either way (docs/lazy.md).

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
            text; ``"quarantine"`` appends each bad line, its line number, column and reason to the
            quarantine sink (``quarantine=``: a Parquet dataset folder or ``URL#table``, default
            ``<quarantine_dir>/<file name>``; the format contracts use too) and goes on; ``"skip"`` drops them,
            counted in the ``bad_lines`` metric. Bad lines: a wrong number of fields, a quote not
            closed on its line, bytes invalid in the encoding, a value that does not fit its
            declared or inferred type (inferred types never bend around a few bad values; see
            :mod:`bubbles.data.files._csvsafe`).
        batch_size: stream record batches of at most this many rows instead of a table, so a file
            larger than memory flows through the pipeline.
        block_size: bytes parsed per block (Arrow's unit of parallelism and of streaming memory).
        storage_options: passed to fsspec for URLs (credentials, ``endpoint_url``...).
        output: ``"arrow"`` (default), ``"pandas"`` or ``"polars"`` for a frame; streams stay Arrow.
        lazy: plan the read (``True``) or read now (``False``); default: the ``lazy`` setting
            (``auto``: plan inside tasks, read now elsewhere). Frames and streams are read now.

    Returns:
        A ``pyarrow.Table`` (or frame, see ``output``), a ``LazyTable`` when the read is planned, or
        a ``pyarrow.RecordBatchReader`` when ``batch_size`` is given.

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
        q = os.fspath(quarantine) if quarantine is not None else None
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
        return lineage.read_file(_read_stream(spec, batch_size, storage_options), loc, "csv")
    if output == "arrow" and wanted(lazy):
        scan = plan_csv(spec)
        if scan is not None:
            return lineage.read_file(LazyTable(scan), loc, "csv")
    table = _read_table(spec, storage_options)
    return lineage.read_file(as_output(table, output), loc, "csv", table=table)


# -- whole table ------------------------------------------------------------------------------------
def _read_table(spec: _Spec, storage_options: dict[str, Any] | None) -> pa.Table:
    import pyarrow as pa

    table, targets = _fast_table(spec)
    if table is not None:
        count_read(table.num_rows, table.nbytes, files=[spec.loc])
        return table
    bad = _bad_lines(spec)
    if targets is not None:  # Arrow's types hold (after un-bending): convert chunk by chunk
        batches = [exact.convert(chunk, targets, spec, bad) for chunk in exact.raw_chunks(spec)]
    else:  # Arrow could not read it at all: infer from the whole file, as Arrow would have
        whole = _merge(list(exact.raw_chunks(spec)))
        targets = exact.targets_for(whole, spec.column_types, spec)
        batches = [exact.convert(whole, targets, spec, bad)]
    bad.finish(storage_options)
    table = pa.Table.from_batches(batches, schema=targets)
    count_read(table.num_rows, table.nbytes, files=[spec.loc])
    return table


def _merge(chunks: list[exact.RawChunk]) -> exact.RawChunk:
    merged = chunks[0]
    for chunk in chunks[1:]:
        for name, values in chunk.columns.items():
            merged.columns[name].extend(values)
        merged.lines.extend(chunk.lines)
        merged.raws.extend(chunk.raws)
        merged.bad.extend(chunk.bad)
    return merged


def _fast_table(spec: _Spec) -> tuple[pa.Table | None, pa.Schema | None]:
    """Arrow's read, if it passes the checks: ``(table, None)``; else ``(None, types to convert to or None)``."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    rejected = _Rejected()
    try:
        with spec.open() as stream:
            data = stream.read_buffer()  # in memory anyway as a table; read once, parsed and counted from here
        table = pacsv.read_csv(pa.BufferReader(data), spec.read_options(), spec.parse_options(rejected),
                               spec.convert_options())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError):
        return None, None  # whatever Arrow objects to, the exact path finds and names
    targets, problem = _check(table, spec)
    if problem or rejected.count or (_cuts_at_newline(spec) and _lost_rows(data, table.num_rows, spec, first=True)):
        return None, targets
    return table, None


def _cuts_at_newline(spec: _Spec) -> bool:
    return "\n".encode(spec.encoding) == b"\n"


def _lost_rows(data: Any, rows: int, spec: _Spec, *, first: bool) -> bool:
    """Whether Arrow's ``rows`` (parsed and rejected) cannot be all the records of ``data`` (it never says so).

    Without ``newlines_in_values`` every non-empty line is a record; with it, an odd number of
    quote characters means a quote was never closed.
    """
    if spec.newlines_in_values:
        if spec.escapechar or not spec.quotechar:
            return False
        return byte_count(data, ord(spec.quotechar)) % 2 == 1
    skipped = (spec.skip_rows + (1 if spec.header else 0)) if first else 0
    if _lines_in(data) - skipped == rows:  # the usual case: no empty lines to count
        return False
    return records_in(data) - skipped != rows


def _lines_in(data: Any) -> int:
    import pyarrow as pa

    buf = data if isinstance(data, pa.Buffer) else pa.py_buffer(data)
    if not buf.size:
        return 0
    return byte_count(buf, 10) + (0 if buf.slice(buf.size - 1).to_pybytes() == b"\n" else 1)


def byte_count(data: Any, byte: int) -> int:
    """How often ``byte`` occurs in ``data`` (bytes or an Arrow buffer), counted by Arrow compute without a copy."""
    import pyarrow as pa
    import pyarrow.compute as pc

    buf = data if isinstance(data, pa.Buffer) else pa.py_buffer(data)
    raw = pa.Array.from_buffers(pa.uint8(), buf.size, [None, buf])
    return int(pc.sum(pc.equal(raw, pa.scalar(byte, pa.uint8()))).as_py() or 0)


def records_in(data: Any) -> int:
    """Non-empty lines of ``data``: every record of a file whose records cannot span lines.

    Lines are counted with Arrow compute on the bytes; empty lines (``\\n\\n``, ``\\n\\r\\n``, an
    empty first line) are subtracted.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    buf = data if isinstance(data, pa.Buffer) else pa.py_buffer(data)
    n = buf.size
    if not n:
        return 0
    raw = pa.Array.from_buffers(pa.uint8(), n, [None, buf])
    newline = pc.equal(raw, pa.scalar(10, pa.uint8()))
    lines = int(pc.sum(newline).as_py() or 0) + (0 if raw[n - 1].as_py() == 10 else 1)
    empty = int(pc.sum(pc.and_(newline.slice(0, n - 1), newline.slice(1))).as_py() or 0) if n > 1 else 0
    if n >= 3:
        cr = pc.equal(raw, pa.scalar(13, pa.uint8()))
        empty += int(pc.sum(pc.and_(pc.and_(newline.slice(0, n - 2), cr.slice(1, n - 2)), newline.slice(2))).as_py() or 0)
    first = raw[0].as_py()
    if first == 10 or (n >= 2 and first == 13 and raw[1].as_py() == 10):
        empty += 1
    return lines - empty


def _has_line_break(column: Any) -> bool:
    """Whether a text column holds a line break: the bytes of its value buffers are counted (a
    sliced array may count bytes outside its slice: then the exact path merely runs for nothing)."""
    import pyarrow as pa

    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    for chunk in chunks:
        data = chunk.buffers()[2]
        if data is not None and data.size and (byte_count(data, 10) or byte_count(data, 13)):
            return True
    return False


def _check(data: pa.Table | pa.RecordBatch, spec: _Spec, *, infer: bool = True) -> tuple[pa.Schema, bool]:
    """The types the data should have, and whether Arrow's result cannot be trusted as it is."""
    import pyarrow as pa

    fields, problem = [], False
    for f in data.schema:
        t = f.type
        column = data.column(f.name)
        declared = f.name in spec.column_types
        if (pa.types.is_binary(t) or pa.types.is_large_binary(t)) and not declared:
            t, problem = pa.string(), True  # bytes invalid in the encoding: those lines are bad
        elif pa.types.is_string(t) or pa.types.is_large_string(t):
            # a value spans lines where records cannot (a quote was not closed); where the lines are
            # counted against the rows (_lost_rows), such a record shows there already
            if not spec.newlines_in_values and not _cuts_at_newline(spec) and len(column) and _has_line_break(column):
                problem = True
            if infer and not declared and len(column):
                bent = exact.bent_type(column, spec)
                if bent is not None:
                    t, problem = bent, True
        fields.append(pa.field(f.name, t))
    return pa.schema(fields), problem


# -- streams ------------------------------------------------------------------------------------------
class _Problem(Exception):
    """Raised inside a fast stream at a batch that fails a check: the exact path takes over from there."""


def _read_stream(spec: _Spec, batch_size: int, storage_options: dict[str, Any] | None) -> pa.RecordBatchReader:
    import pyarrow as pa

    bad = _bad_lines(spec)
    schema, fast = _open_fast_stream(spec)
    chunk_rows = max(batch_size, exact.CHUNK_ROWS)
    from_start: Iterator[exact.RawChunk] | None = None
    if schema is None:  # Arrow could not start: infer from the first chunk of the exact path
        chunks = exact.raw_chunks(spec, chunk_rows=chunk_rows)
        first = next(chunks)
        schema = exact.targets_for(first, spec.column_types, spec)
        from_start = _chain(first, chunks)
    target: pa.Schema = schema

    def slices(batch: pa.RecordBatch) -> Iterator[pa.RecordBatch]:
        for start in range(0, batch.num_rows, batch_size):
            yield batch.slice(start, batch_size)

    def batches() -> Iterator[pa.RecordBatch]:
        handed = 0
        if fast is not None:
            try:
                for batch in fast:
                    yield from slices(batch)
                    handed += batch.num_rows
                return
            except _Problem:
                pass  # the exact path goes on after the rows already handed on, with the same types
        chunks = from_start or exact.raw_chunks(spec, chunk_rows=chunk_rows, skip_good=handed)
        for chunk in chunks:
            yield from slices(exact.convert(chunk, target, spec, bad))
        bad.finish(storage_options)

    # parsing runs ahead on its own thread; rows are counted where they are consumed, in that task
    return counted(prefetch(pa.RecordBatchReader.from_batches(target, batches()), depth=8))


def _chain(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    yield first
    yield from rest


def _open_fast_stream(spec: _Spec) -> tuple[pa.Schema | None, Iterator[pa.RecordBatch] | None]:
    """Arrow's stream and its schema, its first batch checked; ``(types, None)`` if the exact path must
    start at the top (``types`` None: Arrow could not even start)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    rejected = _Rejected()
    stream = spec.open()
    reader: Any
    quotes: _QuoteCounter | None = None

    def lost() -> bool:
        return quotes is not None and quotes.eof and not spec.escapechar and quotes.quotes % 2 == 1

    try:
        if not spec.newlines_in_values and _cuts_at_newline(spec):  # line ends cut cleanly
            reader = _ChunkedReader(stream, spec, rejected)
        else:
            if _cuts_at_newline(spec) and spec.newlines_in_values and spec.quotechar:
                quotes = _QuoteCounter(stream, spec.quotechar)
                stream = pa.PythonFile(quotes, mode="r")
            reader = pacsv.open_csv(stream, spec.read_options(), spec.parse_options(rejected), spec.convert_options())
        try:
            first = reader.read_next_batch()
        except StopIteration:
            first = None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError, _Problem):
        stream.close()
        return None, None
    schema = reader.schema
    if first is not None:
        targets, problem = _check(first, spec)
        if problem or rejected.count or lost():
            stream.close()
            return targets, None

    def batches() -> Iterator[pa.RecordBatch]:
        try:
            if first is not None:
                yield first
            while True:
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    return
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError):
                    raise _Problem() from None
                if rejected.count or lost() or _check(batch, spec, infer=False)[1]:
                    raise _Problem()
                yield batch
        finally:
            stream.close()

    return schema, batches()


_CHUNK_BYTES = 8 << 20


class _ChunkedReader:
    """A CSV stream parsed in parallel: chunks of the file cut at line ends, each read by Arrow's
    multi-threaded reader. Arrow's own streaming reader parses one block at a time on one core.

    Only used when values cannot hold line breaks, so that every line end ends a record. The first
    chunk fixes the column names and types, as Arrow's streaming reader does with its first block.
    """

    def __init__(self, stream: Any, spec: _Spec, rejected: _Rejected, chunk_bytes: int | None = None) -> None:
        import pyarrow as pa
        import pyarrow.csv as pacsv

        self.stream, self.spec, self.rejected, self.chunk_bytes = stream, spec, rejected, chunk_bytes or _CHUNK_BYTES
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
        before = self.rejected.count
        table = pacsv.read_csv(pa.BufferReader(data), options, self.spec.parse_options(self.rejected), convert)
        # every line of the chunk must be a row or a rejected row: Arrow loses rows silently when a
        # quote is not closed (a block boundary then falls inside a value)
        if _lost_rows(data, table.num_rows + self.rejected.count - before, self.spec, first=first):
            raise _Problem()
        return table

    def read_next_batch(self) -> pa.RecordBatch:
        while not self.pending:
            data = self._next_chunk()
            if data is None:
                raise StopIteration
            self.pending = self._parse(data, first=False).to_batches()
            self.pending.reverse()
        return self.pending.pop()

"""JSON in and out: NDJSON (one object per line) and JSON arrays, nested fields kept as structs/lists.

NDJSON is read by Arrow in one pass; if Arrow raises, or its rows do not account for every
non-blank line, the file is read by the exact path of :mod:`._jsonsafe`, which gives every bad
line its number and reason (``on_bad_lines``), as for CSV.
"""

from __future__ import annotations

import json as _json
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..._errors import ConfigError, DataError
from .. import lineage
from ..lazy.engine import restartable
from . import _jsonsafe as exact
from ._atomic import atomic_file
from ._badlines import BadLines
from ._common import (
    WrittenFile,
    as_output,
    check_on_bad_lines,
    count_read,
    count_written,
    counted,
    missing_file,
    schema_of,
    sql_string,
    to_arrow,
)
from ._fs import Location, locate
from ._types import as_schema

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["read_json", "write_json"]


def read_json(path: str | os.PathLike[str], *, schema: Any = None, lines: bool | None = None,
              batch_size: int | None = None, compression: str | None = "detect", on_bad_lines: str = "error",
              quarantine: str | os.PathLike[str] | None = None, storage_options: dict[str, Any] | None = None,
              output: str = "arrow") -> Any:
    """Read NDJSON or a JSON array of objects into Arrow.

    Args:
        path: local path or fsspec URL; ``.gz``/``.zst``/``.bz2`` are decompressed.
        schema: declared types (``pa.Schema`` or ``{name: type}``); others are inferred.
        lines: ``True`` for NDJSON, ``False`` for one JSON array; ``None`` looks at the first byte.
        batch_size: stream record batches (NDJSON only) instead of one table.
        on_bad_lines: for NDJSON, what to do with a line that is not a JSON object or does not fit
            the columns: ``"error"`` raises :class:`BadLineError` naming the line, ``"quarantine"``
            appends it to the quarantine sink ``quarantine=`` (default ``<quarantine_dir>/<file name>``,
            see :mod:`bubbles.data.quality.quarantine`) with its line number and reason, ``"skip"``
            drops it (counted in ``bad_lines``).
        storage_options: passed to fsspec for URLs.
        output: ``"arrow"`` (default), ``"pandas"`` or ``"polars"`` for a frame; streams stay Arrow.

    Example:
        >>> import bubbles
        >>> events = bubbles.read_json("events.ndjson", schema={"ts": "timestamp[us]"})  # doctest: +SKIP
    """
    check_on_bad_lines(on_bad_lines)
    loc = locate(path, storage_options)
    sch = as_schema(schema) if schema is not None else None
    try:
        with loc.fs.open_input_stream(loc.path, compression=compression) as stream:
            first = stream.read(4096).lstrip()[:1]
    except FileNotFoundError:
        raise missing_file("JSON file", loc) from None
    if not first:
        raise DataError(f"JSON file {loc} is empty. Check that the producer finished writing it.", source=str(loc))
    if lines is None:
        lines = first != b"["
    if not lines:
        with loc.fs.open_input_stream(loc.path, compression=compression) as stream:
            table = _read_array(stream.read(), loc, sch)
        return lineage.read_file(as_output(table, output), loc, "json", table=table)
    q = os.fspath(quarantine) if quarantine is not None and on_bad_lines == "quarantine" else None
    bad = BadLines("JSON file", str(loc), on_bad_lines, q, "Fix the line, or declare the field's type (schema=).")

    def open_stream() -> Any:
        return loc.fs.open_input_stream(loc.path, compression=compression)

    if batch_size:
        return lineage.read_file(counted(_stream(open_stream, loc, sch, batch_size, bad, storage_options)), loc, "json")
    table = _fast_table(open_stream, sch)
    if table is None:
        whole = list(exact.line_chunks(open_stream, loc))
        merged = whole[0]
        for chunk in whole[1:]:
            merged.lines += chunk.lines
            merged.raws += chunk.raws
            merged.bad += chunk.bad
        table = exact.convert(merged, exact.schema_for(merged, sch), bad)
        bad.finish(storage_options)
    count_read(table.num_rows, table.nbytes, files=[loc])
    return lineage.read_file(as_output(table, output), loc, "json", table=table)


def _parse_options(schema: pa.Schema | None) -> Any:
    import pyarrow.json as pj

    return pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="infer") if schema is not None else None


def _fast_table(open_stream: Any, schema: pa.Schema | None) -> pa.Table | None:
    """Arrow's read, if it accounts for every non-blank line; else None (the exact path then reads it)."""
    import pyarrow as pa
    import pyarrow.json as pj

    from .csv import records_in

    try:
        with open_stream() as stream:
            data = stream.read_buffer()
        table = pj.read_json(pa.BufferReader(data), parse_options=_parse_options(schema))
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OSError):
        return None
    return table if table.num_rows == records_in(data) else None


def _stream(open_stream: Any, loc: Location, schema: pa.Schema | None, size: int, bad: BadLines,
            storage_options: dict[str, Any] | None) -> pa.RecordBatchReader:
    """NDJSON block by block; at the first block Arrow rejects, the exact path goes on after the rows handed on."""
    import pyarrow as pa
    import pyarrow.json as pj

    stream = open_stream()
    from_start = None
    try:
        reader = pj.open_json(stream, parse_options=_parse_options(schema))
        target = reader.schema
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OSError):
        stream.close()
        reader = None
        chunks = exact.line_chunks(open_stream, loc, chunk_lines=max(size, exact.CHUNK_LINES))
        first = next(chunks)
        target = exact.schema_for(first, schema)
        from_start = _chain(first, chunks)

    def gen() -> Iterator[pa.RecordBatch]:
        handed = 0
        if reader is not None:
            try:
                for batch in reader:
                    for start in range(0, batch.num_rows, size):
                        yield batch.slice(start, size)
                    handed += batch.num_rows
                return
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OSError):
                pass  # the exact path goes on after the rows handed on, with the same columns
            finally:
                stream.close()
        chunks = from_start or exact.line_chunks(open_stream, loc, chunk_lines=max(size, exact.CHUNK_LINES),
                                                 skip_good=handed)
        for chunk in chunks:
            for batch in exact.convert(chunk, target, bad).to_batches(max_chunksize=size):
                yield batch
        bad.finish(storage_options)

    return pa.RecordBatchReader.from_batches(target, gen())


def _chain(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    yield first
    yield from rest


def _read_array(body: bytes, loc: Location, schema: pa.Schema | None) -> pa.Table:
    import pyarrow as pa

    try:
        records = _json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        line = getattr(exc, "lineno", None)
        raise DataError(f"JSON file {loc} is not valid JSON (line {line}): {exc}. Fix the file.", source=str(loc),
                        line=line) from None
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise DataError(f"JSON file {loc}: expected an array of objects, found {type(records).__name__}. "
                        "Pass lines=True for NDJSON.", source=str(loc))
    try:
        table = pa.Table.from_pylist(records, schema=schema) if schema is not None else pa.Table.from_pylist(records)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise DataError(f"JSON file {loc}: values do not fit the declared schema: {exc}.", source=str(loc)) from None
    count_read(table.num_rows, table.nbytes, files=[loc])
    return table


def write_json(data: Any, path: str | os.PathLike[str], *, lines: bool = True, compression: str | None = "infer",
               storage_options: dict[str, Any] | None = None) -> list[WrittenFile]:
    """Write ``data`` as NDJSON (``lines=True``) or one JSON array, atomically.

    Example:
        >>> import bubbles, pyarrow as pa
        >>> _ = bubbles.write_json(pa.table({"id": [1], "tags": [["a", "b"]]}), "/tmp/x.ndjson")
        >>> open("/tmp/x.ndjson").read()
        '{"id":1,"tags":["a","b"]}\\n'
    """
    loc = locate(path, storage_options)
    if compression == "infer":
        text = str(loc)
        compression = "gzip" if text.endswith(".gz") else "zstd" if text.endswith(".zst") else None
    if compression not in (None, "gzip", "zstd"):
        raise ConfigError(f"write_json compression={compression!r}: use None, 'gzip' or 'zstd'.")
    return restartable(data, lambda: _write_json(data, loc, lines, compression))


def _write_json(data: Any, loc: Location, lines: bool, compression: str | None) -> list[WrittenFile]:
    import duckdb

    arrow = to_arrow(data, what="write_json data")
    con = duckdb.connect()
    try:
        con.execute("SET enable_progress_bar = false")
        con.register("src", arrow)
        with atomic_file(loc) as tmp:
            opts = f"FORMAT json, ARRAY {'false' if lines else 'true'}, COMPRESSION {sql_string(compression or 'none')}"
            try:
                con.execute(f"COPY (SELECT * FROM src) TO {sql_string(tmp)} ({opts})")
                row = con.fetchone()
            except duckdb.Error as exc:
                raise DataError(f"Writing JSON {loc} failed: {exc}", source=str(loc)) from exc
            size = os.path.getsize(tmp)
    finally:
        con.close()
    written = [WrittenFile(str(loc), int(row[0]) if row else 0, size, schema_of(arrow.schema))]
    count_written(written)
    lineage.files_written(data, written, "json")
    return written

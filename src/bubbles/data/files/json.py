"""JSON in and out: NDJSON (one object per line) and JSON arrays, nested fields kept as structs/lists."""

from __future__ import annotations

import io
import json as _json
import os
from typing import TYPE_CHECKING, Any

from ..._errors import ConfigError, DataError
from ._atomic import atomic_file
from ._common import (
    WrittenFile,
    as_output,
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
              batch_size: int | None = None, compression: str | None = "detect",
              storage_options: dict[str, Any] | None = None, output: str = "arrow") -> Any:
    """Read NDJSON or a JSON array of objects into Arrow.

    Args:
        path: local path or fsspec URL; ``.gz``/``.zst``/``.bz2`` are decompressed.
        schema: declared types (``pa.Schema`` or ``{name: type}``); others are inferred.
        lines: ``True`` for NDJSON, ``False`` for one JSON array; ``None`` looks at the first byte.
        batch_size: stream record batches (NDJSON only) instead of one table.
        storage_options: passed to fsspec for URLs.
        output: ``"arrow"`` (default), ``"pandas"`` or ``"polars"`` for a frame; streams stay Arrow.

    Example:
        >>> import bubbles
        >>> events = bubbles.read_json("events.ndjson", schema={"ts": "timestamp[us]"})  # doctest: +SKIP
    """
    import pyarrow as pa
    import pyarrow.json as pj

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
            return as_output(_read_array(stream.read(), loc, sch), output)
    parse = pj.ParseOptions(explicit_schema=sch, unexpected_field_behavior="infer") if sch is not None else None
    stream = loc.fs.open_input_stream(loc.path, compression=compression)
    try:
        if batch_size:  # NDJSON streams from the file, block by block
            return counted(_rebatch(pj.open_json(stream, parse_options=parse), batch_size, stream, loc))
        table = pj.read_json(stream, parse_options=parse)
    except (pa.ArrowInvalid, OSError) as exc:
        stream.close()
        raise _translate(exc, loc) from None
    stream.close()
    count_read(table.num_rows, table.nbytes)
    return as_output(table, output)


def _rebatch(reader: pa.RecordBatchReader, size: int, stream: Any, loc: Location) -> pa.RecordBatchReader:
    import pyarrow as pa

    def gen() -> Any:
        try:
            for batch in reader:
                for start in range(0, batch.num_rows, size):
                    yield batch.slice(start, size)
        except (pa.ArrowInvalid, OSError) as exc:
            raise _translate(exc, loc) from None
        finally:
            stream.close()

    return pa.RecordBatchReader.from_batches(reader.schema, gen())


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
    count_read(table.num_rows, table.nbytes)
    return table


def _translate(exc: BaseException, loc: Location) -> DataError:
    """Arrow's JSON errors name no line: find the first line that does not parse (error path only)."""
    text = str(exc)
    with loc.fs.open_input_stream(loc.path, compression="detect") as stream:
        for number, raw in enumerate(io.TextIOWrapper(stream, encoding="utf-8", errors="replace"), start=1):
            if raw.strip():
                try:
                    _json.loads(raw)
                except ValueError:
                    return DataError(f"JSON file {loc}, line {number}: {text}. Raw line: {raw[:200]!r}. Fix the line.",
                                     source=str(loc), line=number, raw=raw.rstrip("\r\n"))
    return DataError(f"JSON file {loc} cannot be read: {text}.", source=str(loc))


def write_json(data: Any, path: str | os.PathLike[str], *, lines: bool = True, compression: str | None = "infer",
               storage_options: dict[str, Any] | None = None) -> list[WrittenFile]:
    """Write ``data`` as NDJSON (``lines=True``) or one JSON array, atomically.

    Example:
        >>> import bubbles, pyarrow as pa
        >>> _ = bubbles.write_json(pa.table({"id": [1], "tags": [["a", "b"]]}), "/tmp/x.ndjson")
        >>> open("/tmp/x.ndjson").read()
        '{"id":1,"tags":["a","b"]}\\n'
    """
    import duckdb

    loc = locate(path, storage_options)
    if compression == "infer":
        text = str(loc)
        compression = "gzip" if text.endswith(".gz") else "zstd" if text.endswith(".zst") else None
    if compression not in (None, "gzip", "zstd"):
        raise ConfigError(f"write_json compression={compression!r}: use None, 'gzip' or 'zstd'.")
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
    return written

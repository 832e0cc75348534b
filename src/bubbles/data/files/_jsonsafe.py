"""The exact NDJSON path: every line is a record, a bad line with its number and reason, or blank.

Used when Arrow's JSON reader raises or its row count does not match the file's lines. Each
line is parsed on its own with Python's ``json``; lines that are not JSON objects are bad. The
good lines are converted by Arrow with one schema (declared types, the rest as Arrow infers
them from the good lines, or from the first of them when the rest disagree), and the lines that
do not fit it are found by bisection (O(k log n) conversions for k bad lines).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..._errors import DataError
from ._badlines import Bad
from ._common import NOT_RETRIED

if TYPE_CHECKING:
    import pyarrow as pa

    from ._fs import Location

__all__ = ["LineChunk", "convert", "line_chunks", "schema_for"]

CHUNK_LINES = 65_536


@dataclass(slots=True)
class LineChunk:
    lines: list[int] = field(default_factory=list)
    raws: list[bytes] = field(default_factory=list)
    bad: list[Bad] = field(default_factory=list)


def line_chunks(open_stream: Callable[[], Any], loc: Location, *, chunk_lines: int = CHUNK_LINES,
                skip_good: int = 0) -> Iterator[LineChunk]:
    """The well-formed object lines of the file, ``chunk_lines`` at a time (bad ones in ``chunk.bad``)."""
    from ._csvsafe import _Raw

    chunk = LineChunk()
    first = True
    stream = io.BufferedReader(_Raw(open_stream()), 1 << 20)
    try:
        for number, raw in enumerate(stream, start=1):
            text = raw.strip()
            if not text:
                continue
            try:
                value = json.loads(text)
            except ValueError as exc:  # UnicodeDecodeError is a ValueError too
                chunk.bad.append(Bad(number, f"not valid JSON ({exc})", raw.decode("utf-8", "replace").rstrip("\r\n")))
                continue
            if not isinstance(value, dict):
                chunk.bad.append(Bad(number, f"not a JSON object but {type(value).__name__}",
                                     raw.decode("utf-8", "replace").rstrip("\r\n")))
                continue
            if skip_good:
                skip_good -= 1
                continue
            chunk.lines.append(number)
            chunk.raws.append(text + b"\n")
            if len(chunk.lines) >= chunk_lines:
                yield chunk
                first = False
                chunk = LineChunk()
    except OSError as exc:
        raise DataError(f"JSON file {loc} cannot be read or decompressed: {exc}. The file is probably truncated; fetch "
                        "it again. " + NOT_RETRIED, source=str(loc)) from None
    finally:
        stream.close()
    if chunk.lines or chunk.bad or first:
        yield chunk


def _parse(raws: list[bytes], schema: pa.Schema | None, unexpected: str = "error") -> pa.Table:
    import pyarrow as pa
    import pyarrow.json as pj

    options = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior=unexpected) if schema is not None else None
    return pj.read_json(pa.BufferReader(b"".join(raws)), parse_options=options)


def schema_for(chunk: LineChunk, declared: pa.Schema | None) -> pa.Schema:
    """Declared types and, for the other fields, Arrow's inference on the good lines (on fewer if they disagree)."""
    import pyarrow as pa

    raws = chunk.raws
    for size in (len(raws), 1000, 100, 10, 1):
        try:
            inferred = _parse(raws[:size], declared, "infer").schema if raws else pa.schema([])
            break
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            continue
    else:
        inferred = declared or pa.schema([])
    return inferred


def convert(chunk: LineChunk, schema: pa.Schema, on_bad: Callable[[Bad], None]) -> pa.Table:
    """The chunk's lines as a table of ``schema``; the malformed lines and those that do not fit go to ``on_bad``."""
    import pyarrow as pa

    failed: dict[int, str] = {}

    def bisect(lo: int, hi: int) -> None:
        try:
            _parse(chunk.raws[lo:hi], schema)
            return
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
            if hi - lo == 1:
                failed[lo] = f"does not fit the columns {', '.join(f'{f.name}: {f.type}' for f in schema)} ({exc})"
                return
        mid = (lo + hi) // 2
        bisect(lo, mid)
        bisect(mid, hi)

    if chunk.raws:
        bisect(0, len(chunk.raws))
    bads = chunk.bad + [Bad(chunk.lines[i], reason, chunk.raws[i].decode("utf-8", "replace").rstrip("\n"))
                        for i, reason in failed.items()]
    for bad in sorted(bads, key=lambda b: b.line or 0):
        on_bad(bad)
    good = [raw for i, raw in enumerate(chunk.raws) if i not in failed]
    if not good:
        return schema.empty_table()
    return _parse(good, schema)

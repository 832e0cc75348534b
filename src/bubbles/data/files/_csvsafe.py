"""The exact CSV path: every physical line accounted for, with its number, column and reason.

:mod:`.csv` reads a clean file with Arrow in one pass. When anything is off (Arrow rejects a
row or a value, a value spans lines where records cannot, a column looks bent by a few bad
values), the file is read here instead, without looking at the text of Arrow's errors:

1. **Records.** The file is read line by line. Without ``newlines_in_values`` a record is one
   physical line, parsed on its own by Python's ``csv`` module in strict mode, so an unclosed
   quote spoils only its own line (the lines after it are records again). With
   ``newlines_in_values`` a record may span lines; an unclosed quote then takes the following
   lines with it as one bad record, up to ``csv``'s field limit (128 KiB) or the end of the file.
   A wrong number of fields or bytes invalid in the encoding make a line bad.
2. **Types.** Declared columns keep their type. Other columns are inferred from the file
   (:func:`infer`): the narrowest of integer, float, boolean, date and timestamp that all but at
   most 0.1 % of the column's values fit, else text. A value that does not fit its column's type
   makes its line bad; the type never bends around it.
3. **Values.** Each column is converted with Arrow compute; the few values that fail are found by
   bisection (convert a slice; if it fails, split it) in O(k log n) conversions for k bad values.

Every line thus ends up in the output, as a bad line (raised, quarantined with line, column,
reason and raw text, or skipped and counted), or in the error that names it.
"""

from __future__ import annotations

import codecs
import csv as _pycsv
import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..._errors import DataError
from ._badlines import Bad
from ._common import NOT_RETRIED

if TYPE_CHECKING:
    import pyarrow as pa

    from .csv import _Spec

__all__ = ["Bad", "RawChunk", "convert", "infer", "raw_chunks", "settled", "targets_for"]

CHUNK_ROWS = 65_536
# a column is inferred as a type if at most this share of its values do not fit it (and they become bad lines)
BAD_SHARE = 1000
_MIN_VALUES = 20  # below this many values a single misfit makes the column text, as Arrow would


@dataclass(slots=True)
class RawChunk:
    """Well-formed records as text columns, with each record's first physical line and raw text."""

    columns: dict[str, list[str]]
    lines: list[int] = field(default_factory=list)
    raws: list[str] = field(default_factory=list)
    bad: list[Bad] = field(default_factory=list)  # malformed records met while gathering this chunk


class _Raw(io.RawIOBase):
    """A pyarrow input stream (possibly decompressing) as a Python raw stream, so it can be read by line."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.stream.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self.stream.close()
        super().close()


def _lines(spec: _Spec) -> Iterator[tuple[int, str | None, bytes]]:
    """(physical line number, decoded text or None if undecodable, raw bytes) of every line, terminators kept."""
    encoding = spec.encoding
    stream = io.BufferedReader(_Raw(spec.open()), 1 << 20)
    try:
        if "\n".encode(encoding) == b"\n":  # ASCII-compatible: lines can be cut as bytes
            decode = codecs.getdecoder(encoding)
            for number, raw in enumerate(stream, start=1):
                if number == 1 and raw.startswith(codecs.BOM_UTF8) and encoding in ("utf-8", "utf-8-sig"):
                    raw = raw[len(codecs.BOM_UTF8):]
                try:
                    yield number, decode(raw)[0], raw
                except UnicodeDecodeError:
                    yield number, None, raw
            return
        text = io.TextIOWrapper(stream, encoding=encoding, errors="strict", newline="")
        try:
            for number, line in enumerate(text, start=1):
                yield number, line, b""
        except UnicodeDecodeError as exc:
            raise DataError(f"CSV file {spec.loc} is not valid {encoding} ({exc}). Pass the file's encoding=. " + NOT_RETRIED,
                            source=str(spec.loc)) from None
    except OSError as exc:
        raise DataError(f"CSV file {spec.loc} cannot be read or decompressed: {exc}. The file is probably truncated "
                        "or not in the format its name says; fetch it again or pass compression= explicitly. " + NOT_RETRIED,
                        source=str(spec.loc)) from None
    finally:
        stream.close()


_FIELD_LIMIT = 1 << 30  # Python's csv module refuses fields over 128 KiB by default; Arrow reads them


def _dialect(spec: _Spec) -> dict[str, Any]:
    if _pycsv.field_size_limit() < _FIELD_LIMIT:  # (a process-wide setting: raised, never lowered)
        _pycsv.field_size_limit(_FIELD_LIMIT)
    return {"delimiter": spec.delimiter, "quotechar": spec.quotechar or '"',
            "quoting": _pycsv.QUOTE_MINIMAL if spec.quotechar else _pycsv.QUOTE_NONE,
            "escapechar": spec.escapechar, "doublequote": True, "strict": True}


def _records(spec: _Spec) -> Iterator[tuple[int, str, list[str] | Bad]]:
    """(first line, raw text, fields or a Bad) for every non-empty record of the file, header included."""
    dialect = _dialect(spec)
    lines = _lines(spec)
    skip = spec.skip_rows
    if not spec.newlines_in_values:
        for number, text, raw in lines:
            if skip:
                skip -= 1
                continue
            if text is None:
                yield number, raw.decode(spec.encoding, "replace").rstrip("\r\n"), Bad(
                    number, f"undecodable bytes, not valid {spec.encoding}: {raw[:60]!r}", None)
                continue
            body = text.rstrip("\r\n")
            if not body:
                continue
            try:
                fields = next(_pycsv.reader([body], **dialect))
            except _pycsv.Error as exc:
                if not _quotes_closed(body, spec):
                    yield number, body, Bad(number, f"a quote is not closed on this line ({exc})", body)
                    continue
                # text after a closing quote (``"a"b``): joined to the value, as Arrow's reader does
                try:
                    fields = next(_pycsv.reader([body], **{**dialect, "strict": False}))
                except _pycsv.Error as again:  # a lone carriage return inside an unquoted field, ...
                    yield number, body, Bad(number, f"malformed line ({again})", body)
                    continue
            yield number, body, fields
        return
    yield from _multiline_records(spec, lines, dialect, skip)


def _quotes_closed(line: str, spec: _Spec) -> bool:
    if not spec.quotechar:
        return True
    if spec.escapechar:
        line = re.sub(re.escape(spec.escapechar) + ".", "", line)
    return line.count(spec.quotechar) % 2 == 0


def _multiline_records(spec: _Spec, lines: Iterator[tuple[int, str | None, bytes]], dialect: dict[str, Any],
                       skip: int) -> Iterator[tuple[int, str, list[str] | Bad]]:
    taken: list[tuple[int, str]] = []
    undecodable: list[int] = []

    def feed() -> Iterator[str]:
        nonlocal skip
        for number, text, raw in lines:
            if skip:
                skip -= 1
                continue
            if text is None:
                undecodable.append(number)
                text = raw.decode(spec.encoding, "replace")
            taken.append((number, text))
            yield text

    reader = _pycsv.reader(feed(), **dialect)
    while True:
        try:
            fields: list[str] | Bad = next(reader)
        except StopIteration:
            return
        except _pycsv.Error as exc:
            fields = Bad(None, f"malformed quoting ({exc}); with newlines_in_values=True a quote that is never closed takes "
                         "the following lines with it", None)
        if not taken:
            continue
        first = taken[0][0]
        raw = "".join(t for _, t in taken).rstrip("\r\n")
        bad_bytes = [n for n in undecodable if n >= first]
        taken.clear()
        undecodable.clear()
        if isinstance(fields, Bad):
            fields.line, fields.raw = first, raw
        elif bad_bytes:
            fields = Bad(first, f"undecodable bytes, not valid {spec.encoding} (line {bad_bytes[0]})", raw)
        elif not fields or (fields == [""] and not raw.strip()):
            continue
        yield first, raw, fields


def raw_chunks(spec: _Spec, *, chunk_rows: int = CHUNK_ROWS, skip_good: int = 0) -> Iterator[RawChunk]:
    """The well-formed records of the file as text columns, ``chunk_rows`` at a time (bad ones in ``chunk.bad``).

    ``skip_good`` drops that many well-formed records first (a stream that switches to this path
    has already handed them on). The names are set on ``spec.names`` from the header or options.
    """
    records = _records(spec)
    names = spec.column_names
    if spec.header:
        for _number, _raw, fields in records:
            if isinstance(fields, Bad):
                raise DataError(f"CSV file {spec.loc}: the header line {fields.line} cannot be parsed: {fields.reason}. "
                                "Fix the header, or pass column_names= with header=False.", source=str(spec.loc),
                                line=fields.line)
            if names is None:
                names = fields
            break
        else:
            raise DataError(f"CSV file {spec.loc} is empty: no header line and no rows. Check that the producer finished "
                            "writing it (or pass column_names= and expect no rows).", source=str(spec.loc))
    if names is None:  # no header and no names: Arrow's f0, f1, ... from the first record's width
        first = next(records, None)
        width = len(first[2]) if first is not None and not isinstance(first[2], Bad) else 0
        names = [f"f{i}" for i in range(width)]
        records = _chain_first(first, records)
    spec.names = list(names)
    wanted = spec.include_columns or list(names)
    missing = [c for c in wanted if c not in names]
    if missing:
        raise DataError(f"CSV file {spec.loc} has no column(s) {missing}; its columns are {list(names)}.",
                        source=str(spec.loc))
    index = [list(names).index(c) for c in wanted]
    width = len(names)
    chunk = RawChunk({c: [] for c in wanted})
    cols = [chunk.columns[c] for c in wanted]
    first_chunk = True
    for number, raw, fields in records:
        if isinstance(fields, Bad):
            chunk.bad.append(fields)
            continue
        if len(fields) != width:
            chunk.bad.append(Bad(number, f"expected {width} columns, found {len(fields)}", raw))
            continue
        if skip_good:
            skip_good -= 1
            continue
        for col, i in zip(cols, index, strict=True):
            col.append(fields[i])
        chunk.lines.append(number)
        chunk.raws.append(raw)
        if len(chunk.lines) >= chunk_rows:
            yield chunk
            first_chunk = False
            chunk = RawChunk({c: [] for c in wanted})
            cols = [chunk.columns[c] for c in wanted]
    if chunk.lines or chunk.bad or first_chunk:  # the first chunk always comes: it carries the columns
        yield chunk


def _chain_first(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    if first is not None:
        yield first
    yield from rest


# -- types --------------------------------------------------------------------------------------------
def _candidates() -> list[pa.DataType]:
    import pyarrow as pa

    return [pa.int64(), pa.float64(), pa.bool_(), pa.date32(), pa.timestamp("s"), pa.timestamp("ns"),
            pa.timestamp("s", tz="UTC"), pa.timestamp("ns", tz="UTC")]


def _allowed(values: int) -> int:
    return max(1, values // BAD_SHARE) if values >= _MIN_VALUES else 0


def _values(arr: pa.Array) -> pa.Array:
    import pyarrow.compute as pc

    values = arr.drop_null() if arr.null_count else arr
    return values.filter(pc.not_equal(values, "")) if len(values) else values


def infer(arr: pa.Array, spec: _Spec) -> pa.DataType:
    """The column's type: the first candidate all but ``_allowed`` of its non-null values fit, else text.

    Each candidate is tried on a sample of the first values first, so a text column costs a few
    conversions of a thousand values, not a pass over the column per candidate.
    """
    import pyarrow as pa

    sample = _values(arr.slice(0, 4000)).slice(0, 1000)
    if not len(sample):
        sample = _values(arr).slice(0, 1000)
        if not len(sample):
            return pa.string()
    values = None
    head = sample.slice(0, 16)
    for candidate in _candidates():
        convert = converter(candidate, spec)
        if _two_misfits(head, convert):  # most candidates fail on the first values: three conversions at most
            continue
        if _count_bad(sample, convert, _allowed(len(sample))) is None:
            continue
        if values is None:
            values = _values(arr)
        if _count_bad(values, convert, _allowed(len(values))) is not None:
            return candidate
    return pa.string()


def _two_misfits(head: pa.Array, convert: Callable[[pa.Array], pa.Array]) -> bool:
    """Whether at least two of ``head``'s values do not convert (one in each half, or the whole fails twice)."""
    import pyarrow as pa

    errors = (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError)
    try:
        convert(head)
        return False
    except errors:
        if len(head) < 2:
            return False
    half = len(head) // 2
    failed = 0
    for part in (head.slice(0, half), head.slice(half)):
        try:
            convert(part)
        except errors:
            failed += 1
    return failed == 2


def settled(arr: pa.Array, spec: _Spec) -> bool:
    """Whether a text column stays text whatever follows it: no narrower type fits its first values.

    :func:`infer` tries each candidate on the first values first; when none fits them, the
    column is text however many rows follow. Otherwise the share of misfits over the whole
    column decides, which a first block of the file cannot tell.
    """
    sample = _values(arr.slice(0, 4000)).slice(0, 1000)
    if not len(sample):
        return False
    head = sample.slice(0, 16)
    for candidate in _candidates():
        convert = converter(candidate, spec)
        if _two_misfits(head, convert):
            continue
        if _count_bad(sample, convert, _allowed(len(sample))) is None:
            continue
        return False
    return True


def bent_type(arr: pa.Array, spec: _Spec) -> pa.DataType | None:
    """For a text column Arrow inferred: the type a few misfits kept it from, if any."""
    import pyarrow as pa

    t = infer(arr, spec)
    return None if t == pa.string() else t


def _count_bad(arr: pa.Array, convert: Callable[[pa.Array], pa.Array], limit: int) -> list[int] | None:
    """Indexes of the values of ``arr`` that fail ``convert``, or None as soon as there are more than ``limit``."""
    found: list[int] = []
    for index, _reason in _bisect(arr, convert):
        found.append(index)
        if len(found) > limit:
            return None
    return found


def converter(target: pa.DataType, spec: _Spec) -> Callable[[pa.Array], pa.Array]:
    """A function turning a text array into ``target`` (raising on any value that does not fit)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_string(target) or pa.types.is_large_string(target):
        return lambda arr: pc.cast(arr, target)
    if pa.types.is_binary(target) or pa.types.is_large_binary(target):
        return lambda arr: pc.cast(arr, target)
    if pa.types.is_timestamp(target) and spec.timestamp_formats:
        formats = spec.timestamp_formats

        def parse(arr: pa.Array) -> pa.Array:
            try:
                return pc.cast(arr, target)
            except pa.ArrowInvalid:
                pass
            result = None
            for fmt in formats:
                try:
                    parsed = pc.strptime(arr, format=fmt, unit=target.unit, error_is_null=True)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # a directive Arrow lacks, e.g. %f
                    continue
                result = parsed if result is None else pc.coalesce(result, parsed)
            if result is None or pc.sum(pc.and_(pc.is_null(result), pc.is_valid(arr))).as_py():
                return _python_strptime(arr, formats, target, result)
            return pc.cast(result, target)

        return parse
    if pa.types.is_boolean(target):
        return lambda arr: pc.cast(pc.utf8_lower(arr), target)
    return lambda arr: pc.cast(arr, target)


def _python_strptime(arr: pa.Array, formats: list[str], target: pa.DataType, parsed: pa.Array | None) -> pa.Array:
    """Python's strptime for the values Arrow's could not parse (Arrow's lacks ``%f``, for one)."""
    import datetime as dt

    import pyarrow as pa

    done = parsed.to_pylist() if parsed is not None else [None] * len(arr)
    out = []
    for value, have in zip(arr.to_pylist(), done, strict=True):
        if have is not None or value is None:
            out.append(have)
            continue
        for fmt in formats:
            try:
                stamp = dt.datetime.strptime(value, fmt)
                break
            except ValueError:
                continue
        else:
            raise pa.ArrowInvalid(f"{value!r} does not match {formats}")
        if target.tz and stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=dt.UTC)
        out.append(stamp)
    return pa.array(out, pa.timestamp(target.unit, tz="UTC" if any(
        v is not None and v.tzinfo is not None for v in out) else None)).cast(target)


def _bisect(arr: pa.Array, convert: Callable[[pa.Array], pa.Array], offset: int = 0) -> Iterator[tuple[int, str]]:
    import pyarrow as pa

    try:
        convert(arr)
        return
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        if len(arr) == 1:
            yield offset, str(exc)
            return
    half = len(arr) // 2
    yield from _bisect(arr.slice(0, half), convert, offset)
    yield from _bisect(arr.slice(half), convert, offset + half)


def _text(values: list[str], target: pa.DataType, spec: _Spec) -> pa.Array:
    """Text values as an Arrow string array, with the texts meaning null as nulls where they apply."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = pa.array(values, pa.string())
    is_text = pa.types.is_string(target) or pa.types.is_large_string(target)
    if is_text and not spec.strings_can_be_null:
        return arr
    nulls = spec.null_values if spec.null_values is not None else _arrow_null_values()
    if not nulls or not len(arr):
        return arr
    return pc.if_else(pc.is_in(arr, value_set=pa.array(nulls, pa.string())), pa.scalar(None, pa.string()), arr)


def _arrow_null_values() -> list[str]:
    import pyarrow.csv as pacsv

    return list(pacsv.ConvertOptions().null_values)


def targets_for(chunk: RawChunk, declared: dict[str, pa.DataType], spec: _Spec) -> pa.Schema:
    """Declared types, and for the other columns the types inferred from ``chunk``."""
    import pyarrow as pa

    fields = []
    for name, values in chunk.columns.items():
        if name in declared:
            fields.append(pa.field(name, declared[name]))
        else:
            fields.append(pa.field(name, infer(_text(values, pa.int64(), spec), spec)))
    return pa.schema(fields)


def convert(chunk: RawChunk, targets: pa.Schema, spec: _Spec, on_bad: Callable[[Bad], None]) -> pa.RecordBatch:
    """The chunk as a record batch of ``targets``; its malformed records and the rows with a value that
    does not fit go to ``on_bad``, in file order."""
    import pyarrow as pa

    texts: dict[str, pa.Array] = {}
    bad_rows: dict[int, tuple[str, str]] = {}
    for name, values in chunk.columns.items():
        target = targets.field(name).type
        arr = _text(values, target, spec)
        texts[name] = arr
        for index, detail in _bisect(arr, converter(target, spec)):
            bad_rows.setdefault(index, (name, f"value {arr[index].as_py()!r} is not a valid {target} ({detail})"))
    bads = chunk.bad + [Bad(chunk.lines[i], reason, chunk.raws[i], column=name) for i, (name, reason) in bad_rows.items()]
    for bad in sorted(bads, key=lambda b: b.line or 0):  # in file order: with "error", the first one is raised
        on_bad(bad)
    arrays = []
    keep = None
    if bad_rows:
        keep = pa.array([i not in bad_rows for i in range(len(chunk.lines))])
    for name in chunk.columns:
        arr = texts[name] if keep is None else texts[name].filter(keep)
        arrays.append(converter(targets.field(name).type, spec)(arr))
    return pa.RecordBatch.from_arrays(arrays, schema=targets)

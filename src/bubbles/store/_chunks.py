"""The columnar chunks in which bubbles before the plain-table store packed attempts (read to convert).

History files written by those versions (schema versions 3) keep their attempts in an
``attempt_chunks`` table in this encoding; :mod:`bubbles.store._legacy` decodes them once, into
the ``attempts`` table, when such a file is first opened. Nothing writes chunks any more.

A *chunk* is many rows of the same columns packed column by column::

    b"BBC1" + u32 header length + header JSON + column payloads

The header is ``{"n": rows, "columns": [[name, kind, payload bytes], ...]}``; a column's kind is

* ``f8``: float64, little-endian; ``None`` is stored as NaN (and read back as ``None``);
* ``i8``: int64, little-endian; ``None`` is stored as the smallest int64;
* ``none``: every value is ``None`` (no payload);
* ``dict``: few distinct values (a status, a worker name): u32 byte length + a JSON list of the
  distinct values, then one int32 code per row, little-endian;
* ``same``: every value is the one string in the payload (UTF-8), e.g. a status;
* ``text``: strings, UTF-8, each ended by a NUL byte (strings without NUL: task names);
* ``json``: a JSON list (strings, and any column whose values do not fit the ones above).

Standard library only (no pyarrow import on the path that ends a run), nothing executable in
the format (unlike pickle or marshal), and about 0.4 µs per row of 17 columns to encode — a
tenth of what SQLite spends inserting one row. Not compressed: zlib would add as much again,
and a chunk already takes less room (about 75 bytes per attempt of a no-op task) than a row
and its index entry did.
"""

from __future__ import annotations

import json
import math
import struct
import sys
from array import array
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["decode", "encode"]

_MAGIC = b"BBC1"
_INT_NONE = -(2**63)
_SWAP = sys.byteorder != "little"


def _pack(kind: str, values: Sequence[Any]) -> bytes | None:
    """``values`` as a payload of ``kind`` (``f8`` or ``i8``), ``None`` if all are None; raises
    TypeError/OverflowError if they do not fit."""
    code, none = ("d", math.nan) if kind == "f8" else ("q", _INT_NONE)
    try:
        packed = array(code, values)
    except TypeError:  # None among the values (or a value of another type, e.g. a float in an int column: JSON then)
        if values.count(None) == len(values):
            return None
        packed = array(code, [none if v is None else v for v in values])
    if code == "q" and _INT_NONE in packed:  # the one int64 that means None: keep such a column as JSON
        raise TypeError("the smallest int64 is among the values")
    if _SWAP:
        packed.byteswap()
    return packed.tobytes()


def _plain(value: Any) -> Any:
    """JSON for what json does not know: numpy scalars as their Python value, the rest as text."""
    item = getattr(value, "item", None)
    if callable(item):
        try:
            return item()
        except (TypeError, ValueError):
            pass
    return str(value)


def _dumps(values: Iterable[Any]) -> bytes:
    return json.dumps(list(values), default=_plain).encode()


def _pack_text(values: Sequence[Any]) -> tuple[str, bytes]:
    """A column of strings (or anything else): one repeated string, a dictionary when strings
    repeat, NUL-ended strings when they do not, else JSON."""
    first = values[0]
    if type(first) is str and values.count(first) == len(values):
        return "same", first.encode("utf-8", "surrogatepass")
    head = values[:64]
    if len(head) == 64 and len(set(head)) > 32:  # mostly distinct (task names): not worth a dictionary
        try:
            joined = "\0".join(values) + "\0"  # (a TypeError unless all are strings)
        except TypeError:
            return "json", _dumps(values)
        if joined.count("\0") == len(values):  # (no string holds a NUL itself)
            return "text", joined.encode("utf-8", "surrogatepass")
        return "json", _dumps(values)
    try:
        distinct = dict.fromkeys(values)
    except TypeError:  # unhashable values
        distinct = None
    # only strings (and None): 1, 1.0 and True are equal keys of a dict, and must stay apart
    if distinct is not None and len(distinct) * 2 <= len(values) and all(v is None or type(v) is str for v in distinct):
        index = {value: i for i, value in enumerate(distinct)}
        codes = array("i", map(index.__getitem__, values))
        if _SWAP:
            codes.byteswap()
        names = _dumps(distinct)
        return "dict", struct.pack("<I", len(names)) + names + codes.tobytes()
    return "json", _dumps(values)


def encode(columns: Sequence[tuple[str, str, Sequence[Any]]]) -> bytes:
    """Pack columns of equal length, each ``(name, kind, values)``, into one chunk.

    ``kind`` is the one a column should have (``f8``, ``i8`` or ``json``); a numeric column whose
    values do not fit is stored as JSON instead, losing nothing.
    """
    header: list[list[Any]] = []
    payloads: list[bytes] = []
    n = len(columns[0][2]) if columns else 0
    for name, kind, values in columns:
        if len(values) != n:
            raise ValueError(f"column {name!r} has {len(values)} values, the first has {n}")
        payload = None
        if kind in ("f8", "i8") and n:
            try:
                payload = _pack(kind, values)
                if payload is None:
                    kind, payload = "none", b""
            except (TypeError, OverflowError):
                kind = "json"
        if payload is None:
            kind, payload = ("none", b"") if values.count(None) == n else _pack_text(values)
        header.append([name, kind, len(payload)])
        payloads.append(payload)
    head = json.dumps({"n": n, "columns": header}).encode()
    return b"".join([_MAGIC, struct.pack("<I", len(head)), head, *payloads])


def decode(data: bytes, *, rows: int) -> list[dict[str, Any]]:
    """The rows of a chunk, as dicts by column name.

    ``rows`` is the number of rows the chunk was written with (stored next to it): checked
    against the chunk's own count before anything is built from it. Raises ValueError for data
    that is not a whole chunk.
    """
    if not data.startswith(_MAGIC):
        raise ValueError("not a bubbles chunk (bad magic)")
    try:
        body = memoryview(data)[len(_MAGIC) :]
        (size,) = struct.unpack_from("<I", body)
        header = json.loads(bytes(body[4 : 4 + size]))
        n, offset = int(header["n"]), 4 + size
        if n != rows:
            raise ValueError(f"the chunk says {n} rows, {rows} were written")
        names, columns = [], []
        for name, kind, nbytes in header["columns"]:
            payload = bytes(body[offset : offset + nbytes])
            offset += nbytes
            values: list[Any]
            if kind == "none":
                values = [None] * n
            elif kind == "json":
                values = json.loads(payload)
            elif kind == "same":
                values = [payload.decode("utf-8", "surrogatepass")] * n
            elif kind == "text":
                if not payload.endswith(b"\0"):
                    raise ValueError(f"column {name!r} is cut short")
                values = payload[:-1].decode("utf-8", "surrogatepass").split("\0") if n else []
            elif kind == "dict":
                (size,) = struct.unpack_from("<I", payload)
                distinct = json.loads(payload[4 : 4 + size])
                codes = array("i")
                codes.frombytes(payload[4 + size :])
                if _SWAP:
                    codes.byteswap()
                if codes and (min(codes) < 0 or max(codes) >= len(distinct)):
                    raise ValueError(f"column {name!r} has codes outside its {len(distinct)} values")
                values = [distinct[c] for c in codes]
            elif kind in ("f8", "i8"):
                packed = array("d" if kind == "f8" else "q")
                packed.frombytes(payload)
                if _SWAP:
                    packed.byteswap()
                if kind == "f8":
                    values = [None if v != v else v for v in packed.tolist()]  # NaN is None
                else:
                    values = [None if v == _INT_NONE else v for v in packed.tolist()]
            else:
                raise ValueError(f"column {name!r} has an unknown kind {kind!r}")
            if len(values) != n:
                raise ValueError(f"column {name!r} has {len(values)} values, expected {n}")
            names.append(name)
            columns.append(values)
    except (struct.error, KeyError, TypeError, IndexError, UnicodeDecodeError) as exc:
        raise ValueError(f"corrupt bubbles chunk: {exc}") from exc
    return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)] if columns else [{} for _ in range(n)]

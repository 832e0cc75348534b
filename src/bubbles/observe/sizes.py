"""Rows and bytes of a task's input or output, without importing any data library.

Recognised: Arrow tables and record batches, pandas and polars frames and series, numpy
arrays, lists and tuples (a list of Arrow tables or record batches counts their rows and bytes,
a list of records — dicts, tuples — or plain values its items; a list of other objects, such as
the files a writer wrote, is not rows of data), ``bytes``/``bytearray``/``memoryview`` and ``str``. Anything else
counts as unknown (``None``), never as zero. A deferred value (the plan of a read, see
:mod:`bubbles._deferred`) reports what it knows without being computed (``__bubbles_size__``).
A ``pyarrow.RecordBatchReader`` or a generator is
not counted here — counting would consume it; wrap it in :func:`counted` (or let the data
layer's readers do it), which reports the rows and bytes as they stream through, via
``log_metric``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["counted", "measure"]

_RECORD_TYPES = frozenset({dict, tuple, list, str, int, float, bool, bytes, type(None)})


def measure(value: Any) -> tuple[int | None, int | None]:
    """Return ``(rows, bytes)`` of ``value``; either is ``None`` when it cannot be known cheaply."""
    if value is None:
        return None, None
    kind = type(value)
    if kind is bytes or kind is bytearray:
        return None, len(value)
    if kind is memoryview:
        return None, value.nbytes
    if kind is str:
        return None, len(value)
    if kind is list or kind is tuple:
        if not value:
            return 0, None
        first = type(value[0])
        arrow = (first.__module__ or "").startswith("pyarrow") and hasattr(value[0], "num_rows")
        if arrow or hasattr(first, "__bubbles_size__"):
            return _sum_tables(value)  # Arrow tables or batches, and deferred values (lazy tables) among them
        if first in _RECORD_TYPES:  # records (dicts, tuples) or plain values: each item is a row
            return len(value), None
        return None, None  # a list of other objects (files written, handles): not rows of data
    module = kind.__module__ or ""
    if module.startswith("pyarrow"):
        rows = getattr(value, "num_rows", None)
        nbytes = getattr(value, "nbytes", None)
        if rows is None and hasattr(value, "__len__"):  # Array / ChunkedArray
            rows = len(value)
        return rows, nbytes
    if module.startswith("pandas"):
        if not hasattr(value, "memory_usage"):  # a Timestamp, an Interval, ...: a scalar, not a frame
            return None, None
        rows = len(value)
        try:
            usage = value.memory_usage(index=True, deep=False)
            nbytes = int(usage.sum()) if hasattr(usage, "sum") else int(usage)
        except (AttributeError, TypeError, ValueError):
            nbytes = None
        return rows, nbytes
    if module.startswith("polars"):
        if not hasattr(value, "estimated_size"):  # a LazyFrame or a scalar: nothing computed to count
            return None, None
        rows = value.height if hasattr(value, "height") else len(value)
        try:
            nbytes = int(value.estimated_size())
        except (AttributeError, TypeError):
            nbytes = None
        return rows, nbytes
    if module.startswith("numpy"):
        shape = getattr(value, "shape", None) or ()
        return (shape[0] if shape else None), getattr(value, "nbytes", None)
    if hasattr(kind, "__bubbles_size__"):  # a deferred value (bubbles._deferred): what is known without computing it
        return value.__bubbles_size__()  # type: ignore[no-any-return]
    return None, None


def _sum_tables(parts: list[Any] | tuple[Any, ...]) -> tuple[int | None, int | None]:
    """Rows and bytes of a list of tables. A deferred value counts what it knows (it is never read to be
    counted); one that does not know makes the total unknown. A list with other items counts its items."""
    rows = nbytes = 0
    for part in parts:
        if hasattr(type(part), "__bubbles_size__"):
            n, b = part.__bubbles_size__()
            if n is None:
                return None, None
        elif (type(part).__module__ or "").startswith("pyarrow") and hasattr(part, "num_rows"):
            n, b = part.num_rows, getattr(part, "nbytes", None)
        else:
            return len(parts), None  # a mixed list: count items
        rows += n
        nbytes += b or 0
    return rows, nbytes


def counted(batches: Any, direction: str = "in") -> Any:
    """Yield the batches of a stream unchanged, adding their rows and bytes to ``rows_<direction>``.

    Use it where a task reads or writes a stream of record batches, so the stream is counted
    as it is consumed (inside a running task the counts go to ``log_metric(..., add=True)``).

    Example:
        >>> import pyarrow as pa
        >>> batch = pa.record_batch({"x": [1, 2, 3]})
        >>> sum(b.num_rows for b in counted(iter([batch, batch])))
        6
    """
    from .._context import log_metric

    if direction not in ("in", "out"):
        raise ValueError(f"direction must be 'in' or 'out', got {direction!r}")
    for batch in batches:
        rows, nbytes = measure(batch)
        if rows is not None:
            log_metric(f"rows_{direction}", rows, add=True)
        if nbytes is not None:
            log_metric(f"bytes_{direction}", nbytes, add=True)
        yield batch

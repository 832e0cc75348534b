"""Rows and bytes of a task's input or output, without importing any data library.

Recognised: Arrow tables and record batches, pandas and polars frames and series, lists,
tuples, ``bytes``/``bytearray``/``memoryview`` and ``str``. Anything else counts as unknown
(``None``), never as zero. Record-batch streams are counted as they are consumed by the data
layer, which reports through ``log_metric``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["measure"]


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
        return len(value), None
    module = kind.__module__ or ""
    if module.startswith("pyarrow"):
        rows = getattr(value, "num_rows", None)
        nbytes = getattr(value, "nbytes", None)
        if rows is None and hasattr(value, "__len__"):  # Array / ChunkedArray
            rows = len(value)
        return rows, nbytes
    if module.startswith("pandas"):
        rows = len(value)
        try:
            usage = value.memory_usage(index=True, deep=False)
            nbytes = int(usage.sum()) if hasattr(usage, "sum") else int(usage)
        except (AttributeError, TypeError, ValueError):
            nbytes = None
        return rows, nbytes
    if module.startswith("polars"):
        rows = value.height if hasattr(value, "height") else len(value)
        try:
            nbytes = int(value.estimated_size())
        except (AttributeError, TypeError):
            nbytes = None
        return rows, nbytes
    if module.startswith("numpy"):
        shape = getattr(value, "shape", ())
        return (shape[0] if shape else None), getattr(value, "nbytes", None)
    return None, None

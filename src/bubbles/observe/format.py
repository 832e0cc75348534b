"""Numbers as people read them: one place for the console, ``bubbles show``, the report and progress.

Example:
    >>> human_bytes(11_428_571), human_count(1234567), human_seconds(0.0042), human_seconds(3725)
    ('10.9 MB', '1,234,567', '4.2 ms', '1 h 2 min')
    >>> metric("bytes_read", 11_428_571), metric("rows_rejected", 3.0), metric("ratio", 0.123456)
    ('10.9 MB', '3', '0.123')
"""

from __future__ import annotations

import datetime as _dt
import math

__all__ = ["human_bytes", "human_count", "human_seconds", "iso_time", "metric"]

_UNITS = ("B", "KB", "MB", "GB", "TB", "PB")


def human_bytes(value: float | None) -> str:
    """``10.9 MB`` (binary multiples, as ``ls -h`` and memory tools show them); ``""`` for ``None``."""
    if value is None:
        return ""
    size = float(value)
    for unit in _UNITS:
        if abs(size) < 1024 or unit == _UNITS[-1]:
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1024
    return f"{size:,.1f} PB"  # pragma: no cover - the loop always returns


def human_count(value: float | None) -> str:
    """``1,234,567``; a fraction keeps three significant digits; ``""`` for ``None``."""
    if value is None:
        return ""
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def human_seconds(value: float | None) -> str:
    """``4.2 ms``, ``1.35 s``, ``2 min 5 s``, ``1 h 2 min``; ``""`` for ``None``."""
    if value is None or math.isnan(value):
        return ""
    if value < 1:
        return f"{value * 1000:.1f} ms" if value >= 0.001 else f"{value * 1e6:.0f} µs"
    if value < 60:
        return f"{value:.2f} s"
    minutes, seconds = divmod(round(value), 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def metric(name: str, value: float | None) -> str:
    """A metric's value in its unit, guessed from its name (``*bytes*`` sizes, ``*seconds``/``*_time`` times)."""
    if value is None:
        return ""
    lowered = name.lower()
    if "bytes" in lowered or lowered.endswith("memory"):
        return human_bytes(value)
    if lowered.endswith(("seconds", "_time", "duration")):
        return human_seconds(value)
    return human_count(value)


def iso_time(epoch: float | None) -> str | None:
    """Epoch seconds as ISO 8601 in UTC with milliseconds: ``2026-12-01T20:31:19.123Z``."""
    if epoch is None:
        return None
    moment = _dt.datetime.fromtimestamp(epoch, tz=_dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"

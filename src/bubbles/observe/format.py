"""Numbers as people read them: one place for the console, ``bubbles show``, the report and progress.

Also what a task or a run read and wrote, in words (:func:`describe_datasets`), from the records
the connectors report (the run store's ``datasets`` rows).

Example:
    >>> human_bytes(11_428_571), human_count(1234567), human_seconds(0.0042), human_seconds(3725)
    ('10.9 MB', '1,234,567', '4.2 ms', '1 h 2 min')
    >>> metric("bytes_read", 11_428_571), metric("rows_rejected", 3.0), metric("ratio", 0.123456)
    ('10.9 MB', '3', '0.123')
    >>> short_count(12_345), short_count(1_234_567), short_count(7.25)
    ('12.3k', '1.2M', '7.2')
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

__all__ = ["describe_datasets", "human_bytes", "human_count", "human_seconds", "iso_time", "metric", "short_count"]

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


def short_count(value: float | None) -> str:
    """A count in at most four characters, for a line that must stay short: ``7.5``, ``999``, ``12.3k``, ``1.2M``."""
    if value is None or math.isnan(value):
        return ""
    size, unit = float(value), ""
    for bigger in ("k", "M", "G", "T"):
        if abs(size) < 999.5:
            break
        size, unit = size / 1000, bigger
    text = f"{size:.1f}" if abs(size) < 9.95 or (unit and abs(size) < 99.95) else f"{size:.0f}"
    return (text.rstrip("0").rstrip(".") if "." in text else text) + unit


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


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


_Record = TypeVar("_Record", bound=Mapping[str, Any])


def task_figures(task: Mapping[str, Any]) -> list[str]:
    """A ``tasks`` row's tries, time, cpu, peak memory, rows in and rows out, as the run table shows them."""
    return [
        str(task["attempts"]) if task.get("attempts") else "",
        human_seconds(task.get("duration")),
        human_seconds(task.get("cpu_time")),
        human_bytes(task.get("peak_memory")),
        human_count(task.get("rows_in")),
        human_count(task.get("rows_out")),
    ]


def last_attempt_datasets(datasets: Iterable[_Record], tasks: Iterable[Mapping[str, Any]]) -> list[_Record]:
    """The ``datasets`` records of each task's last attempt: what a retried task read or wrote counts once."""
    last = {t["task"]: t["attempts"] for t in tasks}
    return [d for d in datasets if last.get(d["task"]) == d["attempt"]]


def describe_datasets(records: Iterable[Mapping[str, Any]], *, names: int = 3) -> str:
    """What a task or a run read or wrote, in words, from ``datasets`` records of one direction.

    Files are counted, with their rows and bytes summed where known; tables and APIs are named
    (up to ``names`` of each, then counted) with their rows; deliveries are counted as files
    delivered. Each record counts once: pass the records of the attempts that count (a task's
    last one), of one direction. ``""`` when there is nothing.

    Example:
        >>> describe_datasets([
        ...     {"kind": "file", "name": "/out/a.csv", "rows": 10, "bytes": 2048},
        ...     {"kind": "file", "name": "/out/b.csv", "rows": 5, "bytes": 1024},
        ...     {"kind": "table", "name": "shop.public.orders", "rows": 1234, "bytes": None},
        ... ])
        '2 files, 15 rows, 3.0 KB; orders: 1,234 rows'
    """
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for record in records:
        groups.setdefault(record.get("kind") or "file", []).append(record)
    parts = []
    for kind, noun in (("file", "file"), ("delivery", "file")):
        items = groups.pop(kind, [])
        if not items:
            continue
        rows = [r["rows"] for r in items if r.get("rows") is not None]
        sizes = [r["bytes"] for r in items if r.get("bytes") is not None]
        count = len({r.get("name") for r in items})
        text = _plural(count, noun) + (" delivered" if kind == "delivery" else "")
        if rows:
            text += f", {human_count(sum(rows))} rows"
        if sizes:
            text += f", {human_bytes(sum(sizes))}"
        parts.append(text)
    for kind in sorted(groups):  # tables, APIs and kinds a newer connector reports
        items = groups[kind]
        totals: dict[str, int | None] = {}
        for r in items:
            short = str(r.get("name") or "?").rsplit(".", 1)[-1] if kind == "table" else str(r.get("name") or "?")
            if r.get("rows") is None:
                totals.setdefault(short, None)
            else:
                totals[short] = (totals.get(short) or 0) + r["rows"]
        if len(totals) > names:
            known = [v for v in totals.values() if v is not None]
            parts.append(_plural(len(totals), "table" if kind == "table" else f"{kind} dataset")
                         + (f", {human_count(sum(known))} rows" if known else ""))
            continue
        parts.extend(f"{name}: {human_count(rows)} rows" if rows is not None else name for name, rows in totals.items())
    return "; ".join(parts)

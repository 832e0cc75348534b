"""Matplotlib figures of task metrics (``MetricsCollector.plot()``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["plot_records"]

_COLOURS = {"succeeded": "#2e7d32", "failed": "#c62828", "retrying": "#f9a825", "cancelled": "#757575"}


def plot_records(records: list[dict[str, Any]]) -> Figure:
    """Three panels: attempts on a timeline by worker; peak memory (MB) and rows out per task.

    Example:
        >>> fig = plot_records([{"task": "a", "status": "succeeded", "started_at": 0.0, "ended_at": 1.0,
        ...                      "execution_time": 1.0, "worker": "1:main", "peak_memory": 2**20, "rows_out": 5}])
        >>> [ax.get_title() for ax in fig.axes]
        ['Timeline (by worker)', 'Peak memory (MB)', 'Rows out']
    """
    from matplotlib.figure import Figure  # the OO API: no pyplot global state, works headless

    fig = Figure(figsize=(11, 8), layout="constrained")
    timeline, memory, rows = fig.subplots(3, 1, height_ratios=(2, 1, 1))
    timeline.set_title("Timeline (by worker)")
    memory.set_title("Peak memory (MB)")
    rows.set_title("Rows out")
    timed = [r for r in records if r.get("execution_time") is not None and (r.get("ended_at") or r.get("started_at"))]
    if timed:
        # an attempt's start: its end minus its duration (the event's started_at is the first attempt's)
        starts = [(r["ended_at"] - r["execution_time"]) if r.get("ended_at") else r["started_at"] for r in timed]
        t0 = min(starts)
        workers = list(dict.fromkeys(r.get("worker") or "?" for r in timed))
        for r, start in zip(timed, starts, strict=True):
            timeline.barh(
                workers.index(r.get("worker") or "?"),
                r["execution_time"],
                left=start - t0,
                color=_COLOURS.get(r.get("status") or "", "#1565c0"),
                edgecolor="white",
            )
        timeline.set_yticks(range(len(workers)), labels=workers)
        timeline.set_xlabel("seconds since first task")
    last: dict[str, dict[str, Any]] = {}
    for r in records:
        last[r["task"]] = r
    names = list(last)
    memory.bar(names, [(last[n].get("peak_memory") or 0) / 2**20 for n in names], color="#6a1b9a")
    rows.bar(names, [last[n].get("rows_out") or 0 for n in names], color="#00838f")
    for ax in (memory, rows):
        ax.tick_params(axis="x", labelrotation=45 if len(names) > 6 else 0)
    return fig

"""Matplotlib figures of task metrics: ``MetricsCollector.plot()``, and the charts of ``bubbles report``.

The report's charts (:func:`gantt_figure`, :func:`task_bars_figure`, :func:`resources_figure`,
:func:`runs_figure`) take plain lists, so they draw from the run store's rows without knowing
it, and :func:`to_svg` turns a figure into SVG text to inline in HTML: text stays text (small,
searchable, selectable), no XML prologue, no namespace URLs, ids unique per figure. Matplotlib
is imported when a figure is drawn, never at import.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .format import human_bytes, human_count, human_seconds, short_count

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["gantt_figure", "plot_records", "resources_figure", "runs_figure", "task_bars_figure", "to_svg"]

_COLOURS = {
    "succeeded": "#2e7d32",
    "failed": "#c62828",
    "retrying": "#f9a825",
    "cancelled": "#757575",
    "upstream_failed": "#ef6c00",
    "skipped": "#9e9e9e",
}
_OTHER = "#1565c0"
_BYTE_UNITS = ("B", "KB", "MB", "GB", "TB", "PB")  # binary multiples, as human_bytes writes them
_ROW = 0.2  # inches per row of a chart with one row per task
# how the report's SVG is written: text as <text> (not glyph outlines), names never read as TeX
_RC: dict[str, Any] = {"svg.fonttype": "none", "text.parse_math": False, "font.size": 9, "font.sans-serif": ["DejaVu Sans"]}


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


# -- the report's charts -----------------------------------------------------------------------
Bar = tuple[int, float, float, str, str]
"""A bar of a Gantt chart: ``(row, start, duration, state, label)`` — seconds since the run started."""


def to_svg(fig: Figure, salt: str) -> str:
    """The figure as an ``<svg>`` element to inline in HTML5; ``salt`` keeps its ids apart from other figures'.

    Example:
        >>> svg = to_svg(runs_figure(["a", "b"], [1.0, 2.0], ["succeeded", "failed"]), "runs")
        >>> svg.startswith("<svg") and "http" not in svg
        True
    """
    import matplotlib

    out = io.StringIO()
    rc: dict[str, Any] = {**_RC, "svg.hashsalt": salt}
    with matplotlib.rc_context(rc):  # type: ignore[arg-type]  # (its stubs want literal keys)
        fig.savefig(out, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    text = out.getvalue()
    text = text[text.index("<svg") :]  # the XML prologue and DOCTYPE are not HTML
    # inside HTML the parser puts <svg> in its namespace itself: no namespace URL is needed
    text = re.sub(r'\s+xmlns(:xlink)?="[^"]*"', "", text, count=2)
    # matplotlib names every group (figure_1, axes_1, ...) alike in every figure; nothing refers to
    # them, and ids must be unique in a page: only the salted ids (clip paths, markers) stay
    return re.sub(r'<g id="[^"]*"', "<g", text)


def _figure(height: float, width: float = 11.0) -> Figure:
    import matplotlib
    from matplotlib.figure import Figure

    with matplotlib.rc_context(_RC):  # type: ignore[arg-type]  # (sizes and fonts are read when artists are made)
        return Figure(figsize=(width, max(height, 1.6)), layout="constrained")


def _formatter(fmt: Callable[[float], str]) -> Any:
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda value, _pos: fmt(value))


def _unit(kind: str, largest: float) -> tuple[float, str]:
    """The unit that suits values up to ``largest``: ``(size of the unit, its name)``."""
    if kind == "bytes":
        power = 0
        while largest >= 1024 and power < len(_BYTE_UNITS) - 1:
            largest /= 1024
            power += 1
        return 1024.0**power, _BYTE_UNITS[power]
    for size, name, below in ((1e-6, "µs", 1e-3), (1e-3, "ms", 1.0), (1.0, "s", 180.0), (60.0, "min", 3 * 3600.0)):
        if largest < below:
            return size, name
    return 3600.0, "h"


def _unit_axis(axis: Any, largest: float, kind: str) -> None:
    """Ticks at round numbers of the unit that suits ``largest`` (``kind``: ``seconds`` or ``bytes``): 0, 2, 4 MB."""
    from matplotlib.ticker import FixedLocator, MaxNLocator

    size, name = _unit(kind, largest)
    ticks = MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10]).tick_values(0, (largest or 1) / size)
    axis.set_major_locator(FixedLocator([t * size for t in ticks if t >= 0]))
    axis.set_major_formatter(_formatter(lambda v: f"{v / size:g} {name}"))


def _legend(fig: Figure, states: Sequence[str]) -> None:
    from matplotlib.patches import Patch

    handles = [Patch(color=_COLOURS.get(s, _OTHER), label=s) for s in dict.fromkeys(states)]
    fig.legend(handles=handles, loc="outside upper right", ncols=len(handles), fontsize=8, frameon=False)


def gantt_figure(
    rows: Sequence[str],
    bars: Sequence[Bar],
    *,
    groups: Sequence[tuple[str, int, int]] = (),
    label_bars: bool = False,
    rasterize: bool = False,
) -> Figure:
    """A Gantt chart: one row per label in ``rows`` (top down), bars coloured by state.

    With ``groups`` (``(name, first row, last row)``, e.g. the worker that ran those tasks) the
    rows of each group are banded and the group is named on the right. ``label_bars`` writes a
    bar's label on it where it fits (rows that are workers, not tasks); the last bar of each
    row gets its duration at its end when rows are tasks. ``rasterize`` draws the bars as one
    image (thousands of bars stay small).

    Example:
        >>> fig = gantt_figure(["extract", "load"], [(0, 0.0, 1.5, "succeeded", "extract"), (1, 1.5, 0.5, "failed", "load")])
        >>> [t.get_text() for t in fig.axes[0].get_yticklabels()]
        ['extract', 'load']
    """
    fig = _figure(0.9 + _ROW * len(rows) if not label_bars else 1.2 + 0.35 * len(rows))
    ax = fig.subplots()
    end = max((start + duration for _, start, duration, _, _ in bars), default=1.0) or 1.0
    ax.set_xlim(0, end * (1.02 if label_bars else 1.12))  # room for the durations written after the bars
    ax.set_ylim(len(rows) - 0.5, -0.5)
    for index, (_name, first, last) in enumerate(groups):
        if index % 2:
            ax.axhspan(first - 0.5, last + 0.5, color="#eef2f6", zorder=0)
    ax.barh(
        [b[0] for b in bars],
        [max(b[2], end / 2000) for b in bars],  # a task of a microsecond is still seen
        left=[b[1] for b in bars],
        height=0.72,
        color=[_COLOURS.get(b[3], _OTHER) for b in bars],
        rasterized=rasterize,
        zorder=2,
    )
    ax.set_yticks(range(len(rows)), labels=list(rows), fontsize=8)
    _unit_axis(ax.xaxis, end, "seconds")
    ax.set_xlabel("time since the run started")
    ax.grid(axis="x", color="#e0e0e0", zorder=0)
    if groups and (len(groups) > 1 or groups[0][0]):
        right = ax.twinx()
        right.set_ylim(ax.get_ylim())
        right.set_yticks([(first + last) / 2 for _, first, last in groups], labels=[g[0] for g in groups], fontsize=8)
        right.tick_params(length=0)
    if label_bars:
        _write_on_bars(fig, ax, bars, end * 1.02)
    else:
        last_bar: dict[int, Bar] = {}
        for bar in bars:
            if bar[0] not in last_bar or bar[1] >= last_bar[bar[0]][1]:
                last_bar[bar[0]] = bar
        for row, start, duration, _state, _label in last_bar.values():
            ax.text(start + duration, row, " " + human_seconds(duration), va="center", fontsize=7, color="#555555")
    _legend(fig, [b[3] for b in bars])
    return fig


def _write_on_bars(fig: Figure, ax: Any, bars: Sequence[Bar], span: float, limit: int = 400) -> None:
    """Write each bar's label inside it, where it fits (about 5.5 points per character at 8 points)."""
    points = fig.get_figwidth() * 72 * 0.85  # the axes' width, roughly: what the labels on the left leave
    fitting = [b for b in bars if b[2] / span * points >= 5.5 * len(b[4]) + 4]
    for row, start, _duration, _state, label in sorted(fitting, key=lambda b: -b[2])[:limit]:
        ax.text(start, row, " " + label, va="center", fontsize=8, color="white", clip_on=True, zorder=3)


def task_bars_figure(
    names: Sequence[str], durations: Sequence[float | None], memory: Sequence[float | None], rows_out: Sequence[float | None]
) -> Figure:
    """Three panels side by side, one row per task: duration, peak memory and rows out, each value written in its unit.

    Example:
        >>> fig = task_bars_figure(["a", "b"], [1.5, 0.25], [2**20, None], [10, None])
        >>> [ax.get_title() for ax in fig.axes]
        ['Duration (last attempt)', 'Peak memory', 'Rows out (data)']
    """
    fig = _figure(1.0 + _ROW * len(names))
    axes = fig.subplots(1, 3, sharey=True)
    panels = (
        ("Duration (last attempt)", durations, "#1565c0", "seconds", human_seconds),
        ("Peak memory", memory, "#6a1b9a", "bytes", human_bytes),
        ("Rows out (data)", rows_out, "#00838f", "count", human_count),
    )
    for ax, (title, values, colour, kind, label) in zip(axes, panels, strict=True):
        known = [v or 0 for v in values]
        largest = max(known, default=0) or 1
        ax.barh(range(len(names)), known, height=0.72, color=colour)
        ax.set_title(title, fontsize=9)
        ax.set_xlim(0, largest * 1.3)
        if kind == "count":
            ax.xaxis.set_major_formatter(_formatter(short_count))
        else:
            _unit_axis(ax.xaxis, largest, kind)
        ax.tick_params(axis="x", labelsize=7)
        ax.grid(axis="x", color="#e0e0e0")
        for i, value in enumerate(values):
            if value is not None:
                ax.text(value, i, " " + label(value), va="center", fontsize=7, color="#555555")
    axes[0].set_yticks(range(len(names)), labels=list(names), fontsize=8)
    axes[0].set_ylim(len(names) - 0.5, -0.5)
    return fig


def resources_figure(seconds: Sequence[float], cpu: Sequence[float | None], rss: Sequence[float | None]) -> Figure:
    """CPU % (100 = one core) and resident memory of the run's process tree over the run."""
    fig = _figure(3.2)
    ax = fig.subplots()
    ax.plot(seconds, [c if c is not None else float("nan") for c in cpu], color="#c62828", label="CPU % (100 = one core)")
    ax.set_ylabel("CPU %")
    ax.set_xlabel("time since the run started")
    _unit_axis(ax.xaxis, max(seconds, default=1.0), "seconds")
    ax.set_ylim(bottom=0)
    memory = ax.twinx()
    memory.plot(seconds, [r if r is not None else float("nan") for r in rss], color="#6a1b9a", label="memory (RSS, process tree)")
    largest = max((r for r in rss if r is not None), default=0) or 1
    memory.set_ylim(0, largest * 1.1)
    _unit_axis(memory.yaxis, largest * 1.1, "bytes")
    lines = ax.get_lines() + memory.get_lines()
    ax.legend(lines, [str(line.get_label()) for line in lines], loc="upper left", fontsize=8)
    ax.grid(color="#eeeeee")
    return fig


def runs_figure(labels: Sequence[str], durations: Sequence[float | None], states: Sequence[str]) -> Figure:
    """Durations of a workflow's runs, oldest first, each point coloured by the run's status."""
    fig = _figure(2.8)
    ax = fig.subplots()
    xs = list(range(len(labels)))
    ys = [d if d is not None else float("nan") for d in durations]
    ax.plot(xs, ys, color="#90a4ae", zorder=1)
    ax.scatter(xs, ys, color=[_COLOURS.get(s, _OTHER) for s in states], zorder=2)
    crowded = len(labels) > 6
    ax.set_xticks(xs, labels=list(labels), fontsize=7, rotation=30 if crowded else 0, ha="right" if crowded else "center")
    largest = max((d for d in durations if d is not None), default=0) or 1
    ax.set_ylim(0, largest * 1.1)
    _unit_axis(ax.yaxis, largest * 1.1, "seconds")
    ax.set_ylabel("run duration")
    ax.grid(axis="y", color="#eeeeee")
    _legend(fig, states)
    return fig

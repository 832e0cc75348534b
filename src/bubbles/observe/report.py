"""``bubbles report RUN_ID``: one self-contained HTML file about a run, from the run store.

Sections: the run (when, how long, where, its tasks' states, and what it read and wrote, from
the ``datasets`` its connectors reported); a Gantt timeline of the attempts by worker; duration,
peak memory and rows per task; retries and failures with tracebacks; the warnings and errors the
tasks logged; CPU and memory of the process tree over the run; per-task profiles
(``bubbles run --profile``); with ``compare=N`` the last N runs of the same workflow side by
side — run durations and per-task durations, tasks more than 1.5x slower than their median
flagged as regressions —; and every task in a table (rows of data out, what it wrote).

How the charts are drawn (a decision):

* **By default, static SVG** drawn with matplotlib (the ``report`` extra) and written into the
  page. The page has no script at all and fetches nothing: it opens offline, in any browser or
  mail client, prints, and can be attached to a ticket. A report weighs about 60 KB for 8 tasks
  and 0.35 MB for 100 (when plotly.js was inlined in every report, 8 tasks weighed 4.8 MB). Text in the
  charts stays text, so the timeline's task names can be searched and copied.
* **With** ``interactive=True`` (``bubbles report --interactive``), the same charts drawn with
  plotly, for hover and zoom. plotly.js is inlined once, in the first chart (about 4.6 MB):
  still self-contained, nothing fetched.

Both draw from the same prepared data (:class:`_Gantt` and plain lists), so they show the same
thing. The timeline has one row per task, named, grouped by the worker that ran it, up to
``_NAMED_ROWS`` tasks; beyond that (a 10,000-task fan-out) one row per worker, each bar named
where its name fits, and the tasks table names every task.

Figures count what their heading says: "rows out" is rows of data a task returned (never the
files a writer returns), "written" and the run's "read"/"wrote" are the datasets the connectors
reported for each task's last attempt; times, sizes and counts are in human units
(:mod:`bubbles.observe.format`).
"""

from __future__ import annotations

import html
import statistics
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .format import describe_datasets, human_bytes, human_count, human_seconds, last_attempt_datasets, task_figures
from .lineage_graph import report_datasets
from .quality_results import report_quality

__all__ = ["build_report", "write_report"]


class RunReader(Protocol):
    """What the report reads from a run store (:class:`bubbles.store.RunStore` is one)."""

    def run(self, run_id: str) -> dict[str, Any]: ...
    def runs(self, limit: int = 20, workflow: str | None = None) -> list[dict[str, Any]]: ...
    def attempts(self, run_id: str) -> list[dict[str, Any]]: ...
    def tasks(self, run_id: str) -> list[dict[str, Any]]: ...
    def resources(self, run_id: str) -> list[dict[str, Any]]: ...
    def profiles(self, run_id: str) -> list[dict[str, Any]]: ...
    def logs(self, run_id: str, task: str | None = None) -> list[dict[str, Any]]: ...
    def datasets(self, run_id: str) -> list[dict[str, Any]]: ...
    def lineage(self, run_id: str | None = None) -> list[dict[str, Any]]: ...
    def quality_results(self, run_id: str) -> list[dict[str, Any]]: ...
    def quarantines(self, run_id: str | None = None) -> list[dict[str, Any]]: ...


_COLOURS = {
    "succeeded": "#2e7d32",
    "failed": "#c62828",
    "retrying": "#f9a825",
    "cancelled": "#757575",
    "upstream_failed": "#ef6c00",
    "skipped": "#9e9e9e",
}
_NAMED_ROWS = 150  # up to this many tasks the timeline has a named row per task
_MAX_BARS = 5000  # attempts drawn on a timeline of workers; beyond that the longest are kept
_TOP_TASKS = 100  # tasks in the per-task chart (the longest)
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em;color:#222;max-width:1300px}
h1{font-size:1.5em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em} h3{font-size:1em;margin:1.2em 0 .3em}
table{border-collapse:collapse;font-size:.9em} td,th{padding:.25em .7em;border-bottom:1px solid #eee;text-align:left}
table.facts th{font-weight:normal;color:#555} td.n{text-align:right;font-variant-numeric:tabular-nums}
.succeeded{color:#2e7d32} .failed,.crashed{color:#c62828} .running{color:#1565c0} .slower{background:#ffebee}
pre{background:#f6f8fa;padding:.8em;overflow:auto;font-size:.85em} details{margin:.4em 0} summary{cursor:pointer}
.chart svg{max-width:100%;height:auto;display:block} .note{color:#555;font-size:.9em}
"""


def _fmt_time(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(ts)) if ts else ""


def _state(state: str) -> str:
    return f'<span class="{html.escape(state)}">{html.escape(state)}</span>'


def _table(headers: list[str], rows: list[list[str]], numeric: set[int] | None = None, classes: list[str] | None = None) -> str:
    """An HTML table; cells are HTML already (escape text before)."""
    numeric = numeric or set()
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{classes[i]}"' if classes and classes[i] else ""
        cells = "".join(f'<td class="n">{c}</td>' if j in numeric else f"<td>{c}</td>" for j, c in enumerate(row))
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


# -- what the charts show, whoever draws them ---------------------------------------------------
@dataclass
class _Gantt:
    """A timeline: ``rows`` top down, ``bars`` as ``(row, start, duration, state, label)``."""

    rows: list[str]
    bars: list[tuple[int, float, float, str, str]]
    hover: list[str]  # one per bar (plotly's hover text)
    groups: list[tuple[str, int, int]]  # (worker, first row, last row) when rows are tasks
    per_task: bool
    note: str = ""


def _gantt(attempts: list[dict[str, Any]], t0: float) -> _Gantt | None:
    timed = [a for a in attempts if a.get("duration") is not None and (a.get("started_at") or a.get("ended_at"))]
    if not timed:
        return None

    def start(a: dict[str, Any]) -> float:
        return float(a["started_at"] if a.get("started_at") else a["ended_at"] - a["duration"]) - t0

    timed.sort(key=start)
    first: dict[str, float] = {}
    worker: dict[str, str] = {}
    for a in timed:
        first.setdefault(a["task"], start(a))
        worker[a["task"]] = a.get("worker") or "?"  # its last attempt's
    note = ""
    if len(first) <= _NAMED_ROWS:
        by_worker: dict[str, list[str]] = {}
        for task in first:  # (in order of first start)
            by_worker.setdefault(worker[task], []).append(task)
        rows: list[str] = []
        groups = []
        for name, tasks in by_worker.items():
            groups.append((name, len(rows), len(rows) + len(tasks) - 1))
            rows.extend(tasks)
        index = {task: i for i, task in enumerate(rows)}
        row_of = [index[a["task"]] for a in timed]
    else:
        if len(timed) > _MAX_BARS:
            note = f"The {_MAX_BARS:,} longest of {len(timed):,} attempts are drawn. "
            timed = sorted(sorted(timed, key=lambda a: a["duration"], reverse=True)[:_MAX_BARS], key=start)
        rows = list(dict.fromkeys(a.get("worker") or "?" for a in timed))
        index = {name: i for i, name in enumerate(rows)}
        row_of = [index[a.get("worker") or "?"] for a in timed]
        groups = []
        note += (
            f"{len(first):,} tasks: one row per worker; a bar carries its task's name where the name fits "
            "(all of them on hover with --interactive; the Tasks table lists every task)."
        )
    labels = [a["task"] if (a.get("attempt") or 1) <= 1 else f"{a['task']} #{a['attempt']}" for a in timed]
    bars = [
        (row, start(a), float(a["duration"]), a["state"], label) for row, a, label in zip(row_of, timed, labels, strict=True)
    ]
    hover = ["<br>".join(html.escape(line) for line in _hover_lines(a, start(a))) for a in timed]
    return _Gantt(rows, bars, hover, groups, len(first) <= _NAMED_ROWS, note)


def _hover_lines(a: dict[str, Any], start: float) -> list[str]:
    lines = [f"{a['task']} #{a.get('attempt')} · {a['state']}", f"worker {a.get('worker') or '?'}"]
    lines.append(f"from {human_seconds(start)} for {human_seconds(a['duration'])}")
    if a.get("peak_memory"):
        lines.append(f"peak memory {human_bytes(a['peak_memory'])}")
    if a.get("rows_out") is not None:
        lines.append(f"rows out {human_count(a['rows_out'])}")
    return lines


class _Static:
    """Charts as SVG written into the page (matplotlib): no script, nothing fetched."""

    def __init__(self) -> None:
        try:
            import matplotlib  # noqa: F401
        except ImportError as exc:
            from .._errors import MissingDependencyError

            raise MissingDependencyError("bubbles report", "matplotlib", "report") from exc
        self._count = 0

    def _svg(self, fig: Any) -> str:
        from .plots import to_svg

        self._count += 1
        return f'<div class="chart">{to_svg(fig, f"bubbles-chart-{self._count}")}</div>'

    def timeline(self, g: _Gantt) -> str:
        from .plots import gantt_figure

        fig = gantt_figure(g.rows, g.bars, groups=g.groups, label_bars=not g.per_task, rasterize=len(g.bars) > 1000)
        return self._svg(fig)

    def per_task(self, names: list[str], durations: list[Any], memory: list[Any], rows_out: list[Any]) -> str:
        from .plots import task_bars_figure

        return self._svg(task_bars_figure(names, durations, memory, rows_out))

    def resources(self, seconds: list[float], cpu: list[Any], rss: list[Any]) -> str:
        from .plots import resources_figure

        return self._svg(resources_figure(seconds, cpu, rss))

    def runs(self, labels: list[str], durations: list[Any], states: list[str]) -> str:
        from .plots import runs_figure

        return self._svg(runs_figure(labels, durations, states))


class _Interactive:
    """The same charts with plotly (hover, zoom); plotly.js is inlined once, in the first chart."""

    def __init__(self) -> None:
        try:
            import plotly.graph_objects as go
        except ImportError as exc:
            from .._errors import MissingDependencyError

            raise MissingDependencyError("bubbles report --interactive", "plotly", "report") from exc
        self.go = go
        self.first = True

    def _html(self, fig: Any) -> str:
        fig.update_layout(margin={"t": 30}, template="plotly_white")
        out = fig.to_html(full_html=False, include_plotlyjs=self.first, config={"displaylogo": False})
        self.first = False
        return str(out)

    def timeline(self, g: _Gantt) -> str:
        go = self.go
        fig = go.Figure()
        for state in dict.fromkeys(b[3] for b in g.bars):
            picked = [i for i, b in enumerate(g.bars) if b[3] == state]
            fig.add_trace(
                go.Bar(
                    y=[g.rows[g.bars[i][0]] for i in picked],
                    x=[g.bars[i][2] for i in picked],
                    base=[g.bars[i][1] for i in picked],
                    orientation="h",
                    name=state,
                    marker_color=_COLOURS.get(state, "#1565c0"),
                    text=None if g.per_task else [g.bars[i][4] for i in picked],
                    textposition="inside",
                    insidetextanchor="start",
                    hovertext=[g.hover[i] for i in picked],
                    hoverinfo="text",
                )
            )
        for index, (name, first, last) in enumerate(g.groups):
            if index % 2:
                fig.add_hrect(y0=first - 0.5, y1=last + 0.5, fillcolor="#eef2f6", line_width=0, layer="below")
            fig.add_annotation(x=1.0, xref="paper", xanchor="left", y=(first + last) / 2, text=name, showarrow=False)
        fig.update_layout(
            barmode="overlay",
            xaxis_title="seconds since the run started",
            height=min(160 + (18 if g.per_task else 30) * len(g.rows), 4000),
            margin={"r": 200 if g.groups else 20},
            uniformtext={"mode": "hide", "minsize": 8},
        )
        fig.update_yaxes(type="category", categoryorder="array", categoryarray=g.rows, autorange="reversed")
        return self._html(fig)

    def per_task(self, names: list[str], durations: list[Any], memory: list[Any], rows_out: list[Any]) -> str:
        from plotly.subplots import make_subplots

        go = self.go
        fig = make_subplots(
            rows=1, cols=3, shared_yaxes=True, subplot_titles=("Duration (last attempt)", "Peak memory", "Rows out (data)")
        )
        panels = ((durations, "#1565c0", human_seconds), (memory, "#6a1b9a", human_bytes), (rows_out, "#00838f", human_count))
        for col, (values, colour, fmt) in enumerate(panels, start=1):
            fig.add_trace(
                go.Bar(
                    y=names,
                    x=[v or 0 for v in values],
                    orientation="h",
                    marker_color=colour,
                    text=[fmt(v) for v in values],
                    textposition="outside",
                    hovertemplate="%{y}: %{text}<extra></extra>",
                ),
                1,
                col,
            )
        fig.update_layout(showlegend=False, height=min(160 + 18 * len(names), 4000))
        fig.update_yaxes(type="category", autorange="reversed")
        return self._html(fig)

    def resources(self, seconds: list[float], cpu: list[Any], rss: list[Any]) -> str:
        from plotly.subplots import make_subplots

        go = self.go
        fig = make_subplots(specs=[[{"secondary_y": True}]])
        fig.add_trace(go.Scatter(x=seconds, y=cpu, name="CPU % (100 = one core)", line_color="#c62828"), secondary_y=False)
        fig.add_trace(
            go.Scatter(
                x=seconds,
                y=rss,
                name="memory (RSS, process tree)",
                line_color="#6a1b9a",
                hovertext=[human_bytes(r) for r in rss],
                hoverinfo="text+x",
            ),
            secondary_y=True,
        )
        fig.update_layout(xaxis_title="seconds since the run started", height=380)
        fig.update_yaxes(title_text="CPU %", secondary_y=False)
        fig.update_yaxes(title_text="bytes", secondary_y=True)
        return self._html(fig)

    def runs(self, labels: list[str], durations: list[Any], states: list[str]) -> str:
        go = self.go
        fig = go.Figure(
            go.Scatter(
                x=labels,
                y=durations,
                mode="lines+markers",
                marker_color=[_COLOURS.get(s, "#1565c0") for s in states],
                line_color="#90a4ae",
                hovertext=[f"{label}: {human_seconds(d)} ({s})" for label, d, s in zip(labels, durations, states, strict=True)],
                hoverinfo="text",
            )
        )
        fig.update_layout(yaxis_title="seconds", height=340)
        return self._html(fig)


Charts = _Static | _Interactive


# -- sections -----------------------------------------------------------------------------------
def _header(run: dict[str, Any], tasks: list[dict[str, Any]], datasets: list[dict[str, Any]]) -> str:
    rid = run["run_id"]
    counts = Counter(t["state"] for t in tasks)
    if run["duration"] is not None:
        took = human_seconds(run["duration"])
    else:
        took = "still running" if run["status"] == "running" else "no end recorded"
    states = ", ".join(f"{n:,} {_state(s)}" for s, n in sorted(counts.items()))
    facts = [
        ("started", html.escape(_fmt_time(run["started_at"]))),
        ("took", html.escape(took)),
        ("executor", html.escape(run["executor"] or "")),
        ("host", html.escape(run.get("host") or "")),
        ("tasks", f"{len(tasks):,}" + (f": {states}" if states else "")),
    ]
    reads = [d for d in datasets if d["direction"] == "read"]
    writes = [d for d in datasets if d["direction"] == "write"]
    if reads:
        facts.append(("read", html.escape(describe_datasets(reads))))
    if writes:
        facts.append(("wrote", html.escape(describe_datasets(writes))))
    if run.get("argv"):
        facts.append(("command", f"<code>{html.escape(run['argv'])}</code>"))
    rows = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in facts)
    title = f"<h1>Run {html.escape(rid)} · {html.escape(run['workflow'])} · {_state(run['status'])}</h1>"
    error = f'<p class="failed">{html.escape(run["error"])}</p>' if run.get("error") else ""
    return f'{title}<table class="facts">{rows}</table>{error}'


def _per_task(charts: Charts, tasks: list[dict[str, Any]]) -> str:
    top = sorted(tasks, key=lambda t: t.get("duration") or 0, reverse=True)[:_TOP_TASKS]
    caption = "Per task" + (f" ({len(top)} longest of {len(tasks):,})" if len(top) < len(tasks) else "")
    chart = charts.per_task(
        [t["task"] for t in top],
        [t.get("duration") for t in top],
        [t.get("peak_memory") for t in top],
        [t.get("rows_out") for t in top],
    )
    return f"<h3>{html.escape(caption)}: duration, peak memory, rows of data out</h3>{chart}"


def _failures(attempts: list[dict[str, Any]]) -> str:
    failures = [a for a in attempts if a["state"] in ("failed", "retrying")]
    parts = [f"<h2>Retries and failures ({len(failures):,})</h2>"]
    for a in failures[:200]:
        where = f" on {a['worker']}" if a.get("worker") else ""
        took = f" after {human_seconds(a['duration'])}" if a.get("duration") is not None else ""
        parts.append(
            f"<details><summary><b>{html.escape(a['task'])}</b> attempt {a['attempt']} {_state(a['state'])}"
            f"{html.escape(took + where)}: {html.escape(a.get('error') or '')}"
            f"</summary><pre>{html.escape(a.get('traceback') or '')}</pre></details>"
        )
    if len(failures) > 200:
        parts.append(f'<p class="note">... and {len(failures) - 200:,} more: <code>bubbles show RUN_ID</code>.</p>')
    if not failures:
        parts.append("<p>None.</p>")
    return "".join(parts)


def _noisy_logs(logs: list[dict[str, Any]]) -> str:
    noisy = [entry for entry in logs if entry["level"] in ("WARNING", "ERROR", "CRITICAL")]
    if not noisy:
        return ""
    lines = "".join(
        html.escape(f"{_fmt_time(e['time'])} {e['level']:<8} {e['task']}#{e['attempt']} {e['logger']}: {e['message']}") + "\n"
        for e in noisy[:500]
    )
    return (
        f"<h2>Task warnings and errors ({len(noisy):,})</h2><pre>{lines}</pre>"
        "<p class=note>All captured logs: <code>bubbles show RUN_ID --logs</code>.</p>"
    )


def _comparison(charts: Charts, store: RunReader, run: dict[str, Any], n: int) -> str:
    runs = [r for r in store.runs(limit=max(n, 2) * 3, workflow=run["workflow"]) if r["started_at"] <= run["started_at"]][:n]
    runs.reverse()
    if len(runs) < 2:
        return "<p>No earlier run of this workflow to compare with.</p>"
    chart = charts.runs([r["run_id"][-13:] for r in runs], [r["duration"] for r in runs], [r["status"] for r in runs])
    per_run = {r["run_id"]: {t["task"]: t.get("duration") for t in store.tasks(r["run_id"])} for r in runs}
    current = per_run[run["run_id"]]
    names = sorted(current, key=lambda k: current[k] or 0, reverse=True)[:40]
    rows, classes = [], []
    for name in names:
        history = [per_run[r["run_id"]].get(name) for r in runs]
        earlier = [v for v in history[:-1] if v is not None]
        median = statistics.median(earlier) if earlier else None
        now = history[-1]
        slower = bool(median and now is not None and now > 1.5 * median and now - median > 0.05)
        ratio = f"{now / median:.2f}x" if median and now is not None else ""
        rows.append([html.escape(name), *[human_seconds(v) for v in history], human_seconds(median), ratio])
        classes.append("slower" if slower else "")
    table = _table(
        ["task", *[r["run_id"][-13:] for r in runs], "median before", "now / median"],
        rows,
        numeric=set(range(1, len(runs) + 3)),
        classes=classes,
    )
    flagged = sum(1 for c in classes if c)
    note = (
        f"<p><b>{flagged} task(s) more than 1.5x slower than their median</b> (highlighted).</p>"
        if flagged
        else "<p>No task is more than 1.5x slower than its median over the earlier runs.</p>"
    )
    return f"<h3>Duration of the last {len(runs)} runs of {html.escape(repr(run['workflow']))}</h3>{chart}{note}{table}"


def _tasks_table(tasks: list[dict[str, Any]], datasets: list[dict[str, Any]]) -> str:
    written: dict[str, list[dict[str, Any]]] = {}
    for d in datasets:
        if d["direction"] == "write":
            written.setdefault(d["task"], []).append(d)
    table = _table(
        ["task", "state", "tries", "time", "cpu", "peak memory", "rows in", "rows out", "written", "worker"],
        [
            [
                html.escape(t["task"]),
                _state(t["state"]),
                *task_figures(t),
                html.escape(describe_datasets(written.get(t["task"], []))),
                html.escape(t.get("worker") or ""),
            ]
            for t in tasks[:2000]
        ],
        numeric={2, 3, 4, 5, 6, 7},
    )
    more = f'<p class="note">... and {len(tasks) - 2000:,} more tasks.</p>' if len(tasks) > 2000 else ""
    return (
        "<h2>Tasks</h2><p class=note>rows in / out: rows of data a task took and returned (not files or counts); "
        "written: the files, rows and tables its connectors reported writing.</p>" + table + more
    )


def build_report(store: RunReader, run_id: str, *, compare: int = 0, interactive: bool = False) -> str:
    """The HTML text of the report for ``run_id`` (``compare``: also compare with the last N runs).

    ``interactive`` draws the charts with plotly (hover, zoom; plotly.js inlined, about 4.6 MB)
    instead of static SVG.

    Example:
        >>> from bubbles.store import open_store
        >>> html_text = build_report(open_store(), "last", compare=5)  # doctest: +SKIP
    """
    charts: Charts = _Interactive() if interactive else _Static()
    run = store.run(run_id)
    rid = run["run_id"]
    attempts = store.attempts(rid)
    tasks = store.tasks(rid)
    samples = store.resources(rid)
    profiles = store.profiles(rid)
    datasets = last_attempt_datasets(store.datasets(rid), tasks)
    t0 = run["started_at"] or min((a["started_at"] or 0 for a in attempts), default=0)
    parts = [_header(run, tasks, datasets), "<h2>Timeline</h2>"]
    gantt = _gantt(attempts, t0)
    if gantt is None:
        parts.append("<p>No task ran.</p>")
    else:
        parts.append("<h3>Timeline of task attempts by worker</h3>")
        parts.append(charts.timeline(gantt))
        if gantt.note:
            parts.append(f'<p class="note">{html.escape(gantt.note)}</p>')
    if tasks:
        parts.append("<h2>Per task</h2>" + _per_task(charts, tasks))
    parts.append(_failures(attempts))
    parts.append(_noisy_logs(store.logs(rid)))
    parts.append("<h2>System resources</h2>")
    if samples:
        parts.append("<h3>CPU and memory of the run's process tree</h3>")
        seconds = [s["time"] - t0 for s in samples]
        parts.append(charts.resources(seconds, [s["cpu_percent"] for s in samples], [s["rss"] for s in samples]))
    else:
        parts.append("<p>Not sampled (BUBBLES_RESOURCES=0).</p>")
    if profiles:
        parts.append(f"<h2>Profiles ({len(profiles):,})</h2>")
        parts.extend(
            f"<details><summary>{html.escape(p['task'])} attempt {p['attempt']}</summary>"
            f"<pre>{html.escape(p['data'] or '')}</pre></details>"
            for p in profiles
        )
    if compare:
        parts.append("<h2>Compared with earlier runs</h2>" + _comparison(charts, store, run, compare))
    parts.append(_tasks_table(tasks, datasets))
    parts.append(report_quality(store, rid))
    parts.append(report_datasets(store, rid))
    title = f"bubbles run {rid}"
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_CSS}</style></head><body>{''.join(parts)}</body></html>"
    )


def write_report(
    run_id: str, output: str | Path, *, compare: int = 0, interactive: bool = False, store: RunReader | None = None
) -> Path:
    """Write the report of ``run_id`` to ``output`` (through a temp file, then renamed).

    Example:
        >>> write_report("last", "report.html", compare=10)  # doctest: +SKIP
        PosixPath('report.html')
    """
    if store is None:
        from ..store import open_store

        with open_store(create=False) as opened:
            text = build_report(opened, run_id, compare=compare, interactive=interactive)
    else:
        text = build_report(store, run_id, compare=compare, interactive=interactive)
    path = Path(output)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path

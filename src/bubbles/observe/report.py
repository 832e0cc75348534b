"""``bubbles report RUN_ID``: one self-contained HTML file (plotly inlined) about a run from the history.

Sections: summary; Gantt timeline of attempts by worker; duration, peak memory and rows per
task; retries and failures (with tracebacks); warnings and errors the tasks logged; CPU and
memory of the process tree over the run; per-task profiles (``bubbles run --profile``); and,
with ``compare=N``, the last N runs of the same workflow side by side — run durations and
per-task durations, with tasks that got more than 1.5x slower than their median flagged as
regressions.
"""

from __future__ import annotations

import html
import statistics
import time
from pathlib import Path
from typing import Any, Protocol


class RunReader(Protocol):
    """What the report reads from a run store (:class:`bubbles.store.RunStore` is one)."""

    def run(self, run_id: str) -> dict[str, Any]: ...
    def runs(self, limit: int = 20, workflow: str | None = None) -> list[dict[str, Any]]: ...
    def attempts(self, run_id: str) -> list[dict[str, Any]]: ...
    def tasks(self, run_id: str) -> list[dict[str, Any]]: ...
    def resources(self, run_id: str) -> list[dict[str, Any]]: ...
    def profiles(self, run_id: str) -> list[dict[str, Any]]: ...
    def logs(self, run_id: str, task: str | None = None) -> list[dict[str, Any]]: ...

__all__ = ["build_report", "write_report"]

_COLOURS = {
    "succeeded": "#2e7d32",
    "failed": "#c62828",
    "retrying": "#f9a825",
    "cancelled": "#757575",
    "upstream_failed": "#ef6c00",
    "skipped": "#9e9e9e",
}
_MAX_BARS = 5000  # attempts drawn on the timeline; beyond that the longest are kept
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em;color:#222;max-width:1300px}
h1{font-size:1.5em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;font-size:.9em} td,th{padding:.25em .7em;border-bottom:1px solid #eee;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums} .succeeded{color:#2e7d32} .failed{color:#c62828}
.running{color:#1565c0} .slower{background:#ffebee} pre{background:#f6f8fa;padding:.8em;overflow:auto;font-size:.85em}
details{margin:.4em 0} summary{cursor:pointer}
"""


def _fmt_time(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else ""


def _mb(value: float | None) -> str:
    return f"{value / 2**20:,.1f}" if value else ""


def _num(value: float | None, digits: int = 3) -> str:
    if value is None:
        return ""
    return f"{value:,.{digits}f}" if isinstance(value, float) and not value.is_integer() else f"{int(value):,}"


class _Figures:
    """Renders plotly figures as HTML fragments; plotly.js is inlined once."""

    def __init__(self) -> None:
        self.first = True

    def html(self, fig: Any) -> str:
        out = fig.to_html(full_html=False, include_plotlyjs=self.first, config={"displaylogo": False})
        self.first = False
        return str(out)


def _timeline(go: Any, attempts: list[dict[str, Any]], t0: float) -> Any:
    timed = [a for a in attempts if a.get("duration") is not None and (a.get("started_at") or a.get("ended_at"))]
    if len(timed) > _MAX_BARS:
        timed = sorted(timed, key=lambda a: a["duration"], reverse=True)[:_MAX_BARS]
    fig = go.Figure()
    for status in dict.fromkeys(a["state"] for a in timed):
        rows = [a for a in timed if a["state"] == status]
        starts = [(a["started_at"] if a.get("started_at") else a["ended_at"] - a["duration"]) - t0 for a in rows]
        fig.add_trace(
            go.Bar(
                y=[a.get("worker") or "?" for a in rows],
                x=[a["duration"] for a in rows],
                base=starts,
                orientation="h",
                name=status,
                marker_color=_COLOURS.get(status, "#1565c0"),
                customdata=[[a["task"], a["attempt"], _mb(a.get("peak_memory")), a.get("rows_out")] for a in rows],
                hovertemplate="%{customdata[0]} #%{customdata[1]}<br>start %{base:.3f}s, %{x:.3f}s<br>"
                "peak %{customdata[2]} MB, rows out %{customdata[3]}<extra>%{fullData.name}</extra>",
            )
        )
    workers = len({a.get("worker") for a in timed})
    fig.update_layout(
        title="Timeline of task attempts by worker",
        barmode="overlay",
        xaxis_title="seconds since run start",
        height=min(220 + 28 * workers, 900),
        margin={"l": 160},
    )
    return fig


def _per_task(go: Any, tasks: list[dict[str, Any]]) -> Any:
    from plotly.subplots import make_subplots

    top = sorted(tasks, key=lambda t: t.get("duration") or 0, reverse=True)[:60]
    names = [t["task"] for t in top]
    fig = make_subplots(
        rows=3,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.06,
        subplot_titles=("Duration (s, last attempt)", "Peak memory (MB)", "Rows out"),
    )
    fig.add_trace(go.Bar(x=names, y=[t.get("duration") or 0 for t in top], marker_color="#1565c0", name="duration"), 1, 1)
    fig.add_trace(
        go.Bar(x=names, y=[(t.get("peak_memory") or 0) / 2**20 for t in top], marker_color="#6a1b9a", name="peak memory"), 2, 1
    )
    fig.add_trace(go.Bar(x=names, y=[t.get("rows_out") or 0 for t in top], marker_color="#00838f", name="rows out"), 3, 1)
    fig.update_layout(title=f"Per task ({len(top)} longest of {len(tasks)})", showlegend=False, height=720)
    return fig


def _resources(go: Any, samples: list[dict[str, Any]], t0: float) -> Any:
    from plotly.subplots import make_subplots

    fig = make_subplots(specs=[[{"secondary_y": True}]])
    xs = [s["time"] - t0 for s in samples]
    fig.add_trace(
        go.Scatter(x=xs, y=[s["cpu_percent"] for s in samples], name="CPU % (100 = one core)", line_color="#c62828"),
        secondary_y=False,
    )
    fig.add_trace(
        go.Scatter(x=xs, y=[(s["rss"] or 0) / 2**20 for s in samples], name="RSS MB (process tree)", line_color="#6a1b9a"),
        secondary_y=True,
    )
    fig.update_layout(title="System resources of the run's process tree", xaxis_title="seconds since run start", height=380)
    fig.update_yaxes(title_text="CPU %", secondary_y=False)
    fig.update_yaxes(title_text="RSS MB", secondary_y=True)
    return fig


def _table(headers: list[str], rows: list[list[str]], numeric: set[int] | None = None, classes: list[str] | None = None) -> str:
    numeric = numeric or set()
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{classes[i]}"' if classes and classes[i] else ""
        cells = "".join(f'<td class="n">{c}</td>' if j in numeric else f"<td>{c}</td>" for j, c in enumerate(row))
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _comparison(go: Any, store: RunReader, run: dict[str, Any], n: int, figures: _Figures) -> str:
    runs = [r for r in store.runs(limit=max(n, 2) * 3, workflow=run["workflow"]) if r["started_at"] <= run["started_at"]][:n]
    runs.reverse()
    if len(runs) < 2:
        return "<p>No earlier run of this workflow to compare with.</p>"
    fig = go.Figure(
        go.Scatter(
            x=[r["run_id"] for r in runs],
            y=[r["duration"] for r in runs],
            mode="lines+markers",
            marker_color=[_COLOURS.get(r["status"], "#1565c0") for r in runs],
            line_color="#90a4ae",
            hovertemplate="%{x}<br>%{y:.3f}s<extra></extra>",
        )
    )
    fig.update_layout(title=f"Duration of the last {len(runs)} runs of {run['workflow']!r}", yaxis_title="seconds", height=360)
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
        rows.append(
            [
                html.escape(name),
                *[_num(v) for v in history],
                _num(median),
                f"{now / median:.2f}x" if median and now is not None else "",
            ]
        )
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
    return figures.html(fig) + note + table


def build_report(store: RunReader, run_id: str, *, compare: int = 0) -> str:
    """The HTML text of the report for ``run_id`` (``compare``: also compare with the last N runs).

    Example:
        >>> from bubbles.store import open_store
        >>> html_text = build_report(open_store(), "last", compare=5)  # doctest: +SKIP
    """
    try:
        import plotly.graph_objects as go
    except ImportError as exc:
        from .._errors import MissingDependencyError

        raise MissingDependencyError("bubbles report", "plotly", "report") from exc
    run = store.run(run_id)
    rid = run["run_id"]
    attempts = store.attempts(rid)
    tasks = store.tasks(rid)
    samples = store.resources(rid)
    profiles = store.profiles(rid)
    t0 = run["started_at"] or min((a["started_at"] or 0 for a in attempts), default=0)
    figures = _Figures()
    counts: dict[str, int] = {}
    for t in tasks:
        counts[t["state"]] = counts.get(t["state"], 0) + 1
    rows_out = sum(t.get("rows_out") or 0 for t in tasks)
    parts = [
        f"<h1>Run {html.escape(rid)} · {html.escape(run['workflow'])} · "
        f'<span class="{html.escape(run["status"])}">{html.escape(run["status"])}</span></h1>',
        _table(
            ["started", "duration", "executor", "host", "tasks", "rows out", "command"],
            [
                [
                    _fmt_time(run["started_at"]),
                    _num(run["duration"]) + " s" if run["duration"] is not None else "running or killed",
                    html.escape(run["executor"] or ""),
                    html.escape(run.get("host") or ""),
                    ", ".join(f"{n} {html.escape(s)}" for s, n in sorted(counts.items())),
                    f"{rows_out:,}",
                    html.escape(run.get("argv") or ""),
                ]
            ],
        ),
    ]
    if run.get("error"):
        parts.append(f'<p class="failed">{html.escape(run["error"])}</p>')
    parts.append("<h2>Timeline</h2>")
    parts.append(figures.html(_timeline(go, attempts, t0)) if attempts else "<p>No task ran.</p>")
    if tasks:
        parts.append("<h2>Per task</h2>")
        parts.append(figures.html(_per_task(go, tasks)))
    failures = [a for a in attempts if a["state"] in ("failed", "retrying")]
    parts.append(f"<h2>Retries and failures ({len(failures)})</h2>")
    if failures:
        for a in failures[:200]:
            parts.append(
                f"<details><summary><b>{html.escape(a['task'])}</b> attempt {a['attempt']} "
                f'<span class="failed">{html.escape(a["state"])}</span>: {html.escape(a.get("error") or "")}'
                f"</summary><pre>{html.escape(a.get('traceback') or '')}</pre></details>"
            )
    else:
        parts.append("<p>None.</p>")
    noisy = [entry for entry in store.logs(rid) if entry["level"] in ("WARNING", "ERROR", "CRITICAL")]
    if noisy:
        parts.append(f"<h2>Task warnings and errors ({len(noisy)})</h2><pre>")
        parts.extend(
            html.escape(f"{_fmt_time(e['time'])} {e['level']:<8} {e['task']}#{e['attempt']} {e['logger']}: {e['message']}") + "\n"
            for e in noisy[:500]
        )
        parts.append("</pre><p>All captured logs: <code>bubbles show RUN_ID --logs</code>.</p>")
    parts.append("<h2>System resources</h2>")
    parts.append(figures.html(_resources(go, samples, t0)) if samples else "<p>Not sampled (BUBBLES_RESOURCES=0).</p>")
    if profiles:
        parts.append(f"<h2>Profiles ({len(profiles)})</h2>")
        for p in profiles:
            parts.append(
                f"<details><summary>{html.escape(p['task'])} attempt {p['attempt']}</summary>"
                f"<pre>{html.escape(p['data'] or '')}</pre></details>"
            )
    if compare:
        parts.append("<h2>Compared with earlier runs</h2>")
        parts.append(_comparison(go, store, run, compare, figures))
    parts.append("<h2>Tasks</h2>")
    parts.append(
        _table(
            ["task", "status", "attempts", "seconds", "cpu s", "peak MB", "rows in", "rows out", "worker"],
            [
                [
                    html.escape(t["task"]),
                    f'<span class="{html.escape(t["state"])}">{html.escape(t["state"])}</span>',
                    str(t["attempts"]),
                    _num(t.get("duration")),
                    _num(t.get("cpu_time")),
                    _mb(t.get("peak_memory")),
                    _num(t.get("rows_in")),
                    _num(t.get("rows_out")),
                    html.escape(t.get("worker") or ""),
                ]
                for t in tasks[:2000]
            ],
            numeric={2, 3, 4, 5, 6, 7},
        )
    )
    body = "\n".join(parts)
    title = f"bubbles run {rid}"
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_CSS}</style></head><body>{body}</body></html>"
    )


def write_report(run_id: str, output: str | Path, *, compare: int = 0, store: RunReader | None = None) -> Path:
    """Write the report of ``run_id`` to ``output`` (through a temp file, then renamed).

    Example:
        >>> write_report("last", "report.html", compare=10)  # doctest: +SKIP
        PosixPath('report.html')
    """
    if store is None:
        from ..store import open_store

        with open_store(create=False) as opened:
            text = build_report(opened, run_id, compare=compare)
    else:
        text = build_report(store, run_id, compare=compare)
    path = Path(output)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path

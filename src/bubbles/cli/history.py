"""``bubbles runs``, ``bubbles show RUN_ID`` and ``bubbles report RUN_ID``: the run store from the shell.

RUN_ID may be a unique prefix or suffix of a run id (e.g. its random tail), or ``last``. Every
command says which store it reads, and marks runs whose process is gone ``crashed`` first.
"""

from __future__ import annotations

import json
import sys
import time
from collections import defaultdict
from typing import Any

import click

from .._errors import BubblesError
from ..observe.format import (
    describe_datasets,
    human_bytes,
    human_count,
    human_seconds,
    last_attempt_datasets,
    metric,
    task_figures,
)
from ..observe.lineage_graph import show_lineage as lineage_lines
from ..observe.quality_results import show_quality

__all__ = ["commands"]

_STATE_COLOURS = {
    "succeeded": "green",
    "failed": "red",
    "crashed": "red",
    "running": "blue",
    "retrying": "yellow",
    "cancelled": "yellow",
    "upstream_failed": "yellow",
    "skipped": "dim",
}


def _fail(exc: BaseException) -> None:
    click.secho(f"error: {exc}", fg="red", err=True)
    sys.exit(2)


def _store() -> Any:
    """The run store of the current settings, crashed runs marked and parked runs imported."""
    from ..store import open_store, parked_folder, store_location

    location = store_location()
    store = open_store(location, create=parked_folder(location).is_dir() and any(parked_folder(location).glob("*.json")))
    store.import_parked(parked_folder(location))
    store.reap()
    return store


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else ""


def _coloured(state: str) -> str:
    return f"[{_STATE_COLOURS.get(state, 'white')}]{state}[/]"


def _written(datasets: list[dict[str, Any]], tasks: list[dict[str, Any]]) -> dict[str, str]:
    """Per task, what its last attempt wrote, as the connectors reported it: ``3 files, 171,643 rows, 2.1 MB``."""
    by_task: dict[str, list[Any]] = defaultdict(list)
    for d in last_attempt_datasets(datasets, tasks):
        if d["direction"] == "write":
            by_task[d["task"]].append(d)
    return {task: describe_datasets(items) for task, items in by_task.items()}


def _reuse_lines(events: list[dict[str, Any]]) -> list[str]:
    """Why each task of a resumed or cached run ran or was reused (its ``reuse`` events)."""
    lines = []
    for e in events:
        if e.get("kind") != "reuse":
            continue
        data = e.get("payload") or {}
        reason = data.get("reason") or ""
        lines.append(f"  {e['task']}: {reason if data.get('action') == 'reused' else 'ran — ' + reason}")
    return lines


def _fused_lines(events: list[dict[str, Any]]) -> list[str]:
    """Which steps ran fused, in which task (its ``fused`` events: one engine plan each)."""
    lines = []
    for e in events:
        if e.get("kind") != "fused":
            continue
        data = e.get("payload") or {}
        lines.append(f"  {e['task']} ran, as one {data.get('engine') or 'engine'} plan: {data.get('plan') or ''}")
        if data.get("fallback"):
            lines.append(f"    (read by the bubbles reader instead of the engine's: {data['fallback']})")
    return lines


@click.command("runs")
@click.option("-n", "--limit", type=click.IntRange(min=1), default=20, show_default=True, help="How many runs.")
@click.option("--workflow", default=None, help="Only runs of this workflow.")
@click.option("--status", default=None, help="Only runs in this status (running, succeeded, failed, cancelled, crashed).")
def runs_command(limit: int, workflow: str | None, status: str | None) -> None:
    """List recent runs (newest first) from the run store."""
    from rich.table import Table

    from ._console import console as make_console

    try:
        with _store() as store:
            runs = store.runs(limit=limit, workflow=workflow, status=status)
            ids = [r["run_id"] for r in runs]
            failed = store.failed_counts(ids)
            counted = store.task_counts(ids)
            where = store.describe()
    except BubblesError as exc:
        _fail(exc)
    console = make_console()
    table = Table(title=f"last {len(runs)} runs in {where}", title_justify="left")
    table.add_column("run id", no_wrap=True, min_width=22)
    for column in ("workflow", "status", "started", "took", "tasks", "failed", "executor"):
        table.add_column(column, justify="right" if column in ("took", "tasks", "failed") else "left")
    for r in runs:
        tasks = counted.get(r["run_id"]) or r["tasks_total"]
        table.add_row(
            r["run_id"],
            r["workflow"],
            _coloured(r["status"]),
            _when(r["started_at"]),
            human_seconds(r["duration"]) if r["duration"] is not None else "",
            human_count(tasks),
            human_count(failed.get(r["run_id"])) if failed.get(r["run_id"]) else "",
            r["executor"] or "",
        )
    console.print(table)
    if not runs:
        console.print("no runs recorded yet" + (" with these filters" if workflow or status else ""))


@click.command("show")
@click.argument("run_id")
@click.option("--logs/--no-logs", "show_logs", default=None, help="Print captured task logs (default: of failed tasks).")
@click.option("--task", "only_task", default=None, help="Only this task.")
@click.option("--lineage", "show_lineage", is_flag=True, help="Also print what each task read and wrote, and what from.")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the run, its tasks, every attempt, the logs and the datasets as one JSON object (for scripts).",
)
def show_command(run_id: str, show_logs: bool | None, only_task: str | None, show_lineage: bool, as_json: bool) -> None:
    """Show one run: tasks, states, durations, rows, memory, what was written, errors and logs."""
    from rich.table import Table

    from ._console import console as make_console

    try:
        with _store() as store:
            run = store.run(run_id)
            rid = run["run_id"]
            tasks = store.tasks(rid)
            attempts = store.attempts(rid)
            logs = store.logs(rid, only_task)
            profiles = store.profiles(rid)
            datasets = store.datasets(rid)
            events = store.events(rid)
            lineage = lineage_lines(store, rid) if show_lineage and not as_json else []
            quality = show_quality(store, rid) if not as_json else []
            checks = store.quality_results(rid) if as_json else []
            quarantined = store.quarantines(rid) if as_json else []
    except BubblesError as exc:
        _fail(exc)
    if only_task is not None:
        tasks = [t for t in tasks if t["task"] == only_task]
        attempts = [a for a in attempts if a["task"] == only_task]
        datasets = [d for d in datasets if d["task"] == only_task]
        events = [e for e in events if e["task"] == only_task]
    if as_json:
        try:
            run = {**run, "params": json.loads(run.get("params") or "{}")}
        except ValueError:
            pass  # kept as the text it is
        rename = {"grp": "group"}
        body = {
            "run": run,
            "tasks": [{rename.get(k, k): v for k, v in t.items()} for t in tasks],
            "attempts": [{rename.get(k, k): v for k, v in a.items()} for a in attempts],
            "logs": logs,
            "datasets": datasets,
            "events": events,
            "quality_results": [c for c in checks if only_task is None or c["task"] == only_task],
            "quarantines": [q for q in quarantined if only_task is None or q["task"] == only_task],
        }
        click.echo(json.dumps(body, default=str))
        return
    console = make_console()
    took = human_seconds(run["duration"]) if run["duration"] is not None else "no end recorded"
    console.print(
        f"[bold]run {rid}[/] · {run['workflow']} · {_coloured(run['status'])} · {took} · "
        f"{run['executor'] or ''} · started {_when(run['started_at'])} on {run.get('host') or '?'}",
        highlight=False,
    )
    if run["status"] == "crashed" and run.get("error"):
        console.print(f"  [red]{run['error']}[/] Tasks that were running then have no record.", highlight=False)
    if run.get("argv"):
        console.print(f"  command: {run['argv']}", markup=False, highlight=False)
    written = _written(datasets, tasks)
    table = Table(title_justify="left")
    table.add_column("task", overflow="fold")
    for column in ("state", "tries", "time", "cpu", "peak memory", "rows in", "rows out", "written", "worker"):
        table.add_column(column, justify="left" if column in ("state", "worker", "written") else "right")
    for t in tasks[:500]:
        table.add_row(t["task"], _coloured(t["state"]), *task_figures(t), written.get(t["task"], ""), t.get("worker") or "")
    if len(tasks) > 500:
        table.add_row(f"... {len(tasks) - 500} more", *[""] * 9)
    console.print(table)
    if quality:  # (its first line is the heading)
        for line in quality:
            console.print(line, markup=False, highlight=False)
    fused = _fused_lines(events)
    if fused:
        console.print("[bold]fused[/]: steps of several tasks run together where their result was used")
        for line in fused:
            console.print(line, markup=False, highlight=False)
    reuse = _reuse_lines(events)
    if reuse:
        console.print("[bold]resumed or cached[/]: why each task ran or was reused")
        for line in reuse:
            console.print(line, markup=False, highlight=False)
    last = {(a["task"]): a for a in attempts}
    custom = {task: a["metrics"] for task, a in last.items() if a["metrics"]}
    if custom:
        console.print("[bold]custom metrics[/] (last attempt)")
        for task, values in custom.items():
            shown = ", ".join(f"{k} {metric(k, v)}" for k, v in sorted(values.items()))
            console.print(f"  {task}: {shown}", markup=False, highlight=False)
    errors = [a for a in attempts if a["state"] in ("failed", "retrying") and a.get("error")]
    for a in errors[:20]:
        console.print(f"\n[red bold]{a['task']}[/] attempt {a['attempt']} {a['state']}: {a['error']}", highlight=False)
        if a.get("traceback"):
            console.print(a["traceback"].rstrip(), markup=False, highlight=False)
    failed = {a["task"] for a in errors}
    if show_logs is not False:
        shown_logs = [entry for entry in logs if show_logs or entry["task"] in failed]
        if shown_logs:
            console.print("\n[bold]task logs[/]")
            for entry in shown_logs[:2000]:
                console.print(
                    f"{_when(entry['time'])} {entry['level']:<7} {entry['task']}#{entry['attempt']} "
                    f"{entry['logger']}: {entry['message']}",
                    markup=False,
                    highlight=False,
                )
        elif show_logs:
            what = f"task {only_task!r} of run {rid}" if only_task else f"run {rid}"
            console.print(f"\nno log records were captured for {what} (its tasks logged nothing at INFO or above)")
    if show_lineage:
        console.print("\n[bold]datasets and lineage[/]")
        for line in lineage if only_task is None else [x for x in lineage if not x.endswith(":")]:
            console.print(line, markup=False, highlight=False)
    if profiles:
        console.print(f"\n{len(profiles)} profile(s) kept: `bubbles report {rid} -o report.html` shows them.")


@click.command("report")
@click.argument("run_id")
@click.option("-o", "--output", default=None, help="HTML file to write (default: bubbles-report-RUN_ID.html).")
@click.option("--compare", type=click.IntRange(min=0), default=0, help="Also compare with the last N runs of the workflow.")
@click.option(
    "--interactive",
    is_flag=True,
    help="Draw the charts with plotly (hover, zoom; adds about 4.6 MB) instead of static SVG.",
)
def report_command(run_id: str, output: str | None, compare: int, interactive: bool) -> None:
    """Write a self-contained HTML report of a run: timeline, per-task plots, failures, resources, profiles.

    The file works offline and fetches nothing: static SVG charts by default, plotly with --interactive.
    """
    from ..observe.report import write_report

    try:
        with _store() as store:
            rid = store.run(run_id)["run_id"]
            target = output or f"bubbles-report-{rid}.html"
            path = write_report(rid, target, compare=compare, interactive=interactive, store=store)
    except BubblesError as exc:
        _fail(exc)
    click.echo(f"wrote {path} ({human_bytes(path.stat().st_size)})")


commands: list[click.Command] = [runs_command, show_command, report_command]

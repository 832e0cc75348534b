"""``bubbles runs``, ``bubbles show RUN_ID`` and ``bubbles report RUN_ID``: the run history from the shell.

RUN_ID may be a unique prefix or suffix of a run id (e.g. its random tail), or ``last``.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import click

from .._errors import BubblesError

__all__ = ["commands"]

_STATE_COLOURS = {"succeeded": "green", "failed": "red", "running": "blue", "retrying": "yellow", "cancelled": "yellow"}


def _fail(exc: BaseException) -> None:
    click.secho(f"error: {exc}", fg="red", err=True)
    sys.exit(2)


def _store() -> Any:
    from ..observe.history import HistoryStore, history_path

    # runs parked while the database could not be written (moved aside, say) are imported on open
    parked = any((history_path().parent / "history-pending").glob("*.json"))
    return HistoryStore(create=parked)


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else ""


def _mb(value: float | None) -> str:
    return f"{value / 2**20:,.1f}" if value else ""


def _int(value: float | None) -> str:
    return f"{int(value):,}" if value is not None else ""


def _coloured(state: str) -> str:
    return f"[{_STATE_COLOURS.get(state, 'white')}]{state}[/]"


@click.command("runs")
@click.option("-n", "--limit", type=click.IntRange(min=1), default=20, show_default=True, help="How many runs.")
@click.option("--workflow", default=None, help="Only runs of this workflow.")
def runs_command(limit: int, workflow: str | None) -> None:
    """List recent runs (newest first) from the run history."""
    from rich.table import Table

    from ._console import console as make_console

    try:
        with _store() as store:
            runs = store.runs(limit=limit, workflow=workflow)
            failed = store.failed_counts([r["run_id"] for r in runs])
    except BubblesError as exc:
        _fail(exc)
    table = Table(title=f"last {len(runs)} runs", title_justify="left")
    table.add_column("run id", no_wrap=True, min_width=22)
    for column in ("workflow", "status", "started", "seconds", "tasks", "failed", "executor"):
        table.add_column(column, justify="right" if column in ("seconds", "tasks", "failed") else "left")
    for r in runs:
        status = r["status"] if r["status"] != "running" else "running/killed"
        table.add_row(
            r["run_id"],
            r["workflow"],
            _coloured(status),
            _when(r["started_at"]),
            f"{r['duration']:.2f}" if r["duration"] is not None else "",
            _int(r["tasks_total"]),
            str(failed.get(r["run_id"], "")),
            r["executor"] or "",
        )
    make_console().print(table)


@click.command("show")
@click.argument("run_id")
@click.option("--logs/--no-logs", "show_logs", default=None, help="Print captured task logs (default: of failed tasks).")
@click.option("--task", "only_task", default=None, help="Only this task.")
@click.option(
    "--json", "as_json", is_flag=True, help="Print the run, every attempt and the task logs as one JSON object (for scripts)."
)
def show_command(run_id: str, show_logs: bool | None, only_task: str | None, as_json: bool) -> None:
    """Show one run: tasks, states, durations, rows, memory, errors and logs."""
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
    except BubblesError as exc:
        _fail(exc)
    if only_task is not None:
        tasks = [t for t in tasks if t["task"] == only_task]
        attempts = [a for a in attempts if a["task"] == only_task]
    if as_json:
        import json

        try:
            run = {**run, "params": json.loads(run.get("params") or "{}")}
        except ValueError:
            pass  # kept as the text it is
        attempts = [{("group" if k == "grp" else k): v for k, v in a.items()} for a in attempts]
        click.echo(json.dumps({"run": run, "attempts": attempts, "logs": logs}, default=str))
        return
    console = make_console()
    duration = f"{run['duration']:.2f}s" if run["duration"] is not None else "no end recorded (running, or killed)"
    console.print(
        f"[bold]run {rid}[/] · {run['workflow']} · {_coloured(run['status'])} · {duration} · "
        f"{run['executor'] or ''} · started {_when(run['started_at'])} on {run.get('host') or '?'}"
    )
    if run.get("argv"):
        console.print(f"  command: {run['argv']}", markup=False, highlight=False)
    table = Table(title_justify="left")
    table.add_column("task", overflow="fold")
    for column in ("state", "attempts", "seconds", "cpu s", "peak MB", "rows in", "rows out", "worker"):
        table.add_column(column, justify="left" if column in ("state", "worker") else "right")
    for t in tasks[:500]:
        table.add_row(
            t["task"],
            _coloured(t["status"]),
            str(t["attempts"]),
            f"{t['duration']:.3f}" if t.get("duration") is not None else "",
            f"{t['cpu_time']:.3f}" if t.get("cpu_time") is not None else "",
            _mb(t.get("peak_memory")),
            _int(t.get("rows_in")),
            _int(t.get("rows_out")),
            t.get("worker") or "",
        )
    if len(tasks) > 500:
        table.add_row(f"... {len(tasks) - 500} more", "", "", "", "", "", "", "", "")
    console.print(table)
    from ..observe.history import ATTEMPT_COLUMNS

    known = {*ATTEMPT_COLUMNS, "attempts"}
    custom = sorted({k for a in attempts for k in a if k not in known})
    if custom:
        console.print(
            "[bold]custom metrics[/] (last attempt): "
            + "; ".join(
                f"{t['task']}: " + ", ".join(f"{k}={t[k]:g}" for k in custom if t.get(k) is not None)
                for t in tasks
                if any(t.get(k) is not None for k in custom)
            ),
            highlight=False,
        )
    errors = [a for a in attempts if a["status"] in ("failed", "retrying") and a.get("error")]
    for a in errors[:20]:
        console.print(f"\n[red bold]{a['task']}[/] attempt {a['attempt']} {a['status']}: {a['error']}", highlight=False)
        if a.get("traceback"):
            console.print(a["traceback"].rstrip(), markup=False, highlight=False)
    failed = {a["task"] for a in errors}
    if show_logs is not False:
        shown = [entry for entry in logs if show_logs or entry["task"] in failed]
        if shown:
            console.print("\n[bold]task logs[/]")
            for entry in shown[:2000]:
                console.print(
                    f"{_when(entry['time'])} {entry['level']:<7} {entry['task']}#{entry['attempt']} "
                    f"{entry['logger']}: {entry['message']}",
                    markup=False,
                    highlight=False,
                )
    if profiles:
        console.print(f"\n{len(profiles)} profile(s) kept: `bubbles report {rid} -o report.html` shows them.")


@click.command("report")
@click.argument("run_id")
@click.option("-o", "--output", default=None, help="HTML file to write (default: bubbles-report-RUN_ID.html).")
@click.option("--compare", type=click.IntRange(min=0), default=0, help="Also compare with the last N runs of the workflow.")
def report_command(run_id: str, output: str | None, compare: int) -> None:
    """Write a self-contained HTML report of a run: timeline, per-task plots, failures, resources, profiles."""
    from ..observe.report import write_report

    try:
        with _store() as store:
            rid = store.run(run_id)["run_id"]
            path = write_report(rid, output or f"bubbles-report-{rid}.html", compare=compare, store=store)
    except BubblesError as exc:
        _fail(exc)
    click.echo(f"wrote {path}")


commands: list[click.Command] = [runs_command, show_command, report_command]

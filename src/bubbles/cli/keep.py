"""``bubbles cache ls | clear`` and ``bubbles gc``: what the store keeps, and keeping it bounded.

Kept outputs (checkpoints) serve resume and the cache. ``bubbles gc --keep N`` keeps the ``N``
most recent runs of each workflow (``--older-than 30d`` keeps younger ones too) and deletes the
rest: their rows in every table, their checkpoint files unless a kept run still uses them, and
the quarantine parts they appended to Parquet sinks (rows quarantined to database tables are
named, not deleted).
Nothing is deleted from a run that is still going.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click

from .._errors import BubblesError
from ..observe.format import human_bytes, human_count

__all__ = ["commands"]


def _fail(exc: BaseException) -> None:
    click.secho(f"error: {exc}", fg="red", err=True)
    sys.exit(2)


def _path(location: str | None) -> Path | None:
    if not location:
        return None
    return Path(location.partition(":")[2] or location)


def _remove(rows: list[dict[str, Any]], still_used: set[str]) -> tuple[int, int]:
    """Delete the checkpoint files of ``rows`` not in ``still_used``; returns (files, bytes)."""
    files = size = 0
    for row in rows:
        path = _path(row.get("location"))
        if path is None or row.get("location") in still_used:
            continue
        removed = _unlink(path)
        if removed is None:
            continue
        files, size = files + 1, size + removed
        try:
            path.parent.rmdir()  # the run's folder, once empty
        except OSError:
            pass
    return files, size


def _unlink(path: Path) -> int | None:
    """Delete a file; its size, or ``None`` if it could not be (gone already, no permission)."""
    try:
        size = path.stat().st_size
        path.unlink()
    except OSError:
        return None
    return size


def _age(at: float | None) -> str:
    return _span(time.time() - at) if at else ""


def _span(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


@click.group("cache")
def cache_group() -> None:
    """Task outputs kept for resume and the cache."""


@cache_group.command("ls")
@click.option("--task", default=None, help="Only this task's.")
def cache_ls(task: str | None) -> None:
    """List kept outputs, newest first."""
    from rich.table import Table

    from ..store import open_store
    from ._console import console as make_console

    try:
        with open_store(create=False) as store:
            rows = store.all_checkpoints(task)
            where = store.describe()
    except BubblesError as exc:
        _fail(exc)
    table = Table(title=f"{len(rows)} kept outputs in {where}", title_justify="left")
    for column in ("task", "run", "format", "size", "age", "expires", "key"):
        table.add_column(column, justify="right" if column in ("size", "age") else "left")
    for r in rows[:500]:
        left = None if r["expires_at"] is None else r["expires_at"] - time.time()
        expires = "" if left is None else "expired" if left < 0 else f"in {_span(left)}"
        table.add_row(r["task"], r["run_id"], r["format"], human_bytes(r["bytes"]), _age(r["at"]), expires, (r["key"] or "")[:12])
    make_console().print(table)


@cache_group.command("clear")
@click.option("--task", default=None, help="Only this task's.")
@click.option("--expired", is_flag=True, help="Only cached outputs past their time.")
def cache_clear(task: str | None, expired: bool) -> None:
    """Delete kept outputs (a resume or a cached task then runs again)."""
    from ..store import open_store

    try:
        with open_store(create=False) as store:
            rows = store.all_checkpoints(task)
            if expired:
                rows = [r for r in rows if r["expires_at"] is not None and r["expires_at"] < time.time()]
            files, size = _remove(rows, set())
            store.forget_checkpoints(rows)
    except BubblesError as exc:
        _fail(exc)
    click.echo(f"cleared {human_count(len(rows))} kept outputs ({files} files, {human_bytes(size)})")


def _seconds(text: str) -> float:
    from ..engine.task import parse_ttl

    try:
        value = parse_ttl(text)
    except BubblesError:
        value = None
    if value is None:
        raise click.BadParameter(f"{text!r} is not an age: give one such as 30d, 12h or 90min", param_hint="--older-than")
    return value


@click.command("gc")
@click.option("--keep", type=click.IntRange(min=0), default=20, show_default=True, help="Runs kept per workflow.")
@click.option("--older-than", default=None, metavar="AGE", help="Only delete runs older than this (e.g. 30d, 12h).")
@click.option("--dry-run", is_flag=True, help="Say what would be deleted; delete nothing.")
def gc_command(keep: int, older_than: str | None, dry_run: bool) -> None:
    """Keep the run store bounded: delete old runs, their records, kept outputs and quarantine parts."""
    from ..store import open_store

    before = time.time() - _seconds(older_than) if older_than else None
    try:
        with open_store(create=False) as store:
            store.reap()
            doomed = store.runs_beyond(keep, before)
            if dry_run:
                more = " ..." if len(doomed) > 10 else ""
                click.echo(f"would delete {human_count(len(doomed))} run(s): {', '.join(doomed[:10])}{more}")
                return
            kept_files = {r["location"] for r in store.all_checkpoints() if r["run_id"] not in set(doomed) and r["location"]}
            rows = [r for run_id in doomed for r in store.checkpoints(run_id)]
            files, size = _remove(rows, kept_files)
            reused = _reused_by_kept_runs(store, set(doomed))
            appends = [q for run_id in doomed for q in store.quarantines(run_id) if (q["run_id"], q["task"]) not in reused]
            parts, part_bytes = _remove_parts(appends)
            counts = store.delete_runs(doomed)
    except BubblesError as exc:
        _fail(exc)
    detail = ", ".join(f"{human_count(n)} {table}" for table, n in counts.items() if n and table != "runs")
    click.echo(
        f"deleted {human_count(len(doomed))} run(s) ({detail or 'no other rows'}), {files} kept output file(s) "
        f"({human_bytes(size)}) and {parts} quarantine part(s) ({human_bytes(part_bytes)}); kept the {keep} most "
        "recent run(s) of each workflow"
    )
    tables = sorted({q["sink"] for q in appends if q["sink_kind"] == "table"})
    if tables:
        click.echo(
            f"left the rows those runs quarantined in database table(s) {', '.join(tables)}: delete them with "
            "`DELETE FROM <table> WHERE _run_id IN (...)` if they are no longer needed"
        )


def _reused_by_kept_runs(store: Any, doomed: set[str]) -> set[tuple[str, str]]:
    """``(run, task)`` of doomed runs whose task a kept run reused (through resumes of resumes): what it wrote
    (its quarantine parts) is part of the kept run's result."""
    reuses = store.reuses()
    origin = {(r["run_id"], r["task"]): r["from_run"] for r in reuses}
    protected: set[tuple[str, str]] = set()
    for r in reuses:
        if r["run_id"] in doomed:
            continue
        source: str | None = r["from_run"]
        while source in doomed and (source, r["task"]) not in protected:
            protected.add((source, r["task"]))
            source = origin.get((source, r["task"]))
    return protected


def _remove_parts(appends: list[dict[str, Any]]) -> tuple[int, int]:
    """Delete the Parquet part files these quarantine appends wrote (local ones); returns (files, bytes)."""
    files = size = 0
    for q in appends:
        part = q.get("part")
        if q.get("sink_kind") != "parquet" or not part or "://" in part:
            continue
        removed = _unlink(Path(part))
        if removed is not None:
            files, size = files + 1, size + removed
    return files, size


commands: list[click.Command] = [cache_group, gc_command]

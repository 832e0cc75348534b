"""``bubbles quarantine ls | show | replay``: the rows bubbles set aside, from the shell.

SINK is a sink's folder (a Parquet dataset), ``URL#table``, or the name of a sink in the
quarantine folder (``orders`` for ``<quarantine_dir>/orders``). ``ls`` lists the sinks the run
store knows (every append is recorded) and those found in the quarantine folder.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import click

from .._errors import BubblesError

__all__ = ["commands"]


def _fail(exc: BaseException) -> None:
    click.secho(f"error: {exc}", fg="red", err=True)
    sys.exit(2)


def _root() -> str:
    from .._settings import current_settings

    settings = current_settings()
    return settings.quarantine_dir or os.path.join(str(settings.home_path()), "quarantine")


def _sink(spec: str) -> Any:
    """A sink by path or URL#table; a bare name is the sink of that name in the quarantine folder,
    else the newest sink of that name (its last path part or table) the run store knows."""
    from ..data.quality.quarantine import Sink, default_sink

    if "#" in spec and "://" in spec:
        return Sink(spec)
    if os.path.isdir(os.path.expanduser(spec)) or "://" in spec or os.sep in spec:
        return Sink(os.path.expanduser(spec))
    default = default_sink(spec)
    if os.path.isdir(default.location):
        return default
    from ..store import open_store, store_location

    location = store_location()
    if os.path.exists(location) or "://" in location:
        with open_store(location) as store:
            for q in store.quarantines():  # newest first
                if q["sink"].rstrip("/").replace("#", "/").rsplit("/", 1)[-1] == spec:
                    return Sink(q["sink"])
    return default


@click.group("quarantine")
def quarantine() -> None:
    """Inspect and replay the rows set aside: bad lines of readers and rows contracts rejected."""


@quarantine.command("ls")
@click.option("--dir", "directory", default=None, help="Also look for sinks in this folder (default: the quarantine_dir).")
def ls_command(directory: str | None) -> None:
    """List the quarantine sinks: rows, appends, the last run that wrote to each."""
    from ..store import open_store, store_location

    sinks: dict[str, dict[str, Any]] = {}
    try:
        location = store_location()
        if os.path.exists(location) or "://" in location:
            with open_store(location) as store:
                for q in store.quarantines():
                    s = sinks.setdefault(q["sink"], {"rows": 0, "appends": 0, "last": q["at"], "run": q["run_id"],
                                                     "kind": q["sink_kind"], "what": set()})
                    s["rows"] += q["rows"] or 0
                    s["appends"] += 1
                    s["what"].add(q["contract"] or "bad lines")
    except BubblesError as exc:
        _fail(exc)
    root = directory or _root()
    if os.path.isdir(root):
        for name in sorted(os.listdir(root)):
            path = os.path.join(root, name)
            if path not in sinks and os.path.isdir(path) and any(f.startswith("part-") for f in os.listdir(path)):
                sinks[path] = {"rows": None, "appends": None, "last": None, "run": "", "kind": "parquet", "what": set()}
    if not sinks:
        click.echo(f"no quarantine sinks recorded, and none in {root}")
        return
    for sink, s in sorted(sinks.items(), key=lambda kv: -(kv[1]["last"] or 0)):
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(s["last"])) if s["last"] else "not in the run store"
        rows = f"{s['rows']:,} rows in {s['appends']} appends" if s["rows"] is not None else "rows: see show"
        what = f" ({', '.join(sorted(s['what']))})" if s["what"] else ""
        click.echo(f"{sink}  [{s['kind']}]  {rows}{what}  last: {when} {s['run']}".rstrip())


def _masked(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows with their ``pii`` source columns (named in ``_pii``) redacted, for showing."""
    out = []
    for r in rows:
        pii = {p.strip() for p in (r.get("_pii") or "").split(",") if p.strip()}
        out.append({k: ("***" if k in pii and v is not None else v) for k, v in r.items()})
    return out


@quarantine.command("show")
@click.argument("sink")
@click.option("--run", "run_id", default=None, help="Only rows of this run.")
@click.option("-n", "--limit", type=click.IntRange(min=1), default=20, show_default=True, help="How many rows.")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON lines (pii columns still masked).")
def show_command(sink: str, run_id: str | None, limit: int, as_json: bool) -> None:
    """Show the rows of a quarantine sink: where each came from, the rules it broke, the values (pii masked)."""
    from ..data.quality.quarantine import META_COLUMNS, read_quarantine

    try:
        where = _sink(sink)
        table = read_quarantine(where, run_id=run_id)
    except BubblesError as exc:
        _fail(exc)
    rows = _masked(table.slice(max(table.num_rows - limit, 0)).to_pylist())
    if as_json:
        for r in rows:
            click.echo(json.dumps(r, default=str, ensure_ascii=False))
        return
    click.echo(f"{table.num_rows:,} rows in {where}" + (f" (run {run_id})" if run_id else "") +
               (f"; the last {len(rows)}:" if rows else ""))
    for r in rows:
        where = f"{r.get('_source') or '?'}" + (f", line {r['_line']}" if r.get("_line") is not None else "")
        click.echo(f"- {where}  [{r.get('_rules')}]  run {r.get('_run_id') or '-'} task {r.get('_task') or '-'}")
        click.echo(f"    reason: {r.get('_reason')}")
        if r.get("_raw") is not None:
            click.echo(f"    raw:    {r['_raw'][:200]!r}")
        else:
            values = {k: v for k, v in r.items() if k not in META_COLUMNS}
            click.echo(f"    values: {r.get('_values')}")
            click.echo(f"    row:    {json.dumps(values, default=str, ensure_ascii=False)[:300]}")


@quarantine.command("replay")
@click.argument("sink")
@click.option("--to", "to", required=True, help="Where rows that pass go: a .parquet/.csv/.jsonl file, or URL#table.")
@click.option("--contract", "contract", default=None, help="Check the rows against this YAML contract (default: none).")
@click.option("--run", "run_id", default=None, help="Only rows of this run.")
def replay_command(sink: str, to: str, contract: str | None, run_id: str | None) -> None:
    """Check a sink's rows again; deliver those that pass to --to, keep the rest in the sink."""
    from ..data.quality.replay import replay

    try:
        done = replay(_sink(sink), to=to, contract=contract, run_id=run_id)
    except BubblesError as exc:
        _fail(exc)
    if not done.rows:
        click.echo(f"{sink}: nothing to replay")
        return
    click.echo(f"{done.sink}: {done.rows:,} rows from {done.parts} parts: {done.replayed:,} written to {to}, "
               f"{done.kept:,} kept in quarantine")


commands: list[click.Command] = [quarantine]

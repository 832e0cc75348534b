"""``bubbles check`` (preflight: open every named connection, ping every named source) and
``bubbles state`` (show and reset incremental watermarks)."""

from __future__ import annotations

import time
from typing import Any

import click

__all__ = ["check", "commands", "state"]


def _check_connection(name: str) -> tuple[bool, str]:
    from bubbles._errors import BubblesError
    from bubbles._secrets import mask
    from bubbles.data.db import connect

    try:
        conn = connect(name)
        try:
            conn.ping()
            return True, f"{conn.spec.redacted}"
        finally:
            conn.close()
    except BubblesError as exc:
        return False, mask(str(exc))
    except Exception as exc:  # a driver error we did not foresee: still report, never crash the preflight
        return False, mask(f"{type(exc).__name__}: {exc}")


def _check_source(name: str, entry: dict[str, Any]) -> tuple[bool, str]:
    from bubbles._errors import BubblesError
    from bubbles._secrets import mask, resolve

    try:
        import httpx
    except ImportError:
        return False, "httpx is not installed: pip install 'pybubbles[http]'"
    try:
        url = resolve(entry["url"], purpose=f"source {name}")
        headers = {k: resolve(str(v), purpose=f"source {name}") for k, v in (entry.get("headers") or {}).items()}
        method = str(entry.get("method", "HEAD")).upper()
        timeout = float(entry.get("timeout", 10))
        with httpx.Client(timeout=timeout, follow_redirects=True) as client:
            resp = client.request(method, url, headers=headers)
            if method == "HEAD" and resp.status_code in (405, 501):
                resp = client.get(url, headers=headers)
        ok = resp.status_code < 400
        return ok, mask(f"{entry['url']} -> HTTP {resp.status_code}")
    except BubblesError as exc:
        return False, mask(str(exc))
    except httpx.HTTPError as exc:
        return False, mask(f"{entry.get('url')}: {type(exc).__name__}: {exc}")


@click.command("check")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="bubbles.toml to read (default: found from the current folder).",
)
def check(config_path: str | None) -> None:
    """Open every named connection and ping every named HTTP source; report each one's health.

    Exits 1 if any fails, so it can gate a deployment or a scheduled run.
    """
    from rich.console import Console
    from rich.table import Table

    from bubbles.config import load_config

    cfg = load_config(config_path)
    console = Console()
    table = Table(title=f"bubbles check ({cfg.path or 'no bubbles.toml; BUBBLES_CONN_* only'})")
    for col in ("kind", "name", "status", "time", "detail"):
        table.add_column(col)
    failed = 0
    items: list[tuple[str, str, Any]] = [("connection", n, None) for n in cfg.connection_names()]
    items += [("source", n, e) for n, e in sorted(cfg.sources.items())]
    if not items:
        console.print("Nothing to check: no [connections] or [sources] in bubbles.toml and no BUBBLES_CONN_* variables.")
        return
    for kind, name, entry in items:
        start = time.perf_counter()
        ok, detail = _check_connection(name) if kind == "connection" else _check_source(name, entry)
        elapsed = time.perf_counter() - start
        failed += not ok
        status = "[green]ok[/green]" if ok else "[red]FAILED[/red]"
        table.add_row(kind, name, status, f"{elapsed * 1000:.0f} ms", detail)
    console.print(table)
    if failed:
        console.print(f"[red]{failed} of {len(items)} failed.[/red]")
        raise SystemExit(1)
    console.print(f"All {len(items)} healthy.")


@click.command("state")
@click.option("--reset", "reset", metavar="NAME", default=None, help="Delete watermark NAME: the next run reads from the start.")
@click.option("--reset-all", is_flag=True, help="Delete every watermark.")
@click.option(
    "--set",
    "set_",
    nargs=2,
    metavar="NAME VALUE",
    default=None,
    help="Set watermark NAME to VALUE (JSON, e.g. an ISO date string or a number).",
)
def state(reset: str | None, reset_all: bool, set_: tuple[str, str] | None) -> None:
    """Show incremental watermarks (how far each source has been read); reset or set one."""
    import json

    from rich.console import Console
    from rich.table import Table

    from bubbles.data.state import StateStore

    store = StateStore()
    console = Console()
    if reset_all:
        n = store.reset(None)
        console.print(f"Deleted {n} watermark(s).")
        return
    if reset:
        n = store.reset(reset)
        if not n:
            known = ", ".join(w["name"] for w in store.list()) or "none"
            raise click.ClickException(f"No watermark named {reset!r} (known: {known}).")
        console.print(f"Deleted watermark {reset!r}; the next run reads it from the start.")
        return
    if set_:
        name, raw = set_
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        store.set(name, value)
        console.print(f"Set {name!r} = {value!r}.")
        return
    rows, pending = store.list(), store.pending()
    if not rows and not pending:
        console.print(f"No watermarks in {store.location}.")
        return
    table = Table(title=f"watermarks ({store.location})")
    for col in ("name", "value", "state", "updated", "run"):
        table.add_column(col, overflow="fold")
    for w in rows:
        updated = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(w["updated_at"]))
        table.add_row(w["name"], str(w["value"]), "committed", updated, w["run_id"] or "-")
    for p in pending:
        proposed = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(p["proposed_at"]))
        table.add_row(p["name"], str(p["value"]), "pending", proposed, p["run_id"] or "(outside a run)")
    console.print(table)


commands: list[click.Command] = [check, state]

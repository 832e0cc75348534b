"""The ``bubbles`` command: run, validate and draw workflows; history, reports and data tools.

Exit codes: 0 success, 1 the run failed, 2 bad usage or configuration, 130 cancelled (Ctrl-C).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import sys
from collections.abc import Iterator
from typing import Any

import click

from .._errors import BubblesError, ConfigError, RunCancelled, RunFailed
from .._settings import EXECUTORS, cli_settings, resolve_settings
from .._version import __version__
from .load import load_target, load_targets, parse_params

# Modules adding commands for their area; each has a list `commands` of click commands.
_COMMAND_MODULES = (
    "bubbles.cli.db",
    "bubbles.cli.demo",
    "bubbles.cli.files",
    "bubbles.cli.history",
    "bubbles.cli.http",
    "bubbles.cli.keep",
    "bubbles.cli.lineage",
    "bubbles.cli.quality",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="bubbles")
def cli() -> None:
    """bubbles: ETL steps as plain Python functions, run as a workflow."""


def _fail(exc: BaseException, code: int) -> None:
    click.secho(f"error: {exc}", fg="red", err=True)
    sys.exit(code)


@cli.command()
@click.argument("target")
@click.option(
    "-e",
    "--executor",
    type=click.Choice(list(EXECUTORS)),
    default=None,
    help="Where tasks run (default: threads; the executor setting, BUBBLES_EXECUTOR).",
)
@click.option("-w", "--workers", type=click.IntRange(min=1), default=None, help="Tasks running at once.")
@click.option(
    "-p",
    "--param",
    "params",
    multiple=True,
    metavar="KEY=VALUE",
    help="Run parameter (repeatable); values are parsed as JSON when they can be.",
)
@click.option("--keep-going", is_flag=True, help="After a failure, run every branch that does not depend on it.")
@click.option("--distributed", is_flag=True, help="Run on Dask (address from --address or BUBBLES_DASK_ADDRESS).")
@click.option("--address", default=None, help="Dask scheduler address, e.g. tcp://10.0.0.5:8786.")
@click.option("--log-format", type=click.Choice(["text", "json"]), default=None, help="Console log format.")
@click.option("--metrics-port", type=int, default=None, help="Serve Prometheus /metrics on this port during the run.")
@click.option("--pushgateway", default=None, metavar="URL", help="Push metrics to a Prometheus Pushgateway at the end.")
@click.option("--profile", is_flag=True, help="Profile each task and keep the profiles with the run.")
@click.option("--progress/--no-progress", default=None, help="Live progress display (default: on a terminal).")
@click.option(
    "--resume",
    "resume",
    is_flag=False,
    flag_value="last",
    default=None,
    metavar="[RUN_ID]",
    help="Resume a run of this workflow (default: its last): rerun only what failed, did not run, or changed.",
)
@click.option("--no-persist", is_flag=True, help="Do not keep task outputs for a later --resume (kept by default).")
def run(
    target: str,
    executor: str | None,
    workers: int | None,
    params: tuple[str, ...],
    keep_going: bool,
    distributed: bool,
    address: str | None,
    log_format: str | None,
    metrics_port: int | None,
    pushgateway: str | None,
    profile: bool,
    progress: bool | None,
    resume: str | None,
    no_persist: bool,
) -> None:
    """Run the workflow, pipeline or @bubbles function in TARGET (FILE or FILE:NAME)."""
    if distributed and executor not in (None, "dask"):
        _fail(ConfigError(f"--distributed runs on Dask; it cannot be combined with --executor {executor}. Drop one of them."), 2)
    if address and executor not in (None, "dask") and not distributed:
        _fail(ConfigError(f"--address is a Dask scheduler's address; --executor {executor} uses none. Drop one of them."), 2)
    flags = {
        "executor": "dask" if distributed else executor,
        "max_workers": workers,
        "log_format": log_format,
        "metrics_port": metrics_port,
        "pushgateway": pushgateway,
        "profile": True if profile else None,
        "progress": progress,
        "dask_address": address,
        "persist": False if no_persist else None,
    }
    with cli_settings(flags), _json_last_resort(flags):
        try:
            settings = resolve_settings()  # bad flags, variables or bubbles.toml: say so before running anything
            json_lines = settings.log_format == "json"
            values = parse_params(params)
            _name, obj = load_target(target)
            result = _run_object(obj, values, fail_fast=not keep_going, resume=resume)
        except RunCancelled as exc:
            click.secho(f"cancelled: {exc}", fg="yellow", err=True)
            _exit(_cancel_code())
        except RunFailed as exc:
            if json_lines:  # stderr stays JSON lines: the run_end event says it all
                click.echo(f"{exc.result.run_id} {exc.result.status}")  # type: ignore[attr-defined]
                _exit(1)
            _print_result(exc.result)  # type: ignore[attr-defined]
            click.echo(f"{exc.result.run_id} {exc.result.status}")  # type: ignore[attr-defined]
            _fail(exc, 1)
        except KeyboardInterrupt:
            click.secho("cancelled", fg="yellow", err=True)
            _exit(_cancel_code())
        except BubblesError as exc:
            _fail(exc, 2)
        else:
            if not json_lines:
                _print_result(result)
            click.echo(f"{result.run_id} {result.status}")  # on stdout, for scripts: RUN_ID=$(bubbles run ... | tail -1)


@contextlib.contextmanager
def _json_last_resort(flags: dict[str, Any]) -> Iterator[None]:
    """With ``--log-format json`` stderr holds JSON lines only: records from outside tasks too.

    Python's last-resort handler (what prints warnings when the program set up no logging) is
    replaced for the command, and put back after it; the program's own logging setup still wins.
    """
    if flags.get("log_format") != "json":
        yield
        return
    from ..observe.logs import JsonLogLines

    previous, logging.lastResort = logging.lastResort, JsonLogLines()
    try:
        yield
    finally:
        logging.lastResort = previous


def _cancel_code() -> int:
    """130 for a Ctrl-C, 143 for a SIGTERM (a service manager stopping the job), as shells report them."""
    import signal

    from ..engine import interrupts

    return 143 if interrupts.last_signal() == signal.SIGTERM else 130


def _exit(code: int) -> None:
    """Exit with ``code``, output flushed; not waiting for tasks' threads still stuck in C code.

    A cancelled run asked its tasks to stop and waited for them (the cancel_grace setting); a
    thread still running in native code (a database driver) when the interpreter finalizes can
    abort the process instead of letting it exit with the right code, so such a process leaves
    at once.
    """
    import signal
    import threading

    for signum in (signal.SIGINT, signal.SIGTERM):  # the run is over: a late Ctrl-C must not change the exit code
        signal.signal(signum, signal.SIG_IGN)
    stuck = [t for t in threading.enumerate() if t.name.startswith("bubbles-worker") and t.is_alive()]
    if stuck:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def _run_object(obj: Any, params: dict[str, Any], *, fail_fast: bool, resume: str | None = None) -> Any:
    from ..api.decorators import FlowFunction
    from ..api.pipeline import Pipeline

    if isinstance(obj, FlowFunction):
        return obj.options(fail_fast=fail_fast, resume=resume).run(**params)
    if isinstance(obj, Pipeline):
        data = params.pop("data", None)
        return obj.run(data, fail_fast=fail_fast, params=params, resume=resume)
    return obj.run(fail_fast=fail_fast, params=params, resume=resume)


def _print_result(result: Any) -> None:
    """The run's table on stderr: each task's state, tries, time, rows of data out and what it wrote.

    "rows out" counts rows of data a task returned (a table, frame, list of records), never the
    files a writer returns or the count a loader returns; "written" is what the connectors
    reported writing (files, rows, tables), from the Dataset events of each task's last attempt —
    the records the run store keeps as ``datasets`` — and is left out when nothing reported any.
    """
    from rich.table import Table

    from .._events import Dataset
    from ..observe.format import describe_datasets, human_count, human_seconds
    from ._console import console as make_console

    console = make_console(stderr=True)
    shown = list(result.tasks.values())
    written = {}
    for t in shown:
        writes = [
            {"kind": e.dataset_kind, "name": e.name, "rows": e.rows, "bytes": e.bytes}
            for e in t.events
            if isinstance(e, Dataset) and e.direction == "write"
        ]
        if writes:
            written[t.name] = describe_datasets(writes)
    took = human_seconds(result.duration) if result.duration is not None else "?"
    # the headline as its own line: a table's title would wrap at the (narrow) table's width
    console.print(f"run {result.run_id} · {result.workflow} · {result.status} in {took}", markup=False, highlight=False)
    table = Table()
    columns = ["task", "state", "tries", "time", "rows out", *(["written"] if written else [])]
    for column in columns:
        table.add_column(column, justify="right" if column in ("tries", "time", "rows out") else "left")
    for t in shown[:50]:
        state = "reused" if t.reused_from else t.state
        colour = {"succeeded": "green", "failed": "red", "reused": "cyan"}.get(state, "yellow")
        row = [
            t.name,
            f"[{colour}]{state}[/]",
            str(t.attempts) if t.attempts else "",
            human_seconds(t.duration) if not t.reused_from else "",
            human_count(t.metrics.get("rows_out")),
        ]
        table.add_row(*row, *([written.get(t.name, "")] if written else []))
    if len(shown) > 50:
        table.add_row(f"... {len(shown) - 50} more", *[""] * (len(columns) - 1))
    console.print(table)


@cli.command()
@click.argument("target")
@click.option(
    "-e",
    "--executor",
    type=click.Choice(list(EXECUTORS)),
    default=None,
    help="Also check that every task can run on this executor (e.g. can be pickled for processes).",
)
def validate(target: str, executor: str | None) -> None:
    """Check TARGET's graph without running it: cycles, unknown or duplicate tasks, signatures, contracts.

    Without :NAME every Workflow, Pipeline and @bubbles function in the file is checked. The
    contracts of its check steps are checked too (types, regexes, columns the steps upstream
    produce, foreign keys' tables), before any data is read. TARGET may also be a YAML contract.
    """
    from ..api.decorators import FlowFunction
    from ..data.quality.graphcheck import check_graph

    if target.endswith((".yaml", ".yml")):
        _validate_contract(target)
        return
    try:
        targets = load_targets(target, "validate")
    except BubblesError as exc:
        _fail(exc, 2)
    failed = False
    for name, obj in targets:
        if isinstance(obj, FlowFunction):
            click.echo(f"ok: {name}: a @bubbles flow; its tasks are checked as they are called, when it runs")
            continue
        try:
            graph = obj.validate()
            if executor:
                from ..engine.executors import make_executor

                ex = make_executor(executor)
                ex.check([n.spec for n in graph.nodes.values() if n.spec is not None])
        except BubblesError as exc:
            click.secho(f"error: {name}: {exc}", fg="red", err=True)
            failed = True
            continue
        problems = check_graph(graph)
        for problem in problems:
            click.secho(f"error: {name}: {problem}", fg="red", err=True)
        if problems:
            failed = True
            continue
        edges = sum(len(n.deps) for n in graph.nodes.values())
        click.echo(f"ok: {name} ({graph.name}): {len(graph)} tasks, {edges} dependencies")
    if failed:
        sys.exit(1)


def _validate_contract(path: str) -> None:
    from ..data.quality.compile import check_contract
    from ..data.quality.yamlfile import load_contract

    try:
        contract = load_contract(path)
    except BubblesError as exc:
        _fail(exc, 1)
    problems = check_contract(contract)
    for problem in problems:
        click.secho(f"error: {problem}", fg="red", err=True)
    if problems:
        sys.exit(1)
    click.echo(f"ok: contract {contract.name} ({path}): {len(contract.rules())} rules")


@cli.command()
@click.argument("target")
@click.option("-f", "--format", "fmt", type=click.Choice(["mermaid", "dot", "png"]), default="mermaid")
@click.option("-o", "--output", default=None, help="Write to this file (required for png).")
def graph(target: str, fmt: str, output: str | None) -> None:
    """Print TARGET's task graph as Mermaid or DOT text, or draw a PNG (needs Graphviz)."""
    from ..api.decorators import FlowFunction
    from . import render

    try:
        name, obj = load_target(target, "graph")
        if isinstance(obj, FlowFunction):
            raise ConfigError(
                f"{name} is a @bubbles flow: its graph exists only while it runs. "
                "Run it, then see its tasks with `bubbles show RUN_ID`."
            )
        g = obj.validate()
        if fmt == "png":
            if not output:
                raise ConfigError("--format png needs --output FILE.png")
            render.to_png(g, output)
            click.echo(f"wrote {output}")
            return
        text = render.to_mermaid(g) if fmt == "mermaid" else render.to_dot(g)
    except BubblesError as exc:
        _fail(exc, 2)
    if output:
        with open(output, "w", encoding="utf-8") as fh:
            fh.write(text)
        click.echo(f"wrote {output}")
    else:
        click.echo(text, nl=False)


def _register() -> None:
    for module_name in _COMMAND_MODULES:
        module = importlib.import_module(module_name)
        for command in module.commands:
            cli.add_command(command)


def main() -> None:
    _register()
    cli(prog_name="bubbles")


if __name__ == "__main__":
    main()

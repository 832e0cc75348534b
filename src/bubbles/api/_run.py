"""One way to start a run, shared by Workflow, Pipeline and @bubbles.

It picks the executor, checks the graph, gathers the hooks (the user's, the ones attached to
single tasks, and the defaults that keep the run history) and hands everything to the Runner.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from .._errors import ConfigError
from ..engine.executors import Executor, make_executor
from ..engine.graph import Graph
from ..engine.hooks import HookSet
from ..engine.result import RunResult
from ..engine.runner import Runner, new_run_id

__all__ = ["RunOptions", "start_run"]


class RunOptions:
    """How to run: executor, workers, failure policy, hooks. Validated once, up front."""

    def __init__(
        self,
        executor: str | Executor | None = None,
        max_workers: int | None = None,
        *,
        fail_fast: bool = True,
        raise_on_error: bool = True,
        hooks: Iterable[Any] = (),
        keep_outputs: bool = False,
        distributed: bool = False,
        params: dict[str, Any] | None = None,
        run_id: str | None = None,
        executor_options: dict[str, Any] | None = None,
        probes: Iterable[Any] = (),
    ) -> None:
        if distributed:
            if executor not in (None, "dask"):
                raise ConfigError(f"distributed=True runs on Dask; it cannot be combined with executor={executor!r}.")
            executor = "dask"
        self.executor = executor or os.environ.get("BUBBLES_EXECUTOR") or "threads"
        self.max_workers = max_workers
        self.fail_fast = fail_fast
        self.raise_on_error = raise_on_error
        self.hooks = list(hooks)
        self.keep_outputs = keep_outputs
        self.params = dict(params or {})
        self.run_id = run_id
        self.executor_options = dict(executor_options or {})
        self.probes = tuple(probes)


def start_run(
    graph: Graph,
    options: RunOptions,
    *,
    scoped_hooks: Iterable[tuple[Any, frozenset[str]]] = (),
    limits: dict[str, int] | None = None,
    dynamic: bool = False,
    on_runner: Callable[[Runner], None] | None = None,
) -> RunResult:
    """Validate ``graph``, run it, and return the RunResult (raising RunFailed if asked to)."""
    executor = make_executor(options.executor, options.max_workers, **options.executor_options)
    graph.validate()
    executor.check([n.spec for n in graph.nodes.values() if n.spec is not None])
    run_id = options.run_id or new_run_id()
    from ..observe import defaults

    hooks = HookSet([*defaults.hooks_for_run(run_id=run_id, workflow=graph.name, options=options), *options.hooks], scoped_hooks)
    probes = (*defaults.probes_for_run(options=options), *options.probes)
    capture_logs = defaults.capture_logs()
    runner = Runner(
        graph,
        executor,
        run_id=run_id,
        fail_fast=options.fail_fast,
        hooks=hooks,
        limits=limits,
        params=options.params,
        probes=probes,
        capture_logs=capture_logs,
        keep_outputs=options.keep_outputs,
        dynamic=dynamic,
    )
    if on_runner is not None:
        on_runner(runner)
    result = runner.run()
    _settle_watermarks(result)
    if options.raise_on_error or result.status == "cancelled":
        result.raise_for_status()
    return result


def _settle_watermarks(result: RunResult) -> None:
    """Commit the watermarks this run proposed if it succeeded; drop them if it did not."""
    from ..data.state import StateStore, bubbles_home

    if not (bubbles_home() / "state.db").exists():
        return
    store = StateStore()
    if result.ok:
        store.commit_run(result.run_id)
    else:
        store.discard_run(result.run_id)

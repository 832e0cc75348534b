"""One way to start a run, shared by Workflow, Pipeline and @bubbles.

:func:`start_run` resolves the run's settings (once), creates its :class:`RunContext` (secrets,
observers, executor), checks the graph, hands everything to the engine's Runner, and afterwards
settles what the run proposed (incremental watermarks). Whatever it installs for the run in
process-wide places — log capture in ``logging``, the driving thread's settings and secrets —
is undone when the run ends.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from .._errors import ConfigError
from .._settings import Settings, resolve_settings
from ..engine.executors import Executor, make_executor
from ..engine.graph import Graph
from ..engine.hooks import HookSet
from ..engine.result import RunResult
from ..engine.runner import Runner, new_run_id
from .context import RunContext

__all__ = ["RunOptions", "start_run"]


class RunOptions:
    """How to run, as the code asked: executor, workers, failure policy, hooks, settings."""

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
        settings: Mapping[str, Any] | None = None,
        resume: str | None = None,
    ) -> None:
        if distributed:
            if executor not in (None, "dask"):
                raise ConfigError(
                    f"distributed=True runs on Dask; it cannot be combined with executor={executor!r}. Drop one of them."
                )
            executor = "dask"
        self.executor = executor
        self.max_workers = max_workers
        self.fail_fast = fail_fast
        self.raise_on_error = raise_on_error
        self.hooks = list(hooks)
        self.keep_outputs = keep_outputs
        self.params = dict(params or {})
        self.run_id = run_id
        self.executor_options = dict(executor_options or {})
        self.probes = tuple(probes)
        self.settings = dict(settings or {})
        self.resume = resume

    def resolve(self) -> Settings:
        """The run's settings: these options as the code layer over CLI, environment, file, defaults."""
        from .._settings import EXECUTORS

        code = dict(self.settings)
        for name, given in (("executor", self.executor), ("max_workers", self.max_workers)):
            if given is not None and name in code and code[name] != (getattr(given, "name", given)):
                raise ConfigError(
                    f"{name}={given!r} and settings={{{name!r}: {code[name]!r}}} were both given in code and disagree. "
                    "Give one of them."
                )
        if self.max_workers is not None and self.executor is not None and not isinstance(self.executor, str):
            raise ConfigError(
                f"max_workers={self.max_workers} cannot resize the executor object {self.executor!r}: "
                "give the size when you create it (ThreadExecutor(8)), or pass an executor name."
            )
        if isinstance(self.executor, str):
            code["executor"] = self.executor
        elif getattr(self.executor, "name", None) in EXECUTORS:  # an executor object: its kind, from code
            code["executor"] = self.executor.name  # type: ignore[union-attr]
        if self.max_workers is not None:
            code["max_workers"] = self.max_workers
        return resolve_settings(code)

    def executor_for(self, settings: Settings) -> Executor:
        if self.executor is not None and not isinstance(self.executor, str):
            return make_executor(self.executor)
        options = dict(self.executor_options)
        if settings.executor == "dask":
            options.setdefault("settings", settings)
        elif options:
            raise ConfigError(
                f"Options {sorted(options)} are for the dask executor; this run uses {settings.executor!r} "
                f"(from {settings.source('executor')}). Drop them or run with executor='dask'."
            )
        return make_executor(settings.executor, settings.max_workers, **options)


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
    from ..observe import defaults

    settings = options.resolve()
    run_id = options.run_id or new_run_id()
    context = RunContext(run_id, graph.name, settings)
    with context.active():
        executor = options.executor_for(settings)
        graph.validate()
        executor.check([n.spec for n in graph.nodes.values() if n.spec is not None])
        context.executor = executor
        run_hooks = [*defaults.hooks_for_run(settings), *options.hooks]
        context.hooks = HookSet(run_hooks, scoped_hooks)
        probes = (*defaults.probes_for_run(settings), *options.probes)
        planner = _planner(graph, options, settings, run_id, dynamic)
        if planner is not None:
            planner.sync = _record_sync(run_hooks, run_id)
        with defaults.log_capture(settings):
            runner = Runner(
                graph,
                executor,
                run_id=run_id,
                fail_fast=options.fail_fast,
                hooks=context.hooks,
                limits=limits,
                params=options.params,
                probes=probes,
                capture_logs=settings.capture_logs,
                keep_outputs=options.keep_outputs,
                dynamic=dynamic,
                settings=settings,
                secrets=context.secrets,
                planner=planner,
            )
            if on_runner is not None:
                on_runner(runner)
            result = runner.run()
        _settle_watermarks(result, settings)
    if options.raise_on_error or result.status == "cancelled":
        result.raise_for_status()
    return result


def _planner(graph: Graph, options: RunOptions, settings: Settings, run_id: str, dynamic: bool) -> Any:
    """The run's resume-and-cache planner, when the run resumes, keeps outputs, has cached tasks, or is a flow."""
    from .._settings import from_command_line

    persist = settings.persist if settings.persist is not None else from_command_line()
    cached = any(n.spec is not None and n.spec.cache not in (None, False) for n in graph.nodes.values())
    if not (options.resume or persist or cached or dynamic):
        return None
    from ..store import shared_store, store_location
    from .resume import Planner

    store = shared_store(store_location(settings), timeout=settings.history_timeout) if settings.history else None
    return Planner(
        run_id=run_id, workflow=graph.name, settings=settings, store=store, persist=persist, resume=options.resume, graph=graph
    )


def _record_sync(hooks: list[Any], run_id: str) -> Callable[[], None] | None:
    """How the planner waits for the run's record to reach the store (the run's RunRecorder), if it has one."""
    from ..observe.history import RunRecorder

    recorder = next((h for h in hooks if isinstance(h, RunRecorder)), None)
    return None if recorder is None else functools.partial(recorder.sync, run_id)


def _settle_watermarks(result: RunResult, settings: Settings) -> None:
    """Commit the watermarks this run proposed if it succeeded; drop them if it did not."""
    from ..store import StoreError, shared_store, store_location

    location = store_location(settings)
    if not location.startswith(("postgresql://", "postgres://")) and not Path(location).exists():
        return  # nothing was ever recorded or proposed here
    try:
        store = shared_store(location, timeout=settings.history_timeout)
        if result.ok:
            store.commit_watermarks(result.run_id)
        else:
            store.discard_watermarks(result.run_id)
    except StoreError as exc:  # the proposals stay pending: a later reader discards them with the run
        import logging

        logging.getLogger("bubbles").warning("bubbles: the watermarks of run %s were not settled: %s", result.run_id, exc)

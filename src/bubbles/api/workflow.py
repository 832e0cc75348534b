"""``Workflow``: tasks and their dependencies, declared explicitly, run as a graph.

Dependencies come in two kinds:

* ``requires=[a, b]`` — run after ``a`` and ``b`` **and receive their outputs** as positional
  arguments, in that order (``requires={"orders": a}`` passes them by keyword);
* ``after=[c]`` — run after ``c`` and receive nothing (ordering only: "create the table
  before loading it").

A task whose function cannot take what ``requires`` gives it is rejected before anything runs,
with a message that says which of the two to use. Example::

    wf = Workflow("orders")
    schema = wf.add_task(create_table)
    rows = wf.add_task(extract, retries=3)
    wf.add_task(load, requires=[rows], after=[schema])
    wf.run()
"""

from __future__ import annotations

import difflib
import inspect
import itertools
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from .._errors import ConfigError, UnknownTaskError
from ..engine.graph import Graph, Node, Ref
from ..engine.result import RunResult
from ..engine.task import RetryPolicy, TaskSpec, task_name_of
from ..session.run import RunOptions, start_run

__all__ = ["ParallelTask", "TaskHandle", "Workflow", "make_spec"]

log = logging.getLogger("bubbles")

_OPTION_NAMES = (
    "retries",
    "retry_delay",
    "backoff",
    "max_delay",
    "jitter",
    "retry_on",
    "timeout",
    "on_success",
    "on_failure",
    "cache",
    "persist",
)


def make_spec(fn: Callable[..., Any], name: str | None = None, **options: Any) -> TaskSpec:
    """A TaskSpec from a function (or a ``@task`` function, whose options are the defaults)."""
    base: TaskSpec | None = getattr(fn, "__bubbles_spec__", None)
    unknown = set(options) - set(_OPTION_NAMES)
    if unknown:
        raise ConfigError(f"Unknown task option(s) {sorted(unknown)}; valid options: {', '.join(_OPTION_NAMES)}.")
    options = {k: v for k, v in options.items() if v is not None}
    if base is not None:
        retry = base.retry
        fields = {f: getattr(retry, f) for f in ("retries", "retry_delay", "backoff", "max_delay", "jitter", "retry_on")}
        fields.update({k: options[k] for k in fields if k in options})
        if isinstance(fields["retry_on"], type):
            fields["retry_on"] = (fields["retry_on"],)
        return TaskSpec(
            fn=base.fn,
            name=name or base.name,
            retry=RetryPolicy(**fields),
            timeout=options.get("timeout", base.timeout),
            on_success=options.get("on_success", base.on_success),
            on_failure=options.get("on_failure", base.on_failure),
            cache=options.get("cache", base.cache),
            persist=options.get("persist", base.persist),
        )
    retry_on = options.get("retry_on", (Exception,))
    if isinstance(retry_on, type):
        retry_on = (retry_on,)
    retry = RetryPolicy(
        retries=options.get("retries", 0),
        retry_delay=options.get("retry_delay", 1.0),
        backoff=options.get("backoff", 2.0),
        max_delay=options.get("max_delay", 300.0),
        jitter=options.get("jitter", True),
        retry_on=tuple(retry_on),
    )
    return TaskSpec(
        fn=fn,
        name=name or task_name_of(fn),
        retry=retry,
        timeout=options.get("timeout"),
        on_success=options.get("on_success"),
        on_failure=options.get("on_failure"),
        cache=options.get("cache"),
        persist=options.get("persist"),
    )


class ParallelTask:
    """Several tasks run side by side, at most ``max_concurrent_tasks`` at once.

    Added to a workflow it behaves as one task whose output is the list of its tasks' outputs,
    in the order given. Each inner task receives the outputs of the ParallelTask's ``requires``.

    Example:
        >>> group = ParallelTask([fetch_a, fetch_b, fetch_c], max_concurrent_tasks=2)  # doctest: +SKIP
        >>> wf.add_task(group)  # doctest: +SKIP
    """

    def __init__(
        self,
        tasks: Sequence[Callable[..., Any]],
        max_concurrent_tasks: int | None = None,
        *,
        name: str | None = None,
    ) -> None:
        tasks = list(tasks)
        if not tasks:
            raise ConfigError("ParallelTask needs at least one task.")
        for t in tasks:
            if not callable(t):
                raise ConfigError(f"ParallelTask: {t!r} is not callable; pass functions or @task functions.")
        if max_concurrent_tasks is not None and (not isinstance(max_concurrent_tasks, int) or max_concurrent_tasks < 1):
            raise ConfigError(f"max_concurrent_tasks must be a whole number >= 1, got {max_concurrent_tasks!r}.")
        self.tasks = tasks
        self.max_concurrent_tasks = max_concurrent_tasks
        self.name = name

    def __repr__(self) -> str:
        names = ", ".join(task_name_of(t) for t in self.tasks)
        return f"ParallelTask([{names}], max_concurrent_tasks={self.max_concurrent_tasks})"


class TaskHandle:
    """What ``add_task`` returns: names the task in ``requires``/``after``, and takes collectors."""

    def __init__(self, workflow: Workflow, name: str) -> None:
        self.workflow = workflow
        self.name = name

    def __repr__(self) -> str:
        return f"<TaskHandle {self.name!r} of {self.workflow.name!r}>"

    def attach(self, hook: Any) -> TaskHandle:
        """Subscribe ``hook`` (e.g. a ``MetricsCollector``) to this task's events only."""
        self.workflow._scoped.append((hook, self.name))
        return self


class _Entry:
    __slots__ = ("after", "children", "extra", "items", "kind", "kwargs", "limit", "named", "requires", "spec")

    def __init__(self, spec: TaskSpec | None, kind: str = "task") -> None:
        self.spec = spec
        self.kind = kind
        self.requires: list[Any] = []
        self.named: dict[str, Any] = {}
        self.after: list[Any] = []
        self.kwargs: dict[str, Any] = {}
        self.children: list[str] = []
        self.limit: int | None = None
        self.items: Any = None
        self.extra: tuple[Any, ...] = ()


class Workflow:
    """A named set of tasks with dependencies. See the module docstring for ``requires``/``after``.

    Example:
        >>> wf = Workflow("demo")
        >>> a = wf.add_task(lambda: 2, name="two")
        >>> b = wf.add_task(lambda x: x * 21, requires=[a], name="answer")
        >>> wf.run(executor="serial").tasks["answer"].result
        42
    """

    def __init__(
        self,
        name: str = "workflow",
        *,
        hooks: Iterable[Any] = (),
        on_success: Callable[[RunResult], Any] | None = None,
        on_failure: Callable[[RunResult], Any] | None = None,
    ) -> None:
        """Create a workflow.

        Args:
            name: the workflow's name (its identity in the run history).
            hooks: event subscribers for every run (see ``bubbles.engine.hooks``).
            on_success: called with the ``RunResult`` when a run succeeds.
            on_failure: called with the ``RunResult`` when a run fails or is cancelled.
        """
        if not isinstance(name, str) or not name:
            raise ConfigError(f"A workflow name must be a non-empty string, got {name!r}.")
        self.name = name
        self._entries: dict[str, _Entry] = {}
        self._order: list[str] = []
        self._duplicates: list[str] = []
        self._hooks: list[Any] = list(hooks)
        if on_success is not None or on_failure is not None:
            from ..observe.alerts import Callbacks

            self._hooks.append(Callbacks(on_success, on_failure))
        self._scoped: list[tuple[Any, str]] = []
        self._groups = itertools.count(1)

    def __repr__(self) -> str:
        return f"<Workflow {self.name!r}: {len(self._entries)} tasks>"

    @property
    def tasks(self) -> list[str]:
        """Task names in the order they were added."""
        return list(self._order)

    # -- building ---------------------------------------------------------------------------
    def add_task(
        self,
        fn: Callable[..., Any] | ParallelTask | TaskSpec,
        requires: Sequence[Any] | Mapping[str, Any] | None = None,
        *,
        after: Sequence[Any] = (),
        name: str | None = None,
        kwargs: Mapping[str, Any] | None = None,
        retries: int | None = None,
        retry_delay: float | None = None,
        backoff: float | None = None,
        max_delay: float | None = None,
        jitter: bool | None = None,
        retry_on: type[BaseException] | tuple[type[BaseException], ...] | None = None,
        timeout: float | None = None,
        on_success: Callable[..., Any] | None = None,
        on_failure: Callable[..., Any] | None = None,
        cache: bool | float | str | None = None,
        persist: bool | None = None,
    ) -> TaskHandle:
        """Add a task and return its handle.

        Args:
            fn: a function, a ``@task`` function, or a :class:`ParallelTask`.
            requires: tasks (handles, names or functions) whose outputs this task receives,
                positionally in this order; or a mapping ``{param: task}`` to pass by keyword.
            after: tasks to run after without receiving their outputs.
            name: the task's name (default: the function's name); unique in the workflow.
            kwargs: constant keyword arguments for the function.
            retries, retry_delay, backoff, max_delay, jitter, retry_on: retry policy; the wait
                before attempt n+1 is ``retry_delay * backoff**(n-1)`` (jittered, capped).
            timeout: seconds an attempt may run (see the executors for hard vs soft).
            on_success, on_failure: callbacks called with the ``on_task_end`` event fields.
            cache: reuse the output of an earlier run whose key (code, arguments, inputs) is the
                same: ``True`` (any age), seconds or ``"1h"`` (no older than that).
            persist: keep this task's output for resume (default: the run's ``persist`` setting,
                on for ``bubbles run``); ``False`` for an output too big or too private to keep.
        """
        options = dict(
            retries=retries,
            retry_delay=retry_delay,
            backoff=backoff,
            max_delay=max_delay,
            jitter=jitter,
            retry_on=retry_on,
            timeout=timeout,
            on_success=on_success,
            on_failure=on_failure,
            cache=cache,
            persist=persist,
        )
        if isinstance(fn, ParallelTask):
            return self._add_parallel(fn, requires, after, name, options)
        spec = (
            fn.renamed(name)
            if isinstance(fn, TaskSpec) and name
            else fn
            if isinstance(fn, TaskSpec)
            else make_spec(fn, name, **options)
        )
        entry = _Entry(spec)
        self._set_deps(entry, requires, after)
        if requires is None:
            declared = getattr(fn, "__bubbles_requires__", ())
            entry.requires = list(declared)
        entry.kwargs = dict(kwargs or {})
        return self._register(spec.name, entry)

    def map(
        self,
        fn: Callable[..., Any],
        items: Iterable[Any] | TaskHandle | str,
        *,
        requires: Sequence[Any] = (),
        after: Sequence[Any] = (),
        max_concurrent: int | None = None,
        name: str | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> TaskHandle:
        """Run ``fn`` once per item, at most ``max_concurrent`` at a time; the output is the list.

        ``items`` is a list (known now) or a task (handle or name) whose output is the list, so
        the fan-out can depend on what an upstream task finds (files, partitions, dates). Each
        call gets ``fn(item, *outputs_of_requires)``; the children are named ``name[0]``,
        ``name[1]``, ... A downstream task that requires the map receives the list of outputs.
        """
        spec = make_spec(fn, name, **options)
        entry = _Entry(spec, kind="map")
        self._set_deps(entry, list(requires), after)
        if isinstance(items, TaskHandle) or (isinstance(items, str) and items in self._entries):
            entry.items = items
        elif isinstance(items, str):
            raise ConfigError(
                f"map({spec.name!r}): items {items!r} is a string but no task has that name; pass a list of "
                "items, or the handle of the task that produces them."
            )
        else:
            try:
                entry.items = list(items)  # type: ignore[arg-type]
            except TypeError:
                raise ConfigError(
                    f"map({spec.name!r}): items must be an iterable or a task, got {type(items).__name__}."
                ) from None
        if max_concurrent is not None and (not isinstance(max_concurrent, int) or max_concurrent < 1):
            raise ConfigError(f"max_concurrent must be a whole number >= 1, got {max_concurrent!r}.")
        entry.limit = max_concurrent
        entry.kwargs = dict(kwargs or {})
        return self._register(spec.name, entry)

    def _add_parallel(
        self, group: ParallelTask, requires: Any, after: Sequence[Any], name: str | None, options: dict[str, Any]
    ) -> TaskHandle:
        group_name = name or group.name or f"parallel-{next(self._groups)}"
        entry = _Entry(None, kind="gather")
        entry.limit = group.max_concurrent_tasks
        for fn in group.tasks:
            spec = make_spec(fn, None, **options)
            child = _Entry(spec)
            self._set_deps(child, requires, after)
            self._register(spec.name, child)
            entry.children.append(spec.name)
            self._entries[spec.name].limit = -1  # marks "limited by its group"
        return self._register(group_name, entry)

    def _set_deps(self, entry: _Entry, requires: Any, after: Sequence[Any]) -> None:
        if isinstance(requires, Mapping):
            entry.named = dict(requires)
        elif requires is not None:
            if isinstance(requires, (str, TaskHandle)) or callable(requires):
                requires = [requires]
            entry.requires = list(requires)
        if isinstance(after, (str, TaskHandle)) or callable(after):
            after = [after]
        entry.after = list(after)

    def _register(self, name: str, entry: _Entry) -> TaskHandle:
        if name in self._entries:
            self._duplicates.append(name)
        self._entries[name] = entry
        self._order.append(name)
        return TaskHandle(self, name)

    def attach(self, hook: Any) -> Workflow:
        """Subscribe ``hook`` (e.g. a ``MetricsCollector``) to every task of every run."""
        self._hooks.append(hook)
        return self

    # -- graph ------------------------------------------------------------------------------
    def _resolve(self, ref: Any, user: str) -> str:
        if isinstance(ref, TaskHandle):
            if ref.workflow is not self:
                raise UnknownTaskError(
                    f"Task {user!r} depends on {ref.name!r} from workflow {ref.workflow.name!r}, not {self.name!r}. "
                    "Dependencies must be tasks of the same workflow.",
                    task=user,
                )
            return ref.name
        if isinstance(ref, str):
            return ref
        if callable(ref):
            matches = [
                n
                for n, e in self._entries.items()
                if e.spec is not None and (e.spec.fn is ref or e.spec.fn is getattr(ref, "__wrapped__", None))
            ]
            if len(matches) == 1:
                return matches[0]
            name = task_name_of(ref)
            if not matches:
                return name  # validation reports it unknown, with a suggestion
            raise ConfigError(
                f"Task {user!r} requires function {name!r}, which is used by several tasks {matches}; "
                "name the task (its handle or name) instead.",
                task=user,
            )
        raise ConfigError(f"Task {user!r}: dependency {ref!r} is not a task handle, name or function.", task=user)

    def graph(self, params: Mapping[str, Any] | None = None) -> tuple[Graph, dict[str, int]]:
        """Build the run graph (and the concurrency limits of groups). Does not validate."""
        graph = Graph(self.name)
        graph._duplicates = list(self._duplicates)
        limits: dict[str, int] = {}
        used_params: set[str] = set()
        group_of = {child: name for name, e in self._entries.items() if e.kind == "gather" for child in e.children}
        for name, entry in self._entries.items():
            if entry.kind == "gather" and entry.limit:
                limits[name] = entry.limit
        for name, entry in self._entries.items():
            deps = [Ref(self._resolve(r, name)) for r in entry.requires]
            named = {k: Ref(self._resolve(r, name)) for k, r in entry.named.items()}
            after = tuple(self._resolve(r, name) for r in entry.after)
            kwargs = {**entry.kwargs, **named}
            if entry.kind == "gather":
                graph.add(Node(name, None, tuple(Ref(c) for c in entry.children), kind="gather"))
                continue
            spec = entry.spec
            assert spec is not None
            if params:
                taken = _params_for(spec, len(deps), kwargs, params)
                used_params.update(taken)
                kwargs = {**taken, **kwargs}
            if entry.kind == "map":
                items = entry.items
                source = Ref(self._resolve(items, name)) if isinstance(items, (TaskHandle, str)) else items
                if entry.limit:
                    limits[name] = entry.limit
                node = Node(
                    name,
                    spec,
                    (source,),
                    kwargs,
                    after=tuple(r.key for r in deps) + after,
                    kind="map",
                    limit=name if entry.limit else None,
                )
                node.map_extra = tuple(deps)
                graph.add(node)
                continue
            limit = group_of.get(name) if entry.limit == -1 else None
            graph.add(Node(name, spec, tuple(deps), kwargs, after=after, limit=limit if limit in limits else None))
        unused = sorted(set(params or ()) - used_params)
        for name in unused:  # most likely a typo on the command line
            close = difflib.get_close_matches(name, sorted(_parameter_names(self)), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            log.warning("bubbles: no task of workflow %r takes the parameter %r; it is ignored.%s", self.name, name, hint)
        return graph, limits

    def validate(self) -> Graph:
        """Check the workflow without running it; raise a GraphError naming the problem."""
        graph, _ = self.graph()
        graph.validate()
        for node in graph.nodes.values():
            if node.kind == "map" and node.spec is not None:
                from ..engine.graph import check_signature

                check_signature(node.spec, (Ref("<item>"), *node.map_extra), node.kwargs)
        return graph

    # -- running ----------------------------------------------------------------------------
    def run(
        self,
        executor: str | Any | None = None,
        max_workers: int | None = None,
        *,
        fail_fast: bool = True,
        raise_on_error: bool = True,
        params: Mapping[str, Any] | None = None,
        hooks: Iterable[Any] = (),
        keep_outputs: bool = False,
        distributed: bool = False,
        settings: Mapping[str, Any] | None = None,
        resume: str | None = None,
        **executor_options: Any,
    ) -> RunResult:
        """Run every task once, in dependency order, and return the :class:`RunResult`.

        Args:
            executor: ``"threads"`` (default), ``"processes"``, ``"serial"``, ``"dask"``.
            max_workers: tasks running at once (default: per executor).
            fail_fast: on a failure start nothing new (default); ``False`` runs every branch
                that does not depend on the failure.
            raise_on_error: raise :class:`RunFailed` (carrying the result) if a task failed;
                ``False`` returns the result for you to inspect.
            params: run parameters; a task receives ``params[name]`` for each parameter of its
                function named ``name`` that nothing else fills.
            hooks: extra event subscribers for this run.
            keep_outputs: keep every task's output in the result, not only the final ones.
            distributed: run on Dask (same as ``executor="dask"``).
            settings: any run setting by name (``{"history": False}``; see ``bubbles._settings``);
                these win over CLI flags, ``BUBBLES_*`` variables and ``bubbles.toml``.
            resume: ``"last"`` or a run id: reuse what that run of this workflow finished, and run
                only the tasks that failed, did not run, or whose code or inputs changed.
            **executor_options: passed to the executor (e.g. ``address=`` for Dask).
        """
        options = RunOptions(
            executor,
            max_workers,
            fail_fast=fail_fast,
            raise_on_error=raise_on_error,
            hooks=[*self._hooks, *hooks],
            keep_outputs=keep_outputs,
            distributed=distributed,
            params=dict(params or {}),
            executor_options=executor_options,
            settings=settings,
            resume=resume,
        )
        graph, limits = self.graph(params)
        self._check_maps(graph)
        return start_run(graph, options, scoped_hooks=self._scoped_hooks(), limits=limits)

    def _check_maps(self, graph: Graph) -> None:
        from ..engine.graph import check_signature

        for node in graph.nodes.values():
            if node.kind == "map" and node.spec is not None:
                check_signature(node.spec, (Ref("<item>"), *node.map_extra), node.kwargs)

    def _scoped_hooks(self) -> list[tuple[Any, frozenset[str]]]:
        by_hook: dict[int, tuple[Any, set[str]]] = {}
        for hook, name in self._scoped:
            by_hook.setdefault(id(hook), (hook, set()))[1].add(name)
            entry = self._entries.get(name)
            if entry is not None and entry.kind == "gather":
                by_hook[id(hook)][1].update(entry.children)
        return [(hook, frozenset(names)) for hook, names in by_hook.values()]


def _params_for(spec: TaskSpec, n_positional: int, kwargs: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """The run parameters this task's function asks for by name and nothing else fills."""
    try:
        sig = inspect.signature(spec.fn)
    except (TypeError, ValueError):
        return {}
    out: dict[str, Any] = {}
    for i, (pname, param) in enumerate(sig.parameters.items()):
        if pname in kwargs or pname not in params:
            continue
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD, param.POSITIONAL_ONLY):
            continue
        if param.kind == param.POSITIONAL_OR_KEYWORD and i < n_positional:
            continue
        out[pname] = params[pname]
    return out


def _parameter_names(workflow: Workflow) -> set[str]:
    names: set[str] = set()
    for entry in workflow._entries.values():
        if entry.spec is None:
            continue
        try:
            names.update(inspect.signature(entry.spec.fn).parameters)
        except (TypeError, ValueError):
            pass
    return names

"""``@task`` and ``@bubbles``: workflows written as ordinary Python.

Inside a running ``@bubbles`` function, calling a ``@task`` does not run it: it submits it and
returns a :class:`~bubbles.engine.runner.Future` at once. Passing a future (also inside a list or
dict) to another task makes a dependency; the task starts as soon as the futures it was given are
done. ``future.result()`` waits; futures in the return value are resolved. Ordinary control flow
(loops, ifs on ``.result()``) works. Outside a ``@bubbles`` run a ``@task`` is a plain function
call, so it unit-tests like one::

    @task(retries=2)
    def clean(rows): ...

    @bubbles
    def process(data):
        a, b = clean(data), enrich(data)      # run in parallel
        return merge(a, b)                    # waits for both

    process(data)                             # runs, returns merge's output

Task identity inside a flow is the task's name plus its call number (``clean``, ``clean-2``, ...),
stable across runs as long as the flow calls its tasks in the same order.
"""

from __future__ import annotations

import contextvars
import functools
import threading
from collections.abc import Callable, Iterable
from typing import Any, Generic, ParamSpec, TypeVar, overload

from .._errors import ConfigError
from ..engine.graph import Graph, Node, Ref, check_signature, substitute
from ..engine.result import RunResult
from ..engine.runner import Future, Runner
from ..engine.task import TaskSpec, task_name_of
from ..session.run import RunOptions, start_run
from .workflow import make_spec

__all__ = ["FlowFunction", "TaskFunction", "flow", "task"]

P = ParamSpec("P")
R = TypeVar("R")


class _FlowRun:
    """The state of one running ``@bubbles`` function, seen from its body's thread."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.runner: Runner | None = None
        self.counts: dict[str, int] = {}
        self.latest: dict[str, list[str]] = {}  # task name -> keys of its calls so far
        self.lock = threading.Lock()

    def key_for(self, name: str) -> str:
        with self.lock:
            n = self.counts.get(name, 0) + 1
            self.counts[name] = n
        return name if n == 1 else f"{name}-{n}"

    def submit(self, tf: TaskFunction[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Future:
        spec = tf.spec
        key = self.key_for(spec.name)
        args = tuple(_to_refs(a) for a in args)
        kwargs = {k: _to_refs(v) for k, v in kwargs.items()}
        check_signature(spec.renamed(key), args, kwargs)
        after = tuple(k for req in tf.requires for k in self.latest.get(_name_of(req), ()))
        node = Node(key, spec, args, kwargs, after=after, nested_refs=True)
        return self._add(node, spec.name)

    def submit_map(self, tf: TaskFunction[Any, Any], items: Any, extra: tuple[Any, ...], limit: int | None) -> Future:
        spec = tf.spec
        key = self.key_for(spec.name)
        source = Ref(items.key) if isinstance(items, Future) else list(items)
        extra_refs = tuple(_to_refs(a) for a in extra)
        check_signature(spec.renamed(key), (Ref("<item>"), *extra_refs), {})
        node = Node(key, spec, (source,), {}, kind="map", limit=key if limit else None, nested_refs=True)
        node.map_extra = extra_refs
        node.after = tuple(r.key for r in _refs_in(extra_refs))
        if limit:
            assert self.runner is not None
            self.runner.limits[key] = limit
        return self._add(node, spec.name)

    def _add(self, node: Node, name: str) -> Future:
        future = Future(node.key)
        with self.lock:
            self.latest.setdefault(name, []).append(node.key)
        assert self.runner is not None
        self.runner.submit_node(node, future)
        return future


_current_flow: contextvars.ContextVar[_FlowRun | None] = contextvars.ContextVar("bubbles_flow", default=None)


def _name_of(task_ref: Any) -> str:
    spec = getattr(task_ref, "__bubbles_spec__", None)
    return spec.name if spec is not None else task_name_of(task_ref) if callable(task_ref) else str(task_ref)


def _to_refs(value: Any) -> Any:
    if isinstance(value, Future):
        return Ref(value.key)
    if isinstance(value, list):
        return [_to_refs(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_to_refs(v) for v in value)
    if isinstance(value, dict):
        return {k: _to_refs(v) for k, v in value.items()}
    return value


def _refs_in(values: Iterable[Any]) -> list[Ref]:
    from ..engine.graph import iter_refs

    return list(iter_refs(tuple(values), {}, nested=True))


class TaskFunction(Generic[P, R]):
    """A function marked with ``@task``: a plain call outside a flow, a submitted task inside."""

    def __init__(self, fn: Callable[P, R], *, name: str | None = None, requires: Iterable[Any] = (), **options: Any) -> None:
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.spec: TaskSpec = make_spec(fn, name, **options)
        self.requires = tuple(requires)
        self.__bubbles_spec__ = self.spec
        self.__bubbles_requires__ = self.requires

    def __repr__(self) -> str:
        return f"<task {self.spec.name!r}>"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        flow = _current_flow.get()
        if flow is None:
            return self.fn(*args, **kwargs)
        return flow.submit(self, args, kwargs)  # type: ignore[return-value]

    def map(self, items: Iterable[Any] | Future, *extra: Any, max_concurrent: int | None = None) -> Any:
        """One call per item (``fn(item, *extra)``), at most ``max_concurrent`` at once.

        In a flow it returns one future of the list of outputs (``items`` may be a future, for a
        fan-out over what an upstream task found); outside a flow it returns the list.
        """
        if max_concurrent is not None and (not isinstance(max_concurrent, int) or max_concurrent < 1):
            raise ConfigError(f"max_concurrent must be a whole number >= 1, got {max_concurrent!r}.")
        flow = _current_flow.get()
        if flow is None:
            return [self.fn(item, *extra) for item in items]  # type: ignore[union-attr, arg-type, call-arg]
        return flow.submit_map(self, items, extra, max_concurrent)

    def options(self, **options: Any) -> TaskFunction[P, R]:
        """A copy with other options (``name``, ``retries``, ``timeout``, ...)."""
        merged = dict(
            retries=self.spec.retry.retries,
            retry_delay=self.spec.retry.retry_delay,
            backoff=self.spec.retry.backoff,
            max_delay=self.spec.retry.max_delay,
            jitter=self.spec.retry.jitter,
            retry_on=self.spec.retry.retry_on,
            timeout=self.spec.timeout,
            on_success=self.spec.on_success,
            on_failure=self.spec.on_failure,
            cache=self.spec.cache,
            persist=self.spec.persist,
        )
        name = options.pop("name", self.spec.name)
        requires = options.pop("requires", self.requires)
        merged.update(options)
        return TaskFunction(self.fn, name=name, requires=requires, **merged)


@overload
def task(fn: Callable[P, R], /) -> TaskFunction[P, R]: ...
@overload
def task(
    *,
    name: str | None = None,
    requires: Iterable[Any] = (),
    retries: int | None = None,
    retry_delay: float | None = None,
    backoff: float | None = None,
    max_delay: float | None = None,
    jitter: bool | None = None,
    retry_on: Any = None,
    timeout: float | None = None,
    on_success: Any = None,
    on_failure: Any = None,
) -> Callable[[Callable[P, R]], TaskFunction[P, R]]: ...
def task(fn: Any = None, /, **options: Any) -> Any:
    """Mark a function as a task, bare (``@task``) or with options (``@task(retries=3)``).

    Options: ``name``, ``requires`` (in a ``Workflow``: the tasks whose outputs it receives when
    added without ``requires=``; in a ``@bubbles`` flow: run after every earlier call of those
    tasks), ``retries``, ``retry_delay``, ``backoff``, ``max_delay``, ``jitter``, ``retry_on``,
    ``timeout``, ``on_success``, ``on_failure``.

    Example:
        >>> @task(retries=2)
        ... def double(x):
        ...     return 2 * x
        >>> double(21)
        42
    """
    if fn is not None:
        if not callable(fn):
            raise ConfigError(f"@task decorates functions; got {fn!r}.")
        return TaskFunction(fn)

    def decorate(f: Callable[P, R]) -> TaskFunction[P, R]:
        return TaskFunction(f, **options)

    return decorate


class FlowFunction(Generic[P, R]):
    """A function marked with ``@bubbles``: calling it runs its tasks as one workflow run."""

    def __init__(
        self,
        fn: Callable[P, R],
        *,
        name: str | None = None,
        executor: str | Any | None = None,
        max_workers: int | None = None,
        fail_fast: bool = True,
        hooks: Iterable[Any] = (),
        settings: dict[str, Any] | None = None,
        resume: str | None = None,
        **executor_options: Any,
    ) -> None:
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.name = name or fn.__name__
        self._run_options: dict[str, Any] = dict(
            executor=executor, max_workers=max_workers, fail_fast=fail_fast, settings=dict(settings or {}), resume=resume
        )
        self._hooks = list(hooks)
        self._executor_options = executor_options

    def __repr__(self) -> str:
        return f"<bubbles flow {self.name!r}>"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        if _current_flow.get() is not None:  # a flow called inside a flow: part of the same run
            return self.fn(*args, **kwargs)
        return self.run(*args, **kwargs).output  # type: ignore[no-any-return]

    def options(self, **options: Any) -> FlowFunction[P, R]:
        """A copy with other run options: ``executor``, ``max_workers``, ``fail_fast``, ``hooks``, ``name``,
        ``settings``, ``resume``."""
        merged: dict[str, Any] = {**self._run_options, "hooks": self._hooks, "name": self.name, **self._executor_options}
        merged.update(options)
        return FlowFunction(self.fn, **merged)

    def run(self, *args: P.args, **kwargs: P.kwargs) -> RunResult:
        """Run the flow and return the :class:`RunResult` (``.output`` is the return value).

        Raises :class:`RunFailed` if a task or the body failed (the result is on the error).
        """
        opts = self._run_options
        options = RunOptions(
            opts["executor"],
            opts["max_workers"],
            fail_fast=opts["fail_fast"],
            hooks=self._hooks,
            raise_on_error=False,
            params=dict(kwargs),
            executor_options=self._executor_options,
            settings=opts["settings"],
            resume=opts["resume"],
        )
        state = _FlowRun(self.name)
        driver: list[threading.Thread] = []

        def body() -> None:
            token = _current_flow.set(state)
            runner = state.runner
            assert runner is not None
            try:
                output = self.fn(*args, **kwargs)
            except BaseException as exc:  # reported through the run result
                runner.close(None, exc)
            else:
                runner.close(output)
            finally:
                _current_flow.reset(token)

        def on_runner(runner: Runner) -> None:
            state.runner = runner
            context = contextvars.copy_context()  # the run's settings and secrets apply in the body too
            thread = threading.Thread(target=context.run, args=(body,), name=f"bubbles-flow-{self.name}", daemon=True)
            driver.append(thread)
            thread.start()

        result = start_run(Graph(self.name), options, dynamic=True, on_runner=on_runner)
        for thread in driver:
            thread.join(timeout=5.0)
        if result.error is None and result.status == "succeeded":
            result.output = _resolve(result.output, result)
        result.raise_for_status()
        return result


def _resolve(value: Any, result: RunResult) -> Any:
    refs = _to_refs(value)
    outputs: dict[str, Any] = {}
    for ref in _refs_in((refs,)):
        outputs[ref.key] = result.tasks[ref.key].result
    return substitute(refs, outputs, True)


@overload
def flow(fn: Callable[P, R], /) -> FlowFunction[P, R]: ...
@overload
def flow(
    *,
    name: str | None = None,
    executor: str | Any | None = None,
    max_workers: int | None = None,
    fail_fast: bool = True,
    hooks: Iterable[Any] = (),
    **executor_options: Any,
) -> Callable[[Callable[P, R]], FlowFunction[P, R]]: ...
def flow(fn: Any = None, /, **options: Any) -> Any:
    """Mark a function as a workflow (exported as both ``bubbles`` and ``flow``).

    Bare (``@bubbles``) or with run options (``@bubbles(executor="processes", max_workers=4)``).

    Example:
        >>> @task
        ... def square(x):
        ...     return x * x
        >>> @flow
        ... def total(n):
        ...     return sum(f.result() for f in [square(i) for i in range(n)])
        >>> total(4)
        14
    """
    if fn is not None:
        if not callable(fn):
            raise ConfigError(f"@bubbles decorates functions; got {fn!r}.")
        return FlowFunction(fn)

    def decorate(f: Callable[P, R]) -> FlowFunction[P, R]:
        return FlowFunction(f, **options)

    return decorate

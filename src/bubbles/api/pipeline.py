"""``Pipeline``: tasks in a line, each receiving the previous one's output.

Example:
    >>> import bubbles
    >>> p = bubbles.Pipeline("double-then-sum")
    >>> _ = p.add_task(lambda xs: [x * 2 for x in xs], name="double")
    >>> _ = p.add_task(sum)
    >>> p.run([1, 2, 3], executor="serial").output
    12
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .._errors import ConfigError
from ..engine.result import RunResult
from ..session.run import RunOptions, start_run
from .workflow import ParallelTask, TaskHandle, Workflow

__all__ = ["Pipeline"]


class Pipeline:
    """A linear workflow: ``extract -> transform -> load``. The same code runs locally or on Dask.

    The first task is called with ``data`` when :meth:`run` is given some, else with nothing.
    A :class:`ParallelTask` step gives each of its tasks the previous output, and passes on
    the list of their outputs. ``run`` returns a :class:`RunResult`; ``.output`` is the last
    task's output.
    """

    def __init__(self, name: str = "pipeline", *, hooks: Iterable[Any] = ()) -> None:
        self._workflow = Workflow(name, hooks=hooks)
        self._steps: list[TaskHandle] = []

    @property
    def name(self) -> str:
        return self._workflow.name

    @property
    def tasks(self) -> list[str]:
        return [h.name for h in self._steps]

    def __repr__(self) -> str:
        return f"<Pipeline {self.name!r}: {' -> '.join(self.tasks) or 'empty'}>"

    def add_task(self, fn: Callable[..., Any] | ParallelTask, *, name: str | None = None, **options: Any) -> TaskHandle:
        """Append a step; it receives the previous step's output. Options as ``Workflow.add_task``."""
        requires = [self._steps[-1]] if self._steps else None
        handle = self._workflow.add_task(fn, requires, name=name, **options)
        self._steps.append(handle)
        return handle

    def attach(self, hook: Any) -> Pipeline:
        """Subscribe ``hook`` to every step."""
        self._workflow.attach(hook)
        return self

    def validate(self) -> Any:
        return self._workflow.validate()

    def graph(self, params: dict[str, Any] | None = None, data: Any = None) -> Any:
        graph, limits = self._workflow.graph(params)
        if self._steps and data is not None:
            first = graph.nodes[self._steps[0].name]
            targets = [graph.nodes[r.key] for r in first.args] if first.kind == "gather" else [first]
            for node in targets:
                node.args = (data, *node.args)
        return graph, limits

    def run(
        self,
        data: Any = None,
        executor: str | Any | None = None,
        max_workers: int | None = None,
        *,
        distributed: bool = False,
        fail_fast: bool = True,
        raise_on_error: bool = True,
        params: dict[str, Any] | None = None,
        hooks: Iterable[Any] = (),
        keep_outputs: bool = False,
        settings: Mapping[str, Any] | None = None,
        resume: str | None = None,
        **executor_options: Any,
    ) -> RunResult:
        """Run the steps in order; ``distributed=True`` runs them on Dask. See ``Workflow.run``."""
        if not self._steps:
            raise ConfigError(f"Pipeline {self.name!r} has no tasks; add some with add_task() before run().")
        options = RunOptions(
            executor,
            max_workers,
            fail_fast=fail_fast,
            raise_on_error=raise_on_error,
            hooks=[*self._workflow._hooks, *hooks],
            keep_outputs=keep_outputs,
            distributed=distributed,
            params=params,
            executor_options=executor_options,
            settings=settings,
            resume=resume,
        )
        graph, limits = self.graph(params, data)
        result = start_run(graph, options, scoped_hooks=self._workflow._scoped_hooks(), limits=limits)
        last = result.tasks.get(self._steps[-1].name)
        if last is not None and last.ok:
            result.output = last.result
        return result

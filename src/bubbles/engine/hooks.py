"""Run events and the hooks that receive them.

The runner announces what happens as five events. A *hook* is any object with some of these
methods; each is called with keyword arguments only, so take what you need and end with
``**future_kwargs`` — fields added later will not break your hook::

    class Printer:
        def on_task_end(self, *, task, status, duration, **future_kwargs):
            print(task, status, f"{duration:.3f}s")

    wf.run(hooks=[Printer()])

=================  ===============================================================================
``on_run_start``   run_id, workflow, tasks (names known at start), executor, started_at, params,
                   live (a :class:`~bubbles.engine.live.LiveRun` to read the run from, see below),
                   scope (for a hook attached to some tasks: their names, else ``None``),
                   settings (the run's :class:`~bubbles._settings.Settings`), mask (a function that
                   masks the run's secrets in a text: use it on anything you show or store)
``on_task_start``  run_id, workflow, task, group, attempt, started_at, worker
``on_task_retry``  run_id, workflow, task, group, attempt (the one that failed), error, traceback,
                   delay (seconds until the next attempt), metrics, duration, worker, logs,
                   events, attempt_started_at
``on_task_end``    run_id, workflow, task, group, attempt, status (``succeeded``, ``failed``,
                   ``upstream_failed``, ``skipped``, ``cancelled``), started_at, ended_at,
                   duration, metrics, worker, error, traceback, logs, events, attempt_started_at
                   (``started_at`` is the first attempt's start); the fields of the attempt's
                   record (:class:`~bubbles.engine.attempt.Attempt`), plus ``started_at``
``on_run_end``     run_id, workflow, status (``succeeded``, ``failed``, ``cancelled``),
                   started_at, ended_at, duration, result (the RunResult)
=================  ===============================================================================

``group`` is the name of the ``map`` or ``ParallelTask`` a task belongs to (else ``None``).
Events are delivered on the thread running the scheduler loop, in order. A hook that raises is
logged and ignored: watching a run never breaks it.

Per-task events cost the run a call per task and event. An observer that can do its work in
batches (write rows, redraw a display) should rather keep ``live`` from ``on_run_start`` and
read ``live.attempts`` when it likes (:mod:`bubbles.engine.live`): that is how the run history,
``MetricsCollector``, the progress display and the text console watch 10,000-task runs at almost
no cost. A hook whose interest depends on its settings may list the events it wants in an
``events`` attribute (e.g. ``{"on_run_start", "on_run_end"}``); its other methods are then not
called.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["EVENTS", "HookSet"]

EVENTS = ("on_run_start", "on_task_start", "on_task_retry", "on_task_end", "on_run_end")
_TASK_EVENTS = {"on_task_start", "on_task_retry", "on_task_end"}
log = logging.getLogger("bubbles")


def _scoped(method: Callable[..., Any], tasks: frozenset[str]) -> Callable[..., Any]:
    def only_these(**fields: Any) -> None:
        if fields.get("task") in tasks or fields.get("group") in tasks:
            method(**fields)

    return only_these


def _with_scope(method: Callable[..., Any], tasks: frozenset[str]) -> Callable[..., Any]:
    def start(**fields: Any) -> None:
        method(**{**fields, "scope": tasks})

    return start


class HookSet:
    """The hooks of one run, resolved once into a list of callables per event."""

    def __init__(self, hooks: Iterable[Any] = (), scoped: Iterable[tuple[Any, frozenset[str]]] = ()) -> None:
        self._by_event: dict[str, list[Callable[..., Any]]] = {name: [] for name in EVENTS}
        for hook in hooks:
            self._add(hook, None)
        for hook, tasks in scoped:
            self._add(hook, tasks)

    def _add(self, hook: Any, tasks: frozenset[str] | None) -> None:
        wanted = getattr(hook, "events", None)
        for name in EVENTS:
            if wanted is not None and name not in wanted:
                continue
            method = getattr(hook, name, None)
            if method is None:
                continue
            if tasks is not None and name in _TASK_EVENTS:
                method = _scoped(method, tasks)
            elif tasks is not None and name == "on_run_start":
                method = _with_scope(method, tasks)
            self._by_event[name].append(method)

    def wants(self, event: str) -> bool:
        return bool(self._by_event[event])

    def emit(self, event: str, **fields: Any) -> None:
        for method in self._by_event[event]:
            try:
                method(**fields)
            except Exception:
                log.warning("bubbles: hook %r raised on %s; ignored", method, event, exc_info=True)

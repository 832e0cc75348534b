"""The worker side of one task attempt: call the function, time it, and report an Outcome.

This is the only code that runs where the task runs (a thread, a worker process, a Dask worker).
It never raises: every failure becomes an :class:`Outcome` with ``ok=False``, the exception (or a
picklable stand-in) and the formatted traceback.

Probes extend what is measured per attempt (peak memory, profiles): an object with
``enter() -> state`` and ``exit(state, outcome)``; they must pickle to run in worker processes.
Log capture is not a probe but a flag of the call: the records land in the attempt's
:class:`TaskContext` (see :mod:`bubbles.observe.logs`), which costs an attempt nothing.
"""

from __future__ import annotations

import os
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from .._context import TaskContext, _current
from ..observe.sizes import measure

__all__ = ["Call", "Outcome", "Probe", "execute", "mark_remote", "replace_unpicklable_error"]


class Probe(Protocol):
    def enter(self) -> Any: ...

    def exit(self, state: Any, outcome: Outcome) -> None: ...


@dataclass(slots=True, eq=False)
class Call:
    """One attempt of one task, ready to run: function and resolved arguments."""

    key: str
    attempt: int
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    run_id: str
    workflow: str
    timeout: float | None = None
    probes: tuple[Probe, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)
    capture_logs: bool = False


@dataclass(slots=True, eq=False)
class Outcome:
    """What an attempt produced: its value or its error, and what was measured."""

    key: str
    attempt: int
    ok: bool
    value: Any = None
    error: BaseException | None = None
    traceback: str = ""
    started_at: float = 0.0  # epoch seconds
    duration: float = 0.0  # wall seconds
    metrics: dict[str, float] = field(default_factory=dict)
    worker: str = ""
    logs: list[dict[str, Any]] | None = None


_capturing = False
_remote = False  # a worker process: its tasks' records go back to the run, not to its own stderr


def mark_remote() -> None:
    """This process runs tasks for a run in another process (a process-pool or Dask worker)."""
    global _remote
    _remote = True


def _start_capture() -> None:
    """Start keeping log records with their attempt (once per process)."""
    global _capturing
    from ..observe.logs import install_capture, leave_task_records_to_the_console

    install_capture()
    if _remote:  # printed by the run's console, if any: not also here
        leave_task_records_to_the_console(quiet=True)
    _capturing = True


def _worker_name() -> str:
    return f"{os.getpid()}:{threading.current_thread().name}"


def execute(call: Call) -> Outcome:
    """Run ``call`` and return its :class:`Outcome`; never raises (except to a KeyboardInterrupt)."""
    ctx = TaskContext(call.run_id, call.key, call.attempt, call.workflow, {}, call.params, call.capture_logs)
    if call.capture_logs and not _capturing:
        _start_capture()
    token = _current.set(ctx)
    probes = call.probes
    if probes:
        probe_states = []
        for probe in probes:
            probe_states.append(probe.enter())
    started_at = time.time()
    t0 = time.perf_counter()
    c0 = time.thread_time()
    try:
        value = call.fn(*call.args, **call.kwargs)
        outcome = Outcome(call.key, call.attempt, True, value)
    except Exception as exc:
        outcome = Outcome(call.key, call.attempt, False, None, exc, traceback.format_exc())
    finally:
        _current.reset(token)
    outcome.duration = time.perf_counter() - t0
    outcome.started_at = started_at
    metrics = outcome.metrics
    metrics["execution_time"] = outcome.duration
    metrics["cpu_time"] = time.thread_time() - c0
    if outcome.ok:
        rows, nbytes = measure(outcome.value)
        if rows is not None:
            metrics["rows_out"] = rows
        if nbytes is not None:
            metrics["bytes_out"] = nbytes
    if call.args or call.kwargs:
        _measure_inputs(call, metrics)
    if ctx.metrics:
        metrics.update(ctx.metrics)
    if ctx.logs:
        outcome.logs = ctx.logs
    outcome.worker = _worker_name()
    if probes:
        i = 0
        for probe in probes:
            probe.exit(probe_states[i], outcome)
            i += 1
    return outcome


def _measure_inputs(call: Call, metrics: dict[str, float]) -> None:
    rows_in = bytes_in = 0
    known_rows = known_bytes = False
    for value in (*call.args, *call.kwargs.values()):
        rows, nbytes = measure(value)
        if rows is not None:
            rows_in += rows
            known_rows = True
        if nbytes is not None:
            bytes_in += nbytes
            known_bytes = True
    if known_rows:
        metrics["rows_in"] = rows_in
    if known_bytes:
        metrics["bytes_in"] = bytes_in


def replace_unpicklable_error(outcome: Outcome) -> None:
    """Swap an exception that cannot cross a process boundary for a :class:`RemoteTaskError`.

    The class name, message and the worker's traceback are kept, so the client still says
    what happened and where.
    """
    from .._errors import RemoteTaskError, describe_error

    err = outcome.error
    outcome.error = RemoteTaskError(
        f"Task {outcome.key!r} raised {describe_error(err) if err is not None else 'an error'}",
        task=outcome.key,
        attempt=outcome.attempt,
        error_type=type(err).__name__,
        remote_traceback=outcome.traceback,
    )

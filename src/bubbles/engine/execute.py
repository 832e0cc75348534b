"""The worker side of one task attempt: call the function, measure it, report an Attempt.

This is the only code that runs where the task runs (a thread, a worker process, a Dask
worker). :func:`execute` never raises — whatever the task does: returns a value that cannot be
measured, raises any ``BaseException`` (``SystemExit``, ``KeyboardInterrupt`` and
``GeneratorExit`` fail the task with :class:`~bubbles.TaskAborted`), or a probe breaks. The one
exception is a real Ctrl-C of the process (see :mod:`bubbles.engine.interrupts`), which
propagates so that the run is cancelled.

It is also where text leaves the worker: the attempt's error, traceback, logs and events are
masked with the secrets known there (:mod:`bubbles._secrets`), and the secrets a task resolved
in a worker process travel back with its attempt.

Probes extend what is measured per attempt (peak memory, profiles): an object with
``enter() -> state`` and ``exit(state, attempt)``; they must pickle to run in worker processes.
Log capture is not a probe but a flag of the call: the records land in the attempt's
:class:`TaskContext` (see :mod:`bubbles.observe.logs`), which costs an attempt nothing.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from .._context import TaskContext, _current
from .._deferred import is_deferred, keeps_plan, settle
from .._errors import TaskAborted, describe_error
from ..observe.sizes import measure
from . import interrupts
from .attempt import Attempt

if TYPE_CHECKING:
    from .._secrets import SecretRegistry
    from .._settings import Settings

__all__ = ["Call", "Probe", "TimedOut", "execute", "failed_attempt", "mark_remote", "mask_attempt", "replace_unpicklable_error"]

log = logging.getLogger("bubbles")
_MAIN = threading.main_thread()
_CONTAINERS = frozenset({list, tuple, dict})
_BUILTIN_METRICS = frozenset({"execution_time", "cpu_time", "peak_memory", "rows_in", "rows_out", "bytes_in", "bytes_out"})


class Probe(Protocol):
    def enter(self) -> Any: ...

    def exit(self, state: Any, attempt: Attempt) -> None: ...


class TimedOut(BaseException):
    """Raised into a task running past its timeout on the serial executor (carries the TaskTimeout).

    A ``BaseException``, so that the task's own ``except Exception`` (a retry loop) cannot
    swallow it; it is raised again every half second until the task returns.
    """

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


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
    settings: Settings | None = None
    secrets: SecretRegistry | None = None  # the run's; pickles as an empty one (see bubbles._secrets)
    checkpoint: Any = None  # where to keep the output (a session's CheckpointTarget: ``store(attempt, ctx)``)
    settle: bool = False  # nothing in the run consumes the output: a deferred output is computed here (bubbles._deferred)

    def context(self) -> TaskContext:
        """The :class:`TaskContext` this attempt runs in."""
        return TaskContext(
            self.run_id,
            self.key,
            self.attempt,
            self.workflow,
            {},
            self.params,
            self.capture_logs,
            settings=self.settings,
            secrets=self.secrets,
        )


_capturing = False
_remote = False  # a worker process: its tasks' records go back to the run, not to its own stderr


def mark_remote() -> None:
    """This process runs tasks for a run in another process (a process-pool or Dask worker).

    From now on, what its tasks' stray threads and warnings print to this process's stderr is
    masked with the secrets resolved here (``warnings`` and ``threading.excepthook``, for good).
    """
    global _remote
    if not _remote:
        from .._secrets import begin_run, process_registry

        begin_run(process_registry())
    _remote = True


def _start_capture(settings: Settings | None) -> None:
    """In a worker process, keep log records with their attempt from now on (for good)."""
    global _capturing
    from ..observe.logs import install_capture, leave_task_records_to_the_console

    install_capture(settings, permanent=True)
    leave_task_records_to_the_console(quiet=True)  # printed by the run's console, if any: not also here
    _capturing = True


def _worker_name() -> str:
    return f"{os.getpid()}:{threading.current_thread().name}"


def failed_attempt(call: Call, error: BaseException, tb: str = "", started_at: float | None = None) -> Attempt:
    """An Attempt for ``call`` that failed without the task's own outcome (a worker lost, a bug)."""
    return Attempt(
        call.key, call.attempt, "failed", run_id=call.run_id, error=error, traceback=tb, started_at=started_at or time.time()
    )


def _aborted(call: Call, exc: BaseException) -> TaskAborted:
    what = describe_error(exc).rstrip(": ")
    return TaskAborted(
        f"Task {call.key!r} raised {what} (attempt {call.attempt}). A task cannot end the interpreter or its "
        "worker, so the task failed instead. Raise an ordinary exception to fail a task; to stop the whole "
        "run, press Ctrl-C or call cancel().",
        task=call.key,
        attempt=call.attempt,
        run_id=call.run_id,
        error_type=type(exc).__name__,
    )


def execute(call: Call, ctx: TaskContext | None = None) -> Attempt:
    """Run ``call`` and return its :class:`Attempt`; never raises, except for a real Ctrl-C."""
    ctx = ctx if ctx is not None else call.context()
    # a real Ctrl-C reaches the main thread only: elsewhere a KeyboardInterrupt is the task's own
    interrupted = interrupts._count if threading.current_thread() is _MAIN else None
    try:
        return _execute(call, ctx, interrupted)
    except KeyboardInterrupt:
        if interrupted is not None and interrupts.count() != interrupted:
            raise
        return failed_attempt(call, _aborted(call, KeyboardInterrupt()), traceback.format_exc())
    except BaseException as exc:  # a bug in this wrapper or a probe: the attempt still has an outcome
        return failed_attempt(
            call,
            TaskAborted(
                f"bubbles could not run or measure task {call.key!r} (attempt {call.attempt}): {describe_error(exc)}. "
                "This is a bug in bubbles or in a probe; please report it with the traceback.",
                task=call.key,
                attempt=call.attempt,
                error_type=type(exc).__name__,
            ),
            traceback.format_exc(),
        )


def _execute(call: Call, ctx: TaskContext, interrupted: int | None) -> Attempt:
    if call.capture_logs and _remote and not _capturing:
        _start_capture(call.settings)
    token = _current.set(ctx)
    probes = call.probes
    probe_states: list[Any] = []
    for probe in probes:
        try:
            probe_states.append(probe.enter())
        except Exception:
            log.debug("bubbles: probe %r failed to start", probe, exc_info=True)
            probe_states.append(None)
    started_at = time.time()
    t0 = time.perf_counter()
    c0 = time.thread_time()
    try:
        args, kwargs = call.args, call.kwargs
        if _has_kept(args, kwargs):  # outputs reused from an earlier run are loaded here, where they are used
            args, kwargs = _load_kept(args), {k: _load_kept((v,))[0] for k, v in kwargs.items()}
        value = call.fn(*args, **kwargs)
        if ctx.deferred or ((call.settle or call.checkpoint is not None) and (is_deferred(value) or type(value) in _CONTAINERS)):
            value = settle(value, ctx, final=call.settle or _kept_as_data(call, value))
        attempt = Attempt(call.key, call.attempt, "succeeded", run_id=call.run_id, value=value)
    except Exception as exc:
        if interrupted is not None and interrupts.count() != interrupted:
            # a Ctrl-C that a library turned into its own error (DuckDB: "Query interrupted"): a cancel
            raise KeyboardInterrupt from exc
        attempt = Attempt(call.key, call.attempt, "failed", run_id=call.run_id, error=exc, traceback=_user_traceback(exc))
    except TimedOut as exc:  # the serial executor's timeout
        attempt = Attempt(call.key, call.attempt, "failed", run_id=call.run_id, error=exc.error)
        attempt.traceback = _user_traceback(exc)
    except KeyboardInterrupt as exc:
        if interrupted is not None and interrupts.count() != interrupted:  # a real Ctrl-C: the run is cancelled
            raise
        attempt = Attempt(call.key, call.attempt, "failed", run_id=call.run_id, error=_aborted(call, exc))
        attempt.traceback = _user_traceback(exc)
    except BaseException as exc:  # SystemExit, GeneratorExit: fail the task, never the interpreter
        attempt = Attempt(call.key, call.attempt, "failed", run_id=call.run_id, error=_aborted(call, exc))
        attempt.traceback = _user_traceback(exc)
    finally:
        _current.reset(token)
    attempt.duration = time.perf_counter() - t0
    attempt.started_at = started_at
    metrics = attempt.metrics
    metrics["execution_time"] = attempt.duration
    metrics["cpu_time"] = time.thread_time() - c0
    if attempt.ok:
        _measure(attempt.value, metrics, "out")
    if call.args or call.kwargs:
        _measure_inputs(call, metrics)
    if ctx.metrics:
        metrics.update(ctx.metrics)
    attempt.logs = ctx.logs
    attempt.events = ctx.events
    attempt.worker = _worker_name()
    if attempt.ok and call.checkpoint is not None:
        try:
            call.checkpoint.store(attempt, ctx)
        except Exception as exc:  # keeping an output is a service: the task succeeded all the same
            log.warning("bubbles: the output of task %r could not be kept for resume: %s", call.key, describe_error(exc))
    for probe, state in zip(probes, probe_states, strict=True):
        try:
            probe.exit(state, attempt)
        except Exception:
            log.debug("bubbles: probe %r failed", probe, exc_info=True)
    _leave_worker(attempt, ctx)
    return attempt


def _kept_as_data(call: Call, value: Any) -> bool:
    """Whether the output is kept for resume as data: a deferred one (but a plan that may be kept) is computed here."""
    keep = call.checkpoint is not None and getattr(call.checkpoint, "keep", False)
    return bool(keep) and not (is_deferred(value) and keeps_plan(value))


def _has_kept(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    for value in (*args, *kwargs.values()):
        if hasattr(value, "__bubbles_load__") or (type(value) is list and any(hasattr(v, "__bubbles_load__") for v in value)):
            return True
    return False


def _load_kept(values: tuple[Any, ...]) -> tuple[Any, ...]:
    out = []
    for value in values:
        if hasattr(value, "__bubbles_load__"):
            value = value.__bubbles_load__()
        elif type(value) is list:
            value = [v.__bubbles_load__() if hasattr(v, "__bubbles_load__") else v for v in value]
        out.append(value)
    return tuple(out)


def _user_traceback(exc: BaseException) -> str:
    """The traceback from the task's own function down (this wrapper's frame left out)."""
    tb = exc.__traceback__
    return "".join(traceback.format_exception(type(exc), exc, tb.tb_next if tb is not None else None))


def _leave_worker(attempt: Attempt, ctx: TaskContext) -> None:
    """Mask what the attempt reports; hand back the secrets it resolved in a worker process."""
    reg = ctx.secrets
    if reg is None:
        from .._secrets import current_registry

        reg = current_registry()
    if attempt.error is not None or attempt.logs or attempt.events or ctx.metrics:  # (else there is no text)
        mask_attempt(attempt, reg)
    if reg.remote:
        attempt.secrets = reg.values() or None


def mask_attempt(attempt: Attempt, reg: SecretRegistry) -> None:
    """Mask every secret ``reg`` knows in the attempt's error, traceback, logs and events."""
    if not reg:
        return
    mask_text = reg.mask
    if attempt.error is not None:
        from .._secrets import mask_error

        attempt.error = mask_error(attempt.error, reg)
    if attempt.traceback:
        attempt.traceback = mask_text(attempt.traceback)
    if attempt.logs:
        for entry in attempt.logs:
            for key in ("message", "exc"):
                if isinstance(entry.get(key), str):
                    entry[key] = mask_text(entry[key])
    if attempt.events:
        attempt.events = [e.masked(mask_text) if hasattr(e, "masked") else e for e in attempt.events]
    metrics = attempt.metrics
    if has_custom_metrics(metrics) and any(mask_text(k) != k for k in metrics):  # a metric named after a secret
        attempt.metrics = {mask_text(k): v for k, v in metrics.items()}


def has_custom_metrics(metrics: dict[str, float]) -> bool:
    """Whether ``metrics`` holds a ``log_metric`` one (names a user chose), not only the built-in ones."""
    return any(k not in _BUILTIN_METRICS for k in metrics)


def _measure(value: Any, metrics: dict[str, float], direction: str) -> None:
    try:
        rows, nbytes = measure(value)
    except Exception:  # a value that cannot be measured is not a failure: its size is unknown
        return
    if rows is not None:
        metrics[f"rows_{direction}"] = rows
    if nbytes is not None:
        metrics[f"bytes_{direction}"] = nbytes


def _measure_inputs(call: Call, metrics: dict[str, float]) -> None:
    rows_in = bytes_in = 0
    known_rows = known_bytes = False
    for value in (*call.args, *call.kwargs.values()):
        try:
            rows, nbytes = measure(value)
        except Exception:
            continue
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


def replace_unpicklable_error(attempt: Attempt) -> None:
    """Swap an exception that cannot cross a process boundary for a :class:`RemoteTaskError`.

    The class name, message and the worker's traceback are kept, so the client still says
    what happened and where.
    """
    from .._errors import RemoteTaskError

    err = attempt.error
    attempt.error = RemoteTaskError(
        f"Task {attempt.task!r} raised {describe_error(err) if err is not None else 'an error'}",
        task=attempt.task,
        attempt=attempt.attempt,
        error_type=type(err).__name__,
        remote_traceback=attempt.traceback,
    )

"""What a running task can know about itself, and what it reports.

The worker-side wrapper (``engine.execute``) sets a :class:`TaskContext` around each attempt; a
task reads it with :func:`current_task`, reports numbers with :func:`log_metric` and typed
events (datasets read and written, quality results, ...) with :func:`record_event`. Connectors
that work in C (a DuckDB or PostgreSQL query) mark it with :func:`native_work`, so a cancelled
run interrupts them and waits for them instead of leaving a thread inside C code. It lives at the bottom of
the package so the data layer can use it without importing the engine.
"""

from __future__ import annotations

import contextvars
import logging
import math
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from numbers import Real
from typing import TYPE_CHECKING, Any

from ._errors import ConfigError

if TYPE_CHECKING:
    from ._secrets import SecretRegistry
    from ._settings import Settings

__all__ = ["TaskContext", "current_task", "log_metric", "native_work", "record_event"]


@dataclass(slots=True, eq=False)
class TaskContext:
    """The run, task and attempt a piece of code is running in.

    Attributes:
        run_id, task, attempt, workflow: which attempt this is.
        metrics: what ``log_metric`` recorded.
        params: the run's parameters.
        settings: the run's resolved :class:`~bubbles._settings.Settings`.
        secrets: the registry the attempt's secrets go to (masked in all it reports).
        events: typed events the attempt recorded (``record_event``), or ``None``.
        deferred: deferred values the attempt made (:mod:`bubbles._deferred`), or ``None``.
    """

    run_id: str
    task: str
    attempt: int
    workflow: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    capture_logs: bool = False  # keep the attempt's ``logging`` records (bubbles.observe.logs)
    logs: list[dict[str, Any]] | None = None  # those records, once there is one
    settings: Settings | None = None
    secrets: SecretRegistry | None = None
    events: list[Any] | None = None
    cancelled: bool = False
    _native: list[Callable[[], Any] | None] | None = None
    deferred: list[Any] | None = None

    def cancel(self) -> bool:
        """The run was cancelled: interrupt the native work in progress (called by the executor).

        Returns whether native work is in progress (then the attempt is worth waiting for: it
        was asked to stop, and a thread must not be left inside C code when the interpreter
        exits; pure-Python code cannot be stopped in a thread, and is not waited for).
        """
        with _native_lock:
            self.cancelled = True
            callbacks = list(self._native or ())
        for callback in callbacks:
            if callback is None:
                continue
            try:
                callback()
            except Exception:  # interrupting is best effort: the attempt is abandoned anyway
                logging.getLogger("bubbles").debug("bubbles: interrupting task %r raised", self.task, exc_info=True)
        return bool(callbacks)

    @property
    def in_native_work(self) -> bool:
        return bool(self._native)


_current: contextvars.ContextVar[TaskContext | None] = contextvars.ContextVar("bubbles_task", default=None)
_native_lock = threading.Lock()  # (native work is entered rarely: one lock for every attempt is enough)


def current_task() -> TaskContext | None:
    """Return the context of the task attempt running in this thread, or ``None`` outside one."""
    return _current.get()


def record_event(event: Any) -> None:
    """Attach a typed event (see :mod:`bubbles._events`) to the running attempt; ignored outside one."""
    ctx = _current.get()
    if ctx is None:
        return
    if ctx.events is None:
        ctx.events = []
    ctx.events.append(event)


@contextmanager
def native_work(interrupt: Callable[[], Any] | None = None, *, cleanup: bool = False) -> Iterator[None]:
    """Mark a block that works in C (a database query, an Arrow scan) as interruptible.

    If the run is cancelled meanwhile, ``interrupt`` is called (``duckdb`` cursors'
    ``interrupt()``, a PostgreSQL cancel request) and the executor waits for the block to end
    (up to the ``cancel_grace`` setting) before the run ends, so no thread is left inside native
    code when the interpreter exits. Entering a block after the run was cancelled raises
    :class:`~bubbles.RunCancelled`: the task stops before starting more work — unless the block
    is ``cleanup`` (closing a database must still happen). Outside a task this does nothing.

    Example:
        >>> with native_work():
        ...     pass
    """
    ctx = _current.get()
    if ctx is None:
        yield
        return
    with _native_lock:
        if ctx.cancelled and not cleanup:
            from ._errors import RunCancelled

            raise RunCancelled(f"Task {ctx.task!r} stopped: its run was cancelled.", task=ctx.task, run_id=ctx.run_id)
        if ctx._native is None:
            ctx._native = []
        ctx._native.append(interrupt)
    try:
        yield
    finally:
        with _native_lock:
            ctx._native.remove(interrupt)


def log_metric(name: str, value: float, *, add: bool = False) -> None:
    """Record a custom metric for the running task attempt.

    It shows up in ``MetricsCollector``, the run history and Prometheus beside the built-in
    metrics. Outside a running task (e.g. a unit test calling the function directly) the value
    is checked and then ignored.

    Args:
        name: metric name, e.g. ``"rows_rejected"``.
        value: a finite number.
        add: add to the value already recorded under ``name`` instead of replacing it.

    Example:
        >>> import bubbles
        >>> bubbles.log_metric("files_seen", 3)
    """
    ctx = _current.get()
    where = f"in task {ctx.task!r}" if ctx else "outside a task"
    if not isinstance(name, str) or not name:
        raise ConfigError(
            f"log_metric() {where}: the metric name must be a non-empty string, got {name!r}. "
            "Pass a name such as 'rows_rejected'.",
            task=ctx.task if ctx else None,
        )
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise ConfigError(
            f"log_metric({name!r}, ...) {where}: the value must be a finite number, "
            f"got {value!r} ({type(value).__name__}). Convert it, e.g. float(x) or len(x).",
            task=ctx.task if ctx else None,
            metric=name,
        )
    if ctx is None:
        return
    if add:
        ctx.metrics[name] = ctx.metrics.get(name, 0.0) + float(value)
    else:
        ctx.metrics[name] = float(value)

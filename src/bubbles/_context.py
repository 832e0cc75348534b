"""What a running task can know about itself, and the metrics it reports.

The worker-side wrapper (``engine.execute``) sets a :class:`TaskContext` around each attempt; a
task reads it with :func:`current_task` and reports numbers with :func:`log_metric`. It lives at
the bottom of the package so the data layer can use it without importing the engine.
"""

from __future__ import annotations

import contextvars
import math
from dataclasses import dataclass, field
from numbers import Real
from typing import Any

from ._errors import ConfigError

__all__ = ["TaskContext", "current_task", "log_metric"]


@dataclass(slots=True)
class TaskContext:
    """The run, task and attempt a piece of code is running in."""

    run_id: str
    task: str
    attempt: int
    workflow: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    capture_logs: bool = False  # keep the attempt's ``logging`` records (bubbles.observe.logs)
    logs: list[dict[str, Any]] | None = None  # those records, once there is one


_current: contextvars.ContextVar[TaskContext | None] = contextvars.ContextVar("bubbles_task", default=None)


def current_task() -> TaskContext | None:
    """Return the context of the task attempt running in this thread, or ``None`` outside one."""
    return _current.get()


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

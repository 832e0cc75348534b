"""One attempt of one task: the single record that flows from the worker to the store.

An :class:`Attempt` is made where the task ran (:func:`bubbles.engine.execute.execute`: a
thread, a worker process, a Dask worker), travels to the runner as that attempt's outcome,
is appended to the run's journal (what observers read, :mod:`bubbles.engine.live`), becomes
the fields of the ``on_task_retry``/``on_task_end`` events (:meth:`Attempt.event_fields`), the
row of the run store's ``attempts`` table, and what a :class:`~bubbles.engine.result.TaskRun`
reports for its last attempt. A new kind of per-attempt information is one field here (or one
typed event in ``events``, see :mod:`bubbles._events`), and every one of those places has it.

A task that ended without a new attempt (``upstream_failed``, ``skipped``, ``cancelled`` while
waiting) is journaled as an Attempt too, with ``ran = False``; ``attempt`` is then the number
of attempts made (often 0).
"""

from __future__ import annotations

from typing import Any

__all__ = ["FIELDS", "Attempt"]

# What the journal, the events and the store see of an attempt (``value`` and ``secrets`` are
# in transit only: the output goes to the runner's slot, the secrets to the run's registry).
FIELDS = (
    "run_id",
    "task",
    "group",
    "attempt",
    "status",
    "ran",
    "started_at",
    "ended_at",
    "duration",
    "worker",
    "metrics",
    "error",
    "traceback",
    "logs",
    "events",
    "delay",
)


class Attempt:
    """One attempt of one task. See the module docstring.

    Attributes:
        run_id, task: which run and task (``name[i]`` for a ``map`` item).
        group: the ``map`` or ``ParallelTask`` the task belongs to, else ``None``.
        attempt: 1 for the first attempt (for an entry that did not run: attempts made).
        status: ``succeeded`` or ``failed`` as reported by the worker; in the journal also
            ``retrying`` (failed, another attempt follows), ``upstream_failed``, ``skipped``,
            ``cancelled``.
        ran: whether this entry is an attempt that ran (``False``: the task ended without one).
        started_at: epoch seconds the attempt started where it ran (``None`` if it did not run).
        ended_at: epoch seconds the runner learned its outcome.
        duration: wall seconds, measured where it ran.
        worker: where it ran (``pid:thread``, a Dask worker address, ...).
        metrics: built-in and ``log_metric`` metrics.
        error, traceback: the exception (secrets masked) and its formatted traceback, or ``None``/``""``.
        logs: captured ``logging`` records and profiles, or ``None``.
        events: typed task events (:mod:`bubbles._events`), or ``None``.
        delay: for a ``retrying`` entry, seconds until the next attempt.
    """

    __slots__ = (*FIELDS, "secrets", "value")

    def __init__(
        self,
        task: str,
        attempt: int,
        status: str = "failed",
        *,
        run_id: str = "",
        group: str | None = None,
        ran: bool = True,
        value: Any = None,
        error: BaseException | None = None,
        traceback: str = "",
        started_at: float | None = None,
        ended_at: float | None = None,
        duration: float | None = None,
        worker: str = "",
        metrics: dict[str, float] | None = None,
        logs: list[dict[str, Any]] | None = None,
        events: list[Any] | None = None,
        delay: float | None = None,
        secrets: list[str] | None = None,
    ) -> None:
        self.run_id = run_id
        self.task = task
        self.group = group
        self.attempt = attempt
        self.status = status
        self.ran = ran
        self.value = value
        self.error = error
        self.traceback = traceback
        self.started_at = started_at
        self.ended_at = ended_at
        self.duration = duration
        self.worker = worker
        self.metrics = metrics if metrics is not None else {}
        self.logs = logs
        self.events = events
        self.delay = delay
        self.secrets = secrets

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"

    def __repr__(self) -> str:
        return f"<Attempt {self.task!r} #{self.attempt} {self.status}>"

    def __getstate__(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        for name, value in zip(self.__slots__, state, strict=True):
            setattr(self, name, value)

    def event_fields(self) -> dict[str, Any]:
        """The fields hooks receive for this attempt (``attempt_started_at`` is ``started_at``)."""
        fields = {name: getattr(self, name) for name in FIELDS}
        fields["attempt_started_at"] = fields.pop("started_at")
        return fields

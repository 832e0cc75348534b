"""What a run leaves behind: a :class:`RunResult` with one :class:`TaskRun` per task."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._errors import BubblesError, ConfigError, RunCancelled, RunFailed, describe_error

if TYPE_CHECKING:
    from .attempt import Attempt

__all__ = ["RunResult", "TaskRun", "TaskState"]


class TaskState:
    """The states a task ends in (plain strings, so they compare and serialize simply)."""

    PENDING = "pending"
    RUNNING = "running"
    RETRY_WAIT = "retry_wait"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    UPSTREAM_FAILED = "upstream_failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


_MISSING = object()


@dataclass(eq=False)
class TaskRun:
    """One task of a finished run: its final state, and its last attempt's record.

    ``duration``, ``metrics``, ``worker`` and ``events`` are those of ``record``, the last attempt
    that ran (:class:`~bubbles.engine.attempt.Attempt`); a ``ParallelTask`` or ``map`` group
    spans from its first task's start to its last one's end.
    """

    name: str
    state: str
    attempts: int = 0
    started_at: float | None = None
    ended_at: float | None = None
    error: BaseException | None = None
    traceback: str = ""
    group: str | None = None
    record: Attempt | None = field(default=None, repr=False)
    span: float | None = field(default=None, repr=False)
    _output: Any = field(default=_MISSING, repr=False)
    _unfetched: BaseException | None = field(default=None, repr=False)  # why the output could not be fetched

    @property
    def ok(self) -> bool:
        return self.state == TaskState.SUCCEEDED

    @property
    def duration(self) -> float | None:
        return self.record.duration if self.record is not None else self.span

    @property
    def metrics(self) -> dict[str, float]:
        return self.record.metrics if self.record is not None else {}

    @property
    def worker(self) -> str:
        return self.record.worker if self.record is not None else ""

    @property
    def events(self) -> list[Any]:
        """The typed events the last attempt recorded (:mod:`bubbles._events`)."""
        return list(self.record.events or ()) if self.record is not None else []

    @property
    def reused_from(self) -> str | None:
        """The run whose kept output this task reused instead of running (resume, cache), else ``None``."""
        if self.record is None or self.record.status != "reused":
            return None
        return next((getattr(e, "from_run", None) for e in self.events if getattr(e, "kind", "") == "reuse"), None)

    @property
    def result(self) -> Any:
        """The task's output. Kept for tasks nothing else consumed, or all with ``keep_outputs=True``."""
        if self._output is _MISSING:
            if self._unfetched is not None:
                raise BubblesError(
                    f"Task {self.name!r} succeeded, but its output could not be fetched from where it ran: "
                    f"{describe_error(self._unfetched)}",
                    task=self.name,
                ) from self._unfetched
            if self.state != TaskState.SUCCEEDED:
                raise BubblesError(
                    f"Task {self.name!r} has no result: it ended {self.state}"
                    + (f" ({describe_error(self.error)})" if self.error else "")
                    + ".",
                    task=self.name,
                )
            raise BubblesError(
                f"The output of task {self.name!r} was released once the tasks that consume it had "
                "run, to keep memory flat. Run with keep_outputs=True to keep every task's output.",
                task=self.name,
            )
        return self._output


@dataclass(eq=False)
class RunResult:
    """Everything about one run: id, status, timings and each task's :class:`TaskRun`."""

    run_id: str
    workflow: str
    status: str
    executor: str
    started_at: float
    ended_at: float
    tasks: dict[str, TaskRun]
    output: Any = None
    error: BaseException | None = None  # an error outside any task (e.g. in a @bubbles body)

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"

    @property
    def duration(self) -> float:
        return self.ended_at - self.started_at

    def __getitem__(self, name: str) -> TaskRun:
        return self.tasks[name]

    def states(self) -> dict[str, str]:
        """``{task name: state}`` for every task."""
        return {name: t.state for name, t in self.tasks.items()}

    @property
    def failed(self) -> list[TaskRun]:
        return [t for t in self.tasks.values() if t.state == TaskState.FAILED]

    def raise_for_status(self) -> RunResult:
        """Raise :class:`RunFailed` (or :class:`RunCancelled`) unless the run succeeded."""
        if self.status == "succeeded":
            return self
        if isinstance(self.error, ConfigError):  # e.g. an unreachable cluster: say that, not "run failed"
            self.error.result = self  # type: ignore[attr-defined]
            raise self.error
        cls = RunCancelled if self.status == "cancelled" else RunFailed
        raise cls(self.describe_failure(), result=self, run_id=self.run_id, workflow=self.workflow)

    def describe_failure(self) -> str:
        counts: dict[str, int] = {}
        for t in self.tasks.values():
            counts[t.state] = counts.get(t.state, 0) + 1
        summary = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
        lines = [f"Run {self.run_id} of workflow {self.workflow!r} {self.status} ({summary})."]
        if self.error is not None:
            lines.append(f"  failed outside any task: {describe_error(self.error)}")
        for t in self.failed[:5]:
            what = describe_error(t.error) if t.error is not None else "no error recorded"
            lines.append(f"  - task {t.name!r} failed after {t.attempts} attempt(s): {what}")
            where = user_frame(t.traceback)
            if where:
                lines.append(f"      at {where}")
        if len(self.failed) > 5:
            lines.append(f"  ... and {len(self.failed) - 5} more failed tasks")
        if self.failed:
            first = self.failed[0].name
            lines.append(
                f"Full traceback: `bubbles show {self.run_id} --task {first}` "
                f"(in Python: result.tasks[{first!r}].traceback)."
            )
        return "\n".join(lines)


_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_LIBRARY_DIRS = tuple({os.path.dirname(os.__file__), *(p for p in sys.path if p.endswith("-packages"))})


def user_frame(tb: str) -> str:
    """The deepest frame in the user's own code (else the deepest frame): where to look first."""
    frames = [line.strip() for line in tb.splitlines() if line.strip().startswith('File "')]
    for frame in reversed(frames):
        path = frame[len('File "') :].split('"', 1)[0]
        if not path.startswith(_PACKAGE_DIR) and not path.startswith(_LIBRARY_DIRS) and not path.startswith("<"):
            return frame
    return frames[-1] if frames else ""

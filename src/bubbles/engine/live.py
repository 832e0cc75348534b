"""A run as it goes, for observers that read instead of being called: the *live view*.

Hooks (:mod:`bubbles.engine.hooks`) are called once per event, and the runner builds each
event's keyword arguments for them: simple to write, but on a 10,000-task run of tiny tasks
that call alone costs about a fifth of the runner's own time per task. The built-in observers
(run history, :class:`~bubbles.MetricsCollector`, the progress display) therefore *read* the
run instead. Every hook's ``on_run_start`` receives ``live``, a :class:`LiveRun`:

* ``live.attempts`` — a list, appended to by the runner, of
  :class:`~bubbles.engine.attempt.Attempt` records: one per finished task attempt, in the order
  they finished (a retried attempt with ``status="retrying"``), plus one per task that ended
  without a new attempt (``ran`` false: ``upstream_failed``, ``skipped``, ``cancelled``, or
  ``failed`` when a retry was stopped; ``attempt`` is then the number of attempts made, often 0);
* ``live.total``, ``live.done``, ``live.running`` — tasks known so far (``map`` items and
  ``@bubbles`` calls are added as they appear), tasks ended, attempts running;
* ``live.finished`` — true once the run has ended (set before ``on_run_end``).

An observer keeps ``live`` and reads ``live.attempts[seen:]`` when it likes — from its own
thread too: the runner only appends, and an entry does not change once appended. The runner's
cost per task is one ``list.append``, whoever watches. Entries are the records the workers
reported, not copies: read them, never set them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .runner import Runner

__all__ = ["LiveRun"]


class LiveRun:
    """Read-only view of a running run; see the module docstring.

    Example:
        >>> from bubbles import Workflow
        >>> class Slowest:
        ...     events = {"on_run_start", "on_run_end"}
        ...     def on_run_start(self, *, live, **future_kwargs):
        ...         self.live = live
        ...     def on_run_end(self, **future_kwargs):
        ...         self.name = max(self.live.attempts, key=lambda e: e.duration or 0).task
        >>> wf = Workflow("live")
        >>> _ = wf.add_task(lambda: sum(range(100_000)), name="sums")
        >>> _ = wf.add_task(lambda: None, name="nothing")
        >>> slowest = Slowest()
        >>> _ = wf.run(executor="serial", hooks=[slowest])
        >>> slowest.name, slowest.live.done, slowest.live.finished
        ('sums', 2, True)
    """

    __slots__ = ("_ended", "_runner", "attempts", "run_id", "workflow")

    def __init__(self, runner: Runner) -> None:
        self._runner: Runner | None = runner
        self._ended = (0, 0)
        self.run_id = runner.run_id
        self.workflow = runner.workflow
        self.attempts: list[Any] = runner._journal

    def close(self) -> None:
        """The run has ended (called by the runner): keep its figures, let the runner go."""
        runner = self._runner
        if runner is not None:
            self._ended = (runner._n_tasks, runner._n_done)
            self._runner = None

    def __repr__(self) -> str:
        return f"<LiveRun {self.run_id} {self.done}/{self.total} tasks, {self.running} running>"

    @property
    def total(self) -> int:
        runner = self._runner
        return self._ended[0] if runner is None else runner._n_tasks

    @property
    def done(self) -> int:
        runner = self._runner
        return self._ended[1] if runner is None else runner._n_done

    @property
    def running(self) -> int:
        runner = self._runner
        return 0 if runner is None else runner._running

    @property
    def finished(self) -> bool:
        runner = self._runner
        return True if runner is None else runner._finished

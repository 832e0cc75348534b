"""The seam between the runner and whatever runs a task.

The runner owns scheduling (what is ready, retries, timeouts, limits). An executor only runs
the :class:`~bubbles.engine.execute.Call` it is given and, later, hands the
:class:`~bubbles.engine.execute.Outcome` to the ``post`` callback it got in :meth:`start`
(from any thread). The runner never has more than ``capacity`` calls in flight. If that is more
than the executor runs at once (a short queue keeps workers busy), the executor sets
``reports_start = True`` and posts ``("started", key, attempt, time.monotonic())`` when a call with
a timeout really starts, so its timeout clock starts then and not at submission.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from ..execute import Call
from ..task import TaskSpec

__all__ = ["Executor", "PersistentPool", "Post"]

Post = Callable[[Any], None]  # an Outcome, or a ("started", key, attempt, monotonic_time) tuple


class Executor(Protocol):
    """What the runner needs from an executor."""

    name: str
    capacity: int
    hard_timeouts: bool  # True: a timed-out task is stopped; False: abandoned and left running

    def check(self, specs: list[TaskSpec]) -> None:
        """Raise a GraphError if a task cannot run here (e.g. cannot be pickled)."""

    def start(self, post: Post) -> None:
        """Get ready to run; report every outcome through ``post``."""

    def submit(self, call: Call) -> None:
        """Start ``call``; its Outcome arrives through ``post``."""

    def abandon(self, key: str, attempt: int) -> None:
        """The attempt timed out: stop it if possible, never report it, keep capacity."""

    def fetch(self, handle: Any) -> Any:
        """Turn an output handle (an Outcome's value) into the value itself."""

    def shutdown(self, *, cancel: bool = False) -> None:
        """Release workers; with ``cancel`` stop what is still running."""


class PersistentPool:
    """Mixin for executors that can outlive one run: ``with Pool(n) as pool: wf.run(executor=pool)``.

    Inside the ``with`` block ``shutdown()`` after each run keeps the workers (subclasses check
    ``self._persistent``); leaving the block shuts them down for real.
    """

    _persistent = False

    def __enter__(self) -> Any:
        self._persistent = True
        return self

    def __exit__(self, *exc: object) -> None:
        self._persistent = False
        self.shutdown()

    def shutdown(self, *, cancel: bool = False) -> None:  # pragma: no cover - overridden
        raise TypeError(f"{type(self).__name__} must define shutdown()")

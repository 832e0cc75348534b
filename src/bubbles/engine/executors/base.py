"""The seam between the runner and whatever runs a task: the executor contract.

An **executor** is a pool of workers (threads, processes, a Dask cluster). A run does not use
it directly: it :meth:`~Executor.open`\\ s a **run handle** with its run id and its ``post``
callback, submits :class:`~bubbles.engine.execute.Call`\\ s through the handle, and closes it at
the end. Many runs may hold handles on one pool at once (a service running workflows from
several threads): every call carries its run id, and every outcome is routed to the ``post``
of the run that submitted it, never to another run.

The contract, for every executor:

* **Exactly one outcome per submitted call**, posted as an :class:`~bubbles.engine.attempt.Attempt`
  — whatever the task does (returns something that cannot be measured or pickled, raises any
  ``BaseException``, kills its worker), unless the runner abandoned the call (a timeout), after
  which nothing more is posted for it.
* **Nothing is waited on forever**: :meth:`RunHandle.lost` returns a failed Attempt for every
  call whose worker is gone without having answered (a thread that died, a reader thread that
  crashed, a Dask future that vanished); the runner asks when it has heard nothing for a while.
* **Capacity**: the runner never has more than ``capacity`` calls in flight per run. If that is
  more than the executor runs at once (a short queue keeps workers busy), the executor sets
  ``reports_start = True`` and posts ``("started", key, attempt, time.monotonic())`` when a
  call with a timeout really starts, so its timeout clock starts then and not at submission.
* **Closing** a handle with ``cancel=True`` stops what that run still runs (processes are
  killed; threads are asked to stop through :func:`bubbles._context.on_cancel` callbacks and
  waited for, up to the ``cancel_grace`` setting); other runs on the pool are untouched.

:class:`Pool` implements the routing, the handles and the pool's lifetime for the pooled
executors: ``with ThreadExecutor(8) as pool:`` keeps the workers for every run inside the
block; without ``with`` the workers are released when the last open run closes (and started
again by the next run). A pool whose ``shutdown()`` was called refuses new runs with
:class:`~bubbles.PoolClosedError`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from ..._errors import ConfigError, PoolClosedError
from ..attempt import Attempt
from ..execute import Call, failed_attempt
from ..task import TaskSpec

__all__ = ["Executor", "Pool", "PoolRun", "Post", "RunHandle"]

Post = Callable[[Any], None]  # an Attempt, or a ("started", key, attempt, monotonic_time) tuple


class RunHandle(Protocol):
    """One run's use of an executor (what :meth:`Executor.open` returns)."""

    run_id: str

    @property
    def capacity(self) -> int:
        """Calls the run may have in flight."""

    def submit(self, call: Call) -> None:
        """Start ``call``; its Attempt arrives through the run's ``post``."""

    def abandon(self, key: str, attempt: int) -> None:
        """The attempt timed out: stop it if possible, never report it, keep capacity."""

    def fetch(self, handle: Any) -> Any:
        """Turn an output handle (an Attempt's value) into the value itself."""

    def lost(self) -> list[Attempt]:
        """A failed Attempt for every call in flight whose worker is gone without answering."""

    def close(self, *, cancel: bool = False) -> None:
        """The run is over; with ``cancel`` stop what it still runs."""


class Executor(Protocol):
    """What the runner needs from an executor (a pool of workers)."""

    name: str
    capacity: int
    hard_timeouts: bool  # True: a timed-out task is stopped; False: abandoned and left running

    def check(self, specs: list[TaskSpec]) -> None:
        """Raise a GraphError if a task cannot run here (e.g. cannot be pickled)."""

    def open(self, run_id: str, post: Post, *, cancel_grace: float = 5.0) -> RunHandle:
        """Get ready to run calls of run ``run_id``; every outcome goes to ``post``."""

    def shutdown(self) -> None:
        """Release the workers for good."""


class PoolRun:
    """The handle of one run on a :class:`Pool`: tracks the run's calls in flight."""

    def __init__(self, pool: Pool, run_id: str, post: Post, cancel_grace: float) -> None:
        self.pool = pool
        self.run_id = run_id
        self._post = post
        self.cancel_grace = cancel_grace
        self.inflight: dict[tuple[str, int], Call] = {}
        self.closed = False

    @property
    def capacity(self) -> int:
        return self.pool.capacity

    # ``inflight`` changes by single dict operations, atomic in CPython: no lock on the hot path
    def submit(self, call: Call) -> None:
        self.inflight[(call.key, call.attempt)] = call
        try:
            self.pool._submit(self, call)
        except BaseException:
            self.inflight.pop((call.key, call.attempt), None)
            raise

    def deliver(self, message: Any) -> None:
        """Post ``message`` to the run (an Attempt only once, and only while it is in flight)."""
        if type(message) is Attempt:
            if self.inflight.pop((message.task, message.attempt), None) is None:
                return  # abandoned, or already answered (e.g. by lost())
        elif self.closed:
            return
        self._post(message)

    def abandon(self, key: str, attempt: int) -> None:
        call = self.inflight.pop((key, attempt), None)
        if call is not None:
            self.pool._abandon(self, call)

    def fetch(self, handle: Any) -> Any:
        return self.pool._fetch(handle)

    def lost(self) -> list[Attempt]:
        calls = list(self.inflight.values())
        found = []
        for call, error in self.pool._lost(self, calls):
            if self.inflight.pop((call.key, call.attempt), None) is None:
                continue
            found.append(Attempt(call.key, call.attempt, "failed", run_id=self.run_id, error=error, started_at=time.time()))
        return found

    def close(self, *, cancel: bool = False) -> None:
        if self.closed:
            return
        self.closed = True
        left, self.inflight = list(self.inflight.values()), {}
        self.pool._close_run(self, left, cancel)


class Pool:
    """Base of the pooled executors: runs open handles; outcomes are routed by run id.

    Subclasses implement ``_start`` (bring up workers), ``_stop`` (release them), ``_submit``,
    ``_abandon``, ``_lost`` and optionally ``_fetch`` and ``_cancel_calls``.
    """

    name = "pool"
    capacity = 1
    hard_timeouts = False
    reports_start = False

    def __init__(self) -> None:
        self._runs: dict[str, PoolRun] = {}
        self._runs_lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._persistent = False
        self._shut = False
        self._up = False

    # -- lifetime -----------------------------------------------------------------------------
    def __enter__(self) -> Any:
        if self._shut:
            raise PoolClosedError(f"This {self.name} pool was shut down; create a new one.")
        self._persistent = True
        return self

    def __exit__(self, *exc: object) -> None:
        self._persistent = False
        self.shutdown()

    def open(self, run_id: str, post: Post, *, cancel_grace: float = 5.0) -> PoolRun:
        with self._runs_lock:
            if self._shut:
                raise PoolClosedError(
                    f"Run {run_id} was started on a {self.name} pool that was shut down (its `with` block ended, "
                    "or shutdown() was called). Create a new pool, or run inside the `with` block.",
                    run_id=run_id,
                )
            if run_id in self._runs:
                raise ConfigError(f"Run {run_id} is already running on this {self.name} pool; run ids must be unique.")
            handle = PoolRun(self, run_id, post, cancel_grace)
            self._runs[run_id] = handle
        with self._start_lock:  # two runs opening at once: one starts the workers, the other waits
            if not self._up:
                try:
                    self._start()
                except BaseException:
                    with self._runs_lock:
                        self._runs.pop(run_id, None)
                    raise
                self._up = True
        return handle

    def shutdown(self) -> None:
        """Release the workers for good. Calls that runs still have in flight fail (their runs end)."""
        with self._runs_lock:
            self._shut = True
            runs = list(self._runs.values())
        for run in runs:  # every call still gets its one outcome: the run that waits for it is told
            for call in list(run.inflight.values()):
                run.deliver(
                    failed_attempt(
                        call,
                        PoolClosedError(
                            f"The {self.name} pool was shut down while task {call.key!r} ran (its `with` block ended, "
                            "or shutdown() was called, from another thread). Keep the pool open until its runs end.",
                            task=call.key,
                        ),
                    )
                )
            self._cancel_calls(run, [], wait=False)
        with self._start_lock:
            if self._up:
                self._up = False
                self._stop()

    def _close_run(self, run: PoolRun, left: list[Call], cancel: bool) -> None:
        if left:
            self._cancel_calls(run, left, wait=cancel)
        with self._start_lock:
            with self._runs_lock:
                self._runs.pop(run.run_id, None)
                idle = not self._runs and not self._persistent and self._up
            if idle:
                self._up = False
                self._stop()

    def _route(self, run_id: str, message: Any) -> None:
        """Hand ``message`` to the run that submitted it (dropped if that run is over)."""
        run = self._runs.get(run_id)
        if run is not None:
            run.deliver(message)

    # -- for subclasses -----------------------------------------------------------------------
    def check(self, specs: list[TaskSpec]) -> None:
        return None

    def _start(self) -> None:
        return None

    def _stop(self) -> None:
        return None

    def _submit(self, run: PoolRun, call: Call) -> None:
        raise TypeError(f"{type(self).__name__} must define _submit()")  # pragma: no cover

    def _abandon(self, run: PoolRun, call: Call) -> None:
        return None

    def _cancel_calls(self, run: PoolRun, calls: list[Call], *, wait: bool) -> None:
        """The run ended with ``calls`` still in flight: stop them (``wait``: for up to the grace)."""
        for call in calls:
            self._abandon(run, call)

    def _lost(self, run: PoolRun, calls: list[Call]) -> list[tuple[Call, BaseException]]:
        return []

    def _fetch(self, handle: Any) -> Any:
        return handle


class Deadline:
    """``cancel_grace`` seconds from now, for waiting loops."""

    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + max(0.0, seconds)

    def left(self) -> float:
        return max(0.0, self.at - time.monotonic())

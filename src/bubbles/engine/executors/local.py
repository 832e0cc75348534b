"""In-process executors: serial (the calling thread) and threads.

Timeouts: in ``serial`` a task's timeout raises :class:`TaskTimeout` inside the task through
``SIGALRM`` when the run is on the main thread (pure-Python code is interrupted; a blocking C
call is interrupted when it returns). In ``threads`` the limit is *soft*: Python cannot stop a
thread, so at the deadline the runner records the timeout, the executor starts a replacement
thread so the run keeps its parallelism, and the stray thread's late result is dropped. The
run still ends on time (worker threads are daemons and never hold up interpreter exit).

Cancel: the threads of a cancelled run are asked to stop — each running attempt's
:func:`~bubbles._context.on_cancel` callbacks run (a DuckDB or PostgreSQL query is interrupted)
— and the run waits for them up to the ``cancel_grace`` setting, so nothing is left running in
C code while the interpreter exits.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
import traceback
from queue import SimpleQueue
from typing import Any

from ..._context import TaskContext
from ..._errors import TaskError, TaskTimeout
from ..attempt import Attempt
from ..execute import Call, TimedOut, execute, failed_attempt
from ..task import TaskSpec
from .base import Deadline, Pool, PoolRun, Post

__all__ = ["SerialExecutor", "ThreadExecutor", "default_threads"]

log = logging.getLogger("bubbles")


def default_threads() -> int:
    return min(32, (os.cpu_count() or 1) + 4)


class _SerialRun:
    """A serial run: ``submit`` runs the call at once on the calling thread."""

    capacity = 1

    def __init__(self, run_id: str, post: Post) -> None:
        self.run_id = run_id
        self._post = post
        self._warned = False

    def submit(self, call: Call) -> None:
        if call.timeout and threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer"):
            self._post(_execute_with_alarm(call))
            return
        if call.timeout and not self._warned:
            self._warned = True
            log.warning(
                "bubbles: run %s uses the serial executor off the main thread: task timeouts cannot be enforced "
                "there (a task runs past its timeout to its end). Use executor='threads' or 'processes' for timeouts.",
                call.run_id,
            )
        self._post(execute(call))

    def abandon(self, key: str, attempt: int) -> None:
        return None

    def fetch(self, handle: Any) -> Any:
        return handle

    def lost(self) -> list[Attempt]:
        return []  # a call runs while submit() runs: it cannot be lost

    def close(self, *, cancel: bool = False) -> None:
        return None


class SerialExecutor:
    """Runs each task in the calling thread, one at a time: the debugger-friendly executor."""

    name = "serial"
    capacity = 1
    hard_timeouts = True
    reports_start = False

    def check(self, specs: list[TaskSpec]) -> None:
        return None

    def open(self, run_id: str, post: Post, *, cancel_grace: float = 5.0) -> _SerialRun:
        return _SerialRun(run_id, post)

    def shutdown(self) -> None:
        return None


def _execute_with_alarm(call: Call) -> Attempt:
    def _alarm(signum: int, frame: Any) -> None:
        raise TimedOut(
            TaskTimeout(
                f"Task {call.key!r} ran past its timeout of {call.timeout:g} s (attempt {call.attempt}) and was stopped.",
                task=call.key,
                attempt=call.attempt,
                run_id=call.run_id,
            )
        )

    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, call.timeout or 0, 0.5)  # again every 0.5 s until the task gives up
    try:
        attempt = execute(call)
    except TimedOut as exc:  # fired after the function returned, while measuring
        attempt = failed_attempt(call, exc.error)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    return attempt


_Key = tuple[str, str, int]  # (run_id, task, attempt)


def _ident(call: Call) -> _Key:
    return (call.run_id, call.key, call.attempt)


class ThreadExecutor(Pool):
    """A pool of daemon threads fed by one queue, shared by every run that uses it.

    Keep it across runs with ``with ThreadExecutor(8) as pool: wf.run(executor=pool)``; several
    runs (from several threads) may use one pool at once.
    """

    name = "threads"
    hard_timeouts = False
    reports_start = True

    def __init__(self, max_workers: int | None = None) -> None:
        super().__init__()
        self.max_workers = max_workers or default_threads()
        # A short queue ahead of the threads keeps them busy while the scheduler catches up;
        # calls with a timeout report when they really start (see the runner).
        self.capacity = self.max_workers * 4
        self._inbox: SimpleQueue[Call | None] = SimpleQueue()
        self._lock = threading.Lock()
        self._done = threading.Condition(self._lock)
        self._threads = 0  # live worker threads
        self._stuck = 0  # of those, running an abandoned call (a replacement took their place)
        self._numbers = 0
        self._running: dict[_Key, tuple[threading.Thread, TaskContext]] = {}
        self._abandoned: set[_Key] = set()  # running when abandoned: their thread exits after
        self._skip: set[_Key] = set()  # abandoned while queued: never started
        self._waiting = 0  # cancels waiting for calls to end

    def __repr__(self) -> str:
        return f"<ThreadExecutor max_workers={self.max_workers} threads={self._threads}>"

    def _spawn_locked(self) -> None:
        self._threads += 1
        self._numbers += 1
        threading.Thread(target=self._work, name=f"bubbles-worker-{self._numbers}", daemon=True).start()

    def _work(self) -> None:
        # Hot path: no lock unless something was abandoned or a cancel waits. ``_running`` changes
        # by single dict operations (atomic in CPython); ``_abandon`` holds the lock and checks it.
        inbox, running, skip, abandoned = self._inbox, self._running, self._skip, self._abandoned
        me = threading.current_thread()
        while True:
            call = inbox.get()
            if call is None:  # (_stop counted this thread out already)
                return
            ident = (call.run_id, call.key, call.attempt)
            if skip and ident in skip:
                with self._lock:
                    skip.discard(ident)
                continue
            ctx = call.context()
            running[ident] = (me, ctx)
            try:
                if call.timeout:
                    self._route(call.run_id, ("started", call.key, call.attempt, time.monotonic()))
                attempt = execute(call, ctx)
            except BaseException as exc:  # never lose a call: a real Ctrl-C re-raised here included
                attempt = failed_attempt(
                    call,
                    TaskError(
                        f"Task {call.key!r} (attempt {call.attempt}) was interrupted in its worker thread: "
                        f"{type(exc).__name__}.",
                        task=call.key,
                        attempt=call.attempt,
                    ),
                    traceback.format_exc(),
                )
            running.pop(ident, None)
            if abandoned or self._waiting:
                with self._lock:
                    self._done.notify_all()
                    if ident in abandoned:  # a replacement thread took this one's place
                        abandoned.discard(ident)
                        self._stuck -= 1
                        self._threads -= 1
                        return
            self._route(call.run_id, attempt)

    def _submit(self, run: PoolRun, call: Call) -> None:
        # threads start lazily, one per call in flight, so short runs create few; once there are
        # enough, the unlocked look is all a call costs (a thread that ends takes the lock to say so)
        if self._threads - self._stuck < self.max_workers:
            with self._lock:
                if self._threads - self._stuck < self.max_workers:
                    self._spawn_locked()
        self._inbox.put(call)

    def _abandon(self, run: PoolRun, call: Call) -> None:
        ident = _ident(call)
        with self._lock:
            if ident in self._running:
                if ident not in self._abandoned:
                    self._abandoned.add(ident)
                    self._stuck += 1
                    if self._threads - self._stuck < self.max_workers:
                        self._spawn_locked()  # a thread takes the stuck one's place now: queued calls go on
            else:
                self._skip.add(ident)

    def _cancel_calls(self, run: PoolRun, calls: list[Call], *, wait: bool) -> None:
        with self._lock:
            running = [(i, self._running[i][1]) for i in map(_ident, calls) if i in self._running]
        interrupted = [i for i, ctx in running if ctx.cancel()]  # those inside native work
        for call in calls:
            self._abandon(run, call)
        if not wait or not interrupted:
            return
        deadline = Deadline(run.cancel_grace)
        with self._lock:  # let interrupted C code (DuckDB, PostgreSQL) return before the run ends
            self._waiting += 1
            try:
                while any(i in self._running for i in interrupted) and deadline.left() > 0:
                    self._done.wait(min(0.1, deadline.left()))
            finally:
                self._waiting -= 1

    def _lost(self, run: PoolRun, calls: list[Call]) -> list[tuple[Call, BaseException]]:
        lost = []
        with self._lock:
            for call in calls:
                entry = self._running.get(_ident(call))
                if entry is not None and not entry[0].is_alive():
                    lost.append(call)
            if self._threads - self._stuck <= 0 and self._threads < self.max_workers + self._stuck:
                self._spawn_locked()  # queued calls and no thread to take them: start one (never fail them)
        return [
            (
                call,
                TaskError(
                    f"The worker thread running task {call.key!r} (attempt {call.attempt}) is gone without an answer. "
                    "This is a bug in bubbles; the task may be retried.",
                    task=call.key,
                    attempt=call.attempt,
                    transient=True,
                ),
            )
            for call in lost
        ]

    def _stop(self) -> None:
        with self._lock:
            idle = max(0, self._threads - self._stuck)
            self._threads -= idle  # counted out now: a run starting meanwhile spawns its own threads
        for _ in range(idle):
            self._inbox.put(None)

"""In-process executors: serial (the calling thread) and threads.

Timeouts: in ``serial`` a task's timeout raises :class:`TaskTimeout` inside the task through
``SIGALRM`` when the run is on the main thread (pure-Python code is interrupted; a blocking C
call is interrupted when it returns). In ``threads`` the limit is *soft*: Python cannot stop a
thread, so at the deadline the runner records the timeout, the executor starts a replacement
thread so the run keeps its parallelism, and the stray thread's late result is dropped. The
run still ends on time (worker threads are daemons and never hold up interpreter exit).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from queue import SimpleQueue
from typing import Any

from ..._errors import TaskTimeout
from ..execute import Call, Outcome, execute
from ..task import TaskSpec
from .base import PersistentPool, Post

__all__ = ["SerialExecutor", "ThreadExecutor", "default_threads"]


def default_threads() -> int:
    return min(32, (os.cpu_count() or 1) + 4)


class SerialExecutor:
    """Runs each task in the calling thread, one at a time: the debugger-friendly executor."""

    name = "serial"
    capacity = 1
    hard_timeouts = True

    def check(self, specs: list[TaskSpec]) -> None:
        return None

    def start(self, post: Post) -> None:
        self._post = post

    def submit(self, call: Call) -> None:
        if call.timeout and threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer"):
            self._post(_execute_with_alarm(call))
        else:
            self._post(execute(call))

    def abandon(self, key: str, attempt: int) -> None:
        return None

    def fetch(self, handle: Any) -> Any:
        return handle

    def shutdown(self, *, cancel: bool = False) -> None:
        return None


def _execute_with_alarm(call: Call) -> Outcome:
    def _alarm(signum: int, frame: Any) -> None:
        raise TaskTimeout(
            f"Task {call.key!r} ran past its timeout of {call.timeout:g} s (attempt {call.attempt}).",
            task=call.key,
            attempt=call.attempt,
            run_id=call.run_id,
        )

    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, call.timeout or 0)
    try:
        return execute(call)
    except TaskTimeout as exc:  # fired after the function returned, while measuring
        return Outcome(call.key, call.attempt, False, None, exc)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class ThreadExecutor(PersistentPool):
    """A pool of daemon threads fed by one queue; outcomes go straight to the runner's queue.

    Keep it across runs with ``with ThreadExecutor(8) as pool: wf.run(executor=pool)``.
    """

    name = "threads"
    hard_timeouts = False

    reports_start = True

    def __init__(self, max_workers: int | None = None) -> None:
        self.max_workers = max_workers or default_threads()
        # A short queue ahead of the threads keeps them busy while the scheduler catches up;
        # calls with a timeout report when they really start (see the runner).
        self.capacity = self.max_workers * 4
        self._inbox: SimpleQueue[Call | None] = SimpleQueue()
        self._abandoned: set[tuple[str, str, int]] = set()  # (run_id, key, attempt)
        self._run_id = ""
        self._threads = 0
        self._lock = threading.Lock()

    def check(self, specs: list[TaskSpec]) -> None:
        return None

    def start(self, post: Post) -> None:
        self._post = post

    def _spawn(self) -> None:
        with self._lock:
            self._threads += 1
            number = self._threads
        threading.Thread(target=self._work, name=f"bubbles-worker-{number}", daemon=True).start()

    def _work(self) -> None:
        inbox, abandoned = self._inbox, self._abandoned
        while True:
            call = inbox.get()
            if call is None:
                return
            if call.timeout:
                self._post(("started", call.key, call.attempt, time.monotonic()))
            outcome = execute(call)
            if abandoned and (call.run_id, call.key, call.attempt) in abandoned:
                return  # a replacement thread took this one's place
            self._post(outcome)

    def submit(self, call: Call) -> None:
        self._run_id = call.run_id
        # threads start lazily, one per call in flight, so short runs create few
        if self._threads - len(self._abandoned) < self.max_workers:
            self._spawn()
        self._inbox.put(call)

    def abandon(self, key: str, attempt: int) -> None:
        self._abandoned.add((self._run_id, key, attempt))  # the next submit starts a thread in its place

    def fetch(self, handle: Any) -> Any:
        return handle

    def shutdown(self, *, cancel: bool = False) -> None:
        if self._persistent:
            return
        for _ in range(self._threads):
            self._inbox.put(None)

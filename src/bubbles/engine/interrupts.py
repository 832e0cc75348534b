"""Telling a real Ctrl-C from a task that raises ``KeyboardInterrupt`` itself; SIGTERM as a cancel.

A Ctrl-C of the process must cancel the run; a task that raises ``KeyboardInterrupt`` (or
``SystemExit``, ``GeneratorExit``) must only fail itself. Both arrive as the same exception, so
while a run is driven from the main thread the runner installs :func:`watching`: a SIGINT (and
SIGTERM: a service manager stopping the job) handler that counts the signal, then raises
``KeyboardInterrupt`` as Python's own handler does — **once per run**: a second signal while the
run is being cancelled only counts, so it cannot cut the cancel or the run's record short. The
worker wrapper compares the count before and after a task that runs on the main thread (the
serial executor): changed means the process was interrupted. Signals only ever reach the main
thread, so on any other thread (a run driven from a service's thread, worker threads) a
``KeyboardInterrupt`` is always the task's own.

Installed for the run and restored after it; a handler the program set itself is chained to.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["count", "deferred", "last_signal", "on_main_thread", "watching"]

_count = 0
_defer = 0
_raised = False  # the watched run has had its KeyboardInterrupt: later signals only count
_last: int | None = None
_main = threading.main_thread()


def count() -> int:
    """How many SIGINT/SIGTERMs this process received while a run watched (only ever grows)."""
    return _count


def last_signal() -> int | None:
    """The last signal counted (``signal.SIGINT`` or ``signal.SIGTERM``), or ``None``."""
    return _last


def on_main_thread() -> bool:
    return threading.current_thread() is _main


def _handler(previous: Any) -> Any:
    def on_signal(signum: int, frame: Any) -> None:
        global _count, _raised, _last
        _count += 1
        _last = signum
        if _defer or _raised:
            return
        if signum == signal.SIGINT and callable(previous) and previous is not signal.default_int_handler:
            previous(signum, frame)  # the program's own Ctrl-C handler decides
            return
        _raised = True
        raise KeyboardInterrupt

    return on_signal


@contextmanager
def watching() -> Iterator[None]:
    """Count SIGINT and SIGTERM for the block (main thread only; elsewhere a no-op)."""
    global _raised
    if not on_main_thread():
        yield
        return
    installed: list[tuple[int, Any]] = []
    try:
        for signum in (int(signal.SIGINT), int(signal.SIGTERM)):
            previous = signal.getsignal(signum)
            if previous in (signal.SIG_IGN, None):  # the program ignores it: so do we
                continue
            if signum == signal.SIGTERM and previous is not signal.SIG_DFL:
                continue  # the program handles SIGTERM itself
            signal.signal(signum, _handler(previous))
            installed.append((signum, previous))
    except (ValueError, OSError):  # e.g. an interpreter without signals
        pass
    outer = _raised
    _raised = False
    try:
        yield
    finally:
        for signum, previous in installed:
            signal.signal(signum, previous)
        _raised = outer


@contextmanager
def deferred() -> Iterator[int]:
    """A signal inside the block is counted, not raised; yields the count before (main thread only)."""
    global _defer
    if not on_main_thread():
        yield _count
        return
    _defer += 1
    try:
        yield _count
    finally:
        _defer -= 1

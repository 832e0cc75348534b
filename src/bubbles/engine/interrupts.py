"""Telling a real Ctrl-C from a task that raises ``KeyboardInterrupt`` itself.

A Ctrl-C of the process must cancel the run; a task that raises ``KeyboardInterrupt`` (or
``SystemExit``, ``GeneratorExit``) must only fail itself. Both arrive as the same exception, so
while a run is driven from the main thread the runner installs :func:`watching`: a SIGINT
handler that counts the signal before raising ``KeyboardInterrupt`` as Python's own does. The
worker wrapper compares the count before and after the task: changed means the process was
interrupted. While the runner finishes a run (recording it) the handler only counts, so a
second Ctrl-C cannot cut the record short; the count is checked right after.

Installed for the run and restored after it; a handler the program set itself is chained to.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["count", "deferred", "watching"]

_count = 0
_defer = 0
_lock = threading.Lock()


def count() -> int:
    """How many SIGINTs this process received while a run watched (only ever grows)."""
    return _count


def _handler(previous: Any) -> Any:
    def on_sigint(signum: int, frame: Any) -> None:
        global _count
        _count += 1
        if _defer:
            return
        if callable(previous) and previous not in (signal.default_int_handler, _handler):
            previous(signum, frame)
            return
        raise KeyboardInterrupt

    return on_sigint


@contextmanager
def watching() -> Iterator[None]:
    """Count SIGINTs for the block (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    try:
        previous = signal.getsignal(signal.SIGINT)
        if previous in (signal.SIG_IGN, None):  # the program ignores Ctrl-C: so do we
            yield
            return
        signal.signal(signal.SIGINT, _handler(previous))
    except (ValueError, OSError):  # e.g. an interpreter without signals
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextmanager
def deferred() -> Iterator[int]:
    """A Ctrl-C inside the block is counted, not raised (the caller checks :func:`count` after)."""
    global _defer
    with _lock:
        _defer += 1
    try:
        yield _count
    finally:
        with _lock:
            _defer -= 1

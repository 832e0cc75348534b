"""Peak memory of each task attempt: the probe behind the ``peak_memory`` metric.

What is measured, honestly: **the resident-set high-water mark (peak RSS, bytes) of the process
that ran the attempt, over the time the attempt ran**. Per executor that means:

* ``processes``: a worker process runs one attempt at a time, so the figure is that worker's peak
  during the attempt (the interpreter's own ~30-60 MB included).
* ``threads`` / ``serial`` / ``dask`` (a Dask worker runs tasks in threads): the process is
  shared, so the figure is the process peak while the attempt ran — an upper bound that includes
  concurrently running tasks and the rest of the program. A task that allocates 300 MB shows at
  least 300 MB; two tasks running side by side can each show the other's memory.

How: on Linux the kernel keeps the exact peak (``VmHWM`` in ``/proc/self/status``) and lets a
process reset it (writing ``5`` to ``/proc/self/clear_refs``). One daemon thread per process
(:class:`_Sampler`) reads and resets it every ``BUBBLES_MEMORY_INTERVAL`` seconds (default
0.05) while attempts run, so every interval's exact peak is known and credited to the attempts
running then; with no attempt running it sleeps. An attempt that lasts at least 1 ms also reads
the peak of the unfinished interval when it ends (and, if no other attempt runs, resets the mark,
so the next attempt does not inherit it); a shorter one takes the last interval's peak
(it cannot have touched more than a few MB in that time). Per attempt this costs a dict insertion
and removal — no system call for short tasks — and the sampler well under 1 % of one core
while tasks run (20 wake-ups a second). Elsewhere (macOS, Windows, restricted ``/proc``) the
sampler reads the current RSS with psutil instead, so peaks shorter than the interval can be
missed there.

Turn it off with the ``memory`` setting (``BUBBLES_MEMORY=0``).
"""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

__all__ = ["MemoryProbe"]

_LONG_ENOUGH = 0.001  # seconds: attempts at least this long read the kernel's peak on exit


class _Sampler:
    """One per process: reads (and on Linux resets) the RSS high-water mark every interval."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.active: dict[int, int] = {}  # attempt token -> peak seen by the sampler so far
        self.last_peak = 0
        self.idle = False
        self.wake = threading.Event()
        self.lock = threading.Lock()
        self._status: Any = None
        self._clear: Any = None
        try:
            self._status = open("/proc/self/status", "rb", buffering=0)  # held open: re-read per sample
            self._clear = open("/proc/self/clear_refs", "wb", buffering=0)
            self._clear.write(b"5")
        except OSError:
            self._status = self._clear = None
        if self._status is None:
            import psutil

            self._proc = psutil.Process()
        self.last_peak = self.read_peak()
        threading.Thread(target=self._loop, name="bubbles-memory", daemon=True).start()

    # The methods ending in ``_locked`` expect ``self.lock`` held: reading the mark, crediting it
    # and resetting it must not interleave with an attempt taking its figure, or a peak could be
    # reset away before anyone was credited with it.
    def _reset_locked(self) -> None:
        if self._clear is not None:
            try:
                self._clear.write(b"5")
            except OSError:
                self._clear = None

    def _read_locked(self) -> int:
        if self._status is None:
            return int(self._proc.memory_info().rss)
        self._status.seek(0)
        data = self._status.read(8192)
        i = data.find(b"VmHWM:")
        return int(data[i + 6 : data.find(b"kB", i)]) * 1024 if i >= 0 else 0

    def read_peak(self) -> int:
        """Peak RSS in bytes since the last reset (Linux), else the current RSS."""
        with self.lock:
            return self._read_locked()

    def finish(self, token: int, long_enough: bool) -> int:
        """The peak of a finished attempt; a long one also reads the unfinished interval."""
        if not long_enough:
            return self.active.pop(token, 0) or self.last_peak
        with self.lock:
            peak = max(self.active.pop(token, 0), self._read_locked())
            if not self.active:  # nothing else running: the next attempt starts from a clean mark
                self._reset_locked()
                self.last_peak = self._read_locked()
        return peak

    def _loop(self) -> None:
        while True:
            if not self.active:  # no attempt running: sleep until one starts (no wake-ups when idle)
                self.idle = True
                self.wake.wait(1.0)
                self.wake.clear()
                if self.idle:
                    continue
                # woken by an attempt: stay awake for at least one interval, so that a stream of
                # tiny tasks wakes the sampler at most once per interval
            time.sleep(self.interval)
            self.sample()

    def sample(self) -> None:
        with self.lock:
            peak = self._read_locked()
            for token, seen in list(self.active.items()):
                if peak > seen:
                    self.active[token] = peak
            self._reset_locked()
            self.last_peak = peak

    def wake_up(self) -> None:
        """An attempt starts while the sampler sleeps: forget the idle time's peak, then sample again."""
        self.idle = False
        with self.lock:
            self._reset_locked()
            self.last_peak = self._read_locked()  # right after the reset: the current RSS
        self.wake.set()


_sampler: _Sampler | None = None
_sampler_lock = threading.Lock()
_tokens = itertools.count(1)


def _get_sampler(interval: float = 0.05) -> _Sampler:
    """The process's sampler (one per process: it measures the process; the first run's interval)."""
    global _sampler
    if _sampler is None:
        with _sampler_lock:
            if _sampler is None:
                _sampler = _Sampler(interval)
    return _sampler


class MemoryProbe:
    """Per-attempt probe that sets ``metrics["peak_memory"]`` (bytes). Picklable, stateless.

    Example:
        On by default for every run (see :mod:`bubbles.observe.defaults`):

        >>> from bubbles import Workflow
        >>> wf = Workflow("mem")
        >>> _ = wf.add_task(lambda: bytearray(10_000_000), name="alloc")
        >>> wf.run(executor="serial")["alloc"].metrics["peak_memory"] > 10_000_000
        True
    """

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval

    def __reduce__(self) -> tuple[Any, ...]:
        return (MemoryProbe, (self.interval,))

    # enter/exit allocate nothing the garbage collector tracks (an int token): with thousands of
    # tiny tasks, per-attempt containers would make the collector's full passes more frequent
    def enter(self) -> int:
        sampler = _sampler or _get_sampler(self.interval)
        token = next(_tokens)
        sampler.active[token] = 0
        if sampler.idle:
            sampler.wake_up()
        return token

    def exit(self, token: int, outcome: Any) -> None:
        sampler = _sampler or _get_sampler(self.interval)
        if outcome.duration < _LONG_ENOUGH:  # (Sampler.finish's short path, inlined: most tasks of a big run)
            outcome.metrics["peak_memory"] = sampler.active.pop(token, 0) or sampler.last_peak
        else:
            outcome.metrics["peak_memory"] = sampler.finish(token, True)

"""System resources over a run: CPU % and memory of the process tree, sampled in the background.

:class:`ResourceSampler` is a hook: it starts a daemon thread at ``on_run_start`` that every
``interval`` seconds (``BUBBLES_RESOURCE_INTERVAL``, default 0.5) sums, over this process and all
its descendants (worker processes included), the CPU use since the last sample (in % of one
core, so 200 means two cores busy) and the resident memory (RSS, bytes). It stops at
``on_run_end``; the run history stores the samples and ``bubbles report`` plots them. Costs one
walk of the process tree per interval (well under 1 % of a core): on Linux it follows the
kernel's ``/proc/PID/task/TID/children`` lists from this process down, reading a handful of
files instead of every process's status; elsewhere it asks ``psutil`` for the children.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

__all__ = ["ResourceSampler"]


class ResourceSampler:
    """Samples CPU % and RSS of the process tree during a run into ``samples``.

    ``samples`` is a list of ``(time, cpu_percent, rss_bytes, processes)``.

    Example:
        >>> from bubbles import Workflow
        >>> sampler = ResourceSampler(interval=0.05)
        >>> wf = Workflow("busy")
        >>> _ = wf.add_task(lambda: sum(range(3_000_000)), name="spin")
        >>> _ = wf.run(hooks=[sampler])
        >>> len(sampler.samples) >= 2
        True
    """

    def __init__(self, interval: float | None = None) -> None:
        self.interval = interval if interval is not None else 0.5
        self.samples: list[tuple[float, float, int, int]] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()  # one sample at a time (the thread's, or the last one at the end)
        self._root: Any = None
        self._procs: dict[int, Any] = {}

    def on_run_start(self, **future_kwargs: Any) -> None:
        self.samples = []
        self._stop = stop = threading.Event()  # the run's own: a thread of an earlier run may still be waking up
        threading.Thread(target=self._loop, args=(stop,), name="bubbles-resources", daemon=True).start()

    def on_run_end(self, **future_kwargs: Any) -> None:
        self._stop.set()  # the thread ends at its next wake-up; the run does not wait for it
        self._sample()  # the last sample: the run has ended

    def _loop(self, stop: threading.Event) -> None:
        self._sample()  # the first sample of the run (and it primes cpu_percent)
        while not stop.wait(self.interval):
            self._sample()

    def _tree(self) -> list[Any]:
        """This process and all its descendants."""
        import psutil

        pids = _descendants(self._root.pid)
        if pids is None:
            return [self._root, *self._root.children(recursive=True)]
        tree = [self._root]
        for pid in pids:
            proc = self._procs.get(pid)
            if proc is None:
                try:
                    proc = psutil.Process(pid)
                except psutil.Error:  # ended since it was listed
                    continue
            tree.append(proc)
        return tree

    def _sample(self) -> None:
        with self._lock:
            self._sample_locked()

    def _sample_locked(self) -> None:
        import psutil

        try:
            if self._root is None:
                self._root = psutil.Process(os.getpid())
            tree = self._tree()
        except psutil.Error:
            return
        cpu = 0.0
        rss = 0
        alive: dict[int, Any] = {}
        for proc in tree:
            known = self._procs.get(proc.pid, proc)
            try:
                with known.oneshot():
                    cpu += known.cpu_percent(None)
                    rss += known.memory_info().rss
            except psutil.Error:
                continue
            alive[proc.pid] = known
        self._procs = alive
        self.samples.append((time.time(), round(cpu, 1), rss, len(alive)))


_children_lists: bool | None = None  # does this kernel keep /proc/PID/task/TID/children?


def _descendants(pid: int) -> list[int] | None:
    """PIDs below ``pid`` from the kernel's per-thread children lists; ``None`` where there are none."""
    global _children_lists
    if _children_lists is None:
        _children_lists = os.path.exists(f"/proc/{os.getpid()}/task/{os.getpid()}/children")
    if not _children_lists:
        return None
    found: list[int] = []
    todo = [pid]
    while todo:
        current = todo.pop()
        try:
            threads = os.listdir(f"/proc/{current}/task")
        except OSError:  # it ended since it was listed
            continue
        for tid in threads:
            try:
                with open(f"/proc/{current}/task/{tid}/children", "rb") as f:
                    children = [int(c) for c in f.read().split()]
            except OSError:  # a thread that ended since it was listed
                continue
            found.extend(children)
            todo.extend(children)
    return found

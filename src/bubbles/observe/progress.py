"""Live progress of a run on the terminal: tasks done / total, running, failed, rows/s.

:class:`ProgressDisplay` is a hook that only uses ``on_run_start`` and ``on_run_end``: it keeps
the run's live view (:mod:`bubbles.engine.live`) and a ``rich`` live display redraws from it four
times a second on its own thread, reading the attempts that ended since the last redraw — so the
run pays nothing per task for being shown. It appears only once a run has lasted ``delay`` seconds (default 0.5): a run that ends
sooner is summed up by the result table alone, without a display flashing by, and without the
cost of starting one. On by default when stderr is a terminal; ``--progress/--no-progress``
(``BUBBLES_PROGRESS=1/0``) forces it.
"""

from __future__ import annotations

import threading
import time
from typing import Any

__all__ = ["ProgressDisplay"]


class ProgressDisplay:
    """Hook drawing a live progress line with ``rich``.

    Args:
        console: a ``rich.console.Console`` (default: stderr).
        refresh_per_second: redraws per second.
        delay: seconds a run must last before the display appears (0: at once).

    Example:
        >>> from bubbles import Workflow
        >>> wf = Workflow("shown")
        >>> _ = wf.add_task(lambda: [1, 2], name="a")
        >>> _ = wf.run(hooks=[ProgressDisplay()])  # doctest: +SKIP
    """

    def __init__(self, console: Any = None, refresh_per_second: float = 4, delay: float = 0.5) -> None:
        self.console = console
        self.refresh_per_second = refresh_per_second
        self.delay = delay
        self._lock = threading.Lock()
        self._count_lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._ended = False
        self._total = self._done = self._running = self._failed = self._retries = 0
        self._rows = 0.0
        self.workflow = ""
        self._started = time.monotonic()
        self._run: Any = None  # the run's LiveRun
        self._seen = 0
        self._live: Any = None

    def update(self) -> None:
        """Bring the counters up to date from the run (before each redraw, and when one is read)."""
        run = self._run
        if run is None:
            return
        with self._count_lock:  # the display's thread and a reader may both call this
            self._update_locked(run)

    def _update_locked(self, run: Any) -> None:
        entries = run.attempts
        n = len(entries)
        for e in entries[self._seen : n]:
            status = e.status
            if status == "retrying":
                self._retries += 1
            elif status == "failed":
                self._failed += 1
            metrics = e.metrics
            if metrics:
                rows = metrics.get("rows_out")
                if rows:
                    self._rows += rows
        self._seen = n
        self._total, self._done, self._running = run.total, run.done, run.running

    # the counters, as of now
    @property
    def total(self) -> int:
        self.update()
        return self._total

    @property
    def done(self) -> int:
        self.update()
        return self._done

    @property
    def running(self) -> int:
        self.update()
        return self._running

    @property
    def failed(self) -> int:
        self.update()
        return self._failed

    @property
    def retries(self) -> int:
        self.update()
        return self._retries

    @property
    def rows(self) -> float:
        self.update()
        return self._rows

    # -- rendering --------------------------------------------------------------------------
    def __rich__(self) -> Any:
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        self.update()
        total, done, failed = self._total, self._done, self._failed
        elapsed = max(time.monotonic() - self._started, 1e-9)
        grid = Table.grid(padding=(0, 1))
        # Text objects, not markup strings: the display is also drawn while other output is
        # printed with markup off
        grid.add_row(
            Text(self.workflow, style="bold"),
            ProgressBar(total=max(total, 1), completed=done, width=30),
            Text(f"{done:,}/{total:,} tasks"),
            Text(f"running {self._running}"),
            Text(f"failed {failed}", style="red" if failed else ""),
            Text(f"retries {self._retries}"),
            Text(f"{self._rows / elapsed:,.0f} rows/s"),
            Text(f"{elapsed:.1f}s"),
        )
        return grid

    # -- hook API ---------------------------------------------------------------------------
    def on_run_start(self, *, workflow: str, tasks: list[str], live: Any = None, **future_kwargs: Any) -> None:
        self.workflow = workflow
        with self._count_lock:
            self._total = len(tasks)
            self._done = self._running = self._failed = self._retries = 0
            self._rows = 0.0
            self._run, self._seen = live, 0
        self._started = time.monotonic()
        self._ended = False
        if self.delay <= 0:
            self._show()
        else:
            self._timer = threading.Timer(self.delay, self._show)
            self._timer.daemon = True
            self._timer.start()

    def _show(self) -> None:
        from rich.console import Console
        from rich.live import Live

        with self._lock:
            if self._ended or self._live is not None:
                return
            self._live = Live(
                self,
                console=self.console or Console(stderr=True),
                refresh_per_second=self.refresh_per_second,
                transient=False,
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self._live.start()

    def on_run_end(self, **future_kwargs: Any) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        with self._lock:
            self._ended = True
            if self._live is not None:
                self._live.refresh()
                self._live.stop()
                self._live = None
        # (the counters are read from the run when asked for; a run that ended unseen costs nothing more)

"""Live progress of a run on the terminal: tasks done / total, running, failed, rows/s.

One line that fits the terminal; at 80 columns and at 100::

    ━━━━━━━━━━━━━━ 3/8 tasks · 1 running · 2 failed · 1 retry · 12.3k rows/s · 4.2 s
    orders ━━━━━━━━━━━━━━━━━━━━━━━━━━ 3/8 tasks · 1 running · 2 failed · 1 retry · 12.3k rows/s · 4.2 s

A count appears only when it is not zero, the bar turns red only once something failed, and
numbers are short (``12.3k``). On a narrow terminal the bar shrinks first, then the workflow's
name goes, then the bar.

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

from .format import human_seconds, short_count

__all__ = ["ProgressDisplay"]

_MIN_BAR, _MAX_BAR, _MAX_NAME = 10, 40, 24


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
    def line(self) -> str:
        """The counts as shown: ``3/8 tasks · 1 running · 2 failed · 1 retry · 12.3k rows/s · 4.2 s``."""
        self.update()
        elapsed = max(time.monotonic() - self._started, 1e-9)
        parts = [f"{self._done:,}/{self._total:,} tasks"]
        if self._running:
            parts.append(f"{self._running:,} running")
        if self._failed:
            parts.append(f"{self._failed:,} failed")
        if self._retries:
            parts.append(f"{self._retries:,} {'retry' if self._retries == 1 else 'retries'}")
        if self._rows:
            parts.append(f"{short_count(self._rows / elapsed)} rows/s")
        parts.append(f"{elapsed:.1f} s" if elapsed < 60 else human_seconds(elapsed))
        return " · ".join(parts)

    def __rich_console__(self, console: Any, options: Any) -> Any:
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        counts = self.line()
        failed = self._failed > 0
        # Text objects, not markup strings: the display is also drawn while other output is
        # printed with markup off
        stats = Text(counts, no_wrap=True, overflow="ellipsis")
        if failed:
            stats.highlight_words([f"{self._failed:,} failed"], style="red")
        room = options.max_width - len(counts) - 1  # (one space between cells)
        name = self.workflow[:_MAX_NAME] if self.workflow else ""
        if name and room - len(name) - 1 < _MIN_BAR:
            name = ""
        if room - (len(name) + 1 if name else 0) < _MIN_BAR:
            yield stats  # too narrow for a bar: the counts alone, cut if they must be
            return
        colour = "red" if failed else "green"
        bar = ProgressBar(
            total=max(self._total, 1),
            completed=self._done,
            width=min(_MAX_BAR, room - (len(name) + 1 if name else 0)),
            complete_style=colour,
            finished_style=colour,
        )
        grid = Table.grid(padding=(0, 1))
        cells: list[Any] = [Text(name, style="bold", no_wrap=True)] if name else []
        grid.add_row(*cells, bar, stats)
        yield grid

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

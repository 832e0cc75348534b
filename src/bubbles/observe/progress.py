"""Live progress of a run on the terminal: tasks done / total, running, failed, rows/s.

:class:`ProgressDisplay` is a hook: its event methods only bump counters (cheap enough for
10,000-task runs) and a ``rich`` live display redraws from them four times a second on its own
thread. It appears only once a run has lasted ``delay`` seconds (default 0.5): a run that ends
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
        self._timer: threading.Timer | None = None
        self._ended = False
        self.total = self.done = self.running = self.failed = self.retries = 0
        self.rows = 0.0
        self.workflow = ""
        self._started = time.monotonic()
        self._known: set[str] = set()
        self._live: Any = None

    # -- rendering --------------------------------------------------------------------------
    def __rich__(self) -> Any:
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        elapsed = max(time.monotonic() - self._started, 1e-9)
        grid = Table.grid(padding=(0, 1))
        # Text objects, not markup strings: the display is also drawn while other output is
        # printed with markup off
        grid.add_row(
            Text(self.workflow, style="bold"),
            ProgressBar(total=max(self.total, 1), completed=self.done, width=30),
            Text(f"{self.done:,}/{self.total:,} tasks"),
            Text(f"running {self.running}"),
            Text(f"failed {self.failed}", style="red" if self.failed else ""),
            Text(f"retries {self.retries}"),
            Text(f"{self.rows / elapsed:,.0f} rows/s"),
            Text(f"{elapsed:.1f}s"),
        )
        return grid

    # -- hook API ---------------------------------------------------------------------------
    def on_run_start(self, *, workflow: str, tasks: list[str], **future_kwargs: Any) -> None:
        self.workflow = workflow
        self._known = set(tasks)
        self.total = len(self._known)
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

    def on_task_start(self, *, task: str, **future_kwargs: Any) -> None:
        self.running += 1
        if task not in self._known:  # tasks added while running (map items, @bubbles calls)
            self._known.add(task)
            self.total += 1

    def on_task_retry(self, **future_kwargs: Any) -> None:
        self.running -= 1
        self.retries += 1

    def on_task_end(self, *, status: str, attempt: int, metrics: dict[str, float] | None = None, **future_kwargs: Any) -> None:
        if attempt and status in ("succeeded", "failed", "cancelled") and self.running > 0:
            self.running -= 1
        self.done += 1
        if status == "failed":
            self.failed += 1
        if metrics:
            rows = metrics.get("rows_out")
            if rows:
                self.rows += rows

    def on_run_end(self, **future_kwargs: Any) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        with self._lock:
            self._ended = True
            if self._live is not None:
                self.running = 0
                self._live.refresh()
                self._live.stop()
                self._live = None

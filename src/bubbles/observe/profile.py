"""Per-task profiles: ``bubbles run --profile`` (``BUBBLES_PROFILE=1``) runs each attempt under cProfile.

:class:`ProfileProbe` is a per-attempt probe: it profiles the task function on the thread or
process where it runs and adds the top functions by cumulative time (the ``pstats`` text,
``BUBBLES_PROFILE_LINES`` rows, default 40) to the attempt's ``logs`` as an entry
``{"kind": "profile", "format": "pstats", "data": ...}``. The run history keeps it in the
``profiles`` table and ``bubbles report`` shows it per task. cProfile slows Python-heavy code
down (often 1.5-2x), so it is off unless asked for.
"""

from __future__ import annotations

import io
from typing import Any

__all__ = ["ProfileProbe"]


class ProfileProbe:
    """Per-attempt probe adding a cProfile summary of the attempt to ``outcome.logs``.

    Example:
        >>> from bubbles import Workflow
        >>> from bubbles.api._run import RunOptions, start_run
        >>> wf = Workflow("prof")
        >>> _ = wf.add_task(lambda: sorted(range(100_000), key=str), name="sort")
        >>> kept = []
        >>> class Keep:
        ...     def on_task_end(self, *, logs, **future_kwargs):
        ...         kept.extend(e for e in logs or [] if e["kind"] == "profile")
        >>> _ = start_run(wf.graph()[0], RunOptions("serial", hooks=[Keep()], probes=[ProfileProbe()]))
        >>> "cumulative" in kept[0]["data"]
        True
    """

    def __init__(self, lines: int | None = None) -> None:
        self.lines = lines if lines is not None else 40

    def enter(self) -> Any:
        import cProfile

        profiler = cProfile.Profile()
        try:
            profiler.enable()
        except ValueError:  # another profiler is active on this thread (e.g. a debugger)
            return None
        return profiler

    def exit(self, state: Any, outcome: Any) -> None:
        if state is None:
            return
        import pstats

        state.disable()
        out = io.StringIO()
        stats = pstats.Stats(state, stream=out)
        stats.sort_stats("cumulative").print_stats(self.lines)
        text = out.getvalue()
        outcome.logs = [*(outcome.logs or ()), {"kind": "profile", "format": "pstats", "data": text}]

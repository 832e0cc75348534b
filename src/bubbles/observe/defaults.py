"""What watches every run by default: called by the API layer once per run.

``hooks_for_run`` returns the hooks (run history, console logs, progress display, Prometheus) and
``probes_for_run`` the per-attempt probes (memory, log capture, profiling) that a run gets
without the user asking. Settings come from the run options and from ``BUBBLES_*`` environment
variables (which the ``bubbles run`` command sets from its flags).
"""

from __future__ import annotations

from typing import Any

__all__ = ["hooks_for_run", "probes_for_run"]


def hooks_for_run(*, run_id: str, workflow: str, options: Any) -> list[Any]:
    """Default hooks for one run."""
    return []


def probes_for_run(*, options: Any) -> tuple[Any, ...]:
    """Default per-attempt probes for one run."""
    return ()

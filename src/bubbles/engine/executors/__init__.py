"""Executors: where tasks run. The runner drives them all through :class:`Executor`.

======================  ===================================================================
``"serial"``            the calling thread, one task at a time (debugging, tests)
``"threads"``           a pool of threads (I/O-bound work; the default)
``"processes"``         a pool of worker processes (CPU-bound work, hard timeouts)
``"dask"``              a Dask distributed cluster (``pip install 'pybubbles[dask]'``)
======================  ===================================================================
"""

from __future__ import annotations

from typing import Any

from ..._errors import ConfigError
from ..._settings import EXECUTORS
from .base import Executor, Pool, Post, RunHandle

__all__ = ["EXECUTORS", "Executor", "Pool", "Post", "RunHandle", "make_executor"]


def make_executor(kind: str | Executor = "threads", max_workers: int | None = None, **options: Any) -> Executor:
    """Build an executor by name (an executor object is returned as it is)."""
    if isinstance(kind, type):
        raise ConfigError(
            f"executor={kind.__name__} is a class: pass an executor object ({kind.__name__}(8)) or a name "
            f"({', '.join(EXECUTORS)})."
        )
    if not isinstance(kind, str):
        if not callable(getattr(kind, "open", None)):
            raise ConfigError(
                f"executor={kind!r} is not an executor. Pass a name ({', '.join(EXECUTORS)}) or an executor "
                "object such as ThreadExecutor(8)."
            )
        return kind
    if max_workers is not None and (not isinstance(max_workers, int) or max_workers < 1):
        raise ConfigError(f"max_workers must be a whole number >= 1, got {max_workers!r}.")
    if kind == "serial":
        from .local import SerialExecutor

        return SerialExecutor()
    if kind == "threads":
        from .local import ThreadExecutor

        return ThreadExecutor(max_workers)
    if kind == "processes":
        from .processes import ProcessExecutor

        return ProcessExecutor(max_workers)
    if kind == "dask":
        from .dask import DaskExecutor

        return DaskExecutor(max_workers=max_workers, **options)
    raise ConfigError(f"Unknown executor {kind!r}. Choose one of: {', '.join(EXECUTORS)}.")

"""Lazy tables: data stays where it is until Python needs it.

Inside a task, ``read_csv``, ``read_parquet``, ``read_sql`` and ``bubbles.sql`` return a
:class:`LazyTable` — the plan of the read or query, checked where it was written (the file is
there, its first block parses, the query binds) but not run. Handed on to another task, then to
``bubbles.sql`` and a writer, the plans of every step join into one DuckDB statement that runs
in the task that needs the result: the CSV is parsed, filtered and written without a table of
it ever existing in Python. Used from Python, a lazy table reads itself once, in full, and
keeps the table.

Modules: :mod:`.table` (the object), :mod:`.plan` (nodes, and how a plan becomes one
statement), :mod:`.csvscan`, :mod:`.parquetscan`, :mod:`.dbscan` (the reads), :mod:`.engine`
(running a plan: settings, guards, reports), :mod:`.identity` (what a planned file read relies
on). The decisions, with their measurements, are in docs/lazy.md.
"""

from __future__ import annotations

from .identity import SourceChangedError
from .table import LazyTable, is_lazy

__all__ = ["LazyTable", "SourceChangedError", "is_lazy", "wanted"]


def wanted(lazy: bool | None) -> bool:
    """Whether a reader or ``sql()`` called here plans instead of reading (``lazy=`` given, else the
    ``lazy`` setting: ``auto`` plans inside tasks only)."""
    if lazy is not None:
        return bool(lazy)
    from ..._context import current_task

    ctx = current_task()
    if ctx is not None:
        mode = ctx.settings.lazy if ctx.settings is not None else "auto"
        return mode != "off"
    from ..._settings import current_settings

    return current_settings().lazy == "on"

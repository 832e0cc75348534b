"""Deferred values: outputs that are a plan, computed where they are used.

The data plane hands some values on before computing them (a ``read_csv`` inside a task returns
the plan of the read, a ``bubbles.sql`` over it the plan of the query; see
:mod:`bubbles.data.lazy`). The engine, the resume planner and the observers know nothing about
data formats, so they talk to such values through this small protocol, by name:

``__bubbles_resolve__()``
    Compute the value now, in the running task (its errors, quarantine files and metrics happen
    there), and return what stands for it from now on.
``__bubbles_parts__()``
    The deferred values it is made of (a query's inputs): a value reachable from a task's output
    is handed on, not left behind.
``__bubbles_used__`` (attribute)
    Whether it has been computed, or read by a plan that ran.
``__bubbles_size__()``
    ``(rows, bytes)`` known without computing anything (``None`` where unknown).
``__bubbles_fingerprint__`` (property), ``__bubbles_keep__()``, ``__bubbles_check__()``
    What resume and the cache use: see :mod:`bubbles.session.checkpoints`.

Two rules for the engine (:func:`settle`, called where the task ran, before the attempt ends):

* a task's output that nothing in the run consumes is resolved in that task, so a read whose
  file is malformed fails the task that read it, as if the read had been eager;
* a deferred value made by a task that neither used it nor handed it on (for instance a
  ``read_csv(..., on_bad_lines="quarantine")`` called for its quarantine file) is resolved
  before the task ends too: nothing a task asked for is silently skipped.
"""

from __future__ import annotations

from typing import Any

__all__ = ["is_deferred", "keeps_plan", "made", "settle"]

_MAX_DEPTH = 4
_MAX_ITEMS = 256  # containers longer than this are not searched (deferred values in them are computed where used)


def is_deferred(value: Any) -> bool:
    """Whether ``value`` is a deferred value (implements ``__bubbles_resolve__``)."""
    return hasattr(type(value), "__bubbles_resolve__")


def keeps_plan(value: Any) -> bool:
    """Whether resume may keep ``value``'s plan instead of its data (``__bubbles_keep__`` gives one)."""
    keep = getattr(value, "__bubbles_keep__", None)
    return keep is not None and keep() is not None


def made(value: Any) -> None:
    """Note that the running task attempt made ``value`` (a no-op outside a task)."""
    from ._context import _current

    ctx = _current.get()
    if ctx is None:
        return
    if ctx.deferred is None:
        ctx.deferred = []
    ctx.deferred.append(value)


def settle(value: Any, ctx: Any, *, final: bool) -> Any:
    """Apply the two rules above to an attempt's output; returns the output to hand on."""
    if final:
        value = _resolve_all(value, 0)
    pending = ctx.deferred if ctx is not None else None
    if pending:
        ctx.deferred = None
        kept: set[int] = set()
        _reachable(value, kept, 0)
        for item in pending:
            if id(item) not in kept and not getattr(item, "__bubbles_used__", True):
                item.__bubbles_resolve__()
    return value


def _resolve_all(value: Any, depth: int) -> Any:
    if is_deferred(value):
        return value.__bubbles_resolve__()
    if depth >= _MAX_DEPTH:
        return value
    kind = type(value)
    if (kind is list or kind is tuple or kind is dict) and len(value) > _MAX_ITEMS:
        return value
    if kind is list or kind is tuple:
        items = [_resolve_all(v, depth + 1) for v in value]
        return items if kind is list else tuple(items)
    if kind is dict:
        return {k: _resolve_all(v, depth + 1) for k, v in value.items()}
    return value


def _reachable(value: Any, seen: set[int], depth: int) -> None:
    if id(value) in seen or depth > _MAX_DEPTH * 4:
        return
    if is_deferred(value):
        seen.add(id(value))
        for part in value.__bubbles_parts__():
            _reachable(part, seen, depth + 1)
        return
    kind = type(value)
    if kind in (list, tuple, set, frozenset, dict) and len(value) > _MAX_ITEMS:
        return
    if kind is list or kind is tuple or kind is set or kind is frozenset:
        for v in value:
            _reachable(v, seen, depth + 1)
    elif kind is dict:
        for v in value.values():
            _reachable(v, seen, depth + 1)

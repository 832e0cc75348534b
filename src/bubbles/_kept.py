"""What a kept task output carries besides its data: facts other layers know about the object.

A checkpoint (``bubbles.session.checkpoints``) stores an Arrow table, and a later run reads it
back as a new object: what was known about the original object in memory — where its rows came
from, for lineage — would be lost. Layers that know such facts register a *saver* here; the
checkpoint writer stores what the savers say in the file's metadata, and the reader hands it
back with the loaded object, where the layer that asks (:func:`loaded`) finds it. Neither side
imports the other.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Any

__all__ = ["facts_of", "loaded", "register_saver", "remember_loaded"]

_savers: list[Callable[[Any], dict[str, str]]] = []
_loaded: dict[int, tuple[weakref.ref[Any], dict[str, str]]] = {}
_lock = threading.Lock()


def register_saver(saver: Callable[[Any], dict[str, str]]) -> None:
    """Add ``saver(obj) -> {name: text}``: facts about ``obj`` to keep with it."""
    if saver not in _savers:
        _savers.append(saver)


def facts_of(obj: Any) -> dict[str, str]:
    """What the registered savers know about ``obj`` (empty when nothing, or none is registered)."""
    facts: dict[str, str] = {}
    for saver in _savers:
        try:
            facts.update(saver(obj))
        except Exception:  # a fact is a nicety: never a reason not to keep the output
            continue
    return facts


def remember_loaded(obj: Any, facts: dict[str, str]) -> None:
    """Note the facts kept with ``obj``, an object just read back (by weak reference)."""
    if not facts:
        return
    key = id(obj)

    def gone(_ref: weakref.ref[Any]) -> None:
        with _lock:
            if _loaded.get(key, (None,))[0] is _ref:
                del _loaded[key]

    try:
        ref = weakref.ref(obj, gone)
    except TypeError:  # an object that takes no weak reference
        return
    with _lock:
        _loaded[key] = (ref, facts)


def loaded(obj: Any) -> dict[str, str]:
    """The facts kept with ``obj`` if it was read back from a checkpoint, else ``{}``."""
    entry = _loaded.get(id(obj))
    if entry is None or entry[0]() is not obj:
        return {}
    return entry[1]

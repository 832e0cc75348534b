"""Typed task events: what an attempt reports beyond its metrics, one class per kind.

A connector or check calls :func:`bubbles._context.record_event` with one of these; the event
travels with the attempt's record (:class:`bubbles.engine.attempt.Attempt`, field ``events``)
from wherever the task ran to the run's journal, its hooks, the run store and ``TaskRun``. A
new kind of per-attempt information is one subclass here: the store keeps every kind in one
table (``task_events``: kind + JSON), and readers rebuild them with :func:`event_from_dict`.

Subclasses are frozen dataclasses of plain values (they pickle across processes and Dask and
turn into JSON): give them a ``kind`` and fields.

Example:
    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class Note(TaskEvent):
    ...     kind = "note"
    ...     text: str = ""
    >>> event_from_dict("note", Note("hi").to_dict())
    Note(text='hi')
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

__all__ = ["TaskEvent", "event_from_dict", "event_kinds"]

_KINDS: dict[str, type[TaskEvent]] = {}


@dataclass(frozen=True)
class TaskEvent:
    """Base of every typed task event."""

    kind: ClassVar[str] = "event"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _KINDS[cls.kind] = cls

    def to_dict(self) -> dict[str, Any]:
        """The event's fields as plain values (what the run store keeps as JSON)."""
        return asdict(self)

    def masked(self, mask: Any) -> TaskEvent:
        """A copy with every text field passed through ``mask`` (secrets never leave a worker)."""
        changes = {f.name: mask(v) for f in fields(self) if isinstance((v := getattr(self, f.name)), str)}
        if not changes or all(changes[k] == getattr(self, k) for k in changes):
            return self
        return type(self)(**{**self.to_dict(), **changes})


def event_kinds() -> dict[str, type[TaskEvent]]:
    """Every known event kind and its class."""
    return dict(_KINDS)


def event_from_dict(kind: str, data: dict[str, Any]) -> TaskEvent | dict[str, Any]:
    """Rebuild an event from its stored form; an unknown kind (a newer bubbles) stays a dict."""
    cls = _KINDS.get(kind)
    if cls is None:
        return {"kind": kind, **data}
    known = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in known})

"""Incremental API extraction: ask only for what changed since the last committed watermark.

The watermark lives in the same :class:`~bubbles.data.state.StateStore` as the database reader's.
A read sends the committed watermark as ``param`` (e.g. ``?updated_since=2024-05-01T00:00:00Z``),
tracks the largest ``field`` value among the records it gets, and when the last page has been
read *proposes* it — it never commits it itself:

- inside a run, the proposal is tagged with the run id; the run commits it when every task
  (the load included) succeeded and discards it when one failed, so a failed load is re-read;
- outside a run (a script), call :meth:`Incremental.commit` after your load committed.

``updated_since`` filters are usually inclusive, so the records stamped exactly at the
watermark come again on the next read: load with a merge on the primary key. A read cut short by
``max_pages`` proposes nothing (the unread pages may hold older changes).
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import TYPE_CHECKING, Any

from ..._context import current_task
from .flatten import find_path

if TYPE_CHECKING:
    from ..state import StateStore

__all__ = ["Incremental"]


def _order_key(value: Any) -> Any:
    if isinstance(value, str):
        from datetime import datetime

        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return value
    return value


def later(a: Any, b: Any) -> Any:
    """The later of two watermark values (ISO timestamps compare as times, not text)."""
    if a is None:
        return b
    if b is None:
        return a
    try:
        return b if _order_key(b) > _order_key(a) else a
    except TypeError:  # naive vs aware times, or mixed kinds: fall back to the text
        return b if str(b) > str(a) else a


@dataclass
class Incremental:
    """Read only records changed since the last committed watermark.

    Args:
        field: record field that holds the change time or sequence (dotted for nested, e.g. ``"meta.updated"``).
        param: query parameter that carries the watermark to the API.
        initial: value to send on the very first read (``None``: send nothing, read everything).
        name: watermark name in the state store; default ``"http:" + URL`` without its query.
        state: the store; default ``StateStore()`` under ``$BUBBLES_HOME`` (the one runs settle).

    Example:
        >>> inc = Incremental("updated_at", param="updated_since", initial="2024-01-01T00:00:00Z")
    """

    field: str
    param: str = "updated_since"
    initial: Any = None
    name: str | None = None
    state: StateStore | None = None
    _proposed: tuple[str, Any] | None = dc_field(default=None, init=False, repr=False)

    def store(self) -> StateStore:
        if self.state is None:
            from ..state import StateStore

            self.state = StateStore()
        return self.state

    def watermark(self, name: str) -> Any:
        """The committed watermark, or ``initial`` before the first commit."""
        return self.store().get(name, self.initial)

    def as_param(self, value: Any) -> str:
        from datetime import date, datetime

        return value.isoformat() if isinstance(value, datetime | date) else str(value)

    def highest(self, records: list[dict[str, Any]], current: Any) -> Any:
        for record in records:
            current = later(current, find_path(record, self.field, None))
        return current

    def propose(self, name: str, value: Any) -> None:
        """Propose ``value`` for the running task's run (run id ``None`` outside a run)."""
        ctx = current_task()
        self.store().propose(name, value, ctx.run_id if ctx else None)
        self._proposed = (name, value)

    def commit(self) -> None:
        """Outside a run: commit the watermark this object proposed, once your load committed."""
        if self._proposed is not None:
            name, value = self._proposed
            self.store().set(name, value)
            self._proposed = None

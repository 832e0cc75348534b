"""Incremental state: watermarks that say how far a source has been read.

A watermark advances in two steps, so that nothing is skipped when a run fails:

1. the reader *proposes* a new value (:meth:`StateStore.propose`) tagged with the run id;
2. the value *commits* (:meth:`StateStore.commit_run`) only when that run's load committed —
   the run session commits a run's proposals when the run succeeds and discards them when it
   fails; a run that crashed (killed) has them discarded when a reader finds it crashed.

Outside a run (a script calling the reader directly) a proposal has no run to wait for; call
:meth:`commit_run` with ``None`` after your load, or pass ``commit=True`` to commit at once.

Kept in the run store (:mod:`bubbles.store`: tables ``watermarks`` and ``pending_watermarks``),
so a PostgreSQL store shares watermarks between machines too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .._context import record_event
from .._events import Watermark

__all__ = ["StateStore"]


def _encode(value: Any) -> str:
    if hasattr(value, "isoformat"):
        return json.dumps({"t": type(value).__name__, "v": value.isoformat()})
    return json.dumps({"t": "json", "v": value})


def _decode(text: str) -> Any:
    data = json.loads(text)
    kind, value = data["t"], data["v"]
    if kind == "datetime":
        from datetime import datetime

        return datetime.fromisoformat(value)
    if kind == "date":
        from datetime import date

        return date.fromisoformat(value)
    return value


class StateStore:
    """Watermarks by name, with two-step commit, in the run store. Safe across threads and processes.

    Args:
        location: the store (a SQLite file or a ``postgresql://`` URL; default: the run's store).
    """

    def __init__(self, location: str | Path | None = None) -> None:
        from .._settings import current_settings
        from ..store import shared_store, store_location

        settings = current_settings()
        where = str(location) if location is not None else store_location(settings)
        self._store = shared_store(where, timeout=settings.history_timeout)  # (one connection per process)

    @property
    def location(self) -> str:
        return self._store.location

    def get(self, name: str, default: Any = None) -> Any:
        """The committed watermark ``name``, or ``default``."""
        value = self._store.watermark(name)
        return _decode(value) if value is not None else default

    def propose(self, name: str, value: Any, run_id: str | None, *, commit: bool = False) -> None:
        """Record that ``run_id`` read ``name`` up to ``value``; commits now if ``commit``."""
        if commit:
            self.set(name, value, run_id)
            return
        text = _encode(value)
        self._store.propose_watermark(name, text, run_id or "")
        record_event(Watermark(name=name, value=text))  # with the task: a resume that reuses it proposes it again

    def commit_run(self, run_id: str | None) -> list[str]:
        """Commit every watermark proposed by ``run_id``; returns their names."""
        return self._store.commit_watermarks(run_id or "")

    def discard_run(self, run_id: str | None) -> None:
        """Forget the proposals of a run that failed."""
        self._store.discard_watermarks(run_id or "")

    def set(self, name: str, value: Any, run_id: str | None = None) -> None:
        """Commit watermark ``name`` = ``value`` now."""
        self._store.set_watermark(name, _encode(value), run_id)

    def reset(self, name: str | None = None) -> int:
        """Delete watermark ``name`` (all of them with ``None``); returns how many."""
        return self._store.reset_watermarks(name)

    def pending(self) -> list[dict[str, Any]]:
        """Watermarks proposed but not yet committed: name, value, run_id, proposed_at."""
        return [
            {"name": r["name"], "value": _decode(r["value"]), "run_id": r["run_id"] or None, "proposed_at": r["proposed_at"]}
            for r in self._store.pending_watermarks()
        ]

    def list(self) -> list[dict[str, Any]]:
        """Every committed watermark: name, value, updated_at, run_id."""
        return [
            {"name": r["name"], "value": _decode(r["value"]), "updated_at": r["updated_at"], "run_id": r["run_id"]}
            for r in self._store.watermarks()
        ]

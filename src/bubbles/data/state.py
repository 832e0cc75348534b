"""Incremental state: watermarks that say how far a source has been read.

A watermark advances in two steps, so that nothing is skipped when a run fails:

1. the reader *proposes* a new value (:meth:`StateStore.propose`) tagged with the run id;
2. the value *commits* (:meth:`StateStore.commit_run`) only when that run's load committed —
   the API commits a run's proposals when the run succeeds; a failed run leaves them pending
   and the next run reads from the old watermark again.

Outside a run (a script calling the reader directly) a proposal has no run to wait for; call
:meth:`commit_run` with ``None`` after your load, or pass ``commit=True`` to commit at once.

Stored in SQLite (WAL) at ``$BUBBLES_HOME/state.db`` (default ``.bubbles/state.db``).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import sqlite3

from .._errors import ConfigError

__all__ = ["StateStore", "bubbles_home"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS watermarks (
    name TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at REAL NOT NULL, run_id TEXT
);
CREATE TABLE IF NOT EXISTS pending_watermarks (
    name TEXT NOT NULL, run_id TEXT NOT NULL, value TEXT NOT NULL, proposed_at REAL NOT NULL,
    PRIMARY KEY (name, run_id)
);
"""


def bubbles_home() -> Path:
    """The local store directory: ``$BUBBLES_HOME`` or ``./.bubbles``."""
    home = os.environ.get("BUBBLES_HOME")
    return Path(home) if home else Path.cwd() / ".bubbles"


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
    """Watermarks by name, with two-step commit. Safe across threads and processes (SQLite WAL)."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else bubbles_home() / "state.db"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        import sqlite3  # here, not at import: `import bubbles` stays light

        try:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
        except sqlite3.DatabaseError as exc:
            raise ConfigError(
                f"The state store {self.path} cannot be opened: {exc}. If it is corrupt, move it aside; "
                "watermarks will start from scratch.",
                source=str(self.path),
            ) from None
        return db

    def get(self, name: str, default: Any = None) -> Any:
        """The committed watermark ``name``, or ``default``."""
        with self._connect() as db:
            row = db.execute("SELECT value FROM watermarks WHERE name = ?", (name,)).fetchone()
        return _decode(row[0]) if row else default

    def propose(self, name: str, value: Any, run_id: str | None, *, commit: bool = False) -> None:
        """Record that ``run_id`` read ``name`` up to ``value``; commits now if ``commit``."""
        if commit:
            self.set(name, value, run_id)
            return
        with self._connect() as db:
            db.execute(
                "INSERT OR REPLACE INTO pending_watermarks VALUES (?, ?, ?, ?)",
                (name, run_id or "", _encode(value), time.time()),
            )

    def commit_run(self, run_id: str | None) -> list[str]:
        """Commit every watermark proposed by ``run_id``; returns their names."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            rows = db.execute("SELECT name, value FROM pending_watermarks WHERE run_id = ?", (run_id or "",)).fetchall()
            for name, value in rows:
                db.execute("INSERT OR REPLACE INTO watermarks VALUES (?, ?, ?, ?)", (name, value, time.time(), run_id))
            db.execute("DELETE FROM pending_watermarks WHERE run_id = ?", (run_id or "",))
            db.execute("COMMIT")
        return [name for name, _ in rows]

    def discard_run(self, run_id: str | None) -> None:
        """Forget the proposals of a run that failed."""
        with self._connect() as db:
            db.execute("DELETE FROM pending_watermarks WHERE run_id = ?", (run_id or "",))

    def set(self, name: str, value: Any, run_id: str | None = None) -> None:
        """Commit watermark ``name`` = ``value`` now."""
        with self._connect() as db:
            db.execute("INSERT OR REPLACE INTO watermarks VALUES (?, ?, ?, ?)", (name, _encode(value), time.time(), run_id))

    def reset(self, name: str | None = None) -> int:
        """Delete watermark ``name`` (all of them with ``None``); returns how many."""
        with self._connect() as db:
            if name is None:
                cur = db.execute("DELETE FROM watermarks")
            else:
                cur = db.execute("DELETE FROM watermarks WHERE name = ?", (name,))
            return cur.rowcount

    def pending(self) -> list[dict[str, Any]]:
        """Watermarks proposed but not yet committed: name, value, run_id, proposed_at."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT name, value, run_id, proposed_at FROM pending_watermarks ORDER BY name, proposed_at"
            ).fetchall()
        return [{"name": n, "value": _decode(v), "run_id": r or None, "proposed_at": t} for n, v, r, t in rows]

    def list(self) -> list[dict[str, Any]]:
        """Every committed watermark: name, value, updated_at, run_id."""
        with self._connect() as db:
            rows = db.execute("SELECT name, value, updated_at, run_id FROM watermarks ORDER BY name").fetchall()
        return [{"name": n, "value": _decode(v), "updated_at": t, "run_id": r} for n, v, t, r in rows]

"""The SQLite run store: one file in the bubbles home, in WAL mode, readable while runs write.

``sqlite3 ~/.local/share/bubbles/history.db "SELECT task FROM attempts WHERE run_id = '...' AND
state = 'failed'"`` works while runs write it. The schema is created in one transaction (a file
never exists half made). A history file written by bubbles before the plain tables (attempts
packed in chunks, schema versions 1 to 3) is converted in place when first opened, and a
``state.db`` beside it (watermarks) is folded in.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Any

from .base import RunStore, StoreError

__all__ = ["SQLiteStore"]

log = logging.getLogger("bubbles")


class SQLiteStore(RunStore):
    """The run store in a SQLite file (the default)."""

    kind = "sqlite"

    def __init__(self, path: str | Path, *, timeout: float = 30.0, create: bool = True) -> None:
        self.path = Path(path)
        super().__init__(str(self.path))
        self.timeout = timeout
        self._legacy: set[str] = set()
        self._folded: list[Path] = []
        if not create and not self.path.exists():
            raise StoreError(
                f"No run store at {self.path}: nothing has run with this home yet. Run a workflow, or point the home "
                "setting (BUBBLES_HOME, or home in bubbles.toml) at the folder that has one.",
                source=str(self.path),
            )

    def _connect(self) -> Any:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"The run store's folder {self.path.parent} cannot be created ({exc}). Point the home setting "
                "(BUBBLES_HOME) at a writable folder.",
                source=str(self.path),
            ) from exc
        conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error:
            conn.close()
            raise
        return conn

    def _begin(self, cur: Any) -> None:
        cur.execute("BEGIN IMMEDIATE")

    def _has_table(self, cur: Any, name: str) -> bool:
        cur.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,))
        return cur.fetchone() is not None

    def _is_driver_error(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.Error)

    def _translate(self, exc: BaseException) -> StoreError:
        text = str(exc)
        path = self.path
        if "locked" in text or "busy" in text:
            return StoreError(
                f"The run store {path} is locked by another process ({text}) and stayed locked past {self.timeout:g} s. "
                "Wait for the other run or command to finish, or raise the history_timeout setting.",
                source=str(path),
                transient=True,
            )
        if "not a database" in text or "malformed" in text or "corrupt" in text:
            return StoreError(
                f"The run store {path} is corrupt ({text}). Move it aside (mv {path} {path}.corrupt); bubbles creates a "
                f"new one on the next run. Runs that could not be written are kept in {path.parent / 'history-pending'} "
                "and imported then.",
                source=str(path),
                transient=False,
            )
        if "readonly" in text or "read-only" in text or "unable to open" in text:
            return StoreError(
                f"The run store {path} cannot be written ({text}). Check the folder's permissions and free space, or "
                "point the home setting (BUBBLES_HOME) at a writable folder.",
                source=str(path),
                transient=False,
            )
        return StoreError(f"The run store {path} failed: {text}.", source=str(path))

    # -- converting what older bubbles wrote ---------------------------------------------------
    def _before_schema(self, cur: Any) -> None:
        cur.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        tables = {row[0] for row in cur.fetchall()}
        if "attempt_chunks" in tables or ("attempts" in tables and "store_meta" not in tables):
            for name in ("runs", "attempts", "metrics", "logs", "resources", "profiles", "attempt_chunks"):
                if name in tables:
                    cur.execute(f"ALTER TABLE {name} RENAME TO legacy_{name}")
            for index in ("runs_workflow", "metrics_run", "logs_run", "resources_run"):
                cur.execute(f"DROP INDEX IF EXISTS {index}")
            self._legacy = tables
        else:
            self._legacy = set()

    def _after_schema(self, cur: Any) -> None:
        if self._legacy:
            from ._legacy import convert

            convert(cur, self._legacy)
            log.info("bubbles: converted the run history %s to the plain-table store", self.path)
        state = self.path.parent / "state.db"
        if state.exists() and state.resolve() != self.path.resolve() and _fold_in_state(cur, state):
            self._folded.append(state)

    def _migrated(self) -> None:
        for state in self._folded:  # (renamed once the copy is committed)
            if state.exists():
                state.rename(state.with_name("state.db.folded-into-history.db"))
        self._folded = []


def _fold_in_state(cur: Any, state: Path) -> bool:
    """Copy the watermarks of a separate ``state.db`` (bubbles before the store) into the store."""
    try:
        old = sqlite3.connect(state)
        try:
            marks = old.execute("SELECT name, value, updated_at, run_id FROM watermarks").fetchall()
            pending = old.execute("SELECT name, run_id, value, proposed_at FROM pending_watermarks").fetchall()
        finally:
            old.close()
    except sqlite3.Error as exc:
        log.warning("bubbles: could not read the watermarks of %s (%s); left as it is", state, exc)
        return False
    cur.executemany(
        "INSERT INTO watermarks (name, value, updated_at, run_id) VALUES (?, ?, ?, ?) ON CONFLICT (name) DO NOTHING", marks
    )
    cur.executemany(
        "INSERT INTO pending_watermarks (name, run_id, value, proposed_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (name, run_id) DO NOTHING",
        pending,
    )
    log.info("bubbles: %d watermark(s) of %s now live in the run store", len(marks), state)
    return True

"""What history files written by bubbles before the plain-table store looked like (for migration tests)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from bubbles.store._chunks import encode

LEGACY_MIGRATIONS: tuple[str, ...] = (
    # 0 -> 1: the first schema
    """
    CREATE TABLE runs (
        run_id TEXT PRIMARY KEY, workflow TEXT NOT NULL, status TEXT NOT NULL, executor TEXT,
        started_at REAL, ended_at REAL, duration REAL, tasks_total INTEGER, params TEXT, error TEXT
    );
    CREATE TABLE attempts (
        run_id TEXT NOT NULL, task TEXT NOT NULL, grp TEXT, attempt INTEGER NOT NULL, status TEXT NOT NULL,
        started_at REAL, ended_at REAL, duration REAL, worker TEXT,
        execution_time REAL, cpu_time REAL, peak_memory INTEGER, rows_in INTEGER, rows_out INTEGER,
        bytes_in INTEGER, bytes_out INTEGER, error TEXT, traceback TEXT,
        PRIMARY KEY (run_id, task, attempt)
    );
    CREATE TABLE metrics (run_id TEXT NOT NULL, task TEXT NOT NULL, attempt INTEGER NOT NULL, name TEXT NOT NULL,
                          value REAL);
    CREATE INDEX metrics_run ON metrics (run_id);
    CREATE TABLE logs (run_id TEXT NOT NULL, task TEXT NOT NULL, attempt INTEGER NOT NULL, seq INTEGER NOT NULL,
                       time REAL, level TEXT, logger TEXT, message TEXT);
    CREATE INDEX logs_run ON logs (run_id, task);
    """,
    # 1 -> 2: where a run ran, system resources over the run, per-task profiles
    """
    ALTER TABLE runs ADD COLUMN host TEXT;
    ALTER TABLE runs ADD COLUMN pid INTEGER;
    ALTER TABLE runs ADD COLUMN argv TEXT;
    CREATE INDEX runs_workflow ON runs (workflow, started_at);
    CREATE TABLE resources (run_id TEXT NOT NULL, time REAL NOT NULL, cpu_percent REAL, rss INTEGER,
                            processes INTEGER);
    CREATE INDEX resources_run ON resources (run_id);
    CREATE TABLE profiles (run_id TEXT NOT NULL, task TEXT NOT NULL, attempt INTEGER NOT NULL, format TEXT,
                           data TEXT);
    """,
    # 2 -> 3: attempts written in chunks (bubbles.observe._chunks) instead of one row each
    """
    CREATE TABLE attempt_chunks (run_id TEXT NOT NULL, seq INTEGER NOT NULL, n INTEGER NOT NULL, data BLOB NOT NULL,
                                 PRIMARY KEY (run_id, seq));
    """,
)

LEGACY_ATTEMPT_COLUMNS = (
    "task",
    "grp",
    "attempt",
    "status",
    "started_at",
    "ended_at",
    "duration",
    "worker",
    "execution_time",
    "cpu_time",
    "peak_memory",
    "rows_in",
    "rows_out",
    "bytes_in",
    "bytes_out",
    "error",
    "traceback",
)
_KINDS = {"attempt": "i8", "peak_memory": "i8", "rows_in": "i8", "rows_out": "i8", "bytes_in": "i8", "bytes_out": "i8"}
_KINDS.update(dict.fromkeys(("started_at", "ended_at", "duration", "execution_time", "cpu_time"), "f8"))


def legacy_file(path: Path, version: int) -> sqlite3.Connection:
    """A history file as bubbles of schema ``version`` (1-3) created it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, isolation_level=None)
    for i in range(version):
        db.executescript(LEGACY_MIGRATIONS[i])
    db.execute(f"PRAGMA user_version = {version}")
    return db


def chunk_of(rows: list[dict[str, Any]]) -> bytes:
    """Attempts packed as schema version 3 packed them."""
    return encode([(c, _KINDS.get(c, "json"), [r.get(c) for r in rows]) for c in LEGACY_ATTEMPT_COLUMNS])

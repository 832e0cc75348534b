"""Converting a run history written by bubbles before the plain-table store (schema versions 1-3).

Those files have ``runs``, ``attempts`` (one row per attempt, up to version 2) and
``attempt_chunks`` (attempts packed by :mod:`bubbles.store._chunks`, version 3) tables, plus
``metrics``, ``logs``, ``resources`` and ``profiles``. :class:`~bubbles.store.sqlite.SQLiteStore`
renames them ``legacy_*``, creates the store's tables, and calls :func:`convert` in the same
transaction: every run and attempt is copied (for an attempt written twice — a task stopped
while waiting to retry — the last write wins, as it did when such files were read), then the
legacy tables are dropped. No second storage path is kept.
"""

from __future__ import annotations

from typing import Any

from ._chunks import decode

__all__ = ["convert"]


def _rows(cur: Any, sql: str) -> list[dict[str, Any]]:
    cur.execute(sql)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def convert(cur: Any, tables: set[str]) -> None:
    """Copy the ``legacy_*`` tables into the store's tables, then drop them."""
    if "runs" in tables:
        for r in _rows(cur, "SELECT * FROM legacy_runs"):
            cur.execute(
                "INSERT INTO runs (run_id, workflow, status, started_at, ended_at, duration, host, pid, argv, params, "
                "executor, tasks_total, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id) DO NOTHING",
                (
                    r["run_id"],
                    r["workflow"],
                    r["status"],
                    r["started_at"],
                    r["ended_at"],
                    r["duration"],
                    r.get("host"),
                    r.get("pid"),
                    r.get("argv"),
                    r.get("params"),
                    r.get("executor"),
                    r.get("tasks_total"),
                    r.get("error"),
                ),
            )
    attempts: dict[tuple[str, str, int], dict[str, Any]] = {}
    if "attempts" in tables:
        for r in _rows(cur, "SELECT * FROM legacy_attempts"):
            attempts[(r["run_id"], r["task"], r["attempt"])] = r
    if "attempt_chunks" in tables:
        for chunk in _rows(cur, "SELECT run_id, n, data FROM legacy_attempt_chunks ORDER BY run_id, seq"):
            try:
                decoded = decode(chunk["data"], rows=chunk["n"])
            except ValueError:  # a damaged chunk: its attempts are lost either way; keep the rest
                continue
            for r in decoded:
                r["run_id"] = chunk["run_id"]
                attempts[(r["run_id"], r["task"], r["attempt"])] = r
    cur.executemany(
        "INSERT INTO attempts (run_id, task, attempt, grp, state, started_at, ended_at, duration, worker, error, traceback, "
        "rows_in, rows_out, bytes_in, bytes_out, peak_memory, cpu_time) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, task, attempt) DO NOTHING",
        [
            (
                r["run_id"],
                r["task"],
                r["attempt"],
                r.get("grp"),
                r.get("status") or "failed",
                r.get("started_at"),
                r.get("ended_at"),
                r.get("duration"),
                r.get("worker"),
                r.get("error"),
                r.get("traceback"),
                r.get("rows_in"),
                r.get("rows_out"),
                r.get("bytes_in"),
                r.get("bytes_out"),
                r.get("peak_memory"),
                r.get("cpu_time"),
            )
            for r in attempts.values()
        ],
    )
    copies = {
        "metrics": "INSERT INTO metrics (run_id, task, attempt, name, value) SELECT run_id, task, attempt, name, MAX(value) "
        "FROM legacy_metrics GROUP BY run_id, task, attempt, name",
        "logs": "INSERT INTO logs (run_id, task, attempt, seq, time, level, logger, message) "
        "SELECT run_id, task, attempt, seq, time, level, logger, message FROM legacy_logs",
        "resources": "INSERT INTO resources (run_id, time, cpu_percent, rss, processes) "
        "SELECT run_id, time, cpu_percent, rss, processes FROM legacy_resources",
        "profiles": "INSERT INTO profiles (run_id, task, attempt, format, data) SELECT run_id, task, attempt, format, data "
        "FROM legacy_profiles",
    }
    for table, sql in copies.items():
        if table in tables:
            cur.execute(sql)
    for table in ("runs", "attempts", "attempt_chunks", "metrics", "logs", "resources", "profiles"):
        if table in tables:
            cur.execute(f"DROP TABLE legacy_{table}")
    cur.execute("PRAGMA user_version = 0")  # (the store keeps its version in store_meta)

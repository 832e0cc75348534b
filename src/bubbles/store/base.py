"""The run store's one interface, :class:`RunStore`, with the SQL both backends share.

A backend (:mod:`bubbles.store.sqlite`, :mod:`bubbles.store.postgres`) only says how to
connect, how a write transaction starts and how its driver's errors read; every statement is
written once, here, in the SQL both speak (``?`` placeholders, turned into ``%s`` for psycopg).

Writes come in batches (one transaction each) of rows in the column order of
:data:`bubbles.store.schema.TABLE_COLUMNS`, keyed by table — plus ``runs_end`` (a run's final
status), ``heartbeats`` and ``attempt_updates`` (a task that ended without a new attempt, e.g.
stopped while waiting to retry: its last attempt's state becomes final).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .._errors import BubblesError
from .schema import MIGRATIONS, SCHEMA_VERSION, TABLE_COLUMNS

__all__ = ["Batch", "RunStore", "StoreError", "empty_batch"]

log = logging.getLogger("bubbles")

Batch = dict[str, list[tuple[Any, ...]]]
_BATCH_KEYS = (
    "runs",
    "attempts",
    "attempt_updates",
    "metrics",
    "task_events",
    "datasets",
    "logs",
    "profiles",
    "resources",
    "heartbeats",
    "runs_end",
)


def empty_batch() -> Batch:
    return {key: [] for key in _BATCH_KEYS}


class StoreError(BubblesError):
    """The run store cannot be used: locked, corrupt, unreachable, from a newer bubbles, read-only."""


def _upsert(table: str, key: tuple[str, ...]) -> str:
    columns = TABLE_COLUMNS[table]
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in key)
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
        f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}"
    )


def _insert(table: str) -> str:
    columns = TABLE_COLUMNS[table]
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


_WRITES: dict[str, str] = {
    "runs": _upsert("runs", ("run_id",)),
    "attempts": _upsert("attempts", ("run_id", "task", "attempt")),
    "attempt_updates": "UPDATE attempts SET state = ?, error = ?, traceback = ? WHERE run_id = ? AND task = ? AND attempt = ?",
    "metrics": _upsert("metrics", ("run_id", "task", "attempt", "name")),
    "task_events": _insert("task_events"),
    "datasets": _insert("datasets"),
    "logs": _insert("logs"),
    "profiles": _insert("profiles"),
    "resources": _insert("resources"),
    # a live run reasserts itself if a reader took it for crashed (a clock that jumped, a long pause)
    "heartbeats": "UPDATE runs SET heartbeat_at = ?, status = CASE WHEN status = 'crashed' THEN 'running' ELSE status END, "
    "ended_at = CASE WHEN status = 'crashed' THEN NULL ELSE ended_at END WHERE run_id = ?",
    "runs_end": "UPDATE runs SET status = ?, ended_at = ?, duration = ?, tasks_total = ?, error = ?, heartbeat_at = ?, "
    "params = COALESCE(?, params), argv = COALESCE(?, argv) WHERE run_id = ?",
}

_HOST = socket.gethostname()


class RunStore(ABC):
    """Runs, attempts, events, logs, datasets and watermarks in plain tables (see :mod:`.schema`).

    Thread-safe: one connection, used under a lock. Open stores with :func:`bubbles.store.open_store`.
    """

    kind = "store"

    def __init__(self, location: str) -> None:
        self.location = location
        self._lock = threading.RLock()
        self._conn: Any = None

    # -- what a backend provides ------------------------------------------------------------
    @abstractmethod
    def _connect(self) -> Any:
        """A DB-API connection in autocommit mode (transactions are begun explicitly)."""

    @abstractmethod
    def _begin(self, cur: Any) -> None:
        """Start a write transaction."""

    @abstractmethod
    def _translate(self, exc: BaseException) -> StoreError:
        """The driver's error as a StoreError saying what to do."""

    @abstractmethod
    def _is_driver_error(self, exc: BaseException) -> bool: ...

    def _sql(self, sql: str) -> str:
        return sql

    def describe(self) -> str:
        """Where the store is, for people (``bubbles runs`` prints it)."""
        return self.location

    # -- connection and schema --------------------------------------------------------------
    def open(self) -> RunStore:
        with self._lock:
            if self._conn is None:
                try:
                    self._conn = self._connect()
                    self._migrate()
                except BaseException as exc:
                    self._close_quietly()
                    if isinstance(exc, StoreError) or not self._is_driver_error(exc):
                        raise
                    raise self._translate(exc) from exc
        return self

    def close(self) -> None:
        with self._lock:
            self._close_quietly()

    def _close_quietly(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass

    def __enter__(self) -> RunStore:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def schema_version(self) -> int:
        rows = self._query("SELECT value FROM store_meta WHERE key = 'schema_version'")
        return int(rows[0]["value"]) if rows else 0

    def _migrate(self) -> None:
        version = self._existing_version()
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"The run store {self.describe()} has schema version {version}, written by a newer bubbles (this one "
                f"knows up to {SCHEMA_VERSION}). Upgrade bubbles (pip install -U pybubbles) on this machine too, or "
                "point the store setting (BUBBLES_STORE) elsewhere.",
                source=self.describe(),
            )
        if version == SCHEMA_VERSION:
            return
        with self._transaction() as cur:
            version = self._version_in(cur)  # (another process may have migrated meanwhile)
            if version == SCHEMA_VERSION:
                return
            if version == 0:
                self._before_schema(cur)
            for statements in MIGRATIONS[version:]:
                for statement in statements:
                    self._execute_ddl(cur, statement)
            cur.execute(self._sql("DELETE FROM store_meta WHERE key = 'schema_version'"))
            cur.execute(self._sql("INSERT INTO store_meta (key, value) VALUES ('schema_version', ?)"), (str(SCHEMA_VERSION),))
            if version == 0:
                self._after_schema(cur)
        self._migrated()

    def _existing_version(self) -> int:
        try:
            with self._lock:
                cur = self._conn.cursor()
                try:
                    return self._version_in(cur)
                finally:
                    cur.close()
        except Exception as exc:
            if self._is_driver_error(exc):
                return 0
            raise

    def _version_in(self, cur: Any) -> int:
        if not self._has_table(cur, "store_meta"):
            return 0
        cur.execute(self._sql("SELECT value FROM store_meta WHERE key = 'schema_version'"))
        row = cur.fetchone()
        return int(row[0]) if row else 0

    @abstractmethod
    def _has_table(self, cur: Any, name: str) -> bool:
        """Whether the store's table ``name`` exists (asked without failing a transaction)."""

    def _execute_ddl(self, cur: Any, statement: str) -> None:
        if statement.startswith("CREATE VIEW"):
            cur.execute(f"DROP VIEW IF EXISTS {statement.split()[2]}")
        cur.execute(statement)

    def _before_schema(self, cur: Any) -> None:  # noqa: B027 (a hook: most backends need nothing)
        """Hook: what a backend does before creating the tables (e.g. convert an older file)."""

    def _after_schema(self, cur: Any) -> None:  # noqa: B027 (a hook)
        """Hook: what a backend does once the tables exist (in the same transaction)."""

    def _migrated(self) -> None:  # noqa: B027 (a hook)
        """Hook: what a backend does once the schema is committed."""

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        with self._lock:
            if self._conn is None:
                self.open()
            cur = self._conn.cursor()
            try:
                self._begin(cur)
                yield cur
                cur.execute("COMMIT")
            except BaseException as exc:
                try:
                    cur.execute("ROLLBACK")
                except Exception:
                    pass
                if self._is_driver_error(exc):
                    raise self._translate(exc) from exc
                raise
            finally:
                cur.close()

    def _query(self, sql: str, args: Iterable[Any] = ()) -> list[dict[str, Any]]:
        with self._lock:
            if self._conn is None:
                self.open()
            cur = self._conn.cursor()
            try:
                cur.execute(self._sql(sql), tuple(args))
                names = [d[0] for d in cur.description or ()]
                return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
            except Exception as exc:
                if self._is_driver_error(exc):
                    raise self._translate(exc) from exc
                raise
            finally:
                cur.close()

    # -- writing ----------------------------------------------------------------------------
    def write(self, batch: Batch) -> None:
        """Write one batch in one transaction (see the module docstring for its keys).

        A key that is not one of the store's own is a table of :data:`TABLE_COLUMNS` (the table
        a typed event kind keeps its rows in): its rows are inserted, after the attempts.
        """
        if not any(batch.values()):
            return
        unknown = [k for k in batch if k not in _WRITES and k not in TABLE_COLUMNS]
        if unknown:
            raise StoreError(f"The run store has no table for {unknown}; a newer bubbles wrote this batch.")
        with self._transaction() as cur:
            for key in _BATCH_KEYS:
                rows = batch.get(key)
                if rows:
                    cur.executemany(self._sql(_WRITES[key]), rows)
            for key, rows in batch.items():
                if rows and key not in _WRITES:
                    cur.executemany(self._sql(_insert(key)), rows)

    def start_run(self, row: tuple[Any, ...]) -> None:
        """Record a run at its first instant (a ``runs`` row, status ``running``), then reap crashed runs."""
        self.write({"runs": [row]})

    # -- leases -----------------------------------------------------------------------------
    def reap(self, now: float | None = None) -> list[str]:
        """Mark runs whose process is gone, or whose heartbeat is older than its lease, ``crashed``.

        A run on this host is crashed as soon as its process is gone (its pid is not alive, or is
        alive but was started at another time: a reused pid). A run on another host is crashed
        once its last heartbeat is older than its lease (wall clocks: the lease must be longer
        than the clocks' skew). Its pending watermark proposals are discarded then. Returns the
        run ids marked.
        """
        now = time.time() if now is None else now
        running = self._query(
            "SELECT run_id, host, pid, pid_started_at, heartbeat_at, lease_seconds, started_at FROM runs WHERE status = 'running'"
        )
        crashed = []
        for run in running:
            reason = _crash_reason(run, now)
            if reason is None:
                continue
            beat = run["heartbeat_at"] or run["started_at"]
            with self._transaction() as cur:
                cur.execute(
                    self._sql(
                        "UPDATE runs SET status = 'crashed', ended_at = ?, duration = ? - started_at, error = ? "
                        "WHERE run_id = ? AND status = 'running'"
                    ),
                    (beat, beat, reason, run["run_id"]),
                )
                changed = cur.rowcount
                if changed:
                    cur.execute(self._sql("DELETE FROM pending_watermarks WHERE run_id = ?"), (run["run_id"],))
            if changed:
                crashed.append(run["run_id"])
        return crashed

    # -- reading ----------------------------------------------------------------------------
    def runs(self, limit: int = 20, workflow: str | None = None, status: str | None = None) -> list[dict[str, Any]]:
        """The most recent runs, newest first (optionally of one workflow, or in one status)."""
        where, args = [], []
        if workflow:
            where.append("workflow = ?")
            args.append(workflow)
        if status:
            where.append("status = ?")
            args.append(status)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        return self._query(f"SELECT * FROM runs {clause} ORDER BY started_at DESC LIMIT ?", [*args, limit])

    def run(self, run_id: str) -> dict[str, Any]:
        """One run by id, a unique prefix or suffix of one (e.g. the random ``4f9a2c81``), or ``last``."""
        if run_id in ("last", "latest"):
            rows = self._query("SELECT * FROM runs ORDER BY started_at DESC LIMIT 1")
        else:
            part = run_id.replace("%", "").replace("_", "")
            rows = self._query(
                "SELECT * FROM runs WHERE run_id LIKE ? OR run_id LIKE ? ORDER BY started_at DESC LIMIT 6",
                [part + "%", "%" + part],
            )
        exact = [r for r in rows if r["run_id"] == run_id]
        if exact:
            return exact[0]
        if len(rows) == 1:
            return rows[0]
        if not rows:
            raise StoreError(f"No run {run_id!r} in the run store {self.describe()}. `bubbles runs` lists the recent ones.")
        raise StoreError(
            f"Run id {run_id!r} is ambiguous in {self.describe()}: {', '.join(r['run_id'] for r in rows[:5])} ... "
            "Give more characters.",
            run_id=run_id,
        )

    def attempts(self, run_id: str) -> list[dict[str, Any]]:
        """Every attempt of a run, in start order, with its custom metrics merged in."""
        rows = self._query(
            "SELECT * FROM attempts WHERE run_id = ? ORDER BY COALESCE(started_at, ended_at), task, attempt", [run_id]
        )
        extra: dict[tuple[str, int], dict[str, float]] = {}
        for m in self._query("SELECT task, attempt, name, value FROM metrics WHERE run_id = ?", [run_id]):
            extra.setdefault((m["task"], m["attempt"]), {})[m["name"]] = m["value"]
        for row in rows:
            row["metrics"] = extra.get((row["task"], row["attempt"]), {})
        return rows

    def tasks(self, run_id: str) -> list[dict[str, Any]]:
        """One row per task (its last attempt; ``attempts`` is how many were made), in start order."""
        return self._query("SELECT * FROM tasks WHERE run_id = ? ORDER BY COALESCE(started_at, ended_at), task", [run_id])

    def failed_counts(self, run_ids: list[str]) -> dict[str, int]:
        """``{run_id: number of tasks that failed}`` for the runs given (runs with none are left out)."""
        if not run_ids:
            return {}
        marks = ", ".join("?" * len(run_ids))
        rows = self._query(
            f"SELECT run_id, COUNT(DISTINCT task) AS n FROM attempts WHERE state = 'failed' AND run_id IN ({marks}) "
            "GROUP BY run_id",
            run_ids,
        )
        return {r["run_id"]: int(r["n"]) for r in rows}

    def task_counts(self, run_ids: list[str]) -> dict[str, int]:
        """``{run_id: number of tasks recorded}`` (what ran or could have)."""
        if not run_ids:
            return {}
        marks = ", ".join("?" * len(run_ids))
        rows = self._query(
            f"SELECT run_id, COUNT(DISTINCT task) AS n FROM attempts WHERE run_id IN ({marks}) GROUP BY run_id", run_ids
        )
        return {r["run_id"]: int(r["n"]) for r in rows}

    def logs(self, run_id: str, task: str | None = None) -> list[dict[str, Any]]:
        if task is None:
            return self._query("SELECT * FROM logs WHERE run_id = ? ORDER BY time, seq", [run_id])
        return self._query("SELECT * FROM logs WHERE run_id = ? AND task = ? ORDER BY time, seq", [run_id, task])

    def resources(self, run_id: str) -> list[dict[str, Any]]:
        return self._query("SELECT time, cpu_percent, rss, processes FROM resources WHERE run_id = ? ORDER BY time", [run_id])

    def profiles(self, run_id: str) -> list[dict[str, Any]]:
        return self._query("SELECT task, attempt, format, data FROM profiles WHERE run_id = ? ORDER BY task, attempt", [run_id])

    def events(self, run_id: str, kind: str | None = None) -> list[dict[str, Any]]:
        """Typed task events of a run, ``payload`` decoded."""
        where, args = ("AND kind = ?", [run_id, kind]) if kind else ("", [run_id])
        rows = self._query(f"SELECT * FROM task_events WHERE run_id = ? {where} ORDER BY task, attempt, seq", args)
        for row in rows:
            row["payload"] = json.loads(row["payload"]) if row["payload"] else {}
        return rows

    def reuses(self) -> list[dict[str, Any]]:
        """Every task a run reused from another (resume, cache): ``run_id``, ``task``, ``from_run``."""
        rows = self._query("SELECT run_id, task, payload FROM task_events WHERE kind = 'reuse'")
        out = []
        for row in rows:
            payload = json.loads(row["payload"]) if row["payload"] else {}
            if payload.get("action") == "reused" and payload.get("from_run"):
                out.append({"run_id": row["run_id"], "task": row["task"], "from_run": payload["from_run"]})
        return out

    def datasets(
        self, run_id: str | None = None, *, namespace: str | None = None, name: str | None = None
    ) -> list[dict[str, Any]]:
        """Datasets read and written: by a run, or every record of one dataset across runs."""
        if run_id is not None:
            return self._query("SELECT * FROM datasets WHERE run_id = ? ORDER BY at", [run_id])
        return self._query("SELECT * FROM datasets WHERE namespace = ? AND name = ? ORDER BY at", [namespace, name])

    def checkpoints(self, run_id: str) -> list[dict[str, Any]]:
        """The outputs a run kept (``checkpoints`` rows), one per task."""
        return self._query("SELECT * FROM checkpoints WHERE run_id = ?", [run_id])

    def cached(self, key: str, *, since: float = 0.0) -> list[dict[str, Any]]:
        """Kept outputs with ``key`` (kept since ``since``), newest first: what a cached task may reuse."""
        return self._query(
            "SELECT * FROM checkpoints WHERE key = ? AND at >= ? AND format <> 'unkept' ORDER BY at DESC LIMIT 5", [key, since]
        )

    def all_checkpoints(self, task: str | None = None) -> list[dict[str, Any]]:
        """Every kept output (``bubbles cache ls``), newest first, optionally of one task."""
        if task is not None:
            return self._query("SELECT * FROM checkpoints WHERE task = ? AND format <> 'unkept' ORDER BY at DESC", [task])
        return self._query("SELECT * FROM checkpoints WHERE format <> 'unkept' ORDER BY at DESC")

    def forget_checkpoints(self, rows: list[dict[str, Any]]) -> int:
        """Delete these checkpoint rows (their files are the caller's to remove); returns how many."""
        with self._transaction() as cur:
            keys = [(r["run_id"], r["task"]) for r in rows]
            cur.executemany(self._sql("DELETE FROM checkpoints WHERE run_id = ? AND task = ?"), keys)
        return len(rows)

    def runs_beyond(self, keep: int, older_than: float | None = None) -> list[str]:
        """Run ids past the ``keep`` most recent of each workflow (and, if given, started before ``older_than``)."""
        rows = self._query("SELECT run_id, workflow, started_at, status FROM runs ORDER BY workflow, started_at DESC")
        seen: dict[str, int] = {}
        out = []
        for r in rows:
            seen[r["workflow"]] = seen.get(r["workflow"], 0) + 1
            if r["status"] == "running":
                continue  # never a live run
            if seen[r["workflow"]] > keep and (older_than is None or (r["started_at"] or 0) < older_than):
                out.append(r["run_id"])
        return out

    def delete_runs(self, run_ids: list[str]) -> dict[str, int]:
        """Delete runs and everything recorded about them, in one transaction; rows deleted per table."""
        tables = [t for t in TABLE_COLUMNS if "run_id" in TABLE_COLUMNS[t] and t != "runs"] + ["runs"]
        counts: dict[str, int] = {}
        with self._transaction() as cur:
            for table in tables:
                total = 0
                for start in range(0, len(run_ids), 500):
                    chunk = run_ids[start : start + 500]
                    cur.execute(self._sql(f"DELETE FROM {table} WHERE run_id IN ({', '.join('?' * len(chunk))})"), chunk)
                    total += max(0, cur.rowcount)
                counts[table] = total
        return counts
    def quality_results(self, run_id: str) -> list[dict[str, Any]]:
        """The data-quality results of a run (one row per rule checked), in the order recorded."""
        return self._query("SELECT * FROM quality_results WHERE run_id = ? ORDER BY at, task, contract", [run_id])

    def quarantines(self, run_id: str | None = None) -> list[dict[str, Any]]:
        """Appends to quarantine sinks: of one run, or of every run (newest first)."""
        if run_id is not None:
            return self._query("SELECT * FROM quarantines WHERE run_id = ? ORDER BY at", [run_id])
        return self._query("SELECT * FROM quarantines ORDER BY at DESC")

    def query(self, sql: str, args: Iterable[Any] = ()) -> list[dict[str, Any]]:
        """Run a read-only query of your own (``?`` placeholders) and return dict rows."""
        return self._query(sql, args)

    # -- watermarks -------------------------------------------------------------------------
    def watermark(self, name: str) -> str | None:
        rows = self._query("SELECT value FROM watermarks WHERE name = ?", [name])
        return rows[0]["value"] if rows else None

    # -- resume claims -----------------------------------------------------------------------------
    def claim_resume(self, run_id: str, by_run: str, lease: float = 60.0) -> str | None:
        """Record that ``by_run`` (this process) resumes ``run_id``; ``None`` if it may, else the run already doing so.

        A claim holds while its process lives (this host) or, from another host, until ``lease``
        seconds after its run's last heartbeat (its claim time before the run's first row).
        """
        now = time.time()
        with self._transaction() as cur:
            if self._sql("?") == "%s":  # PostgreSQL: one claimer at a time (SQLite: BEGIN IMMEDIATE already is)
                cur.execute("LOCK TABLE resumes IN SHARE ROW EXCLUSIVE MODE")
            cur.execute(self._sql("SELECT by_run, host, pid, pid_started_at, at FROM resumes WHERE run_id = ?"), (run_id,))
            held = cur.fetchone()
            if held is not None and held[0] != by_run:
                cur.execute(self._sql("SELECT status, heartbeat_at FROM runs WHERE run_id = ?"), (held[0],))
                claimer = cur.fetchone()
                if _claim_alive(held, claimer, now, lease):
                    return str(held[0])
            cur.execute(
                self._sql(
                    "INSERT INTO resumes (run_id, by_run, host, pid, pid_started_at, at) VALUES (?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (run_id) DO UPDATE SET by_run = excluded.by_run, host = excluded.host, pid = excluded.pid, "
                    "pid_started_at = excluded.pid_started_at, at = excluded.at"
                ),
                (run_id, by_run, _HOST, os.getpid(), _own_start(), now),
            )
        return None

    def watermark_record(self, name: str) -> dict[str, Any] | None:
        """The committed watermark ``name`` with when and by which run it was set, or ``None``."""
        rows = self._query("SELECT name, value, updated_at, run_id FROM watermarks WHERE name = ?", [name])
        return rows[0] if rows else None

    def propose_watermark(self, name: str, value: str, run_id: str) -> None:
        with self._transaction() as cur:
            cur.execute(
                self._sql(
                    "INSERT INTO pending_watermarks (name, run_id, value, proposed_at) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (name, run_id) DO UPDATE SET value = excluded.value, proposed_at = excluded.proposed_at"
                ),
                (name, run_id, value, time.time()),
            )

    def set_watermark(self, name: str, value: str, run_id: str | None) -> None:
        with self._transaction() as cur:
            self._set_watermark(cur, name, value, run_id)

    def _set_watermark(self, cur: Any, name: str, value: str, run_id: str | None) -> None:
        cur.execute(
            self._sql(
                "INSERT INTO watermarks (name, value, updated_at, run_id) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at, "
                "run_id = excluded.run_id"
            ),
            (name, value, time.time(), run_id),
        )

    def commit_watermarks(self, run_id: str) -> list[str]:
        """Commit every watermark ``run_id`` proposed (the run succeeded); returns their names."""
        with self._transaction() as cur:
            cur.execute(self._sql("SELECT name, value FROM pending_watermarks WHERE run_id = ?"), (run_id,))
            rows = cur.fetchall()
            for name, value in rows:
                self._set_watermark(cur, name, value, run_id)
            cur.execute(self._sql("DELETE FROM pending_watermarks WHERE run_id = ?"), (run_id,))
        return [name for name, _ in rows]

    def discard_watermarks(self, run_id: str) -> None:
        with self._transaction() as cur:
            cur.execute(self._sql("DELETE FROM pending_watermarks WHERE run_id = ?"), (run_id,))

    def reset_watermarks(self, name: str | None = None) -> int:
        with self._transaction() as cur:
            if name is None:
                cur.execute("DELETE FROM watermarks")
            else:
                cur.execute(self._sql("DELETE FROM watermarks WHERE name = ?"), (name,))
            return int(cur.rowcount)

    def watermarks(self) -> list[dict[str, Any]]:
        return self._query("SELECT name, value, updated_at, run_id FROM watermarks ORDER BY name")

    def pending_watermarks(self) -> list[dict[str, Any]]:
        return self._query("SELECT name, value, run_id, proposed_at FROM pending_watermarks ORDER BY name, proposed_at")

    # -- runs parked while the store could not be written -------------------------------------
    def import_parked(self, folder: Path) -> int:
        """Write the batches parked in ``folder`` (``*.json``) into the store; returns how many."""
        if not folder.is_dir():
            return 0
        done = 0
        for file in sorted(folder.glob("*.json")):
            claimed = file.with_suffix(f".importing-{os.getpid()}")
            try:
                file.rename(claimed)  # one process imports it, not every process that opens the store now
            except OSError:
                continue
            try:
                raw = json.loads(claimed.read_text(encoding="utf-8"))
                self.write({k: [tuple(r) for r in v] for k, v in raw.items() if k in _WRITES or k in TABLE_COLUMNS})
            except Exception as exc:  # unreadable, locked, or not a batch: keep the file for a later try
                log.warning("bubbles: could not import the parked run %s: %s", file, exc)
                claimed.rename(file)
                continue
            claimed.unlink()
            done += 1
        return done

    # -- lineage (schema version 2) ---------------------------------------------------------------
    def lineage(
        self,
        run_id: str | None = None,
        *,
        namespace: str | None = None,
        name: str | None = None,
        inputs: bool = False,
    ) -> list[dict[str, Any]]:
        """Lineage edges: those of a run; or, across runs, those into the dataset ``namespace``/``name``
        (what it came from), or with ``inputs=True`` those out of it (what was made from it)."""
        if run_id is not None:
            return self._query("SELECT * FROM lineage WHERE run_id = ? ORDER BY at, namespace, name, field", [run_id])
        side = "input_" if inputs else ""
        return self._query(
            f"SELECT * FROM lineage WHERE {side}namespace = ? AND {side}name = ? ORDER BY at", [namespace, name]
        )

    def dataset_names(self, like: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Distinct datasets recorded (read, written, or in lineage), optionally whose name contains ``like``."""
        where, args = ("WHERE name LIKE ?", [f"%{like}%"]) if like else ("", [])
        return self._query(
            f"SELECT namespace, name, MAX(at) AS last_at FROM (SELECT namespace, name, at FROM datasets UNION ALL "
            f"SELECT namespace, name, at FROM lineage UNION ALL SELECT input_namespace, input_name, at FROM lineage) d "
            f"{where} GROUP BY namespace, name ORDER BY last_at DESC LIMIT ?",
            [*args, limit],
        )


def _crash_reason(run: dict[str, Any], now: float) -> str | None:
    """Why a ``running`` run is taken for crashed, or ``None`` if it may still be alive."""
    beat = run["heartbeat_at"] or run["started_at"] or now
    lease = run["lease_seconds"] or 60.0
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(beat))
    if run["host"] == _HOST and run["pid"]:
        alive = _pid_alive(int(run["pid"]), run["pid_started_at"])
        if alive is False:
            return f"The run's process ({run['pid']} on {run['host']}) is gone; its last heartbeat was at {when}."
        if alive is True:
            return None
    if now - beat > lease:
        return (
            f"No heartbeat from the run since {when} ({now - beat:.0f} s, more than its lease of {lease:.0f} s): "
            f"its process on {run['host']} was killed or lost."
        )
    return None


def _claim_alive(held: tuple[Any, ...], claimer: tuple[Any, ...] | None, now: float, lease: float) -> bool:
    """Whether a resume claim ``(by_run, host, pid, pid_started_at, at)`` still holds (see ``claim_resume``)."""
    _by_run, host, pid, pid_started_at, at = held
    if claimer is not None and claimer[0] != "running":
        return False  # the resuming run ended
    if host == _HOST and pid:
        return _pid_alive(int(pid), pid_started_at) is not False
    beat = (claimer[1] if claimer is not None else None) or at
    return bool(now - beat <= lease)


def _own_start() -> float | None:
    try:
        import psutil

        return float(psutil.Process(os.getpid()).create_time())
    except Exception:
        return None


def _pid_alive(pid: int, started_at: float | None) -> bool | None:
    """Whether process ``pid`` (started at ``started_at``) still lives; ``None`` if that cannot be told."""
    try:
        import psutil

        proc = psutil.Process(pid)
        if started_at is not None and abs(proc.create_time() - started_at) > 2.0:
            return False  # that pid now belongs to another process
        return proc.status() != psutil.STATUS_ZOMBIE
    except ImportError:
        return None
    except Exception:  # NoSuchProcess, AccessDenied...
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return None
        return None

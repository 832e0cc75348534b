"""Run history: every run, task attempt, metric, error and captured log, in a local SQLite file.

The store lives at ``$BUBBLES_HOME/history.db`` (default ``.bubbles/history.db``), in WAL mode so
that several runs (and readers such as ``bubbles runs``) can use it at once; only the process
that drives a run writes (worker processes report through the runner's events), in batches.

:class:`RunRecorder` is the hook that writes a run; it is on for every run unless
``BUBBLES_HISTORY=0``. :class:`HistoryStore` reads and writes the file.

Nothing is lost: when the database cannot be written (locked past the timeout, corrupt, disk
full), the recorder keeps the rows and retries; if it still cannot at the end of the run it
writes them to ``history-pending/RUN_ID.json`` next to the database and warns, and the next
:class:`HistoryStore` that opens a healthy database imports them. A database written by an older
bubbles is migrated in place (``PRAGMA user_version``); one from a newer bubbles, or a corrupt
one, gives a :class:`HistoryError` saying what to do.

Tables: ``runs``, ``attempts`` (one row per task attempt, with the built-in metrics as
columns), ``metrics`` (custom metrics), ``logs``, ``resources`` (CPU and memory samples of the
run's process tree) and ``profiles``.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sqlite3
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from queue import Empty, SimpleQueue
from typing import Any

from .._errors import BubblesError
from .._secrets import mask

__all__ = ["HistoryError", "HistoryStore", "RunRecorder", "history_path"]

log = logging.getLogger("bubbles")

BUILTIN = ("execution_time", "cpu_time", "peak_memory", "rows_in", "rows_out", "bytes_in", "bytes_out")
_BUILTIN_SET = frozenset(BUILTIN)
ATTEMPT_COLUMNS = (
    "run_id",
    "task",
    "grp",
    "attempt",
    "status",
    "started_at",
    "ended_at",
    "duration",
    "worker",
    *BUILTIN,
    "error",
    "traceback",
)

# Each entry upgrades the schema from version i to i + 1. Never edit a released entry: add one.
MIGRATIONS: tuple[str, ...] = (
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
)
SCHEMA_VERSION = len(MIGRATIONS)


class HistoryError(BubblesError):
    """The run-history database cannot be used (locked, corrupt, or from a newer bubbles)."""


def history_path() -> Path:
    """``$BUBBLES_HOME/history.db``, default ``./.bubbles/history.db``."""
    home = os.environ.get("BUBBLES_HOME")
    return (Path(home) if home else Path.cwd() / ".bubbles") / "history.db"


def _translate(exc: sqlite3.Error, path: Path) -> HistoryError:
    text = str(exc)
    if "locked" in text or "busy" in text:
        return HistoryError(
            f"The run-history database {path} is locked by another process ({text}) and stayed locked past the "
            "timeout. Wait for the other run or command to finish, or point BUBBLES_HOME elsewhere.",
            source=str(path),
            transient=True,
        )
    if "not a database" in text or "malformed" in text or "corrupt" in text:
        return HistoryError(
            f"The run-history database {path} is corrupt ({text}). Move it aside (mv {path} {path}.corrupt); "
            "bubbles creates a new one on the next run. Runs that could not be written are kept in "
            f"{path.parent / 'history-pending'} and imported then.",
            source=str(path),
            transient=False,
        )
    return HistoryError(f"The run-history database {path} failed: {text}.", source=str(path))


class HistoryStore:
    """The run-history database. Open one per thread; cheap to open.

    Example:
        >>> store = HistoryStore()                      # $BUBBLES_HOME/history.db  # doctest: +SKIP
        >>> [r["run_id"] for r in store.runs(limit=5)]  # doctest: +SKIP
        ['20261122-031502-4f9a2c', ...]
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *, timeout: float = 30.0, create: bool = True) -> None:
        self.path = Path(path) if path is not None else history_path()
        if not create and not self.path.exists():
            raise HistoryError(
                f"No run history at {self.path}: nothing has run here yet (or set BUBBLES_HOME).", source=str(self.path)
            )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._write_lock = threading.Lock()
        try:
            self.conn = sqlite3.connect(self.path, timeout=timeout, isolation_level=None, check_same_thread=False)
            self.conn.row_factory = sqlite3.Row
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self._migrate()
        except sqlite3.Error as exc:
            raise _translate(exc, self.path) from exc
        self._import_pending()

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- schema -----------------------------------------------------------------------------
    def _migrate(self) -> None:
        version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise HistoryError(
                f"The run-history database {self.path} has schema version {version}, written by a newer bubbles "
                f"(this one knows up to {SCHEMA_VERSION}). Upgrade bubbles (pip install -U pybubbles), or set "
                "BUBBLES_HOME to use another directory.",
                source=str(self.path),
            )
        if version == SCHEMA_VERSION:
            return
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            version = self.conn.execute("PRAGMA user_version").fetchone()[0]  # another process may have migrated
            for i in range(version, SCHEMA_VERSION):
                for statement in MIGRATIONS[i].split(";"):
                    if statement.strip():
                        self.conn.execute(statement)
            self.conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

    # -- writing ----------------------------------------------------------------------------
    def write(self, batch: dict[str, list[Any]]) -> None:
        """Write one batch of rows (``runs_start``, ``attempts``, ``metrics``, ``logs``, ... lists) in one transaction."""
        try:
            with self._write_lock:
                self._write_batch(batch)
        except sqlite3.Error as exc:
            raise _translate(exc, self.path) from exc

    def _write_batch(self, batch: dict[str, list[Any]]) -> None:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            self._write(batch)
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

    def _write(self, batch: dict[str, list[Any]]) -> None:
        c = self.conn
        if batch.get("runs_start"):
            c.executemany(
                "INSERT OR REPLACE INTO runs (run_id, workflow, status, executor, started_at, tasks_total, params, host, pid,"
                " argv) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                batch["runs_start"],
            )
        if batch.get("attempts"):
            marks = ", ".join("?" * len(ATTEMPT_COLUMNS))
            c.executemany(f"INSERT OR REPLACE INTO attempts ({', '.join(ATTEMPT_COLUMNS)}) VALUES ({marks})", batch["attempts"])
        if batch.get("metrics"):
            c.executemany("INSERT INTO metrics (run_id, task, attempt, name, value) VALUES (?, ?, ?, ?, ?)", batch["metrics"])
        if batch.get("logs"):
            c.executemany(
                "INSERT INTO logs (run_id, task, attempt, seq, time, level, logger, message) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                batch["logs"],
            )
        if batch.get("profiles"):
            c.executemany("INSERT INTO profiles (run_id, task, attempt, format, data) VALUES (?, ?, ?, ?, ?)", batch["profiles"])
        if batch.get("resources"):
            c.executemany(
                "INSERT INTO resources (run_id, time, cpu_percent, rss, processes) VALUES (?, ?, ?, ?, ?)", batch["resources"]
            )
        if batch.get("runs_end"):
            c.executemany(
                "UPDATE runs SET status = ?, ended_at = ?, duration = ?, tasks_total = ?, error = ? WHERE run_id = ?",
                batch["runs_end"],
            )

    def _import_pending(self) -> None:
        pending = self.path.parent / "history-pending"
        if not pending.is_dir():
            return
        for file in sorted(pending.glob("*.json")):
            try:
                batch = json.loads(file.read_text(encoding="utf-8"))
                self.write(batch)
            except (OSError, ValueError, HistoryError) as exc:
                log.warning("bubbles: could not import pending run history %s: %s", file, exc)
                continue
            file.unlink()

    # -- reading ----------------------------------------------------------------------------
    def _query(self, sql: str, args: Iterable[Any] = ()) -> list[dict[str, Any]]:
        try:
            return [dict(row) for row in self.conn.execute(sql, tuple(args))]
        except sqlite3.Error as exc:
            raise _translate(exc, self.path) from exc

    def runs(self, limit: int = 20, workflow: str | None = None) -> list[dict[str, Any]]:
        """The most recent runs, newest first (optionally of one workflow)."""
        where, args = ("WHERE workflow = ?", [workflow]) if workflow else ("", [])
        return self._query(f"SELECT * FROM runs {where} ORDER BY started_at DESC LIMIT ?", [*args, limit])

    def run(self, run_id: str) -> dict[str, Any]:
        """One run by id, a unique prefix or suffix of one (e.g. the random ``4f9a2c``), or ``last``.

        Raises :class:`HistoryError` naming the choices when there is none or several.
        """
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
            raise HistoryError(f"No run {run_id!r} in {self.path}. `bubbles runs` lists the recent ones.", run_id=run_id)
        raise HistoryError(
            f"Run id {run_id!r} is ambiguous in {self.path}: "
            f"{', '.join(r['run_id'] for r in rows[:5])} ... Give more characters.",
            run_id=run_id,
        )

    def attempts(self, run_id: str) -> list[dict[str, Any]]:
        """Every attempt of a run, in start order; custom metrics merged into each row."""
        rows = self._query(
            "SELECT * FROM attempts WHERE run_id = ? ORDER BY COALESCE(started_at, ended_at), task, attempt", [run_id]
        )
        extra: dict[tuple[str, int], dict[str, float]] = {}
        for m in self._query("SELECT task, attempt, name, value FROM metrics WHERE run_id = ?", [run_id]):
            extra.setdefault((m["task"], m["attempt"]), {})[m["name"]] = m["value"]
        for row in rows:
            row.update(extra.get((row["task"], row["attempt"]), {}))
        return rows

    def tasks(self, run_id: str) -> list[dict[str, Any]]:
        """One row per task: its last attempt, with ``attempts`` the number of attempts made."""
        last: dict[str, dict[str, Any]] = {}
        for row in self.attempts(run_id):
            prev = last.get(row["task"])
            if prev is None or row["attempt"] >= prev["attempt"]:
                last[row["task"]] = row
        for row in last.values():
            row["attempts"] = row["attempt"]
        return list(last.values())

    def failed_counts(self, run_ids: list[str]) -> dict[str, int]:
        """``{run_id: number of tasks that failed}`` for the runs given (runs with none are left out)."""
        if not run_ids:
            return {}
        marks = ", ".join("?" * len(run_ids))
        rows = self._query(
            f"SELECT run_id, COUNT(DISTINCT task) AS n FROM attempts WHERE status = 'failed' "
            f"AND run_id IN ({marks}) GROUP BY run_id",
            run_ids,
        )
        return {r["run_id"]: r["n"] for r in rows}

    def logs(self, run_id: str, task: str | None = None) -> list[dict[str, Any]]:
        if task is None:
            return self._query("SELECT * FROM logs WHERE run_id = ? ORDER BY time, seq", [run_id])
        return self._query("SELECT * FROM logs WHERE run_id = ? AND task = ? ORDER BY time, seq", [run_id, task])

    def resources(self, run_id: str) -> list[dict[str, Any]]:
        return self._query("SELECT time, cpu_percent, rss, processes FROM resources WHERE run_id = ? ORDER BY time", [run_id])

    def profiles(self, run_id: str) -> list[dict[str, Any]]:
        return self._query("SELECT task, attempt, format, data FROM profiles WHERE run_id = ? ORDER BY task, attempt", [run_id])


def _error_text(error: BaseException | None) -> str | None:
    return None if error is None else mask(f"{type(error).__name__}: {error}")


class RunRecorder:
    """Hook that writes a run to the history store, in batches, losing nothing.

    Args:
        path: the database (default :func:`history_path`).
        resources: a :class:`~bubbles.observe.resources.ResourceSampler` whose samples to store.
        flush_every: seconds between batch writes while the run goes.
        timeout: seconds to wait for a database locked by another writer (``BUBBLES_HISTORY_TIMEOUT``,
            default 30) before keeping the rows for later.

    Example:
        >>> from bubbles import Workflow
        >>> wf = Workflow("kept", hooks=[RunRecorder("/tmp/history.db")])  # doctest: +SKIP
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        resources: Any = None,
        flush_every: float = 1.0,
        batch_size: int = 2000,
        timeout: float | None = None,
    ) -> None:
        self.path = Path(path) if path is not None else history_path()
        self.timeout = timeout if timeout is not None else float(os.environ.get("BUBBLES_HISTORY_TIMEOUT", "30"))
        self.resources = resources
        self.flush_every = flush_every
        self.batch_size = batch_size
        self._batch: dict[str, list[Any]] = self._empty()
        self._pending_rows = 0
        self._batch_lock = threading.Lock()
        self._failed: HistoryError | None = None
        self._queue: SimpleQueue[dict[str, list[Any]] | None] = SimpleQueue()
        self._writer: threading.Thread | None = None
        self._leftover: dict[str, list[Any]] = self._empty()
        self._run_id: str | None = None

    @staticmethod
    def _empty() -> dict[str, list[Any]]:
        return {"runs_start": [], "attempts": [], "metrics": [], "logs": [], "profiles": [], "resources": [], "runs_end": []}

    # -- hook API ---------------------------------------------------------------------------
    def on_run_start(
        self,
        *,
        run_id: str,
        workflow: str,
        tasks: list[str],
        executor: str,
        started_at: float,
        params: dict[str, Any] | None = None,
        **future_kwargs: Any,
    ) -> None:
        params_text = mask(json.dumps(params or {}, default=repr))
        self._batch["runs_start"].append(
            (
                run_id,
                workflow,
                "running",
                executor,
                started_at,
                len(tasks),
                params_text,
                socket.gethostname(),
                os.getpid(),
                mask(" ".join(sys.argv)),
            )
        )
        self._run_id = run_id
        # the writer thread does the SQL, so the scheduler loop only appends tuples; not a daemon:
        # the interpreter waits for it at exit rather than lose rows
        self._writer = threading.Thread(target=self._write_loop, name=f"bubbles-history-{run_id}", daemon=False)
        self._writer.start()
        self.flush()  # a run is visible (as running) from its first moment

    def on_task_retry(
        self,
        *,
        run_id: str,
        task: str,
        attempt: int,
        error: BaseException | None = None,
        traceback: str = "",
        metrics: dict[str, float] | None = None,
        duration: float | None = None,
        group: str | None = None,
        logs: list[dict[str, Any]] | None = None,
        worker: str = "",
        **future_kwargs: Any,
    ) -> None:
        ended = time.time()
        started = ended - duration if duration is not None else None
        self._add(run_id, task, group, attempt, "retrying", started, ended, duration, worker, metrics, error, traceback, logs)

    def on_task_end(
        self,
        *,
        run_id: str,
        task: str,
        attempt: int,
        status: str,
        started_at: float | None = None,
        ended_at: float | None = None,
        duration: float | None = None,
        metrics: dict[str, float] | None = None,
        worker: str = "",
        error: BaseException | None = None,
        traceback: str = "",
        group: str | None = None,
        logs: list[dict[str, Any]] | None = None,
        **future_kwargs: Any,
    ) -> None:
        if attempt > 1 and duration is not None and ended_at is not None:
            started_at = ended_at - duration  # the runner's started_at is the first attempt's
        self._add(run_id, task, group, attempt, status, started_at, ended_at, duration, worker, metrics, error, traceback, logs)

    def on_run_end(
        self, *, run_id: str, status: str, ended_at: float, duration: float, result: Any = None, **future_kwargs: Any
    ) -> None:
        error = _error_text(getattr(result, "error", None))
        total = len(result.tasks) if result is not None else None
        with self._batch_lock:
            if self.resources is not None:
                self._batch["resources"].extend((run_id, *s) for s in self.resources.samples)
            self._batch["runs_end"].append((status, ended_at, duration, total, error, run_id))
        self.flush()
        self._queue.put(None)
        if self._writer is not None:
            self._writer.join()  # the run is on disk (or parked) when wf.run() returns
            self._writer = None

    # -- buffering --------------------------------------------------------------------------
    def _add(
        self,
        run_id: str,
        task: str,
        group: str | None,
        attempt: int,
        status: str,
        started: float | None,
        ended: float | None,
        duration: float | None,
        worker: str,
        metrics: dict[str, float] | None,
        error: BaseException | None,
        tb: str,
        logs: list[dict[str, Any]] | None,
    ) -> None:
        m = metrics or {}
        with self._batch_lock:
            batch = self._batch
            batch["attempts"].append(
                (
                    run_id,
                    task,
                    group,
                    attempt,
                    status,
                    started,
                    ended,
                    duration,
                    worker,
                    m.get("execution_time"),
                    m.get("cpu_time"),
                    m.get("peak_memory"),
                    m.get("rows_in"),
                    m.get("rows_out"),
                    m.get("bytes_in"),
                    m.get("bytes_out"),
                    _error_text(error),
                    mask(tb) if tb else None,
                )
            )
            if m.keys() - _BUILTIN_SET:
                batch["metrics"].extend((run_id, task, attempt, k, v) for k, v in m.items() if k not in _BUILTIN_SET)
            if logs:
                for seq, entry in enumerate(logs):
                    kind = entry.get("kind", "log")
                    if kind == "profile":
                        batch["profiles"].append((run_id, task, attempt, entry.get("format", "text"), entry.get("data", "")))
                    elif kind == "log":
                        message = entry.get("message", "")
                        if entry.get("exc"):
                            message = f"{message}\n{entry['exc']}"
                        batch["logs"].append(
                            (
                                run_id,
                                task,
                                attempt,
                                seq,
                                entry.get("time"),
                                entry.get("level"),
                                entry.get("logger"),
                                mask(message),
                            )
                        )
            self._pending_rows += 1
            full = self._pending_rows >= self.batch_size
        if full:
            self.flush()

    def _take(self) -> dict[str, list[Any]]:
        with self._batch_lock:
            batch, self._batch = self._batch, self._empty()
            self._pending_rows = 0
        return batch

    def flush(self) -> None:
        """Hand what is buffered to the writer thread (which also takes it every ``flush_every`` seconds)."""
        batch = self._take()
        if self._writer is None:  # used without on_run_start: write here
            self._leftover = _merge(self._leftover, batch)
            self._write_leftover()
        else:
            self._queue.put(batch)

    def _write_loop(self) -> None:
        while True:
            try:
                batch = self._queue.get(timeout=self.flush_every)
            except Empty:  # a quiet spell (e.g. one long task): write what finished so far
                batch = self._take()
                if not any(batch.values()):
                    continue
            if batch is None:
                break
            self._leftover = _merge(self._leftover, batch)
            if self._failed is None:  # after a failure, try again only at the end: each try may wait the timeout
                self._write_leftover()
        if any(self._leftover.values()):
            self._write_leftover()
            if any(self._leftover.values()):
                self._park(self._run_id)

    def _write_leftover(self) -> None:
        """Write the rows not yet written; on failure keep them, in order, for the next try."""
        try:
            _shared_store(self.path, self.timeout).write(self._leftover)
        except HistoryError as exc:
            _drop_shared_store(self.path)
            if self._failed is None:
                log.warning("bubbles: run history not written yet (%s); will retry", exc)
            self._failed = exc
            return
        self._leftover = self._empty()
        self._failed = None

    def _park(self, run_id: str | None) -> None:
        folder = self.path.parent / "history-pending"
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{run_id or time.strftime('%Y%m%d-%H%M%S')}.json"
        tmp = target.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._leftover, default=str), encoding="utf-8")
        tmp.replace(target)
        self._leftover = self._empty()
        log.warning(
            "bubbles: the run history database %s could not be written (%s); run %s was saved to %s and "
            "will be imported into the database once it can be opened.",
            self.path,
            self._failed,
            run_id,
            target,
        )


def _merge(into: dict[str, list[Any]], batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
    for key, rows in batch.items():
        if rows:
            into[key].extend(rows)
    return into


# One connection per database and process, shared by the recorders of concurrent runs: opening
# (and, on the last close, checkpointing) a WAL database costs tens of milliseconds per run.
_stores: dict[tuple[int, Path], HistoryStore] = {}
_stores_lock = threading.Lock()


def _shared_store(path: Path, timeout: float) -> HistoryStore:
    key = (os.getpid(), path)
    with _stores_lock:
        store = _stores.get(key)
        if store is None:
            store = _stores[key] = HistoryStore(path, timeout=timeout)
        return store


def _drop_shared_store(path: Path) -> None:
    with _stores_lock:
        store = _stores.pop((os.getpid(), path), None)
    if store is not None:
        try:
            store.close()
        except sqlite3.Error:
            pass

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

Tables: ``runs`` (one row per run), ``attempt_chunks`` (the task attempts of a run, one row per
write, each the columns of ``ATTEMPT_COLUMNS`` packed by :mod:`bubbles.observe._chunks`: the
built-in metrics are columns), ``metrics`` (custom metrics), ``logs``, ``resources`` (CPU and
memory samples of the run's process tree) and ``profiles``. Attempts go in chunks rather than a
row each because SQLite spends 4-8 µs per row inserted: as much as the runner spends per task
on a run of tiny tasks. Read them with :meth:`HistoryStore.attempts` (or ``bubbles show``); the
``attempts`` table holds the rows of runs written by bubbles before schema version 3.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sqlite3
import sys
import threading
from collections.abc import Iterable
from itertools import repeat
from pathlib import Path
from typing import Any

from .._errors import BubblesError, describe_error
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
    # 2 -> 3: attempts written in chunks (bubbles.observe._chunks) instead of one row each
    """
    CREATE TABLE attempt_chunks (run_id TEXT NOT NULL, seq INTEGER NOT NULL, n INTEGER NOT NULL, data BLOB NOT NULL,
                                 PRIMARY KEY (run_id, seq));
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


class HistoryError(BubblesError):
    """The run-history database cannot be used (locked, corrupt, or from a newer bubbles)."""


def history_path() -> Path:
    """``history.db`` in the bubbles home (the ``home`` setting, ``BUBBLES_HOME``; default ``./.bubbles``)."""
    from .._settings import current_settings

    return current_settings().home_path() / "history.db"


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
            # no checkpoint inside a commit (SQLite's default after 1000 pages): a run's last write
            # would pay for it while run() waits; writers call checkpoint_if_due() afterwards instead
            self.conn.execute("PRAGMA wal_autocheckpoint=0")
            self._unchecked = 0  # bytes written since the last checkpoint
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
        # what went into the log, roughly: the chunks, ~100 bytes per other row, a page for the commit
        self._unchecked += 4096 + sum(100 * len(rows) for key, rows in batch.items() if key != "attempts")

    def checkpoint_if_due(self, every: int = 4 << 20) -> None:
        """Copy the write-ahead log into the database once ``every`` bytes have been written to it.

        Passive: it never waits for readers or writers of other processes (what it cannot copy now is
        copied next time). Errors are logged, not raised: the log stays valid and keeps every run.
        """
        if self._unchecked < every:
            return
        try:
            with self._write_lock:
                self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            self._unchecked = 0
        except sqlite3.Error as exc:
            log.warning("bubbles: could not checkpoint the run history %s: %s", self.path, exc)

    def _write(self, batch: dict[str, list[Any]]) -> None:
        c = self.conn
        if batch.get("runs_start"):
            c.executemany(
                "INSERT OR REPLACE INTO runs (run_id, workflow, status, executor, started_at, tasks_total, params, host, pid,"
                " argv) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                batch["runs_start"],
            )
        for item in batch.get("attempts") or ():
            # an item is {"run_id": ..., "columns": {column: [values]}}; a row (a list of ATTEMPT_COLUMNS)
            # comes from a run parked by an earlier bubbles
            if not isinstance(item, dict):
                item = {"run_id": item[0], "columns": {k: [v] for k, v in zip(ATTEMPT_COLUMNS[1:], item[1:], strict=True)}}
            run_id, columns = item["run_id"], item["columns"]
            data = _encode(columns)
            (seq,) = c.execute("SELECT COALESCE(MAX(seq), -1) + 1 FROM attempt_chunks WHERE run_id = ?", (run_id,)).fetchone()
            c.execute(
                "INSERT INTO attempt_chunks (run_id, seq, n, data) VALUES (?, ?, ?, ?)",
                (run_id, seq, len(columns["task"]), data),
            )
            self._unchecked += len(data)
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
            claimed = file.with_suffix(f".importing-{os.getpid()}")
            try:
                file.rename(claimed)  # one process imports it, not every process that opens the store now
            except OSError:
                continue
            try:
                batch = json.loads(claimed.read_text(encoding="utf-8"))
                self.write(batch)
            except Exception as exc:  # unreadable, locked, or not a batch: keep the file for a later try
                log.warning("bubbles: could not import pending run history %s: %s", file, exc)
                claimed.rename(file)
                continue
            claimed.unlink()

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

    def _attempt_rows(self, run_id: str) -> list[dict[str, Any]]:
        """The attempts of a run, one row per (task, attempt): the last written wins (a task stopped
        while waiting to retry is written "retrying", then "failed", for the same attempt)."""
        rows = self._query("SELECT * FROM attempts WHERE run_id = ?", [run_id])  # written before schema version 3
        for chunk in self._query("SELECT n, data FROM attempt_chunks WHERE run_id = ? ORDER BY seq", [run_id]):
            rows.extend(_decode(run_id, chunk["data"], chunk["n"]))
        return list({(row["task"], row["attempt"]): row for row in rows}.values())

    def attempts(self, run_id: str) -> list[dict[str, Any]]:
        """Every attempt of a run, in start order; custom metrics merged into each row."""
        rows = self._attempt_rows(run_id)
        rows.sort(key=lambda r: (r["started_at"] or r["ended_at"] or 0.0, r["task"], r["attempt"]))
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
        failed: dict[str, set[str]] = {}
        for r in self._query(f"SELECT run_id, task FROM attempts WHERE status = 'failed' AND run_id IN ({marks})", run_ids):
            failed.setdefault(r["run_id"], set()).add(r["task"])
        for chunk in self._query(f"SELECT run_id, n, data FROM attempt_chunks WHERE run_id IN ({marks})", run_ids):
            try:
                rows = _decode(chunk["run_id"], chunk["data"], chunk["n"])
            except HistoryError as exc:  # one damaged chunk must not hide every run's figures
                log.warning("bubbles: %s", exc)
                continue
            tasks = {row["task"] for row in rows if row["status"] == "failed"}
            if tasks:
                failed.setdefault(chunk["run_id"], set()).update(tasks)
        return {run_id: len(tasks) for run_id, tasks in failed.items()}

    def logs(self, run_id: str, task: str | None = None) -> list[dict[str, Any]]:
        if task is None:
            return self._query("SELECT * FROM logs WHERE run_id = ? ORDER BY time, seq", [run_id])
        return self._query("SELECT * FROM logs WHERE run_id = ? AND task = ? ORDER BY time, seq", [run_id, task])

    def resources(self, run_id: str) -> list[dict[str, Any]]:
        return self._query("SELECT time, cpu_percent, rss, processes FROM resources WHERE run_id = ? ORDER BY time", [run_id])

    def profiles(self, run_id: str) -> list[dict[str, Any]]:
        return self._query("SELECT task, attempt, format, data FROM profiles WHERE run_id = ? ORDER BY task, attempt", [run_id])


_NUMERIC = {"attempt": "i8", "peak_memory": "i8", "rows_in": "i8", "rows_out": "i8", "bytes_in": "i8", "bytes_out": "i8"}
_NUMERIC.update(dict.fromkeys(("started_at", "ended_at", "duration", "execution_time", "cpu_time"), "f8"))
_CHUNK_COLUMNS = [(name, _NUMERIC.get(name, "json")) for name in ATTEMPT_COLUMNS[1:]]  # run_id is the chunk's key


def _encode(columns: dict[str, list[Any]]) -> bytes:
    """Attempts of one run, as columns (``ATTEMPT_COLUMNS`` but ``run_id``), in one chunk (:mod:`bubbles.observe._chunks`)."""
    from ._chunks import encode

    return encode([(name, kind, columns[name]) for name, kind in _CHUNK_COLUMNS])


def _decode(run_id: str, data: bytes, n: int) -> list[dict[str, Any]]:
    from ._chunks import decode

    try:
        rows = decode(data, rows=n)
    except ValueError as exc:
        raise HistoryError(
            f"Attempts of run {run_id} in the run history cannot be read ({exc}): the database is damaged. "
            "Move it aside; bubbles creates a new one on the next run.",
            run_id=run_id,
        ) from exc
    for row in rows:
        row["run_id"] = run_id
    return rows


def _error_text(error: BaseException | None) -> str | None:
    return None if error is None else mask(describe_error(error))


class RunRecorder:
    """Hook that writes runs to the history store, in batches, losing nothing.

    It reads each run through its live view (:mod:`bubbles.engine.live`) on a writer thread of
    that run, every ``flush_every`` seconds and at the end: a run pays nothing per task for being
    recorded, and is on disk (or parked, see the module docstring) when ``run()`` returns. One
    recorder may watch several runs at once (a workflow run from several threads).

    Args:
        path: the database (default :func:`history_path`).
        resources: a :class:`~bubbles.observe.resources.ResourceSampler` whose samples to store.
        flush_every: seconds between batch writes while a run goes.
        timeout: seconds to wait for a database locked by another writer (the ``history_timeout``
            setting, default 30) before keeping the rows for later.

    Example:
        >>> from bubbles import Workflow
        >>> wf = Workflow("kept", hooks=[RunRecorder("/tmp/history.db")])  # doctest: +SKIP
    """

    events = frozenset({"on_run_start", "on_run_end"})

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        resources: Any = None,
        flush_every: float = 1.0,
        timeout: float | None = None,
    ) -> None:
        self.path = Path(path) if path is not None else history_path()
        self.timeout = timeout if timeout is not None else 30.0
        self.resources = resources
        self.flush_every = flush_every
        self._runs: dict[str, _RunWriter] = {}
        self._lock = threading.Lock()

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
        live: Any = None,
        **future_kwargs: Any,
    ) -> None:
        params_text = mask(json.dumps(params or {}, default=repr))
        start = (
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
        writer = _RunWriter(self, run_id, live, start)
        with self._lock:
            self._runs[run_id] = writer
        writer.start()

    def on_run_end(
        self, *, run_id: str, status: str, ended_at: float, duration: float, result: Any = None, **future_kwargs: Any
    ) -> None:
        with self._lock:
            writer = self._runs.pop(run_id, None)
        if writer is None:
            return
        error = _error_text(getattr(result, "error", None))
        # tasks that ran or could have (map items included, the map's own gathering node not)
        total = writer.live.total if writer.live is not None else len(result.tasks) if result is not None else None
        samples = list(self.resources.samples) if self.resources is not None else []
        writer.finish(samples, (status, ended_at, duration, total, error, run_id))


class _RunWriter:
    """The history of one run: reads its journal into batches and writes them, on its own thread."""

    def __init__(self, recorder: RunRecorder, run_id: str, live: Any, start_row: tuple[Any, ...]) -> None:
        self.path, self.timeout, self.flush_every = recorder.path, recorder.timeout, recorder.flush_every
        self.run_id = run_id
        self.live = live
        self.seen = 0
        self.batch: dict[str, list[Any]] = _empty()
        self.batch["runs_start"].append(start_row)
        self.batch_lock = threading.Lock()
        self.leftover: dict[str, list[Any]] = _empty()
        self.failed: BaseException | None = None
        self.stop = threading.Event()
        self.written = threading.Event()  # set once the run is on disk (or parked)
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        # a run is visible (as running) from the first write, after flush_every seconds; not a daemon
        # thread: the interpreter waits for it at exit rather than lose rows
        thread = threading.Thread(target=self.loop, name=f"bubbles-history-{self.run_id}", daemon=False)
        try:
            thread.start()
        except RuntimeError as exc:  # e.g. no more threads: write at the end, on the caller's thread
            log.warning("bubbles: no history writer thread for run %s (%s); writing it at the end", self.run_id, exc)
            return
        self.thread = thread

    def finish(self, samples: list[tuple[Any, ...]], end_row: tuple[Any, ...]) -> None:
        with self.batch_lock:
            self.batch["resources"].extend((self.run_id, *s) for s in samples)
            self.batch["runs_end"].append(end_row)
        self.stop.set()
        if self.thread is not None:
            self.written.wait()  # the run is on disk (or parked) when wf.run() returns
        else:
            self.loop()
        self.live = None

    # -- reading the run --------------------------------------------------------------------
    def read_run(self) -> None:
        """Turn the attempts that ended since the last read into columns.

        Column by column, not a tuple per attempt: a few lists instead of thousands of tuples,
        which would also wake the garbage collector over the whole run's objects.
        """
        live = self.live
        if live is None:
            return
        entries = live.attempts
        n = len(entries)
        if n == self.seen:
            return
        run_id = self.run_id
        new = entries[self.seen : n]
        self.seen = n
        ms = [e.metrics or _NO_METRICS for e in new]
        get = dict.get
        columns: dict[str, list[Any]] = {
            "task": [e.task for e in new],
            "grp": [e.group for e in new],
            "attempt": [e.attempt for e in new],
            "status": [e.status for e in new],
            "started_at": [e.started_at for e in new],
            "ended_at": [e.ended_at for e in new],
            "duration": [e.duration for e in new],
            "worker": [e.worker for e in new],
        }
        for name in BUILTIN:
            columns[name] = list(map(get, ms, repeat(name)))
        errors = [e.error for e in new]
        if errors.count(None) != len(errors):
            errors = [None if error is None else _error_text(error) for error in errors]
        columns["error"] = errors
        tracebacks = [e.traceback or None for e in new]
        if tracebacks.count(None) != len(tracebacks):
            tracebacks = [None if tb is None else mask(tb) for tb in tracebacks]
        columns["traceback"] = tracebacks
        extra: dict[str, list[Any]] = {"metrics": [], "logs": [], "profiles": []}
        if not _BUILTIN_SET.issuperset(set().union(*ms)):  # custom metrics (log_metric) somewhere: rare
            for e, m in zip(new, ms, strict=True):
                if not _BUILTIN_SET.issuperset(m):
                    extra["metrics"].extend((run_id, e.task, e.attempt, k, v) for k, v in m.items() if k not in _BUILTIN_SET)
        for e in [e for e in new if e.logs]:
            _log_rows(extra, run_id, e.task, e.attempt, e.logs)
        with self.batch_lock:
            self.batch["attempts"].append({"run_id": run_id, "columns": columns})
            for key, rows in extra.items():
                self.batch[key].extend(rows)

    def take(self) -> dict[str, list[Any]]:
        with self.batch_lock:
            batch, self.batch = self.batch, _empty()
        return batch

    def loop(self) -> None:
        try:
            while True:
                # True once the run has ended (every attempt is then in the journal): write what is left and stop.
                # The first write waits too: a run that lasts under flush_every is written once, at its end.
                last = self.stop.wait(self.flush_every)
                try:
                    self.read_run()
                except Exception as exc:  # a bug here must not lose the run: what was read is kept
                    log.warning("bubbles: could not read run %s for its history: %r", self.run_id, exc, exc_info=True)
                self.leftover = _merge(self.leftover, self.take())
                if any(self.leftover.values()) and (self.failed is None or last):
                    # after a failure, try again only at the end: each try may wait the timeout
                    self.write_leftover()
                if self.failed is None and not last:
                    _checkpoint(self.path)  # a long run keeps the log short
                if last:
                    break
            if any(self.leftover.values()):
                self.park()
        finally:
            self.written.set()
        if self.failed is None:  # after run() has returned: the checkpoint does not delay it
            _checkpoint(self.path)

    def write_leftover(self) -> None:
        """Write the rows not yet written; on failure keep them, in order, for the next try."""
        try:
            _shared_store(self.path, self.timeout).write(self.leftover)
        except Exception as exc:  # HistoryError (locked, corrupt, disk full), or rows it cannot take
            _drop_shared_store(self.path)
            if self.failed is None:
                log.warning("bubbles: run history not written yet (%s); will retry", exc)
            self.failed = exc
            return
        self.leftover = _empty()
        self.failed = None

    def park(self) -> None:
        folder = self.path.parent / "history-pending"
        target = folder / f"{self.run_id}.json"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.leftover, default=str), encoding="utf-8")
            tmp.replace(target)
        except OSError as exc:
            log.error("bubbles: run %s could not be written to the run history nor to %s: %s", self.run_id, target, exc)
            return
        self.leftover = _empty()
        log.warning(
            "bubbles: the run history database %s could not be written (%s); run %s was saved to %s and "
            "will be imported into the database once it can be opened.",
            self.path,
            self.failed,
            self.run_id,
            target,
        )


def _empty() -> dict[str, list[Any]]:
    return {"runs_start": [], "attempts": [], "metrics": [], "logs": [], "profiles": [], "resources": [], "runs_end": []}


def _checkpoint(path: Path) -> None:
    with _stores_lock:
        store = _stores.get((os.getpid(), path))
    if store is not None:
        store.checkpoint_if_due()


_NO_METRICS: dict[str, float] = {}


def _log_rows(batch: dict[str, list[Any]], run_id: str | None, task: str, attempt: int, logs: list[dict[str, Any]]) -> None:
    """The captured log records and profiles of one attempt, as ``logs`` and ``profiles`` rows."""
    for seq, entry in enumerate(logs):
        kind = entry.get("kind", "log")
        if kind == "profile":
            batch["profiles"].append((run_id, task, attempt, entry.get("format", "text"), entry.get("data", "")))
        elif kind == "log":
            message = entry.get("message", "")
            if entry.get("exc"):
                message = f"{message}\n{entry['exc']}"
            batch["logs"].append(
                (run_id, task, attempt, seq, entry.get("time"), entry.get("level"), entry.get("logger"), mask(message))
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

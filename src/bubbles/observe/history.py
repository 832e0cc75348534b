"""Recording runs in the run store (:mod:`bubbles.store`): the observer behind ``bubbles runs``.

:class:`RunRecorder` is the hook that writes a run; it is on for every run unless the
``history`` setting is off. A run is recorded from its first instant: ``on_run_start`` writes
its ``runs`` row (status ``running``) before any task starts, so a kill at any moment leaves a
row, and marks runs whose process is gone ``crashed`` (:meth:`RunStore.reap`). From then on a
writer thread of that run reads its journal (:mod:`bubbles.engine.live`) every second and writes
what ended — one ``attempts`` row per attempt, metrics, log records, typed events, datasets —
in one transaction, with the run's heartbeat; at the end it writes the rest and the final
status, and ``run()`` returns once the run is on disk. A run pays nothing per task for being
recorded.

Nothing is lost: when the store cannot be written (locked past the ``history_timeout`` setting,
corrupt, unreachable, read-only), the writer keeps the rows and retries; if it still cannot at
the end of the run it parks them in ``history-pending/RUN_ID.json`` in the home and warns, and
the next reader that opens a healthy store imports them. Text is masked with the run's secrets
before it is written.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .._errors import describe_error
from .._secrets import mask as mask_here
from ..store import Batch, StoreError, drop_shared_store, empty_batch, parked_folder, shared_store

__all__ = ["HistoryError", "RunRecorder", "history_path"]

log = logging.getLogger("bubbles")

HistoryError = StoreError  # (the name errors of the run history had before the store)
BUILTIN = ("execution_time", "cpu_time", "peak_memory", "rows_in", "rows_out", "bytes_in", "bytes_out")
_BUILTIN_SET = frozenset(BUILTIN)
_NO_METRICS: dict[str, float] = {}


def history_path() -> Path:
    """The default SQLite store: ``history.db`` in the bubbles home (see :mod:`bubbles._settings`)."""
    from .._settings import current_settings

    return current_settings().home_path() / "history.db"


def _process_started_at() -> float | None:
    try:
        import psutil

        return float(psutil.Process().create_time())
    except Exception:
        return None


class RunRecorder:
    """Hook that writes runs to the run store, losing nothing (see the module docstring).

    Args:
        location: the store (a SQLite file or a ``postgresql://`` URL; default from the settings).
        resources: a :class:`~bubbles.observe.resources.ResourceSampler` whose samples to store.
        flush_every: seconds between writes (and heartbeats) while a run goes.
        timeout: seconds to wait for a store locked by another writer before keeping rows for later.
        lease: seconds without a heartbeat after which readers take the run for crashed.

    Example:
        >>> from bubbles import Workflow
        >>> wf = Workflow("kept", hooks=[RunRecorder("/tmp/history.db")])  # doctest: +SKIP
    """

    events = frozenset({"on_run_start", "on_run_end"})

    def __init__(
        self,
        location: str | os.PathLike[str] | None = None,
        *,
        resources: Any = None,
        flush_every: float = 1.0,
        timeout: float = 30.0,
        lease: float = 60.0,
    ) -> None:
        self.location = str(location) if location is not None else None
        self.timeout = timeout
        self.resources = resources
        self.flush_every = flush_every
        self.lease = lease
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
        settings: Any = None,
        mask: Callable[[str], str] | None = None,
        **future_kwargs: Any,
    ) -> None:
        from .._version import __version__
        from ..store import store_location

        mask = mask or mask_here
        location = self.location or store_location(settings)
        row = (
            run_id,
            workflow,
            "running",
            started_at,
            None,
            None,
            started_at,
            self.lease,
            socket.gethostname(),
            os.getpid(),
            _process_started_at(),
            mask(" ".join(sys.argv)),
            mask(json.dumps(params or {}, default=repr)),
            executor,
            len(tasks),
            None,
            __version__,
        )
        writer = _RunWriter(self, location, run_id, live, mask, settings)
        writer.texts = (row[12], row[11])  # params, argv: masked again at the end, with what the run learnt
        with self._lock:
            self._runs[run_id] = writer
        writer.begin(row)

    def sync(self, run_id: str, timeout: float = 5.0) -> None:
        """Wait until what run ``run_id`` has finished so far is in the store (resume relies on it).

        Called before a task whose inputs a resume would reuse starts: a crash after that point
        never loses the record of the tasks it depends on. Returns at once when there is nothing
        new, and after ``timeout`` seconds or a failed write at the latest (the run goes on).
        """
        with self._lock:
            writer = self._runs.get(run_id)
        if writer is not None:
            writer.sync(timeout)

    def on_run_end(
        self, *, run_id: str, status: str, ended_at: float, duration: float, result: Any = None, **future_kwargs: Any
    ) -> None:
        with self._lock:
            writer = self._runs.pop(run_id, None)
        if writer is None:
            return
        error = getattr(result, "error", None)
        error_text = None if error is None else writer.mask(describe_error(error))
        # tasks that ran or could have (map items included, the map's own gathering node not)
        total = writer.live.total if writer.live is not None else len(result.tasks) if result is not None else None
        samples = list(self.resources.samples) if self.resources is not None else []
        params, argv = (writer.mask(text) for text in writer.texts)
        writer.finish(samples, (status, ended_at, duration, total, error_text, ended_at, params, argv, run_id))


_TICK = 0.1  # seconds between looks at the journal
_BACKLOG = 1000  # attempts waiting that are written without waiting for the next flush


class _RunWriter:
    """The record of one run: reads its journal into batches and writes them, on its own thread."""

    def __init__(
        self, recorder: RunRecorder, location: str, run_id: str, live: Any, mask: Callable[[str], str], settings: Any
    ) -> None:
        self.location, self.timeout, self.flush_every = location, recorder.timeout, recorder.flush_every
        self.run_id = run_id
        self.live = live
        self.mask = mask
        self.settings = settings
        self.seen = 0
        self.batch: Batch = empty_batch()
        self.batch_lock = threading.Lock()
        self.leftover: Batch = empty_batch()
        self.failed: BaseException | None = None
        self.stop = threading.Event()
        self.wake = threading.Event()  # write now (a sync, or the run's end), not at the next tick
        self.written = threading.Event()  # set once the run is on disk (or parked)
        self.synced = threading.Condition()
        self.durable = 0  # journal entries written to the store
        self.thread: threading.Thread | None = None
        self.texts: tuple[str, str] = ("", "")

    # -- the first instant --------------------------------------------------------------------
    def begin(self, row: tuple[Any, ...]) -> None:
        """Record the run now (before any task starts), then start the writer thread."""
        try:
            store = shared_store(self.location, timeout=self.timeout)
            store.start_run(row)
        except Exception as exc:  # written later, or parked: the run goes on
            drop_shared_store(self.location)
            self.leftover["runs"].append(row)
            self.failed = exc
            log.warning("bubbles: run %s not recorded yet (%s); will retry", self.run_id, exc)
        else:
            self._reap(store)
        # not a daemon: the interpreter waits for it at exit rather than lose rows (it stops as soon
        # as the run has ended, or the main thread has: it never holds the interpreter up)
        thread = threading.Thread(target=self.loop, name=f"bubbles-history-{self.run_id}", daemon=False)
        try:
            thread.start()
        except RuntimeError as exc:  # e.g. no more threads: write at the end, on the caller's thread
            log.warning("bubbles: no history writer thread for run %s (%s); writing it at the end", self.run_id, exc)
            return
        self.thread = thread

    def _reap(self, store: Any) -> None:
        try:
            store.reap()
            store.import_parked(parked_folder(self.location, self.settings))
        except Exception as exc:  # a reader's chore: never a reason to fail a run
            log.debug("bubbles: could not reap crashed runs in %s: %s", _shown(self.location), exc)

    def finish(self, samples: list[tuple[Any, ...]], end_row: tuple[Any, ...]) -> None:
        with self.batch_lock:
            self.batch["resources"].extend((self.run_id, *s) for s in samples)
            self.batch["runs_end"].append(end_row)
        self.stop.set()
        self.wake.set()
        if self.thread is not None:
            self.written.wait()  # the run is on disk (or parked) when wf.run() returns
        else:
            self.loop()
        self.live = None

    def sync(self, timeout: float) -> None:
        """Return once every attempt that ended so far is in the store (or ``timeout`` passed, or writing failed)."""
        live = self.live
        if live is None or self.thread is None or self.failed is not None:
            return
        target = len(live.attempts)
        if target <= self.durable:
            return
        self.wake.set()
        with self.synced:
            self.synced.wait_for(lambda: self.durable >= target or self.failed is not None or self.stop.is_set(), timeout)

    # -- reading the run --------------------------------------------------------------------
    def read_run(self) -> None:
        """Turn the attempts that ended since the last read into rows."""
        live = self.live
        if live is None:
            return
        entries = live.attempts
        n = len(entries)
        if n == self.seen:
            return
        new = entries[self.seen : n]
        self.seen = n
        rows = _rows_of(self.run_id, new, self.mask)
        with self.batch_lock:
            _merge(self.batch, rows)

    def take(self) -> Batch:
        with self.batch_lock:
            batch, self.batch = self.batch, empty_batch()
        return batch

    def loop(self) -> None:
        main = threading.main_thread()
        tick = min(self.flush_every, _TICK)
        due = time.monotonic() + self.flush_every
        try:
            while True:
                # a write every flush_every (with a heartbeat), at once when woken (a sync, the run's end), and
                # in between when many attempts are waiting: a big run's record is not all written at its end
                woken = self.wake.wait(tick)
                self.wake.clear()
                last = self.stop.is_set() or not main.is_alive()
                live = self.live
                backlog = live is not None and len(live.attempts) - self.seen >= _BACKLOG
                if not (woken or last or backlog or time.monotonic() >= due):
                    continue
                due = time.monotonic() + self.flush_every
                try:
                    self.read_run()
                except Exception as exc:  # a bug here must not lose the run: what was read is kept
                    log.warning("bubbles: could not read run %s for its record: %r", self.run_id, exc, exc_info=True)
                self.leftover = _merge(self.leftover, self.take())
                if not last:
                    self.leftover["heartbeats"].append((time.time(), self.run_id))
                if any(self.leftover.values()) and (self.failed is None or last):
                    # after a failure, try again only at the end: each try may wait the timeout
                    self.write_leftover()
                with self.synced:
                    if self.failed is None:
                        self.durable = self.seen
                    self.synced.notify_all()
                if last:
                    break
            if any(self.leftover.values()):
                self.park()
        finally:
            self.written.set()
            with self.synced:
                self.synced.notify_all()

    def write_leftover(self) -> None:
        """Write the rows not yet written; on failure keep them, in order, for the next try."""
        try:
            shared_store(self.location, timeout=self.timeout).write(self.leftover)
        except Exception as exc:  # StoreError (locked, corrupt, disk full), or rows it cannot take
            drop_shared_store(self.location)
            if self.failed is None:
                log.warning("bubbles: run %s not recorded yet (%s); will retry", self.run_id, exc)
            self.failed = exc
            return
        self.leftover = empty_batch()
        self.failed = None

    def park(self) -> None:
        where = _shown(self.location)
        folder = parked_folder(self.location, self.settings)
        target = folder / f"{self.run_id}.json"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(".tmp")
            tmp.write_text(json.dumps({k: v for k, v in self.leftover.items() if v}, default=str), encoding="utf-8")
            tmp.replace(target)
        except OSError as exc:
            log.error(
                "bubbles: run %s could not be written to the run store %s (%s), nor parked in %s (%s). Its result is "
                "only in the RunResult.",
                self.run_id,
                where,
                self.failed,
                target,
                exc,
            )
            return
        self.leftover = empty_batch()
        log.warning(
            "bubbles: the run store %s could not be written (%s); run %s was saved to %s and will be written to the "
            "store by the next run or `bubbles runs` that can open it.",
            where,
            self.failed,
            self.run_id,
            target,
        )


def _shown(location: str) -> str:
    """A store location fit to show: a URL's password is masked."""
    if "://" not in location:
        return location
    from ..store.postgres import _redact

    return _redact(location)


def _rows_of(run_id: str, entries: list[Any], mask: Callable[[str], str]) -> Batch:
    """The store rows of journal entries (:class:`~bubbles.engine.attempt.Attempt` records)."""
    out: Batch = empty_batch()
    attempts, updates, metrics = out["attempts"], out["attempt_updates"], out["metrics"]
    for e in entries:
        error = None if e.error is None else mask(describe_error(e.error))
        tb = mask(e.traceback) if e.traceback else None
        if not e.ran and e.attempt > 0:  # ended without a new attempt: its last attempt's state is final
            updates.append((e.status, error, tb, run_id, e.task, e.attempt))
            continue
        m = e.metrics or _NO_METRICS
        get = m.get
        attempts.append(
            (
                run_id,
                e.task,
                e.attempt,
                e.group,
                e.status,
                e.started_at,
                e.ended_at,
                e.duration,
                e.worker or None,
                error,
                tb,
                e.delay,
                get("rows_in"),
                get("rows_out"),
                get("bytes_in"),
                get("bytes_out"),
                get("peak_memory"),
                get("cpu_time"),
            )
        )
        if m and not _BUILTIN_SET.issuperset(m):  # custom metrics (log_metric): rare
            metrics.extend((run_id, e.task, e.attempt, k, v) for k, v in m.items() if k not in _BUILTIN_SET)
        if e.logs:
            _log_rows(out, run_id, e.task, e.attempt, e.logs, mask)
        if e.events:
            _event_rows(out, run_id, e.task, e.attempt, e.events, mask)
    return out


def _log_rows(batch: Batch, run_id: str, task: str, attempt: int, logs: list[dict[str, Any]], mask: Callable[[str], str]) -> None:
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


def _event_rows(batch: Batch, run_id: str, task: str, attempt: int, events: list[Any], mask: Callable[[str], str]) -> None:
    """Typed events of one attempt: a kind with its own table (datasets, ...) there, others to ``task_events``."""
    for seq, event in enumerate(events):
        table = getattr(event, "store_table", None)
        if table:
            batch.setdefault(table, []).append(event.store_row(run_id, task, attempt, mask))
            continue
        to_dict = getattr(event, "to_dict", None)
        data = to_dict() if to_dict is not None else {"repr": repr(event)}
        kind = getattr(event, "kind", "event")
        batch["task_events"].append((run_id, task, attempt, seq, kind, mask(json.dumps(data, default=str))))


def _merge(into: Batch, batch: Batch) -> Batch:
    for key, rows in batch.items():
        if rows:
            into.setdefault(key, []).extend(rows)
    return into

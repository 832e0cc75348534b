"""The processes executor: a pool of worker processes with real, per-task timeouts.

Each worker is a fresh interpreter (``python -c``, spawn semantics: nothing inherited by fork)
talking over two pipes. One worker runs one call at a time, so when a call passes its timeout
the runner abandons it and exactly that worker is killed and replaced; the rest of the pool
keeps going. A worker that dies on its own (segfault, OOM killer, ``os._exit``) fails only the
call it was running, with a transient error that says how it died, and is replaced.

One reader thread receives every answer and routes it to the run that submitted the call (a
pool may serve several runs at once). Who runs what is changed only under the pool's lock, so
a kill for a timed-out call can never hit the worker's next call; if the reader thread itself
ever fails, every call in flight is failed with that error instead of being waited on.

Functions are pickled once with cloudpickle and cached by each worker under the digest of
their bytes (bounded caches on both sides, kept in step); arguments and results go through
:mod:`bubbles.engine.serialize` (Arrow by IPC, buffers out of band).
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections import OrderedDict, deque
from multiprocessing.connection import Connection, wait
from typing import Any

from ..._errors import NotPicklableError, RemoteTaskError, TaskError
from ..attempt import Attempt
from ..execute import Call, failed_attempt
from ..serialize import dumps_function, recv, send
from ..task import TaskSpec
from ._procworker import FUNCTIONS_PER_WORKER
from .base import Deadline, Pool, PoolRun

__all__ = ["ProcessExecutor", "WorkerDied"]

log = logging.getLogger("bubbles")
_FUNCTIONS_KEPT = 1024  # pickled functions the pool keeps (each holds its function alive)
_Key = tuple[str, str, int]


class WorkerDied(TaskError):
    """A worker process exited while running a task."""

    transient = True


def _ident(call: Call) -> _Key:
    return (call.run_id, call.key, call.attempt)


def _spill_base(call: Call) -> str | None:
    return call.settings.spill_dir if call.settings is not None else None


def _how_it_died(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        if -code == signal.SIGKILL:
            return f"was killed ({name}; often the kernel's out-of-memory killer)"
        if -code in (signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT, signal.SIGILL, signal.SIGFPE):
            return f"crashed ({name}: a crash in native code, e.g. a C extension)"
        return f"was stopped by {name}"
    return f"exited with code {code} (os._exit() or a native library ended the process)"


class _Worker:
    __slots__ = ("abandoned", "call", "died_at", "digests", "from_child", "killed", "number", "proc", "ready", "to_child")

    def __init__(self, number: int) -> None:
        child_in, parent_out = os.pipe()
        parent_in, child_out = os.pipe()
        code = f"from bubbles.engine.executors._procworker import main; main({child_in}, {child_out})"
        self.proc = subprocess.Popen([sys.executable, "-c", code], pass_fds=(child_in, child_out), close_fds=True)
        os.close(child_in)
        os.close(child_out)
        self.to_child = Connection(parent_out, readable=False)
        self.from_child = Connection(parent_in, writable=False)
        self.call: Call | None = None
        self.abandoned: _Key | None = None  # the call this worker is being killed for
        self.digests: OrderedDict[str, None] = OrderedDict()  # mirror of the worker's function cache
        self.ready = False
        self.killed = False
        self.died_at: float | None = None
        self.number = number

    def kill(self) -> None:
        self.killed = True
        try:
            self.proc.kill()
        except OSError:
            pass

    def close(self) -> None:
        for conn in (self.to_child, self.from_child):
            try:
                conn.close()
            except OSError:
                pass


class ProcessExecutor(Pool):
    """Runs tasks in a pool of separate Python processes (CPU-bound work, isolation, hard timeouts).

    Keep it across runs with ``with ProcessExecutor(4) as pool: wf.run(executor=pool)``.
    """

    name = "processes"
    hard_timeouts = True
    reports_start = True  # calls may wait for a worker (a pool shared by runs): "started" when one takes it

    def __init__(self, max_workers: int | None = None) -> None:
        super().__init__()
        self.capacity = max_workers or os.cpu_count() or 1
        self._lock = threading.Lock()
        self._workers: list[_Worker] = []
        self._idle: deque[_Worker] = deque()
        self._pending: deque[Call] = deque()
        self._functions: OrderedDict[int, tuple[Any, str, bytes]] = OrderedDict()  # id(fn) -> (fn, digest, bytes)
        self._closing = False
        self._count = 0
        self._reader: threading.Thread | None = None
        self._reader_error: BaseException | None = None
        self._wake_r = self._wake_w = -1

    # -- checks -------------------------------------------------------------------------------
    def check(self, specs: list[TaskSpec]) -> None:
        for spec in specs:
            self._function(spec.fn, spec.name)

    def _function(self, fn: Any, name: str) -> tuple[str, bytes]:
        with self._lock:
            entry = self._functions.get(id(fn))
            if entry is not None and entry[0] is fn:
                self._functions.move_to_end(id(fn))
                return entry[1], entry[2]
        try:
            data = dumps_function(fn)
        except Exception as exc:
            raise NotPicklableError(
                f"Task {name!r} cannot be sent to a worker process: {type(exc).__name__}: {exc}. "
                "It probably captures something that only lives in this process (a lock, an open "
                "connection or file). Create that inside the task, or use executor='threads'.",
                task=name,
            ) from exc
        digest = hashlib.sha1(data).hexdigest()
        with self._lock:
            self._functions[id(fn)] = (fn, digest, data)
            while len(self._functions) > _FUNCTIONS_KEPT:
                self._functions.popitem(last=False)
        return digest, data

    # -- lifecycle ----------------------------------------------------------------------------
    def _start(self) -> None:
        self._closing = False
        self._reader_error = None
        self._wake_r, self._wake_w = os.pipe()
        try:
            for _ in range(self.capacity):
                self._workers.append(self._new_worker())
        except BaseException:  # (a Ctrl-C while the pool starts included): leave nothing behind
            for worker in self._workers:
                worker.kill()
                worker.close()
            self._workers.clear()
            for fd in (self._wake_r, self._wake_w):
                os.close(fd)
            raise
        self._reader = threading.Thread(target=self._read, name="bubbles-process-reader", daemon=True)
        self._reader.start()

    def _new_worker(self) -> _Worker:
        self._count += 1
        worker = _Worker(self._count)
        send(worker.to_child, ("path", list(sys.path)))
        return worker

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

    def _stop(self) -> None:
        self._closing = True
        self._wake()
        if self._reader is not None and self._reader is not threading.current_thread():
            self._reader.join(timeout=5)  # before any pipe is closed: it may be reading one
        self._reader = None
        with self._lock:
            workers, self._workers = list(self._workers), []
            self._idle.clear()
            self._pending.clear()
        for worker in workers:
            if worker.call is not None:
                worker.kill()
            else:
                try:
                    send(worker.to_child, None)
                except OSError:
                    worker.kill()
        deadline = Deadline(2.0)
        for worker in workers:
            try:
                worker.proc.wait(max(0.01, deadline.left()))
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.proc.wait()
            worker.close()
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass

    # -- running ------------------------------------------------------------------------------
    def _submit(self, run: PoolRun, call: Call) -> None:
        if self._reader_error is not None:
            raise self._reader_error
        self._function(call.fn, call.key)
        with self._lock:
            self._pending.append(call)
        self._dispatch()

    def _dispatch(self) -> None:
        with self._lock:
            missing = self.capacity - len(self._workers) if self._pending and not self._closing else 0
        for _ in range(max(0, missing)):  # workers that died or were killed are started again when needed
            worker = self._new_worker()
            with self._lock:
                self._workers.append(worker)
            self._wake()  # the reader waits on the new worker's pipe from now on
        while True:
            with self._lock:
                if not self._pending or not self._idle:
                    return
                worker = self._idle.popleft()
                call = self._pending.popleft()
                worker.call = call
                fn = call.fn
                entry = self._functions.get(id(fn))
                if entry is None or entry[0] is not fn:  # evicted meanwhile: pickle it again below
                    entry = None
                else:
                    digest, data = entry[1], entry[2]
            if entry is None:
                digest, data = self._function(fn, call.key)
            with self._lock:
                known = digest in worker.digests
                if known:
                    worker.digests.move_to_end(digest)
                else:
                    worker.digests[digest] = None
                    while len(worker.digests) > FUNCTIONS_PER_WORKER:
                        worker.digests.popitem(last=False)
            call.fn = None  # type: ignore[assignment]  # shipped separately, cached by the worker
            try:
                if call.timeout:  # its timeout clock starts now, not when it was queued behind other runs' calls
                    self._route(call.run_id, ("started", call.key, call.attempt, time.monotonic()))
                send(worker.to_child, ("call", digest, None if known else data, call), spill=_spill_base(call))
            except (BrokenPipeError, OSError):
                pass  # the reader sees the worker die and reports the call
            except Exception as exc:
                self._fail_call(
                    worker,
                    NotPicklableError(
                        f"The inputs of task {call.key!r} cannot be sent to a worker process: "
                        f"{type(exc).__name__}: {exc}. Pass plain data between tasks, or use executor='threads'.",
                        task=call.key,
                    ),
                )
            finally:
                call.fn = fn

    def _read(self) -> None:
        try:
            while not self._closing:
                self._read_once()
        except BaseException as exc:  # the reader must never die silently: fail what it would have answered
            if self._closing:
                return
            self._reader_error = TaskError(
                f"The processes executor stopped receiving answers from its workers ({type(exc).__name__}: {exc}). "
                "Every task in flight failed; this is a bug in bubbles, please report it with the traceback.",
                transient=True,
            )
            log.error("bubbles: the process pool's reader thread failed", exc_info=True)
            self._fail_everything(self._reader_error)

    def _read_once(self) -> None:
        with self._lock:
            conns: dict[Any, _Worker] = {w.from_child: w for w in self._workers}
        # a timeout: a killed worker whose pipe stays open (a process it forked holds it) is found by polling
        ready = wait([*conns, self._wake_r], timeout=1.0)
        if self._closing:
            return
        for conn in ready:
            if conn == self._wake_r:
                os.read(self._wake_r, 4096)
                continue
            worker = conns[conn]
            try:
                message = recv(conn)  # type: ignore[arg-type]
            except (EOFError, OSError):
                self._replace(worker)
                continue
            except Exception as exc:  # an answer that cannot be read here (its frames are consumed): that call fails
                self._unreadable(worker, exc)
                continue
            kind = message[0]
            if kind == "ready":
                worker.ready = True
                with self._lock:
                    if not worker.killed:
                        self._idle.append(worker)
            elif kind == "broken":
                with self._lock:
                    worker.digests.pop(message[3], None)  # the worker did not keep that function
                call = worker.call
                if call is not None:
                    self._fail_call(
                        worker,
                        NotPicklableError(
                            f"Task {call.key!r} could not be loaded in a worker process: {message[1]}. "
                            "Its function and inputs must be importable there (define them in a module on "
                            "sys.path or in the script itself), or use executor='threads'.",
                            task=call.key,
                        ),
                        traceback=message[2],
                    )
            elif kind == "done":
                attempt: Attempt = message[1]
                with self._lock:
                    worker.call = None
                    if not worker.killed:
                        self._idle.append(worker)
                self._route(attempt.run_id, attempt)
        with self._lock:
            gone = [w for w in self._workers if w.killed and w.proc.poll() is not None]
        for worker in gone:
            self._replace(worker)
        self._dispatch()

    def _unreadable(self, worker: _Worker, exc: BaseException) -> None:
        call = worker.call
        self._fail_call(
            worker,
            RemoteTaskError(
                f"The answer of task {call.key if call else '?'!r} from its worker process cannot be read in the run's "
                f"process: {type(exc).__name__}: {exc}. Its result or error is an object that pickles but does not "
                "unpickle (an exception class whose __init__ takes other arguments than it passes to "
                "Exception.__init__, say): return plain data, or raise exceptions that pickle both ways.",
                task=call.key if call else None,
                error_type=type(exc).__name__,
            ),
            traceback="".join(traceback.format_exception(exc)),
        )

    def _fail_call(self, worker: _Worker, error: BaseException, traceback: str = "") -> None:
        """The call on ``worker`` cannot run: free the worker and report the call as failed."""
        with self._lock:
            call, worker.call = worker.call, None
            if not worker.killed:
                self._idle.append(worker)
        if call is not None:
            self._route(call.run_id, failed_attempt(call, error, traceback))

    def _replace(self, worker: _Worker) -> None:
        """A worker is gone (or its pipe closed): forget it, report its call; the dispatcher starts another."""
        if self._closing:
            return
        with self._lock:
            if worker not in self._workers:
                return  # replaced already
            self._workers.remove(worker)
            if worker in self._idle:
                self._idle.remove(worker)
            call, abandoned = worker.call, worker.abandoned
            worker.call = None
        worker.kill()  # (its pipe closed but it may live on: it is of no use any more)
        worker.close()
        try:
            code = worker.proc.wait(5)
        except subprocess.TimeoutExpired:
            code = -signal.SIGKILL
        if call is not None and _ident(call) != abandoned:
            self._route(
                call.run_id,
                failed_attempt(
                    call,
                    WorkerDied(
                        f"The worker process running task {call.key!r} {_how_it_died(code)}. The task may be retried; "
                        "if it keeps dying, check its memory use, or run it with executor='threads' to see the error.",
                        task=call.key,
                        attempt=call.attempt,
                        exit_code=code,
                    ),
                ),
            )

    def _fail_everything(self, error: BaseException) -> None:
        with self._lock:
            calls = [w.call for w in self._workers if w.call is not None] + list(self._pending)
            self._pending.clear()
        for call in calls:
            self._route(call.run_id, failed_attempt(call, error, "".join(traceback.format_exception(error))))

    def _abandon(self, run: PoolRun, call: Call) -> None:
        ident = _ident(call)
        with self._lock:  # under the lock: the worker cannot have moved on to another call meanwhile
            for worker in self._workers:
                if worker.call is not None and _ident(worker.call) == ident:
                    worker.abandoned = ident
                    worker.kill()  # the reader sees EOF and starts a replacement
                    return
            self._pending = deque(c for c in self._pending if _ident(c) != ident)

    def _cancel_calls(self, run: PoolRun, calls: list[Call], *, wait: bool) -> None:
        for call in calls:
            self._abandon(run, call)

    def _lost(self, run: PoolRun, calls: list[Call]) -> list[tuple[Call, BaseException]]:
        if self._reader_error is not None:
            return [(c, self._reader_error) for c in calls]
        lost: list[tuple[Call, BaseException]] = []
        now = time.monotonic()
        with self._lock:
            for worker in self._workers:
                call = worker.call
                if call is None or call not in calls or worker.proc.poll() is None:
                    continue
                if worker.died_at is None:
                    worker.died_at = now  # the reader should see it any moment; give it time
                elif now - worker.died_at > 5.0:
                    lost.append((call, WorkerDied(f"The worker process running task {call.key!r} is gone.", task=call.key)))
        return lost

"""The processes executor: a pool of worker processes with real, per-task timeouts.

Each worker is a fresh interpreter (``python -c``, spawn semantics: nothing inherited by fork)
talking over two pipes. One worker runs one call at a time, so when a call passes its timeout
the runner calls :meth:`abandon` and exactly that worker is killed and replaced; the rest of
the pool keeps going. A worker that dies on its own (segfault, OOM killer) fails only the call
it was running, with a transient error (a retry may succeed), and is replaced.

Functions are pickled once per run with cloudpickle and cached by each worker; arguments and
results go through :mod:`bubbles.engine.serialize` (Arrow by IPC, buffers out of band).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import deque
from multiprocessing.connection import Connection, wait
from typing import Any

from ..._errors import NotPicklableError, TaskError
from ..execute import Call, Outcome
from ..serialize import dumps_function, recv, send
from ..task import TaskSpec
from .base import PersistentPool, Post

__all__ = ["ProcessExecutor"]


class WorkerDied(TaskError):
    """A worker process exited while running a task."""

    transient = True


class _Worker:
    __slots__ = ("call", "fids", "from_child", "killed", "number", "proc", "ready", "to_child")

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
        self.fids: set[int] = set()
        self.ready = False
        self.killed = False
        self.number = number

    def kill(self) -> None:
        self.killed = True
        try:
            self.proc.kill()
        except OSError:
            pass


class ProcessExecutor(PersistentPool):
    """Runs tasks in a pool of separate Python processes (CPU-bound work, isolation, hard timeouts).

    Keep it across runs with ``with ProcessExecutor(4) as pool: wf.run(executor=pool)``.
    """

    name = "processes"
    hard_timeouts = True

    def __init__(self, max_workers: int | None = None) -> None:
        self.capacity = max_workers or os.cpu_count() or 1
        self._lock = threading.Lock()
        self._workers: list[_Worker] = []
        self._idle: deque[_Worker] = deque()
        self._pending: deque[Call] = deque()
        self._functions: dict[int, tuple[Any, bytes]] = {}  # id(fn) -> (fn, cloudpickled)
        self._closing = False
        self._count = 0
        self._wake_r, self._wake_w = os.pipe()

    # -- checks -------------------------------------------------------------------------------
    def check(self, specs: list[TaskSpec]) -> None:
        for spec in specs:
            self._function_bytes(spec.fn, spec.name)

    def _function_bytes(self, fn: Any, name: str) -> bytes:
        entry = self._functions.get(id(fn))
        if entry is not None and entry[0] is fn:
            return entry[1]
        try:
            data = dumps_function(fn)
        except Exception as exc:
            raise NotPicklableError(
                f"Task {name!r} cannot be sent to a worker process: {type(exc).__name__}: {exc}. "
                "It probably captures something that only lives in this process (a lock, an open "
                "connection or file). Create that inside the task, or use executor='threads'.",
                task=name,
            ) from exc
        self._functions[id(fn)] = (fn, data)
        return data

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self, post: Post) -> None:
        self._post = post
        if self._workers:  # a persistent pool, already running
            return
        for _ in range(self.capacity):
            self._workers.append(self._new_worker())
        self._reader = threading.Thread(target=self._read, name="bubbles-process-reader", daemon=True)
        self._reader.start()

    def _new_worker(self) -> _Worker:
        self._count += 1
        worker = _Worker(self._count)
        send(worker.to_child, ("path", list(sys.path)))
        return worker

    def _wake(self) -> None:
        os.write(self._wake_w, b"x")

    def submit(self, call: Call) -> None:
        spec_fn = call.fn
        self._function_bytes(spec_fn, call.key)
        with self._lock:
            self._pending.append(call)
        self._dispatch()

    def _dispatch(self) -> None:
        while True:
            with self._lock:
                if not self._pending or not self._idle:
                    return
                worker = self._idle.popleft()
                call = self._pending.popleft()
                worker.call = call
            fid = id(call.fn)
            fn_bytes = None if fid in worker.fids else self._functions[fid][1]
            worker.fids.add(fid)
            fn = call.fn
            call.fn = None  # type: ignore[assignment]  # shipped separately, cached by the worker
            try:
                send(worker.to_child, ("call", fid, fn_bytes, call))
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
        while True:
            conns: dict[Any, _Worker] = {w.from_child: w for w in self._workers}
            ready = wait([*conns, self._wake_r])
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
                if message[0] == "ready":
                    worker.ready = True
                    with self._lock:
                        self._idle.append(worker)
                elif message[0] == "broken" and worker.call is not None:
                    key = worker.call.key
                    self._fail_call(
                        worker,
                        NotPicklableError(
                            f"Task {key!r} could not be loaded in a worker process: {message[1]}. "
                            "Its function and inputs must be importable there (define them in a module on "
                            "sys.path or in the script itself), or use executor='threads'.",
                            task=key,
                        ),
                        traceback=message[2],
                    )
                elif message[0] == "done":
                    outcome: Outcome = message[1]
                    worker.call = None
                    with self._lock:
                        self._idle.append(worker)
                    self._post(outcome)
            self._dispatch()

    def _fail_call(self, worker: _Worker, error: BaseException, traceback: str = "") -> None:
        """The call on ``worker`` cannot run: free the worker and report the call as failed."""
        call, worker.call = worker.call, None
        with self._lock:
            self._idle.append(worker)
        if call is not None:
            self._post(Outcome(call.key, call.attempt, False, error=error, traceback=traceback, started_at=time.time()))

    def _replace(self, worker: _Worker) -> None:
        if self._closing:
            return
        call, killed = worker.call, worker.killed
        worker.from_child.close()
        worker.to_child.close()
        code = worker.proc.wait()
        with self._lock:
            self._workers.remove(worker)
            if worker in self._idle:
                self._idle.remove(worker)
        self._workers.append(self._new_worker())
        if call is not None and not killed:
            how = f"signal {-code}" if code < 0 else f"exit code {code}"
            self._post(
                Outcome(
                    call.key,
                    call.attempt,
                    False,
                    error=WorkerDied(
                        f"The worker process running task {call.key!r} died ({how}), e.g. out of memory "
                        "or a crash in native code. The task may be retried; if it keeps dying, check "
                        "its memory use or run it with executor='threads' to see the error.",
                        task=call.key,
                        attempt=call.attempt,
                    ),
                    started_at=time.time(),
                )
            )

    def abandon(self, key: str, attempt: int) -> None:
        for worker in list(self._workers):
            if worker.call is not None and worker.call.key == key and worker.call.attempt == attempt:
                worker.kill()  # the reader sees EOF and starts a replacement
                return
        with self._lock:  # not started yet
            self._pending = deque(c for c in self._pending if (c.key, c.attempt) != (key, attempt))

    def fetch(self, handle: Any) -> Any:
        return handle

    def shutdown(self, *, cancel: bool = False) -> None:
        if self._persistent:  # the pool outlives this run: only stop what still runs
            if cancel:
                for worker in list(self._workers):
                    if worker.call is not None:
                        worker.kill()
            with self._lock:
                self._pending.clear()
            return
        self._closing = True
        self._wake()
        for worker in self._workers:
            if cancel or worker.call is not None:
                worker.kill()
            else:
                try:
                    send(worker.to_child, None)
                except OSError:
                    worker.kill()
        deadline = time.monotonic() + 2.0
        for worker in self._workers:
            try:
                worker.proc.wait(max(0.01, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.proc.wait()
            worker.to_child.close()
            worker.from_child.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

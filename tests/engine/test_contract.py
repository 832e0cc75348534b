"""The executor contract, at its edges: lost workers, a crashed reader, a kill racing the next call."""

from __future__ import annotations

import threading
import time
from queue import SimpleQueue
from typing import Any

import pytest

from bubbles import TaskError, Workflow
from bubbles.engine.attempt import Attempt
from bubbles.engine.execute import Call
from bubbles.engine.executors import processes as procs
from bubbles.engine.executors.processes import ProcessExecutor

from . import tasks as t


class _Swallowing:
    """An executor whose worker vanishes with every call: it never answers, but knows they are lost."""

    name = "swallowing"
    capacity = 4
    hard_timeouts = False

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.asked = 0

    def check(self, specs: Any) -> None:
        return None

    def open(self, run_id: str, post: Any, **options: Any) -> Any:
        outer = self

        class Handle:
            capacity = 4

            def submit(self, call: Call) -> None:
                outer.calls.append(call)

            def abandon(self, key: str, attempt: int) -> None:
                return None

            def fetch(self, handle: Any) -> Any:
                return handle

            def lost(self) -> list[Attempt]:
                outer.asked += 1
                calls, outer.calls = outer.calls, []
                return [Attempt(c.key, c.attempt, "failed", error=TaskError(f"worker of {c.key!r} is gone")) for c in calls]

            def close(self, *, cancel: bool = False) -> None:
                return None

        return Handle()

    def shutdown(self) -> None:
        return None


def test_the_runner_never_waits_on_a_call_whose_worker_is_gone() -> None:
    executor = _Swallowing()
    wf = Workflow("lost")
    wf.add_task(t.one, name="vanishes")
    started = time.monotonic()
    result = wf.run(executor=executor, raise_on_error=False)
    assert time.monotonic() - started < 5
    assert executor.asked >= 1
    assert result.tasks["vanishes"].state == "failed"
    assert "worker of 'vanishes' is gone" in str(result.tasks["vanishes"].error)


class _UnloadableError(Exception):
    """Pickles in the worker, fails to unpickle in the run's process (a common shape in libraries)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _raise_unloadable() -> None:
    raise _UnloadableError(7, "quota")


def test_an_answer_that_cannot_be_read_fails_only_its_task_and_the_pool_goes_on() -> None:
    wf = Workflow("unreadable")
    bad = wf.add_task(_raise_unloadable, name="bad")
    wf.add_task(t.one, name="after", after=[bad])
    wf.add_task(t.two, name="bystander")
    with ProcessExecutor(1) as pool:
        result = wf.run(executor=pool, fail_fast=False, raise_on_error=False)
        again = Workflow("again").add_task(t.one).workflow.run(executor=pool)
    error = result.tasks["bad"].error
    assert result.tasks["bad"].state == "failed" and "cannot be read in the run's process" in str(error)
    assert "_UnloadableError" in result.tasks["bad"].traceback or "TypeError" in str(error)
    assert result.tasks["bystander"].result == 2
    assert again.ok  # the pool is still healthy


def test_a_crashed_reader_thread_fails_the_calls_in_flight(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: Any) -> None:
        raise RuntimeError("the reader tripped")

    monkeypatch.setattr(procs.ProcessExecutor, "_read_once", broken)
    wf = Workflow("reader")
    wf.add_task(t.one, name="answered")
    started = time.monotonic()
    result = wf.run(executor="processes", max_workers=1, raise_on_error=False)
    assert time.monotonic() - started < 10
    error = result.tasks["answered"].error
    assert result.tasks["answered"].state == "failed"
    assert "stopped receiving answers" in str(error) and "RuntimeError: the reader tripped" in str(error)


def test_a_late_kill_for_a_finished_call_never_hits_the_next_one() -> None:
    """The abandon of call A arrives after A ended and the worker took B: B must not be killed."""
    inbox: SimpleQueue[Any] = SimpleQueue()
    pool = ProcessExecutor(1)
    with pool:
        run = pool.open("r1", inbox.put)
        a = Call("a", 1, t.one, (), {}, "r1", "w")
        run.submit(a)
        assert inbox.get(timeout=30).ok
        b = Call("b", 1, t.sleepy, (0.5,), {}, "r1", "w")
        run.submit(b)
        deadline = time.monotonic() + 10
        while not any(w.call is b for w in pool._workers) and time.monotonic() < deadline:
            time.sleep(0.005)
        pool._abandon(run, a)  # as if the runner's timeout for A fired just now
        answer = inbox.get(timeout=30)
        assert (answer.task, answer.status, answer.value) == ("b", "succeeded", 0.5)
        run.close()


def test_a_worker_killed_from_outside_fails_its_call_with_how_it_died() -> None:
    import os
    import signal

    inbox: SimpleQueue[Any] = SimpleQueue()
    with ProcessExecutor(1) as pool:
        run = pool.open("r1", inbox.put)
        call = Call("victim", 1, t.sleepy, (30,), {}, "r1", "w")
        run.submit(call)
        deadline = time.monotonic() + 10
        while not any(w.call is call for w in pool._workers) and time.monotonic() < deadline:
            time.sleep(0.005)
        [worker] = [w for w in pool._workers if w.call is call]
        os.kill(worker.proc.pid, signal.SIGKILL)
        answer = inbox.get(timeout=30)
        assert answer.task == "victim" and answer.status == "failed"
        assert "was killed (SIGKILL" in str(answer.error) and answer.error.transient is True
        run.close()


def test_a_pool_serves_runs_from_many_threads_and_each_gets_only_its_answers() -> None:
    from bubbles.engine.executors.local import ThreadExecutor

    with ThreadExecutor(3) as pool:
        inboxes = {rid: SimpleQueue() for rid in ("r1", "r2", "r3")}  # type: ignore[var-annotated]
        runs = {rid: pool.open(rid, q.put) for rid, q in inboxes.items()}
        for rid, run in runs.items():
            for i in range(20):
                run.submit(Call(f"t{i}", 1, t.tagged, (i,), {"tag": rid}, rid, "w"))
        for rid, q in inboxes.items():
            got = sorted(q.get(timeout=10).value[0] for _ in range(20))
            assert got == sorted(f"{rid}-{i}" for i in range(20))
            assert q.empty()
        for run in runs.values():
            run.close()


def test_opening_a_run_twice_with_one_id_is_refused() -> None:
    from bubbles import ConfigError
    from bubbles.engine.executors.local import ThreadExecutor

    with ThreadExecutor(1) as pool:
        pool.open("same", lambda m: None)
        with pytest.raises(ConfigError, match="already running"):
            pool.open("same", lambda m: None)


def test_bad_executor_names_and_objects_are_clear_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    from bubbles import ConfigError

    wf = Workflow("bad")
    wf.add_task(t.one)
    with pytest.raises(ConfigError, match=r"'executor' = 'threadz' \(from code\).*choose one of: serial, threads"):
        wf.run(executor="threadz")
    with monkeypatch.context() as env:
        env.setenv("BUBBLES_EXECUTOR", "procs")
        with pytest.raises(ConfigError, match=r"from env BUBBLES_EXECUTOR"):
            wf.run()
    with pytest.raises(ConfigError, match="is not an executor"):
        wf.run(executor=threading.Lock())
    with pytest.raises(ConfigError, match="cannot be combined with executor='processes'"):
        wf.run(executor="processes", distributed=True)

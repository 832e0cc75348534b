"""The behaviour every executor must show: each test runs on serial, threads, processes and dask.

The ``executor`` fixture (``tests/engine/conftest.py``) gives every name; ``dask`` runs on a real
``dask scheduler`` with two ``dask worker`` processes. A new executor joins by adding its name
there. Tasks that must outlast a timeout block on a file the test creates when it is done
(``release``), so no stray worker keeps sleeping into the next test.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import bubbles
from bubbles import ParallelTask, Pipeline, RunFailed, TaskAborted, TaskTimeout, UpstreamFailed, Workflow

from . import tasks as t
from .conftest import ALL_EXECUTORS


@pytest.fixture
def release(tmp_path: Path) -> Iterator[str]:
    """A file whose creation releases ``t.hang`` tasks: created when the test ends."""
    path = tmp_path / "release"
    yield str(path)
    path.touch()


def diamond() -> Workflow:
    wf = Workflow("diamond")
    a = wf.add_task(t.one, name="a")
    b = wf.add_task(t.double, requires=[a], name="b")
    c = wf.add_task(t.square, requires=[a], name="c")
    wf.add_task(t.add, requires=[b, c], name="d")
    return wf


def test_diamond_passes_outputs_in_requires_order(executor: str) -> None:
    result = diamond().run(executor=executor)
    assert result.ok and result.status == "succeeded"
    assert result.tasks["d"].result == 3  # double(1) + square(1)
    assert result.states() == {"a": "succeeded", "b": "succeeded", "c": "succeeded", "d": "succeeded"}
    assert all(r.attempts == 1 for r in result.tasks.values())


def test_same_results_on_every_executor(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUBBLES_DASK_ADDRESS", request.getfixturevalue("conformance_cluster").address)

    def build() -> Workflow:
        wf = Workflow("same")
        nums = wf.map(t.square, range(20), name="squares", max_concurrent=3)
        wf.add_task(t.total, requires=[nums])
        return wf

    outputs = {ex: build().run(executor=ex).tasks["total"].result for ex in ALL_EXECUTORS}
    assert set(outputs.values()) == {sum(i * i for i in range(20))}


def test_keyword_requires_and_constant_kwargs(executor: str) -> None:
    wf = Workflow("kw")
    a = wf.add_task(t.one, name="a")
    wf.add_task(t.add, requires={"b": a}, kwargs={"a": 40}, name="sum")
    assert wf.run(executor=executor).tasks["sum"].result == 41


def test_after_orders_without_passing_outputs(executor: str, tmp_path: Path) -> None:
    log = str(tmp_path / "log.txt")
    wf = Workflow("order")
    create = wf.add_task(t.append_line, kwargs={"path": log, "text": "create"}, name="create")
    wf.add_task(t.append_line, after=[create], kwargs={"path": log, "text": "load"}, name="load")
    wf.run(executor=executor)
    assert Path(log).read_text().split() == ["create", "load"]


def test_pipeline_chains_outputs(executor: str) -> None:
    p = Pipeline("chain")
    p.add_task(t.double)
    p.add_task(t.square)
    assert p.run(5, executor=executor).output == 100


def test_map_over_upstream_output_then_reduce(executor: str) -> None:
    wf = Workflow("fanout")
    items = wf.add_task(t.list_items)
    parts = wf.map(t.double, items, max_concurrent=2, name="doubled")
    wf.add_task(t.total, requires=[parts], name="sum")
    result = wf.run(executor=executor)
    assert result.tasks["sum"].result == 20
    assert [result.tasks[f"doubled[{i}]"].state for i in range(4)] == ["succeeded"] * 4
    assert result.tasks["doubled[2]"].group == "doubled"


def test_map_over_nothing_gives_an_empty_list(executor: str) -> None:
    wf = Workflow("empty")
    parts = wf.map(t.double, [], name="doubled")
    wf.add_task(t.total, requires=[parts], name="sum")
    assert wf.run(executor=executor).tasks["sum"].result == 0


@pytest.mark.parametrize("executor", ["threads", "processes", "dask"], indirect=True)  # serial: one at a time anyway
def test_parallel_task_limits_concurrency(executor: str) -> None:
    fns = [bubbles.task(t.spans).options(name=f"s{i}") for i in range(4)]
    wf = Workflow("par")
    wf.add_task(ParallelTask(fns, max_concurrent_tasks=2), name="group")
    result = wf.run(executor=executor, max_workers=4)
    windows = result.tasks["group"].result
    assert len(windows) == 4
    events = sorted([(s, 1) for s, _ in windows] + [(e, -1) for _, e in windows])
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    assert peak == 2  # never more than 2, and the limit is actually used


def test_retries_until_success_with_backoff(executor: str, tmp_path: Path) -> None:
    counter = str(tmp_path / "n")
    wf = Workflow("retry")
    wf.add_task(t.flaky, kwargs={"counter": counter, "fail_times": 2}, retries=3, retry_delay=0.05, backoff=2, name="flaky")
    started = time.monotonic()
    result = wf.run(executor=executor)
    assert result.tasks["flaky"].result == 3
    assert result.tasks["flaky"].attempts == 3
    assert time.monotonic() - started >= 0.05 / 2 + 0.1 / 2  # jittered waits still happened


def test_retries_exhausted_fail_the_run(executor: str, tmp_path: Path) -> None:
    counter = tmp_path / "n"
    wf = Workflow("retry")
    wf.add_task(t.flaky, kwargs={"counter": str(counter), "fail_times": 5}, retries=1, retry_delay=0.01, name="flaky")
    with pytest.raises(RunFailed) as info:
        wf.run(executor=executor)
    run = info.value.result.tasks["flaky"]
    assert run.state == "failed" and run.attempts == 2
    assert isinstance(run.error, ConnectionError)
    assert "transient failure 2" in str(run.error)
    assert "flaky" in run.traceback and "ConnectionError" in run.traceback
    assert counter.read_text() == "2"


def test_retry_on_filters_exceptions_and_terminal_errors_are_not_retried(executor: str, tmp_path: Path) -> None:
    c1, c2 = tmp_path / "a", tmp_path / "b"
    wf = Workflow("filter")
    wf.add_task(
        t.flaky, kwargs={"counter": str(c1), "fail_times": 1}, retries=3, retry_delay=0.01, retry_on=KeyError, name="wrong_kind"
    )
    wf.add_task(t.not_transient, kwargs={"counter": str(c2)}, retries=3, retry_delay=0.01, name="terminal")
    result = wf.run(executor=executor, fail_fast=False, raise_on_error=False)
    assert result.tasks["wrong_kind"].attempts == 1 and c1.read_text() == "1"
    assert result.tasks["terminal"].attempts == 1 and c2.read_text() == "1"
    assert isinstance(result.tasks["terminal"].error, bubbles.DataError)


def test_failure_marks_downstream_and_fail_fast_stops(executor: str) -> None:
    wf = Workflow("ff")
    bad = wf.add_task(t.boom, name="bad")
    wf.add_task(t.noop, after=[bad], name="after_bad")
    slow = wf.add_task(t.sleepy, kwargs={"seconds": 0.3}, name="slow")
    wf.add_task(t.noop, after=[slow], name="after_slow")
    result = wf.run(executor=executor, max_workers=1, raise_on_error=False)
    states = result.states()
    assert states["bad"] == "failed"
    assert states["after_bad"] == "upstream_failed"
    assert isinstance(result.tasks["after_bad"].error, UpstreamFailed)
    assert states["after_slow"] in ("skipped", "succeeded")
    assert "skipped" in states.values()
    assert result.status == "failed"


def test_keep_going_runs_every_independent_branch(executor: str) -> None:
    wf = Workflow("kg")
    bad = wf.add_task(t.boom, name="bad")
    wf.add_task(t.noop, after=[bad], name="after_bad")
    ok = wf.add_task(t.one, name="ok")
    wf.add_task(t.double, requires=[ok], name="after_ok")
    result = wf.run(executor=executor, max_workers=1, fail_fast=False, raise_on_error=False)
    assert result.states() == {"bad": "failed", "after_bad": "upstream_failed", "ok": "succeeded", "after_ok": "succeeded"}
    assert result.tasks["after_ok"].result == 2


def test_run_failed_carries_result_and_names_the_task(executor: str) -> None:
    wf = Workflow("msg")
    wf.add_task(t.boom, name="parse")
    with pytest.raises(RunFailed) as info:
        wf.run(executor=executor)
    err = info.value
    assert err.result.run_id in str(err)
    assert "'parse'" in str(err) and "ValueError: boom: bad row 17" in str(err)
    assert "tasks.py" in str(err)  # where it happened
    with pytest.raises(RunFailed):
        err.result.raise_for_status()


def test_timeout_ends_the_run_on_time(executor: str, release: str) -> None:
    wf = Workflow("timeout")
    wf.add_task(t.hang, kwargs={"release": release}, timeout=0.5, name="hang")
    wf.add_task(t.one, name="fine")
    started = time.monotonic()
    result = wf.run(executor=executor, fail_fast=False, raise_on_error=False)
    elapsed = time.monotonic() - started
    assert elapsed < 5, elapsed
    assert result.tasks["hang"].state == "failed"
    assert isinstance(result.tasks["hang"].error, TaskTimeout)
    assert result.tasks["fine"].result == 1


def test_timeout_is_retried(executor: str, release: str) -> None:
    wf = Workflow("timeout-retry")
    wf.add_task(t.hang, kwargs={"release": release}, timeout=0.3, retries=1, retry_delay=0.01, name="hang")
    started = time.monotonic()
    result = wf.run(executor=executor, raise_on_error=False)
    assert time.monotonic() - started < 5
    assert result.tasks["hang"].attempts == 2


def test_custom_and_builtin_metrics(executor: str) -> None:
    mc = bubbles.MetricsCollector()
    wf = Workflow("metrics")
    wf.add_task(t.with_metric, kwargs={"x": 7}, name="m").attach(mc)
    wf.add_task(t.one, name="other")
    wf.run(executor=executor)
    assert mc.tasks == ["m"]  # attached to one task only
    assert mc.get_metric("seen") == 7
    assert mc.get_metric("calls") == 2
    assert mc.get_metric("execution_time") >= 0
    assert mc.get_metric("status") == "succeeded"


def test_rows_counted_for_arrow_and_lists(executor: str) -> None:
    mc = bubbles.MetricsCollector()
    wf = Workflow("rows")
    tbl = wf.add_task(t.arrow_table, kwargs={"rows": 1000}, name="table")
    wf.add_task(t.arrow_sum, requires=[tbl], name="sum")
    wf.attach(mc)
    result = wf.run(executor=executor)
    assert result.tasks["sum"].result == sum(i / 2 for i in range(1000))
    assert mc.get_metric("rows_out", task="table") == 1000
    assert mc.get_metric("rows_in", task="sum") == 1000
    assert mc.get_metric("bytes_out", task="table") > 0


def test_hooks_see_events_in_order(executor: str) -> None:
    seen: list[tuple[str, Any]] = []

    class Recorder:
        def on_run_start(self, *, run_id: str, tasks: list[str], **kw: Any) -> None:
            seen.append(("run_start", tuple(tasks)))

        def on_task_start(self, *, task: str, attempt: int, **kw: Any) -> None:
            seen.append(("start", task))

        def on_task_end(self, *, task: str, status: str, **kw: Any) -> None:
            seen.append(("end", task, status))

        def on_run_end(self, *, status: str, result: Any, **kw: Any) -> None:
            seen.append(("run_end", status))

    p = Pipeline("events")
    p.add_task(t.one)
    p.add_task(t.double)
    p.run(executor=executor, hooks=[Recorder()])
    assert seen == [
        ("run_start", ("one", "double")),
        ("start", "one"),
        ("end", "one", "succeeded"),
        ("start", "double"),
        ("end", "double", "succeeded"),
        ("run_end", "succeeded"),
    ]


@pytest.mark.parametrize("executor", ["serial", "threads"], indirect=True)  # processes and dask add only IPC
def test_a_1000_task_graph(executor: str) -> None:
    wf = Workflow("big")
    prev = wf.add_task(t.one, name="start")
    layer = [wf.add_task(t.double, requires=[prev], name=f"fan{i}") for i in range(500)]
    chain = prev
    for i in range(498):
        chain = wf.add_task(
            t.double if i < 10 else t.noop, requires=[chain] if i < 10 else None, after=[] if i < 10 else [chain], name=f"c{i}"
        )
    wf.add_task(lambda *xs: len(xs), requires=layer, name="join")
    result = wf.run(executor=executor)
    assert len(result.tasks) == 1000
    assert result.tasks["join"].result == 500


def test_a_task_waiting_to_retry_keeps_its_error_when_fail_fast_stops_the_run(executor: str, tmp_path: Path) -> None:
    wf = Workflow("retry-then-stop")
    wf.add_task(t.flaky, kwargs={"counter": str(tmp_path / "n"), "fail_times": 5}, retries=3, retry_delay=5, name="waits")
    wf.add_task(t.boom, name="fails")
    started = time.monotonic()
    result = wf.run(executor=executor, max_workers=2, raise_on_error=False)
    assert time.monotonic() - started < 4  # did not sit out the 5 s backoff
    waits = result.tasks["waits"]
    assert waits.state == "failed" and isinstance(waits.error, ConnectionError)
    assert "transient failure 1" in str(waits.error) and "ConnectionError" in waits.traceback
    assert "not retried" in waits.traceback
    assert result.tasks["fails"].state == "failed"


# -- the executor contract: exactly one outcome per call, whatever the task does ---------------------
def test_a_result_that_cannot_be_measured_succeeds(executor: str) -> None:
    wf = Workflow("unmeasurable")
    wf.add_task(t.timestamp, name="ts")
    result = wf.run(executor=executor)
    assert result.tasks["ts"].result == __import__("pandas").Timestamp("2024-01-31")
    assert "rows_out" not in result.tasks["ts"].metrics  # unknown, not a failure


@pytest.mark.parametrize("kind", ["SystemExit", "KeyboardInterrupt", "GeneratorExit"])
@pytest.mark.parametrize("timeout", [None, 5.0])
def test_a_base_exception_fails_only_its_task(executor: str, kind: str, timeout: float | None) -> None:
    wf = Workflow("base-exceptions")
    wf.add_task(t.raises_base, kwargs={"kind": kind}, timeout=timeout, retries=2, retry_delay=0.01, name="exits")
    wf.add_task(t.one, name="after", after=["exits"])
    wf.add_task(t.two, name="bystander")
    started = time.monotonic()
    result = wf.run(executor=executor, fail_fast=False, raise_on_error=False)
    assert time.monotonic() - started < 4  # no timeout was waited for, nothing hung
    exits = result.tasks["exits"]
    assert exits.state == "failed" and isinstance(exits.error, TaskAborted), exits.error
    assert exits.error.error_type == kind and kind in str(exits.error) and "'exits'" in str(exits.error)
    assert exits.attempts == 1  # deliberate: not retried
    assert kind in exits.traceback and "raises_base" in exits.traceback
    assert result.tasks["after"].state == "upstream_failed"
    assert result.tasks["bystander"].result == 2  # the interpreter and the worker lived on
    assert result.status == "failed"


def _pool(executor: str) -> Any:
    from bubbles.engine.executors.dask import DaskExecutor
    from bubbles.engine.executors.local import SerialExecutor, ThreadExecutor
    from bubbles.engine.executors.processes import ProcessExecutor

    return {
        "serial": lambda: SerialExecutor(),
        "threads": lambda: ThreadExecutor(4),
        "processes": lambda: ProcessExecutor(2),
        "dask": lambda: DaskExecutor(address=os.environ["BUBBLES_DASK_ADDRESS"]),
    }[executor]()


def test_concurrent_runs_on_one_pool_get_their_own_outcomes(executor: str) -> None:
    """Two runs in two threads share one pool: each gets exactly its own outputs, both end."""

    def build(tag: str) -> Workflow:
        wf = Workflow(f"run-{tag}")
        parts = wf.map(t.tagged, range(40), kwargs={"tag": tag}, name="parts")
        wf.add_task(lambda xs: [x for part in xs for x in part], requires=[parts], name="all")
        return wf

    results: dict[str, Any] = {}
    errors: list[BaseException] = []

    def run(tag: str, pool: Any) -> None:
        try:
            results[tag] = build(tag).run(executor=pool, keep_outputs=True)
        except BaseException as exc:  # reported below
            errors.append(exc)

    pool = _pool(executor)
    with pool if hasattr(pool, "__enter__") else _nothing():
        threads = [threading.Thread(target=run, args=(tag, pool)) for tag in ("a", "b")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not any(thread.is_alive() for thread in threads), "a run on the shared pool hung"
    assert not errors, errors
    for tag in ("a", "b"):
        assert results[tag].tasks["all"].result == [f"{tag}-{n}" for n in range(40)]
    assert results["a"].run_id != results["b"].run_id


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


@pytest.mark.parametrize("executor", ["processes", "dask"], indirect=True)
def test_a_worker_killed_mid_call_fails_only_that_call(executor: str, tmp_path: Path) -> None:
    wf = Workflow("killed")
    wf.add_task(t.kill_own_process_once, kwargs={"counter": str(tmp_path / "n")}, retries=2, retry_delay=0.01, name="victim")
    wf.add_task(t.one, name="bystander")
    result = wf.run(executor=executor, fail_fast=False, raise_on_error=False)
    assert result.tasks["bystander"].result == 1
    victim = result.tasks["victim"]
    assert victim.state == "succeeded" and victim.result == "survived"
    assert (tmp_path / "n").read_text() in ("2", "3")  # killed once, then ran again (Dask may recompute)


@pytest.mark.parametrize("executor", ["threads", "processes", "dask"], indirect=True)  # serial is not a pool
def test_a_pool_that_was_shut_down_refuses_new_runs(executor: str) -> None:
    pool = _pool(executor)
    with pool:
        assert Workflow("inside").add_task(t.one).workflow.run(executor=pool).ok
    with pytest.raises(bubbles.PoolClosedError, match="shut down"):
        Workflow("after").add_task(t.one).workflow.run(executor=pool)

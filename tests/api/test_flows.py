"""@task and @bubbles: futures, dependencies by passing futures, control flow, map, plain calls."""

from __future__ import annotations

import time

import pytest

import bubbles
from bubbles import RunFailed, SignatureError, flow, task

from ..engine import tasks as t

slow_double = task(t.sleepy)
square = task(t.square)
total = task(t.total)
boom = task(t.boom)


@task
def add(a: int, b: int) -> int:
    return a + b


@task(retries=2, retry_delay=0.01)
def flaky(counter: str) -> int:
    return t.flaky(counter, 1)


def test_task_outside_a_flow_is_a_plain_call() -> None:
    assert add(2, 3) == 5
    assert square.map([1, 2, 3]) == [1, 4, 9]


def test_bubbles_is_flow_and_pybubbles_alias() -> None:
    import pybubbles

    assert bubbles.bubbles is bubbles.flow
    assert pybubbles.bubbles is bubbles.flow and pybubbles.task is bubbles.task


def test_calls_return_futures_at_once_and_run_in_parallel() -> None:
    timings: dict[str, float] = {}

    @flow
    def process() -> list[float]:
        started = time.monotonic()
        futures = [slow_double(0.3) for _ in range(4)]
        timings["submit"] = time.monotonic() - started
        assert all(isinstance(f, bubbles.Future) for f in futures)
        return futures  # type: ignore[return-value]

    started = time.monotonic()
    assert process() == [0.3] * 4  # futures in the return value are resolved
    elapsed = time.monotonic() - started
    assert timings["submit"] < 0.1
    assert elapsed < 0.3 * 4 * 0.75  # overlapped


def test_passing_futures_makes_dependencies_and_control_flow_works() -> None:
    @flow
    def process(n: int) -> int:
        squares = [square(i) for i in range(n)]
        s = total(squares)  # a list of futures: waits for all of them
        if s.result() > 10:
            return add(s, 1000).result()
        return s.result()

    assert process(4) == 14 + 1000
    assert process(2) == 1


def test_map_inside_a_flow_with_a_future_as_items() -> None:
    items = task(t.list_items)

    @flow
    def process() -> int:
        parts = square.map(items(), max_concurrent=2)
        return total(parts)  # type: ignore[return-value]

    result = process.run()
    assert result.output == 1 + 4 + 9 + 16
    assert {k for k in result.tasks if k.startswith("square[")} == {f"square[{i}]" for i in range(4)}


def test_task_identity_is_name_and_call_number() -> None:
    @flow
    def process() -> list[int]:
        return [square(2), square(3), add(1, 2)]  # type: ignore[list-item]

    result = process.run()
    assert set(result.tasks) == {"square", "square-2", "add"}
    assert result.output == [4, 9, 3]


def test_failed_task_raises_run_failed_with_the_result() -> None:
    @flow
    def process() -> int:
        a = square(3)
        boom()
        return a.result()

    with pytest.raises(RunFailed) as info:
        process()
    result = info.value.result
    assert result.tasks["boom"].state == "failed"
    assert result.tasks["square"].state == "succeeded"


def test_downstream_of_a_failed_future_is_upstream_failed() -> None:
    @flow
    def process() -> None:
        bad = task(t.boom)()
        add(bad, 1)

    with pytest.raises(RunFailed) as info:
        process.options(fail_fast=False)()
    assert info.value.result.states() == {"boom": "failed", "add": "upstream_failed"}


def test_retries_apply_in_flows(tmp_path) -> None:  # type: ignore[no-untyped-def]
    @flow
    def process() -> int:
        return flaky(str(tmp_path / "n"))  # type: ignore[return-value]

    result = process.run()
    assert result.output == 2 and result.tasks["flaky"].attempts == 2


def test_bad_call_is_reported_at_the_call_site() -> None:
    @flow
    def process() -> None:
        add(1)  # type: ignore[call-arg]

    with pytest.raises(RunFailed) as info:
        process()
    assert isinstance(info.value.result.error, SignatureError)
    assert "'add'" in str(info.value.result.error)


@pytest.mark.parametrize("executor", ["serial", "threads", "processes"])
def test_flows_on_every_executor(executor: str) -> None:
    @flow(executor=executor)
    def process(n: int) -> int:
        return total([square(i) for i in range(n)])  # type: ignore[return-value]

    assert process(5) == 30


def test_flow_params_and_options() -> None:
    @flow
    def process(n: int, offset: int = 0) -> int:
        return add(n, offset).result()

    assert process(1, offset=2) == 3
    assert process.options(executor="serial").run(4).output == 4


def test_task_requires_in_a_workflow_and_in_a_flow(tmp_path) -> None:  # type: ignore[no-untyped-def]
    log = tmp_path / "log"

    @task
    def create() -> str:
        return t.append_line(str(log), "create")

    @task(requires=[create])
    def load(created: str) -> str:
        return t.append_line(str(log), f"load-after-{created}")

    wf = bubbles.Workflow("declared")
    wf.add_task(create)
    wf.add_task(load)  # no requires= here: the decorator's requires= applies
    assert wf.run(executor="serial").tasks["load"].result == "load-after-create"

    @task(requires=[create])
    def load_only() -> str:  # in a flow, requires= orders after earlier calls of `create`
        return t.append_line(str(log), "load-only")

    @flow
    def process() -> str:
        create()
        return load_only()  # type: ignore[return-value]

    log.unlink()
    assert process() == "load-only"
    assert log.read_text().split() == ["create", "load-only"]

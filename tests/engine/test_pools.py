"""Executors kept alive across runs (``with ProcessExecutor(...) as pool``)."""

from __future__ import annotations

import pytest

from bubbles import Workflow
from bubbles.engine.executors.local import ThreadExecutor
from bubbles.engine.executors.processes import ProcessExecutor

from . import tasks as t


@pytest.mark.parametrize("pool_class", [ThreadExecutor, ProcessExecutor])
def test_a_pool_serves_several_runs_and_survives_a_timeout(pool_class: type) -> None:
    wf = Workflow("reuse")
    wf.map(t.square, range(10), name="sq")
    hang = Workflow("hang")
    hang.add_task(t.sleepy, kwargs={"seconds": 30}, timeout=0.3, name="sleepy")
    with pool_class(2) as pool:
        first = wf.run(executor=pool).tasks["sq"].result
        timed_out = hang.run(executor=pool, raise_on_error=False)
        second = wf.run(executor=pool).tasks["sq"].result
    assert first == second == [i * i for i in range(10)]
    assert timed_out.tasks["sleepy"].state == "failed"


def test_process_pool_reuses_its_workers() -> None:
    wf = Workflow("pids")
    wf.map(lambda _: t.pid(), range(8), name="pids")
    with ProcessExecutor(2) as pool:
        a = set(wf.run(executor=pool).tasks["pids"].result)
        b = set(wf.run(executor=pool).tasks["pids"].result)
    assert len(a | b) <= 2  # the second run started no new process (either run may use one or both)

"""peak_memory: a task that allocates 300 MB shows at least 300 MB, on every local executor."""

from __future__ import annotations

import time

import pytest

from bubbles import MetricsCollector, Workflow

MB = 2**20


def allocate_300mb() -> int:
    block = b"x" * (300 * MB)  # bytes are written, so the pages are resident
    time.sleep(0.05)
    return len(block)


def allocate_and_free_quickly() -> int:
    block = b"x" * (300 * MB)
    n = len(block)
    del block
    return n


@pytest.mark.parametrize("executor", ["serial", "threads", "processes"])
def test_300mb_task_shows_at_least_300mb(executor: str) -> None:
    wf = Workflow("mem")
    mc = MetricsCollector()
    wf.add_task(allocate_300mb, name="big").attach(mc)
    wf.add_task(allocate_and_free_quickly, name="brief").attach(mc)
    wf.run(executor, max_workers=1)
    peaks = mc.get_metric("peak_memory")
    assert peaks["big"] >= 300 * MB, peaks
    assert peaks["brief"] >= 300 * MB, peaks  # freed before returning: the kernel's high-water mark still saw it


def test_small_task_in_a_fresh_worker_is_far_below_300mb() -> None:
    wf = Workflow("small")
    mc = MetricsCollector()
    wf.add_task(lambda: sum(range(1000)), name="small").attach(mc)
    wf.run("processes", max_workers=1)
    assert 5 * MB < mc.get_metric("peak_memory") < 250 * MB


def test_memory_probe_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUBBLES_MEMORY", "0")
    wf = Workflow("off")
    mc = MetricsCollector()
    wf.add_task(lambda: 1, name="one").attach(mc)
    wf.run()
    assert mc.get_metric("peak_memory") is None


def test_next_task_does_not_inherit_the_previous_peak() -> None:
    wf = Workflow("sequence")
    mc = MetricsCollector()
    wf.attach(mc)
    big = wf.add_task(allocate_300mb, name="big")
    wf.add_task(lambda n: sum(range(20_000)) + n, name="after", requires=[big])
    # one worker process, so no other attempt of this test session shares the process: in-process
    # executors report an upper bound that includes whatever else runs there (documented)
    wf.run("processes", max_workers=1)
    peaks = mc.get_metric("peak_memory")
    assert peaks["big"] >= 300 * MB
    assert peaks["after"] < peaks["big"] - 200 * MB, peaks

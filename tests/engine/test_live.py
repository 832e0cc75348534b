"""The live view of a run: what observers that read (history, collectors, progress) see."""

from __future__ import annotations

import threading
from typing import Any

from bubbles import MetricsCollector, Workflow


class Keep:
    def __init__(self) -> None:
        self.live: Any = None
        self.scope: Any = "unset"
        self.seen_while_running: list[tuple[int, int, int]] = []

    def on_run_start(self, *, live: Any, scope: Any, **future_kwargs: Any) -> None:
        self.live, self.scope = live, scope


def test_the_journal_holds_every_ended_attempt_in_order() -> None:
    calls = {"n": 0}

    def flaky() -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ValueError("first")
        return 1

    def broken(x: int) -> int:
        raise RuntimeError("no")

    wf = Workflow("journal")
    a = wf.add_task(flaky, retries=1, retry_delay=0.01)
    b = wf.add_task(broken, requires=[a])
    wf.add_task(lambda y: y, name="after", requires=[b])
    keep = Keep()
    result = wf.run(executor="threads", hooks=[keep], raise_on_error=False)
    live = keep.live
    assert keep.scope is None
    assert live.finished and live.run_id == result.run_id and live.workflow == "journal"
    seen = [(e.task, e.attempt, e.status) for e in live.attempts]
    assert seen == [("flaky", 1, "retrying"), ("flaky", 2, "succeeded"), ("broken", 1, "failed"), ("after", 0, "upstream_failed")]
    retry = live.attempts[0]
    assert isinstance(retry.error, ValueError) and "first" in retry.traceback
    assert retry.metrics["execution_time"] >= 0 and retry.started_at <= retry.ended_at
    assert (live.total, live.done, live.running) == (3, 3, 0)
    assert live.attempts[1].error is None and live.attempts[1].traceback == ""  # the success has no error
    assert result["flaky"].error is None


def test_the_journal_can_be_read_while_the_run_goes() -> None:
    release = threading.Event()
    keep = Keep()
    wf = Workflow("reading")
    first = wf.add_task(lambda: 1, name="first")
    wf.add_task(lambda x: release.wait(10), name="waits", requires=[first])
    done = threading.Thread(target=wf.run, kwargs={"executor": "threads", "hooks": [keep]})
    done.start()
    try:
        for _ in range(500):
            if keep.live is not None and keep.live.done == 1 and keep.live.running == 1:
                break
            threading.Event().wait(0.01)
        live = keep.live
        assert not live.finished
        assert [(e.task, e.status) for e in live.attempts] == [("first", "succeeded")]
        assert (live.total, live.done, live.running) == (2, 1, 1)
    finally:
        release.set()
        done.join(10)
    assert keep.live.finished and keep.live.done == 2


def test_map_items_count_as_tasks_as_they_appear() -> None:
    keep = Keep()
    wf = Workflow("mapped")
    items = wf.add_task(lambda: [1, 2, 3], name="items")
    wf.map(lambda x: x * 2, items, name="double")
    wf.run(executor="serial", hooks=[keep])
    assert keep.live.total == 4 and keep.live.done == 4
    assert sorted(e.task for e in keep.live.attempts if e.group == "double") == ["double[0]", "double[1]", "double[2]"]


def test_an_attached_hook_is_told_its_scope_and_a_collector_keeps_to_it() -> None:
    keep = Keep()
    mc = MetricsCollector()
    wf = Workflow("scoped")
    items = wf.add_task(lambda: [1, 2], name="items")
    wf.add_task(lambda: 5, name="other")
    wf.map(lambda x: x, items, name="each").attach(keep).attach(mc)
    wf.run(executor="serial")
    assert keep.scope == frozenset({"each"})
    assert sorted(mc.tasks) == ["each[0]", "each[1]"]


def test_a_collector_watching_two_runs_keeps_both_and_not_their_outputs() -> None:
    import gc
    import weakref

    class Big:
        pass

    made: list[weakref.ref[Big]] = []

    def make() -> Big:
        big = Big()
        made.append(weakref.ref(big))
        return big

    mc = MetricsCollector()
    wf = Workflow("twice")
    wf.add_task(make, name="make")
    wf.attach(mc)
    wf.run(executor="serial")
    wf.run(executor="serial")
    gc.collect()
    assert [ref() for ref in made] == [None, None]  # the results were dropped: the collector holds no output
    assert [r["task"] for r in mc.records] == ["make", "make"]
    assert len({r["run_id"] for r in mc.records}) == 2


def test_a_map_over_a_generator_that_raises_fails_the_map_and_the_run_ends() -> None:
    def items():
        yield 1
        raise OSError("the source went away")

    keep = Keep()
    wf = Workflow("gen")
    source = wf.add_task(items, name="items")
    wf.map(lambda x: x, source, name="each")
    result = wf.run(executor="threads", hooks=[keep], raise_on_error=False)
    assert result.status == "failed" and result["each"].state == "failed"
    assert "could not read its items: OSError: the source went away" in str(result["each"].error)
    assert keep.live.finished and keep.live.running == 0


def test_the_live_view_lets_the_runner_go_when_the_run_ends() -> None:
    import gc
    import weakref

    from bubbles.engine import runner as runner_module

    made: list[weakref.ref] = []
    original = runner_module.Runner.__init__

    def spy(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        original(self, *args, **kwargs)
        made.append(weakref.ref(self))

    keep = Keep()
    wf = Workflow("letgo")
    wf.add_task(lambda: 1, name="one")
    runner_module.Runner.__init__ = spy  # type: ignore[method-assign]
    try:
        wf.run(executor="serial", hooks=[keep])
    finally:
        runner_module.Runner.__init__ = original  # type: ignore[method-assign]
    gc.collect()
    assert made and made[0]() is None
    assert (keep.live.total, keep.live.done, keep.live.running, keep.live.finished) == (1, 1, 0, True)


def test_a_map_source_whose_error_cannot_be_printed_fails_the_map_cleanly() -> None:
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no text")

    def items():
        yield 1
        raise Unprintable()

    wf = Workflow("gen2")
    source = wf.add_task(items, name="items")
    wf.map(lambda x: x, source, name="each")
    result = wf.run(executor="serial", raise_on_error=False)
    assert result["each"].state == "failed"
    assert "could not read its items: Unprintable: Unprintable()" in str(result["each"].error)

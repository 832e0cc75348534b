"""Runner behaviour beyond the conformance suite: memory release, cancel, params, results."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import textwrap
import time
import weakref
from pathlib import Path
from typing import Any

import pytest

from bubbles import BubblesError, RunCancelled, Workflow

from . import tasks as t


class Blob:
    """A big-ish, weak-referenceable output."""

    def __init__(self) -> None:
        self.data = bytearray(1024)


def test_outputs_are_freed_after_their_last_consumer() -> None:
    refs: dict[str, weakref.ref[Blob]] = {}
    alive_at_end: dict[str, bool] = {}

    def make() -> Blob:
        blob = Blob()
        refs["first"] = weakref.ref(blob)
        return blob

    def consume(blob: Blob) -> int:
        return len(blob.data)

    class Probe:
        def on_task_end(self, *, task: str, **kw: Any) -> None:
            if task == "last":
                gc.collect()
                alive_at_end["first"] = refs["first"]() is not None

    wf = Workflow("release")
    first = wf.add_task(make, name="first")
    mid = wf.add_task(consume, requires=[first], name="mid")
    wf.add_task(t.double, requires=[mid], name="last")
    result = wf.run(executor="serial", hooks=[Probe()])
    assert alive_at_end == {"first": False}
    assert result.tasks["last"].result == 2048
    with pytest.raises(BubblesError, match=r"released.*keep_outputs=True"):
        _ = result.tasks["first"].result
    kept = wf.run(executor="serial", keep_outputs=True)
    assert isinstance(kept.tasks["first"].result, Blob)


def test_params_fill_parameters_by_name() -> None:
    def extract(day: str, limit: int = 10) -> str:
        return f"{day}:{limit}"

    wf = Workflow("params")
    e = wf.add_task(extract)
    wf.add_task(lambda s, day: f"{s}@{day}", requires=[e], name="load")
    result = wf.run(params={"day": "2024-01-31", "unused": 1}, keep_outputs=True)
    assert result.tasks["extract"].result == "2024-01-31:10"
    assert result.tasks["load"].result == "2024-01-31:10@2024-01-31"


def test_run_ids_are_unique_and_sortable() -> None:
    wf = Workflow("ids")
    wf.add_task(t.one)
    ids = [wf.run(executor="serial").run_id for _ in range(3)]
    assert len(set(ids)) == 3
    assert ids[0][:8].isdigit()


def test_failing_hook_never_breaks_the_run(caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        def on_task_end(self, **kw: Any) -> None:
            raise RuntimeError("hook bug")

    wf = Workflow("hook")
    wf.add_task(t.one)
    assert wf.run(hooks=[Broken()]).ok
    assert "hook bug" in caplog.text


def test_task_callbacks_receive_event_fields() -> None:
    seen: list[tuple[str, str]] = []
    wf = Workflow("cb")
    wf.add_task(t.one, on_success=lambda *, task, status, **kw: seen.append((task, status)))
    wf.add_task(t.boom, on_failure=lambda *, task, error, **kw: seen.append((task, type(error).__name__)))
    wf.run(fail_fast=False, raise_on_error=False, executor="serial")
    assert sorted(seen) == [("boom", "ValueError"), ("one", "succeeded")]


def test_cancel_from_another_thread_records_a_cancelled_run() -> None:
    import threading

    from bubbles.session.run import RunOptions, start_run

    wf = Workflow("cancel")
    wf.add_task(t.sleepy, kwargs={"seconds": 30}, name="long")
    graph, _limits = wf.graph()
    holder: dict[str, Any] = {}

    def on_runner(runner: Any) -> None:
        threading.Timer(0.3, runner.cancel).start()

    started = time.monotonic()
    with pytest.raises(RunCancelled) as info:
        start_run(graph, RunOptions("threads"), on_runner=on_runner)
    holder["result"] = info.value.result
    assert time.monotonic() - started < 5
    assert holder["result"].status == "cancelled"
    assert holder["result"].tasks["long"].state == "cancelled"


def test_worker_threads_do_not_hold_up_exit_after_a_soft_timeout(tmp_path: Path) -> None:
    script = tmp_path / "soft.py"
    script.write_text(
        textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(Path(__file__).parents[2])!r})
        from bubbles import Workflow
        from tests.engine import tasks as t
        wf = Workflow("soft")
        wf.add_task(t.sleepy, kwargs={{"seconds": 60}}, timeout=0.3, name="hang")
        r = wf.run(executor="threads", raise_on_error=False)
        print(r.tasks["hang"].state)
    """)
    )
    started = time.monotonic()
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == "failed", out.stderr
    assert time.monotonic() - started < 10
    assert os.getpid()  # the parent is unaffected


def test_an_executor_that_cannot_start_ends_the_run_failed_and_recorded() -> None:
    from bubbles import RunFailed
    from bubbles.engine.executors.local import SerialExecutor

    class Unreachable(SerialExecutor):
        def open(self, run_id: str, post: Any, **options: Any) -> Any:
            raise ConnectionError("scheduler at tcp://192.0.2.9:8786 is unreachable")

    ends: list[str] = []

    class Recorder:
        def on_run_end(self, *, status: str, **kw: Any) -> None:
            ends.append(status)

    wf = Workflow("unreachable")
    wf.add_task(t.one)
    with pytest.raises(RunFailed, match="unreachable") as info:
        wf.run(executor=Unreachable(), hooks=[Recorder()])
    assert ends == ["failed"]
    assert info.value.result.tasks["one"].state == "skipped"


def test_workflow_level_callbacks() -> None:
    seen: list[str] = []
    ok = Workflow("ok", on_success=lambda r: seen.append(f"ok:{r.status}"), on_failure=lambda r: seen.append("bad"))
    ok.add_task(t.one)
    ok.run()
    bad = Workflow("bad", on_failure=lambda r: seen.append(f"bad:{r.failed[0].name}"))
    bad.add_task(t.boom)
    bad.run(raise_on_error=False)
    assert seen == ["ok:succeeded", "bad:boom"]


def test_failure_summary_points_at_the_users_line(tmp_path: Path) -> None:
    import bubbles

    def extract() -> Any:
        return bubbles.read_csv(tmp_path / "missing.csv")  # the line a user should look at

    wf = Workflow("where")
    wf.add_task(extract)
    result = wf.run(raise_on_error=False)
    summary = result.describe_failure()
    at_line = next(line for line in summary.splitlines() if line.strip().startswith("at File"))
    assert "test_runner.py" in at_line and "extract" in at_line
    assert f"bubbles show {result.run_id} --task extract" in summary


def test_a_parameter_no_task_takes_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    def extract(day: str) -> str:
        return day

    wf = Workflow("typo")
    wf.add_task(extract)
    wf.run(params={"day": "2024-01-31", "dya": "2024-02-01"})
    assert "takes the parameter 'dya'" in caplog.text and "Did you mean 'day'?" in caplog.text


def test_a_group_spans_its_children() -> None:
    from bubbles import ParallelTask

    wf = Workflow("span")
    wf.add_task(ParallelTask([t.one, t.two]), name="both")
    wf.map(t.sleepy, [0.05, 0.1], name="naps")
    result = wf.run()
    for name in ("both", "naps"):
        group = result.tasks[name]
        assert group.state == "succeeded" and group.duration is not None
        children = [r for r in result.tasks.values() if r.group == name]
        assert group.started_at <= min(c.started_at for c in children)
        assert group.duration >= max(c.duration for c in children)

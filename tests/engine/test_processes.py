"""What only the processes executor has to get right: isolation, crashes, shipping code and data."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import psutil
import pytest

from bubbles import NotPicklableError, RunFailed, Workflow
from bubbles.engine.serialize import SPILL_BYTES

from . import tasks as t


def test_tasks_run_in_other_processes() -> None:
    wf = Workflow("pids")
    wf.map(lambda _: os.getpid(), range(6), name="pids")
    result = wf.run(executor="processes", max_workers=2)
    pids = set(result.tasks["pids"].result)
    assert os.getpid() not in pids and 1 <= len(pids) <= 2


def test_closures_and_lambdas_are_shipped_with_cloudpickle() -> None:
    factor = 7
    wf = Workflow("closure")
    wf.add_task(lambda: factor * 6, name="answer")
    assert wf.run(executor="processes").tasks["answer"].result == 42


def test_unpicklable_task_is_rejected_before_running_naming_it() -> None:
    lock = threading.Lock()
    wf = Workflow("unpicklable")
    wf.add_task(lambda: lock.locked(), name="uses_lock")
    with pytest.raises(NotPicklableError, match=r"'uses_lock'.*executor='threads'"):
        wf.run(executor="processes")
    assert wf.run(executor="threads").tasks["uses_lock"].result is False


def test_unpicklable_result_fails_the_task_clearly() -> None:
    wf = Workflow("bad-result")
    wf.add_task(lambda: threading.Lock(), name="returns_lock")
    with pytest.raises(RunFailed) as info:
        wf.run(executor="processes")
    err = info.value.result.tasks["returns_lock"].error
    assert isinstance(err, NotPicklableError) and "returned a lock" in str(err)


def test_a_dying_worker_fails_only_its_task_and_is_retried(tmp_path: Path) -> None:
    wf = Workflow("crash")
    wf.add_task(t.crash_once, kwargs={"counter": str(tmp_path / "n")}, retries=1, retry_delay=0.01, name="crashy")
    wf.add_task(t.one, name="bystander")
    result = wf.run(executor="processes", max_workers=2)
    assert result.tasks["crashy"].result == "survived"
    assert result.tasks["crashy"].attempts == 2
    assert result.tasks["bystander"].result == 1


def test_timeout_kills_the_worker_and_no_process_is_left_behind() -> None:
    me = psutil.Process()
    wf = Workflow("kill")
    wf.add_task(t.sleepy, kwargs={"seconds": 60}, timeout=0.5, name="hang")
    started = time.monotonic()
    result = wf.run(executor="processes", max_workers=1, raise_on_error=False)
    assert time.monotonic() - started < 5
    assert result.tasks["hang"].state == "failed"
    assert "killed" in str(result.tasks["hang"].error)

    def workers() -> list[psutil.Process]:  # other tests' servers may be our children too
        found = []
        for p in me.children():
            try:
                if "_procworker" in " ".join(p.cmdline()):
                    found.append(p)
            except psutil.Error:  # exited while we looked
                pass
        return found

    deadline = time.monotonic() + 5
    while workers() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert workers() == []


def test_large_arrow_tables_travel_through_spill_files() -> None:
    rows = SPILL_BYTES // 8  # id (int64) + amount (double) => about 2x the spill threshold
    wf = Workflow("arrow")
    table = wf.add_task(t.arrow_table, kwargs={"rows": rows}, name="table")
    wf.add_task(t.arrow_sum, requires=[table], name="sum")
    result = wf.run(executor="processes", keep_outputs=True)
    assert result.tasks["sum"].result == sum(i / 2 for i in range(rows))
    assert result.tasks["table"].result.num_rows == rows


def test_spill_round_trip_keeps_schema_metadata_and_cleans_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import multiprocessing.connection as mpc

    import pyarrow as pa

    from bubbles.engine.serialize import recv, send

    table = pa.table({"x": pa.array(range(SPILL_BYTES // 4), pa.int64())}).replace_schema_metadata({"origin": "test"})
    a, b = mpc.Pipe()
    send(a, {"t": table, "batch": table.to_batches()[0]}, spill=str(tmp_path))
    got = recv(b)
    assert got["t"].equals(table) and got["t"].schema.metadata == {b"origin": b"test"}
    assert isinstance(got["batch"], pa.RecordBatch) and got["batch"].num_rows == table.num_rows
    assert list((tmp_path).rglob("*.arrow")) == []  # receiver unlinked the files once mapped


def test_the_spill_dir_setting_is_where_big_tables_cross(tmp_path: Path) -> None:
    seen: list[str] = []

    class Watch:
        def on_task_end(self, **fields: object) -> None:
            seen.extend(os.listdir(tmp_path))

    rows = SPILL_BYTES // 8
    wf = Workflow("spill-setting")
    table = wf.add_task(t.arrow_table, kwargs={"rows": rows}, name="table")
    wf.add_task(t.arrow_sum, requires=[table], name="sum")
    result = wf.run(executor="processes", settings={"spill_dir": str(tmp_path)}, hooks=[Watch()])
    assert result.tasks["sum"].result == sum(i / 2 for i in range(rows))
    assert any(name.startswith("bubbles-spill-") for name in seen)  # the folder the setting names was used

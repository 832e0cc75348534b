"""Leases: a run killed at any moment leaves a row, and the next reader marks it crashed.

Each kill is a SIGKILL sent when an event says the moment has come (a marker file written by a
hook or a task), never after a guessed sleep.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import bubbles
from bubbles import Workflow
from bubbles.observe.history import history_path
from bubbles.store import open_store

SRC = str(Path(bubbles.__file__).parent.parent)


def _spawn(script: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)], env={**os.environ, "PYTHONPATH": SRC})


def _wait_for(path: Path, proc: subprocess.Popen[bytes], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert proc.poll() is None, "the script ended before its event"
        assert time.monotonic() < deadline, f"{path.name} did not appear"
        time.sleep(0.005)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)


def test_a_run_killed_at_its_first_instant_is_recorded_and_found_crashed(tmp_path: Path) -> None:
    marker = tmp_path / "started"
    proc = _spawn(f"""
        import pathlib
        from bubbles import Workflow
        class Announce:  # runs after the recorder's on_run_start: the run's row is written by now
            def on_run_start(self, **kw):
                pathlib.Path({str(marker)!r}).touch()
                import time; time.sleep(60)
        wf = Workflow("first-instant")
        wf.add_task(lambda: 1, name="one")
        wf.run(hooks=[Announce()])
    """)
    _wait_for(marker, proc)
    _kill(proc)
    with open_store(create=False) as store:
        (run,) = store.runs(workflow="first-instant")
        assert run["status"] == "running"  # as the kill left it, until a reader looks
        assert store.reap() == [run["run_id"]]
        run = store.run(run["run_id"])
    assert run["status"] == "crashed" and run["ended_at"] is not None
    assert f"process ({proc.pid} on {socket.gethostname()}) is gone" in run["error"]


def test_a_run_killed_mid_task_keeps_what_finished_and_drops_its_watermark_proposals(tmp_path: Path) -> None:
    marker = tmp_path / "second-started"
    proc = _spawn(f"""
        import pathlib, time
        from bubbles import Workflow, current_task
        from bubbles.data.state import StateStore
        def first():
            return [1, 2, 3]
        def second(rows):
            StateStore().propose("orders", 99, current_task().run_id)
            time.sleep(1.5)  # a heartbeat and a write of `first` happen meanwhile
            pathlib.Path({str(marker)!r}).touch()
            time.sleep(60)
        wf = Workflow("killed")
        wf.add_task(second, requires=[wf.add_task(first)])
        wf.run()
    """)
    _wait_for(marker, proc)
    _kill(proc)
    result = subprocess.run([sys.executable, "-m", "bubbles", "runs"], capture_output=True, text=True, env=os.environ)
    assert "crashed" in result.stdout, result.stdout + result.stderr  # the reader found it
    with open_store(create=False) as store:
        (run,) = store.runs(workflow="killed")
        assert run["status"] == "crashed" and run["heartbeat_at"] > run["started_at"]
        tasks = {t["task"]: t for t in store.tasks(run["run_id"])}
        assert tasks["first"]["state"] == "succeeded" and tasks["first"]["rows_out"] == 3
        assert "second" not in tasks  # it was running: no record
        assert store.pending_watermarks() == []  # discarded with the crashed run
        assert store.watermark("orders") is None


def test_a_run_on_another_host_is_crashed_once_its_lease_is_over() -> None:
    Workflow("seed").add_task(lambda: 1).workflow.run()
    now = time.time()
    with open_store() as store:
        base = dict.fromkeys(["ended_at", "duration", "pid_started_at", "argv", "params", "executor", "tasks_total", "error"])
        for run_id, beat in (("20260101-000000-aaaaaa", now - 600), ("20260101-000000-bbbbbb", now - 5)):
            row = {**base, "run_id": run_id, "workflow": "remote", "status": "running", "started_at": beat - 10}
            row.update(heartbeat_at=beat, lease_seconds=60.0, host="another-machine", pid=4242, bubbles_version="x")
            from bubbles.store.schema import TABLE_COLUMNS

            store.write({"runs": [tuple(row[c] for c in TABLE_COLUMNS["runs"])]})
        assert store.reap(now) == ["20260101-000000-aaaaaa"]
        assert store.run("aaaaaa")["status"] == "crashed" and "more than its lease of 60 s" in store.run("aaaaaa")["error"]
        assert store.run("bbbbbb")["status"] == "running"  # its heartbeat is fresh: alive, elsewhere
        # a run taken for crashed that beats again (a clock that jumped) is running again
        store.write({"heartbeats": [(now, "20260101-000000-aaaaaa")]})
        assert store.run("aaaaaa")["status"] == "running" and store.run("aaaaaa")["ended_at"] is None


def test_a_reused_pid_does_not_keep_a_dead_run_alive() -> None:
    Workflow("seed").add_task(lambda: 1).workflow.run()
    with open_store() as store:
        from bubbles.store.schema import TABLE_COLUMNS

        row = dict.fromkeys(TABLE_COLUMNS["runs"])
        row.update(run_id="20260101-000000-cccccc", workflow="w", status="running", started_at=time.time() - 30)
        row.update(heartbeat_at=time.time() - 1, lease_seconds=60.0, host=socket.gethostname(), pid=os.getpid())
        row.update(pid_started_at=1.0)  # this pid, but a process started at another time: not the run's
        store.write({"runs": [tuple(row[c] for c in TABLE_COLUMNS["runs"])]})
        assert store.reap() == ["20260101-000000-cccccc"]


def test_a_live_run_is_never_reaped(tmp_path: Path) -> None:
    seen: dict[str, list[str]] = {}

    def look() -> int:
        with open_store() as store:
            seen["reaped"] = store.reap()
            seen["status"] = [r["status"] for r in store.runs(workflow="alive")]
        return 1

    Workflow("alive").add_task(look).workflow.run()
    assert seen == {"reaped": [], "status": ["running"]}
    assert history_path().exists()


@pytest.mark.parametrize("executor", ["threads", "processes"])
def test_every_run_is_recorded_before_any_task_starts(executor: str) -> None:
    def first() -> str:
        with open_store() as store:
            return store.runs(workflow="early")[0]["status"]

    result = Workflow("early").add_task(first).workflow.run(executor=executor)
    assert result.tasks["first"].result == "running"

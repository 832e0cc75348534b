"""Run history: what is stored, concurrent writers, and a locked, corrupt, old or newer database."""

from __future__ import annotations

import logging
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

import bubbles
from bubbles import RunFailed, Workflow
from bubbles.observe.history import MIGRATIONS, SCHEMA_VERSION, HistoryError, HistoryStore, history_path

SRC = str(Path(bubbles.__file__).parent.parent)


def nothing() -> None:
    return None


def extract() -> list[int]:
    logging.getLogger("etl").info("read %d rows", 3)
    return [1, 2, 3]


def check(rows: list[int]) -> int:
    bubbles.log_metric("rejected", 1)
    raise ValueError(f"bad rows: {len(rows)}")


def failing_workflow() -> Workflow:
    wf = Workflow("hist")
    a = wf.add_task(extract)
    wf.add_task(check, requires=[a], retries=1, retry_delay=0.01)
    return wf


def test_run_attempts_metrics_logs_and_resources_are_stored() -> None:
    with pytest.raises(RunFailed) as info:
        failing_workflow().run()
    run_id = info.value.result.run_id
    with HistoryStore() as store:
        run = store.run(run_id)
        assert run["status"] == "failed" and run["workflow"] == "hist" and run["duration"] > 0
        assert run["tasks_total"] == 2 and run["host"] and run["executor"] == "threads"
        attempts = store.attempts(run_id)
        assert [(a["task"], a["attempt"], a["status"]) for a in attempts] == [
            ("extract", 1, "succeeded"),
            ("check", 1, "retrying"),
            ("check", 2, "failed"),
        ]
        first = attempts[0]
        assert first["rows_out"] == 3 and first["peak_memory"] > 0 and first["worker"]
        failed = attempts[2]
        assert failed["error"] == "ValueError: bad rows: 3"
        assert 'raise ValueError(f"bad rows: {len(rows)}")' in failed["traceback"]
        assert failed["rejected"] == 1.0 and failed["rows_in"] == 3
        logs = store.logs(run_id)
        assert [(entry["task"], entry["level"], entry["message"]) for entry in logs] == [("extract", "INFO", "read 3 rows")]
        assert len(store.resources(run_id)) >= 2
        assert store.run(run_id[:-2])["run_id"] == run_id  # a unique prefix works
        assert store.run("last")["run_id"] == run_id
        assert store.failed_counts([run_id]) == {run_id: 1}


def test_history_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUBBLES_HISTORY", "0")
    wf = Workflow("off")
    wf.add_task(lambda: 1, name="one")
    wf.run()
    assert not history_path().exists()


def test_unknown_run_id_is_a_clear_error() -> None:
    wf = Workflow("one")
    wf.add_task(lambda: 1, name="one")
    wf.run()
    with HistoryStore() as store, pytest.raises(HistoryError, match=r"No run 'nope'.*bubbles runs"):
        store.run("nope")


def test_concurrent_runs_in_threads_and_processes_all_recorded() -> None:
    results = []

    def one(i: int) -> None:
        wf = Workflow(f"w{i}")
        for j in range(40):
            wf.add_task(lambda j=j: [j], name=f"t{j}")
        results.append(wf.run("threads" if i % 2 else "processes", max_workers=2))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    script = textwrap.dedent("""
        from bubbles import Workflow
        wf = Workflow("sub")
        for j in range(30):
            wf.add_task(lambda j=j: [j], name=f"t{j}")
        print(wf.run().run_id)
    """)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env={**__import__("os").environ, "PYTHONPATH": SRC}
        )
        for _ in range(3)
    ]
    sub_ids = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    with HistoryStore() as store:
        for result in results:
            assert store.run(result.run_id)["status"] == "succeeded"
            assert len(store.attempts(result.run_id)) == 40
        for run_id in sub_ids:
            assert len(store.attempts(run_id)) == 30


def test_locked_database_keeps_the_run_and_imports_it_later(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("BUBBLES_HISTORY_TIMEOUT", "0.2")
    HistoryStore().close()
    holder = sqlite3.connect(history_path(), isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        wf = Workflow("locked")
        wf.add_task(lambda: [1, 2], name="one")
        with caplog.at_level(logging.WARNING, logger="bubbles"):
            run_id = wf.run().run_id
        pending = history_path().parent / "history-pending" / f"{run_id}.json"
        assert pending.exists()
        assert "locked" in caplog.text and str(pending) in caplog.text
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    with HistoryStore() as store:
        assert store.run(run_id)["status"] == "succeeded"
        assert store.attempts(run_id)[0]["rows_out"] == 2
    assert not pending.exists()


def test_corrupt_database_gives_clear_error_and_loses_no_run() -> None:
    path = history_path()
    path.parent.mkdir(parents=True)
    path.write_bytes(b"this is not a database" * 100)
    wf = Workflow("corrupt")
    wf.add_task(lambda: 1, name="one")
    run_id = wf.run().run_id
    with pytest.raises(HistoryError, match=r"corrupt.*Move it aside") as info:
        HistoryStore()
    assert info.value.transient is False
    path.rename(path.with_suffix(".corrupt"))
    with HistoryStore() as store:
        assert store.run(run_id)["status"] == "succeeded"


def test_old_schema_is_migrated_keeping_its_runs() -> None:
    path = history_path()
    path.parent.mkdir(parents=True)
    old = sqlite3.connect(path)
    old.executescript(MIGRATIONS[0])
    old.execute(
        "INSERT INTO runs (run_id, workflow, status, started_at) VALUES ('20200101-000000-abcdef', 'old', 'succeeded', 1)"
    )
    old.execute("PRAGMA user_version = 1")
    old.commit()
    old.close()
    wf = Workflow("new")
    wf.add_task(lambda: 1, name="one")
    run_id = wf.run().run_id
    with HistoryStore() as store:
        assert store.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert store.run("20200101-000000-abcdef")["workflow"] == "old"
        assert store.run(run_id)["host"]


def test_newer_schema_is_refused_with_upgrade_hint() -> None:
    path = history_path()
    path.parent.mkdir(parents=True)
    newer = sqlite3.connect(path)
    newer.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    newer.close()
    with pytest.raises(HistoryError, match=r"newer bubbles.*pip install -U pybubbles"):
        HistoryStore()


def test_a_killed_run_keeps_what_finished_before_the_kill(tmp_path: Path) -> None:
    import os
    import signal
    import time

    script = textwrap.dedent("""
        import time
        from bubbles import Workflow
        wf = Workflow("killed")
        first = wf.add_task(lambda: [1, 2, 3], name="first")
        wf.add_task(lambda rows: time.sleep(60), name="slow", requires=[first])
        wf.run()
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": SRC})
    try:
        deadline = time.monotonic() + 30
        seen: list[dict] = []
        while time.monotonic() < deadline and not seen:
            time.sleep(0.2)
            if history_path().exists():
                with HistoryStore() as store:
                    runs = store.runs(workflow="killed")
                    seen = [a for a in store.attempts(runs[0]["run_id"]) if a["task"] == "first"] if runs else []
        assert seen, "the finished task never reached the history while the run was going"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    with HistoryStore() as store:
        run = store.runs(workflow="killed")[0]
        assert run["status"] == "running" and run["ended_at"] is None  # shown as running/killed
        tasks = {t["task"]: t for t in store.tasks(run["run_id"])}
        assert tasks["first"]["status"] == "succeeded" and tasks["first"]["rows_out"] == 3
        assert "slow" not in tasks


def test_attempt_rows_of_an_older_bubbles_are_still_read() -> None:
    """Runs written before schema 3 kept one row per attempt; they stay readable next to new runs."""
    path = history_path()
    path.parent.mkdir(parents=True)
    old = sqlite3.connect(path)
    old.executescript(MIGRATIONS[0] + MIGRATIONS[1])
    old.execute("INSERT INTO runs (run_id, workflow, status, started_at) VALUES ('20200101-000000-abcdef', 'old', 'failed', 1)")
    old.execute(
        "INSERT INTO attempts (run_id, task, attempt, status, started_at, duration, rows_out) "
        "VALUES ('20200101-000000-abcdef', 'load', 1, 'failed', 2, 0.5, 7)"
    )
    old.execute("PRAGMA user_version = 2")
    old.commit()
    old.close()
    run_id = failing_workflow().run(raise_on_error=False).run_id
    with HistoryStore() as store:
        (row,) = store.attempts("20200101-000000-abcdef")
        assert (row["task"], row["status"], row["duration"], row["rows_out"]) == ("load", "failed", 0.5, 7)
        assert store.failed_counts(["20200101-000000-abcdef", run_id]) == {"20200101-000000-abcdef": 1, run_id: 1}
        assert [(a["task"], a["attempt"], a["status"]) for a in store.attempts(run_id)] == [
            ("extract", 1, "succeeded"),
            ("check", 1, "retrying"),
            ("check", 2, "failed"),
        ]


def test_a_run_parked_by_an_older_bubbles_is_imported(tmp_path: Path) -> None:
    """A parked run whose attempts are rows (the format before chunks) is imported like a new one."""
    import json

    from bubbles.observe.history import ATTEMPT_COLUMNS

    pending = history_path().parent / "history-pending"
    pending.mkdir(parents=True)
    row = dict.fromkeys(ATTEMPT_COLUMNS)
    row.update(run_id="20200101-000000-aaaaaa", task="t", attempt=1, status="succeeded", duration=0.1)
    batch = {
        "runs_start": [["20200101-000000-aaaaaa", "parked", "running", "threads", 1.0, 1, "{}", "h", 1, "x"]],
        "attempts": [[row[c] for c in ATTEMPT_COLUMNS]],
        "runs_end": [["succeeded", 2.0, 1.0, 1, None, "20200101-000000-aaaaaa"]],
    }
    (pending / "20200101-000000-aaaaaa.json").write_text(json.dumps(batch))
    with HistoryStore() as store:
        assert store.run("aaaaaa")["status"] == "succeeded"
        assert [(a["task"], a["duration"]) for a in store.attempts("20200101-000000-aaaaaa")] == [("t", 0.1)]
    assert not list(pending.glob("*.json"))


def test_a_big_run_is_written_in_chunks_and_read_back_whole() -> None:
    wf = Workflow("big")
    for i in range(3000):
        wf.add_task(nothing, name=f"t{i}")
    run_id = wf.run().run_id
    with HistoryStore() as store:
        rows = store.attempts(run_id)
        assert sorted(r["task"] for r in rows) == sorted(f"t{i}" for i in range(3000))
        assert all(r["status"] == "succeeded" and r["execution_time"] is not None for r in rows)
        (chunks,) = store.conn.execute("SELECT COUNT(*) FROM attempt_chunks WHERE run_id = ?", (run_id,)).fetchone()
        assert chunks >= 1
        assert store.runs(1)[0]["tasks_total"] == 3000


def test_a_task_stopped_while_waiting_to_retry_has_one_row_per_attempt() -> None:
    import time

    def flaky() -> None:
        raise ValueError("try again")

    def breaks_later() -> None:
        time.sleep(0.2)
        raise RuntimeError("stop the run")

    wf = Workflow("stopped")
    wf.add_task(flaky, retries=3, retry_delay=5)
    wf.add_task(breaks_later)
    run_id = wf.run(raise_on_error=False).run_id  # fail_fast: flaky's retry is never made
    with HistoryStore() as store:
        rows = [(a["task"], a["attempt"], a["status"]) for a in store.attempts(run_id)]
    assert sorted(rows) == [("breaks_later", 1, "failed"), ("flaky", 1, "failed")]


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text for you")


def test_an_error_that_cannot_be_printed_still_leaves_the_run_recorded() -> None:
    def bad() -> None:
        raise Unprintable()

    import io

    from bubbles import MetricsCollector
    from bubbles.observe.logs import ConsoleLog

    out = io.StringIO()
    mc = MetricsCollector()
    wf = Workflow("unprintable")
    wf.add_task(bad).attach(mc)
    with pytest.raises(RunFailed, match=r"failed after 1 attempt\(s\): Unprintable: Unprintable\(") as info:
        wf.run(hooks=[ConsoleLog("text", out)])
    run_id = info.value.result.run_id
    assert "FAILED  bad after 1 attempt(s): Unprintable: Unprintable(" in out.getvalue()
    assert mc.records[0]["error"].startswith("Unprintable: Unprintable(")
    with HistoryStore() as store:
        assert store.run(run_id)["status"] == "failed"
        (row,) = store.attempts(run_id)
        assert row["status"] == "failed" and row["error"].startswith("Unprintable: Unprintable(")


def test_one_recorder_watching_two_concurrent_runs_keeps_them_apart(tmp_path: Path) -> None:
    import time

    from bubbles.observe.history import RunRecorder

    recorder = RunRecorder(tmp_path / "shared.db", flush_every=0.05)

    def slow(n: int) -> int:
        time.sleep(0.3)
        return n

    results = {}

    def run(name: str) -> None:
        wf = Workflow(name, hooks=[recorder])
        wf.add_task(lambda: slow(1), name=f"{name}-a")
        wf.add_task(lambda: slow(2), name=f"{name}-b")
        results[name] = wf.run(executor="threads")

    threads = [threading.Thread(target=run, args=(name,)) for name in ("left", "right")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    with HistoryStore(tmp_path / "shared.db") as store:
        for name, result in results.items():
            assert store.run(result.run_id)["status"] == "succeeded"
            assert sorted(a["task"] for a in store.attempts(result.run_id)) == [f"{name}-a", f"{name}-b"]


def test_tasks_total_counts_map_items_not_the_map_itself() -> None:
    wf = Workflow("mapped")
    items = wf.add_task(lambda: [1, 2, 3], name="items")
    wf.map(lambda x: x, items, name="each")
    run_id = wf.run().run_id
    with HistoryStore() as store:
        assert store.run(run_id)["tasks_total"] == 4  # items + each[0..2]

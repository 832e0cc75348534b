"""Recording runs in the store: what is stored, concurrent writers, and a locked, corrupt, old or newer file."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import bubbles
from bubbles import RunFailed, Workflow
from bubbles.observe.history import RunRecorder, history_path
from bubbles.store import StoreError, open_store
from bubbles.store.schema import SCHEMA_VERSION

from .legacy import chunk_of, legacy_file

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


def test_run_attempts_metrics_logs_and_resources_are_plain_rows() -> None:
    with pytest.raises(RunFailed) as info:
        failing_workflow().run()
    run_id = info.value.result.run_id
    with open_store() as store:
        run = store.run(run_id)
        assert run["status"] == "failed" and run["workflow"] == "hist" and run["duration"] > 0
        assert run["tasks_total"] == 2 and run["host"] and run["executor"] == "threads" and run["bubbles_version"]
        attempts = store.attempts(run_id)
        assert [(a["task"], a["attempt"], a["state"]) for a in attempts] == [
            ("extract", 1, "succeeded"),
            ("check", 1, "retrying"),
            ("check", 2, "failed"),
        ]
        first = attempts[0]
        assert first["rows_out"] == 3 and first["peak_memory"] > 0 and first["worker"]
        failed = attempts[2]
        assert failed["error"] == "ValueError: bad rows: 3"
        assert 'raise ValueError(f"bad rows: {len(rows)}")' in failed["traceback"]
        assert "bubbles/engine/execute.py" not in failed["traceback"]  # the user's frames, not ours
        assert failed["metrics"] == {"rejected": 1.0} and failed["rows_in"] == 3
        logs = store.logs(run_id)
        assert [(entry["task"], entry["level"], entry["message"]) for entry in logs] == [("extract", "INFO", "read 3 rows")]
        assert len(store.resources(run_id)) >= 2
        assert store.run(run_id[:-2])["run_id"] == run_id  # a unique prefix works
        assert store.run("last")["run_id"] == run_id
        assert store.failed_counts([run_id]) == {run_id: 1}
    # plain tables: any SQLite client answers "which tasks failed in run X"
    db = sqlite3.connect(history_path())
    assert db.execute("SELECT task FROM attempts WHERE run_id = ? AND state = 'failed'", (run_id,)).fetchall() == [("check",)]
    assert db.execute("SELECT task, state, attempts FROM tasks WHERE run_id = ? ORDER BY task", (run_id,)).fetchall() == [
        ("check", "failed", 2),
        ("extract", "succeeded", 1),
    ]
    db.close()


def test_history_can_be_turned_off() -> None:
    wf = Workflow("off")
    wf.add_task(lambda: 1, name="one")
    wf.run(settings={"history": False})
    assert not history_path().exists()


def test_unknown_run_id_is_a_clear_error() -> None:
    wf = Workflow("one")
    wf.add_task(lambda: 1, name="one")
    wf.run()
    with open_store() as store, pytest.raises(StoreError, match=r"No run 'nope'.*bubbles runs"):
        store.run("nope")


def test_concurrent_runs_in_threads_and_processes_lose_nothing() -> None:
    results = []

    def one(i: int) -> None:
        wf = Workflow(f"w{i}")
        for j in range(40):
            wf.add_task(lambda j=j: [j], name=f"t{j}")
        results.append(wf.run("threads" if i % 2 else "processes", max_workers=2))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    script = textwrap.dedent("""
        from bubbles import Workflow
        wf = Workflow("sub")
        for j in range(30):
            wf.add_task(lambda j=j: [j], name=f"t{j}")
        print(wf.run().run_id)
    """)
    procs = [
        subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": SRC})
        for _ in range(16)
    ]
    sub_ids = [p.communicate(timeout=180)[0].strip() for p in procs]
    for t in threads:
        t.join()
    assert all(p.returncode == 0 for p in procs)
    with open_store() as store:
        assert len(store.runs(limit=100)) == 20
        for result in results:
            assert store.run(result.run_id)["status"] == "succeeded"
            assert len(store.attempts(result.run_id)) == 40
        for run_id in sub_ids:
            assert store.run(run_id)["status"] == "succeeded" and len(store.attempts(run_id)) == 30


def test_a_locked_store_keeps_the_run_and_it_is_written_later(caplog: pytest.LogCaptureFixture) -> None:
    open_store().close()
    holder = sqlite3.connect(history_path(), isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        wf = Workflow("locked")
        wf.add_task(lambda: [1, 2], name="one")
        with caplog.at_level(logging.WARNING, logger="bubbles"):
            run_id = wf.run(settings={"history_timeout": 0.2}).run_id
        pending = history_path().parent / "history-pending" / f"{run_id}.json"
        assert pending.exists()
        assert "locked" in caplog.text and str(pending) in caplog.text
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    result = subprocess.run([sys.executable, "-m", "bubbles", "runs"], capture_output=True, text=True, env={**os.environ})
    assert run_id in result.stdout, result.stderr  # `bubbles runs` imported it
    with open_store() as store:
        assert store.run(run_id)["status"] == "succeeded"
        assert store.attempts(run_id)[0]["rows_out"] == 2
    assert not pending.exists()


def test_a_corrupt_store_gives_a_clear_error_and_loses_no_run() -> None:
    path = history_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"this is not a database" * 100)
    wf = Workflow("corrupt")
    wf.add_task(lambda: 1, name="one")
    run_id = wf.run().run_id
    with pytest.raises(StoreError, match=r"corrupt.*Move it aside") as info:
        open_store()
    assert info.value.transient is False
    path.rename(path.with_suffix(".corrupt"))
    with open_store() as store:
        store.import_parked(path.parent / "history-pending")
        assert store.run(run_id)["status"] == "succeeded"


def test_a_read_only_home_keeps_the_run_result_and_says_where(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    if os.geteuid() == 0:
        # root ignores permissions: a read-only mount is what a user would have; a file where the folder should be
        # makes the store's folder impossible to create the same way
        home = tmp_path / "not-a-folder"
        home.write_text("x")
    else:
        home = tmp_path / "ro"
        home.mkdir()
        home.chmod(0o500)
    wf = Workflow("readonly")
    wf.add_task(lambda: 41 + 1, name="answer")
    with caplog.at_level(logging.WARNING, logger="bubbles"):
        result = wf.run(settings={"home": str(home)})
    assert result.tasks["answer"].result == 42  # the run itself is fine
    assert "could not be written" in caplog.text and "nor parked" in caplog.text


def test_an_older_file_is_converted_to_plain_tables_keeping_its_runs() -> None:
    """Schema 1 (rows), 2 (rows + host) and 3 (attempts in chunks) files become the store's tables."""
    db = legacy_file(history_path(), 3)
    db.execute("INSERT INTO runs (run_id, workflow, status, started_at) VALUES ('20200101-000000-aaaaaa', 'rows', 'failed', 1)")
    db.execute(
        "INSERT INTO attempts (run_id, task, attempt, status, started_at, duration, rows_out) "
        "VALUES ('20200101-000000-aaaaaa', 'load', 1, 'failed', 2, 0.5, 7)"
    )
    db.execute("INSERT INTO runs (run_id, workflow, status, started_at) VALUES ('20200102-000000-bbbbbb', 'chunks', 'failed', 3)")
    rows = [
        {"task": "t", "attempt": 1, "status": "retrying", "started_at": 4.0, "duration": 0.1, "error": "E: 1"},
        {"task": "t", "attempt": 2, "status": "failed", "started_at": 5.0, "duration": 0.2, "error": "E: 2", "rows_in": 9},
    ]
    db.execute("INSERT INTO attempt_chunks VALUES ('20200102-000000-bbbbbb', 0, 2, ?)", (chunk_of(rows),))
    db.execute("INSERT INTO metrics VALUES ('20200102-000000-bbbbbb', 't', 2, 'seen', 3.0)")
    db.close()
    state = sqlite3.connect(history_path().parent / "state.db")
    state.executescript(
        "CREATE TABLE watermarks (name TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at REAL NOT NULL, run_id TEXT);"
        "CREATE TABLE pending_watermarks (name TEXT NOT NULL, run_id TEXT NOT NULL, value TEXT NOT NULL, "
        "proposed_at REAL NOT NULL, PRIMARY KEY (name, run_id));"
        'INSERT INTO watermarks VALUES (\'orders\', \'{"t": "json", "v": 41}\', 1, \'r\');'
    )
    state.close()
    run_id = failing_workflow().run(raise_on_error=False).run_id  # the first run opens (and converts) the file
    with open_store() as store:
        assert store.schema_version() == SCHEMA_VERSION
        (row,) = store.attempts("20200101-000000-aaaaaa")
        assert (row["task"], row["state"], row["duration"], row["rows_out"]) == ("load", "failed", 0.5, 7)
        chunked = store.attempts("20200102-000000-bbbbbb")
        assert [(a["attempt"], a["state"], a["error"]) for a in chunked] == [(1, "retrying", "E: 1"), (2, "failed", "E: 2")]
        assert chunked[1]["metrics"] == {"seen": 3.0} and chunked[1]["rows_in"] == 9
        assert store.failed_counts(["20200101-000000-aaaaaa", run_id]) == {"20200101-000000-aaaaaa": 1, run_id: 1}
        tables = {r["name"] for r in store.query("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert not {t for t in tables if t.startswith("legacy_") or t == "attempt_chunks"}  # no second storage path
    from bubbles.data.state import StateStore

    assert StateStore().get("orders") == 41  # the watermarks moved in with it
    assert not (history_path().parent / "state.db").exists()


def test_a_newer_store_is_refused_with_an_upgrade_hint() -> None:
    path = history_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    newer = sqlite3.connect(path)
    newer.execute("CREATE TABLE store_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    newer.execute(f"INSERT INTO store_meta VALUES ('schema_version', '{SCHEMA_VERSION + 5}')")
    newer.commit()
    newer.close()
    with pytest.raises(StoreError, match=r"newer bubbles.*pip install -U pybubbles"):
        open_store()


def test_a_big_run_is_recorded_whole() -> None:
    wf = Workflow("big")
    for i in range(3000):
        wf.add_task(nothing, name=f"t{i}")
    run_id = wf.run().run_id
    with open_store() as store:
        rows = store.attempts(run_id)
        assert sorted(r["task"] for r in rows) == sorted(f"t{i}" for i in range(3000))
        assert all(r["state"] == "succeeded" and r["duration"] is not None for r in rows)
        assert store.runs(1)[0]["tasks_total"] == 3000


def test_a_task_stopped_while_waiting_to_retry_has_one_row_per_attempt() -> None:
    def flaky() -> None:
        logging.getLogger("etl").warning("about to fail")
        raise ValueError("try again")

    def breaks_later() -> None:
        time.sleep(0.2)
        raise RuntimeError("stop the run")

    wf = Workflow("stopped")
    wf.add_task(flaky, retries=3, retry_delay=5)
    wf.add_task(breaks_later)
    run_id = wf.run(raise_on_error=False).run_id  # fail_fast: flaky's retry is never made
    with open_store() as store:
        rows = [(a["task"], a["attempt"], a["state"]) for a in store.attempts(run_id)]
        logs = store.logs(run_id)
    assert sorted(rows) == [("breaks_later", 1, "failed"), ("flaky", 1, "failed")]
    assert [(e["task"], e["attempt"], e["message"]) for e in logs] == [("flaky", 1, "about to fail")]  # stored once


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
    with open_store() as store:
        assert store.run(run_id)["status"] == "failed"
        (row,) = store.attempts(run_id)
        assert row["state"] == "failed" and row["error"].startswith("Unprintable: Unprintable(")


def test_one_recorder_watching_two_concurrent_runs_keeps_them_apart(tmp_path: Path) -> None:
    recorder = RunRecorder(tmp_path / "shared.db", flush_every=0.05)
    barrier = threading.Barrier(2)

    def run(name: str) -> None:
        def both_running() -> int:
            barrier.wait(10)
            return 1

        wf = Workflow(name, hooks=[recorder])
        wf.add_task(both_running, name=f"{name}-a")
        wf.add_task(lambda: 2, name=f"{name}-b")
        results[name] = wf.run(executor="threads", settings={"history": False})

    results: dict[str, bubbles.RunResult] = {}
    threads = [threading.Thread(target=run, args=(name,)) for name in ("left", "right")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    with open_store(tmp_path / "shared.db") as store:
        for name, result in results.items():
            assert store.run(result.run_id)["status"] == "succeeded"
            assert sorted(a["task"] for a in store.attempts(result.run_id)) == [f"{name}-a", f"{name}-b"]


def test_tasks_counted_are_those_that_ran_or_could_have() -> None:
    wf = Workflow("mapped")
    items = wf.add_task(lambda: [1, 2, 3], name="items")
    wf.map(lambda x: x, items, name="each")
    run_id = wf.run().run_id
    with open_store() as store:
        assert store.run(run_id)["tasks_total"] == 4  # items + each[0..2], not the map's own node
        assert store.task_counts([run_id]) == {run_id: 4}


def test_a_parked_run_is_imported_once(tmp_path: Path) -> None:
    from bubbles.store.schema import TABLE_COLUMNS

    pending = history_path().parent / "history-pending"
    pending.mkdir(parents=True, exist_ok=True)
    run = dict.fromkeys(TABLE_COLUMNS["runs"])
    run.update(run_id="20200101-000000-cccccc", workflow="parked", status="succeeded", started_at=1.0, duration=1.0)
    attempt = dict.fromkeys(TABLE_COLUMNS["attempts"])
    attempt.update(run_id="20200101-000000-cccccc", task="t", attempt=1, state="succeeded", duration=0.1)
    batch = {"runs": [list(run.values())], "attempts": [list(attempt.values())]}
    (pending / "20200101-000000-cccccc.json").write_text(json.dumps(batch))
    with open_store() as store:
        assert store.import_parked(pending) == 1
        assert store.import_parked(pending) == 0
        assert store.run("cccccc")["status"] == "succeeded"
        assert [(a["task"], a["duration"]) for a in store.attempts("20200101-000000-cccccc")] == [("t", 0.1)]
    assert not list(pending.glob("*.json"))

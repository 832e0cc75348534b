"""Incremental reads under resume: a killed or failed run advances no watermark; its resume does, once.

The load appends (on purpose: a merge would hide a double read), so every row read twice shows.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from bubbles.store import open_store

ETL = '''
import os, signal
from pathlib import Path
from bubbles import Workflow, read_incremental, write_table

HERE = Path(__file__).resolve().parent
wf = Workflow("incremental")


def extract():
    return read_incremental(f"sqlite:///{HERE / 'source.db'}", "orders", cursor="id", name="orders.id")


def load(rows):
    return write_table(f"duckdb:///{HERE / 'warehouse.duckdb'}", "orders", rows, mode="append")


def publish(loaded):
    if os.environ.get("KILL_AT") == "publish":
        os.kill(os.getpid(), signal.SIGKILL)  # the whole run dies here, after the load committed
    if (HERE / "fail").exists():
        raise RuntimeError("the report server is down")
    return loaded


e = wf.add_task(extract)
loaded = wf.add_task(load, requires=[e])
wf.add_task(publish, requires=[loaded])
'''


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "etl.py").write_text(ETL)
    with sqlite3.connect(tmp_path / "source.db") as db:
        db.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, amount REAL)")
        db.executemany("INSERT INTO orders VALUES (?, ?)", [(i, i * 1.5) for i in range(1, 6)])
    return tmp_path


def add_orders(project: Path, ids: range) -> None:
    with sqlite3.connect(project / "source.db") as db:
        db.executemany("INSERT INTO orders VALUES (?, ?)", [(i, i * 1.5) for i in ids])


def bubbles(project: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bubbles", "run", "etl.py", "--no-progress", *args],
        capture_output=True, text=True, cwd=project, timeout=120, env={**os.environ, **(env or {})},
    )


def loaded_ids(project: Path) -> list[int]:
    with duckdb.connect(str(project / "warehouse.duckdb"), read_only=True) as db:
        return [r[0] for r in db.execute("SELECT id FROM orders ORDER BY id").fetchall()]


def watermark() -> int | None:
    from bubbles.data.state import StateStore

    value = StateStore().get("orders.id")
    return None if value is None else int(value)


def test_a_killed_run_advances_nothing_and_its_resume_settles_the_watermark_once(project: Path) -> None:
    killed = bubbles(project, env={"KILL_AT": "publish"})
    assert killed.returncode == -9
    assert loaded_ids(project) == [1, 2, 3, 4, 5]  # the load committed before the kill
    with open_store() as store:
        store.reap()
        assert store.runs(limit=1)[0]["status"] == "crashed"
        assert store.watermark("orders.id") is None  # no watermark advanced for the killed run
        assert store.pending_watermarks() == []  # and its proposal was discarded with it
    resumed = bubbles(project, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert loaded_ids(project) == [1, 2, 3, 4, 5]  # extract and load were reused: nothing loaded twice
    assert watermark() == 5  # ... and the reused read's watermark settled with the resumed run
    add_orders(project, range(6, 8))
    assert bubbles(project).returncode == 0
    assert loaded_ids(project) == [1, 2, 3, 4, 5, 6, 7]  # the next run reads only what is new
    assert watermark() == 7


def test_a_failed_run_resumed_after_another_run_moved_the_watermark_does_not_move_it_back(
    project: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (project / "fail").touch()
    failed = bubbles(project)
    assert failed.returncode == 1 and watermark() is None
    with open_store() as store:
        first = store.runs(limit=1)[0]["run_id"]
    (project / "fail").unlink()
    add_orders(project, range(6, 9))
    assert bubbles(project).returncode == 0  # a scheduled run, not a resume: reads 1-8 again (append: the user's choice)
    assert watermark() == 8
    resumed = bubbles(project, f"--resume={first}")
    assert resumed.returncode == 0, resumed.stderr
    assert "watermark 'orders.id' was advanced by run" in resumed.stderr
    assert watermark() == 8  # not back to 5

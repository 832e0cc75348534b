"""The run store on the real PostgreSQL server the suite starts: one history for many processes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import bubbles
from bubbles import Workflow
from bubbles.store import StoreError, open_store

SRC = str(Path(bubbles.__file__).parent.parent)


def test_runs_from_several_processes_share_one_postgres_store(pg_url: str) -> None:
    script = textwrap.dedent("""
        import sys
        from bubbles import Workflow
        wf = Workflow("pg-" + sys.argv[1])
        first = wf.add_task(lambda: [1, 2, 3], name="extract")
        wf.add_task(lambda rows: 1 / 0, requires=[first], name="load")
        print(wf.run(raise_on_error=False).run_id)
    """)
    env = {**os.environ, "PYTHONPATH": SRC, "BUBBLES_STORE": pg_url}
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(i)], stdout=subprocess.PIPE, text=True, env=env) for i in range(4)
    ]
    run_ids = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    with open_store(pg_url) as store:
        assert store.kind == "postgres" and "***" in store.describe()  # the password never shows
        assert sorted(r["run_id"] for r in store.runs(limit=10)) == sorted(run_ids)
        for run_id in run_ids:
            assert store.run(run_id)["status"] == "failed"
            states = {a["task"]: a["state"] for a in store.attempts(run_id)}
            assert states == {"extract": "succeeded", "load": "failed"}
        assert store.failed_counts(run_ids) == dict.fromkeys(run_ids, 1)
    import psycopg

    from bubbles._secrets import resolve

    with psycopg.connect(resolve(pg_url)) as db:  # plain tables, in their own schema
        rows = db.execute("SELECT task FROM bubbles.attempts WHERE state = 'failed' AND run_id = %s", (run_ids[0],)).fetchall()
    assert rows == [("load",)]


def test_watermarks_and_crashed_runs_on_postgres(pg_url: str) -> None:
    from bubbles.data.state import StateStore

    wf = Workflow("wm")
    wf.add_task(lambda: StateStore(pg_url).propose("orders", 7, bubbles.current_task().run_id), name="propose")  # type: ignore[union-attr]
    result = wf.run(settings={"store": pg_url})
    assert StateStore(pg_url).get("orders") == 7  # committed when the run succeeded
    with open_store(pg_url) as store:
        assert store.run(result.run_id)["status"] == "succeeded"
        assert store.reap() == []


def test_an_unreachable_postgres_store_keeps_the_run(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    url = "postgresql://nobody:secret-pw-5521@127.0.0.1:1/none"
    with pytest.raises(StoreError, match=r"PostgreSQL run store postgresql://nobody:\*\*\*@127.0.0.1:1/none failed") as info:
        open_store(url, timeout=2)
    assert "secret-pw-5521" not in str(info.value)
    wf = Workflow("offline")
    wf.add_task(lambda: 1, name="one")
    with caplog.at_level(logging.WARNING, logger="bubbles"):
        result = wf.run(settings={"store": url, "history_timeout": 2})
    assert result.ok
    parked = list((Path(os.environ["BUBBLES_HOME"]) / "history-pending").glob("*.json"))
    assert [p.stem for p in parked] == [result.run_id]
    assert "secret-pw-5521" not in caplog.text and "secret-pw-5521" not in parked[0].read_text()

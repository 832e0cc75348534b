"""A run is resumed once at a time, and never while it is still running: either would do its work twice.

The runs that must be "still going" are real subprocesses held inside a task until the test lets
them go (a file the task waits for), so nothing depends on timing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bubbles import ConfigError
from bubbles.cli.load import load_targets
from bubbles.store import open_store

ETL = '''
import os, signal, time
from pathlib import Path
from bubbles import Workflow

HERE = Path(__file__).resolve().parent
wf = Workflow("held")


def extract():
    return [1, 2, 3]


def load(rows):
    with open(HERE / "loads.log", "a") as fh:
        fh.write(f"{os.getpid()}\\n")
    if os.environ.get("HOLD"):
        (HERE / "holding").write_text(str(os.getpid()))
        while not (HERE / "release").exists():  # held until the test lets it go
            time.sleep(0.01)
    if os.environ.get("DIE"):
        os.kill(os.getpid(), signal.SIGKILL)
    return len(rows)


wf.add_task(load, requires=[wf.add_task(extract)])
'''


def start(project: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    (project / "holding").unlink(missing_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "bubbles", "run", "etl.py", "--no-progress", *args],
        cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "HOLD": "1", **(env or {})},
    )
    deadline = time.monotonic() + 60
    while not (project / "holding").exists():  # the event: the run is inside its load task
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "the run never reached its load task"
        time.sleep(0.01)
    return proc


def finish(proc: subprocess.Popen[str]) -> int:
    proc.communicate(timeout=60)  # (closes the pipes)
    return int(proc.returncode)


def resume_here(project: Path, run_id: str = "last") -> None:
    (_, wf), = load_targets(str(project / "etl.py"))
    wf.run(settings={"persist": True, "resources": False}, resume=run_id)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "etl.py").write_text(ETL)
    return tmp_path


def test_a_run_that_is_still_running_is_not_resumed(project: Path) -> None:
    running = start(project)
    try:
        with pytest.raises(ConfigError, match=r"is still running \(pid \d+ on .*would do its work twice"):
            resume_here(project)
    finally:
        (project / "release").touch()
        assert finish(running) == 0
    assert len((project / "loads.log").read_text().split()) == 1  # loaded once


def test_two_resumes_of_one_run_do_not_both_go(project: Path) -> None:
    crashed = start(project, env={"DIE": "1"})
    (project / "release").touch()
    assert finish(crashed) == -9
    (project / "release").unlink()
    with open_store() as store:
        store.reap()
        first = store.runs(limit=1)[0]["run_id"]
        assert store.run(first)["status"] == "crashed"
    resuming = start(project, "--resume")  # held inside its load task
    try:
        with pytest.raises(ConfigError, match=rf"Run {first} is being resumed by run \S+, which is still going"):
            resume_here(project, first)
    finally:
        (project / "release").touch()
        assert finish(resuming) == 0
    assert len((project / "loads.log").read_text().split()) == 2  # the crashed attempt and the one resume
    resume_here(project, first)  # once that resume has ended, the run may be resumed again
    assert len((project / "loads.log").read_text().split()) == 3

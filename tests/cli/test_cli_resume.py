"""``bubbles run --resume``, ``bubbles cache ls|clear`` and ``bubbles gc`` on real runs (issue 15)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bubbles.store import open_store

ETL = '''
import os
import pyarrow as pa
from bubbles import Workflow

wf = Workflow("nightly")


def mark(name):
    with open("calls.log", "a") as fh:
        fh.write(name + "\\n")


def extract():
    mark("extract")
    return pa.table({"id": list(range(100)), "amount": [i * 1.5 for i in range(100)]})


def total(table):
    mark("total")
    return sum(table.column("amount").to_pylist())


def publish(value):
    mark("publish")
    if os.path.exists("fail"):
        raise RuntimeError("the target is read-only today")
    return value


e = wf.add_task(extract)
t = wf.add_task(total, requires=[e])
wf.add_task(publish, requires=[t])
'''


def bubbles(cwd: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "bubbles", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )
    if ok:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def calls(cwd: Path) -> list[str]:
    path = cwd / "calls.log"
    names = path.read_text().split() if path.exists() else []
    path.unlink(missing_ok=True)
    return names


def run_id_of(proc: subprocess.CompletedProcess[str]) -> str:
    match = re.search(r"^(\d{8}-\d{6}-[0-9a-f]{8}) (succeeded|failed)$", proc.stderr + proc.stdout, re.M)
    assert match, proc.stderr
    return match.group(1)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "etl.py").write_text(ETL)
    return tmp_path


def test_bubbles_run_keeps_outputs_and_resume_reruns_the_failed_task(project: Path) -> None:
    (project / "fail").touch()
    failed = bubbles(project, "run", "etl.py", "--no-progress", ok=False)
    assert failed.returncode == 1 and "the target is read-only today" in failed.stderr
    first = run_id_of(failed)
    assert calls(project) == ["extract", "total", "publish"]
    (project / "fail").unlink()
    resumed = bubbles(project, "run", "etl.py", "--resume", "--no-progress")
    assert calls(project) == ["publish"]
    assert re.search(r"│ extract\s+│ reused", resumed.stderr), resumed.stderr
    second = run_id_of(resumed)
    shown = bubbles(project, "show", second).stdout
    assert f"extract: reused from run {first}" in shown
    assert f"publish: ran — failed in run {first}" in shown


def test_resume_a_named_run_and_no_persist(project: Path) -> None:
    first = run_id_of(bubbles(project, "run", "etl.py", "--no-progress", "--no-persist"))
    calls(project)
    bubbles(project, "run", "etl.py", "--no-progress", f"--resume={first}")
    assert calls(project) == ["extract", "total", "publish"]  # nothing was kept to resume from
    unknown = bubbles(project, "run", "etl.py", "--no-progress", "--resume=20990101-000000-deadbeef", ok=False)
    assert unknown.returncode == 2 and "20990101-000000-deadbeef" in unknown.stderr


def test_cache_ls_and_clear(project: Path) -> None:
    run_id = run_id_of(bubbles(project, "run", "etl.py", "--no-progress"))
    listing = bubbles(project, "cache", "ls").stdout
    assert "3 kept outputs" in listing
    assert re.search(rf"extract\s+│ {run_id}\s+│ arrow", listing), listing
    with open_store() as store:
        files = [Path(r["location"].split(":", 1)[1]) for r in store.checkpoints(run_id) if r["format"] == "arrow"]
    assert files and all(f.exists() for f in files)
    cleared = bubbles(project, "cache", "clear", "--task", "extract").stdout
    assert cleared.startswith("cleared 1 kept outputs (1 files,")
    assert not any(f.exists() for f in files)
    assert "2 kept outputs" in bubbles(project, "cache", "ls").stdout
    calls(project)
    bubbles(project, "run", "etl.py", "--no-progress", "--resume")
    assert calls(project) == ["extract"]  # its output is gone: it runs; total's input is the same, so the rest is reused


def test_gc_keeps_the_newest_runs_and_the_files_they_still_use(project: Path) -> None:
    first = run_id_of(bubbles(project, "run", "etl.py", "--no-progress"))
    second = run_id_of(bubbles(project, "run", "etl.py", "--no-progress", "--resume"))  # reuses first's files
    third = run_id_of(bubbles(project, "run", "etl.py", "--no-progress", "--no-persist"))
    dry = bubbles(project, "gc", "--keep", "2", "--dry-run").stdout
    assert dry.strip() == f"would delete 1 run(s): {first}"
    with open_store() as store:
        assert store.run(first)["run_id"] == first  # a dry run deletes nothing
        shared = [Path(r["location"].split(":", 1)[1]) for r in store.checkpoints(second) if r["location"]]
    assert shared and all(p.parent.name == first for p in shared)  # the resumed run kept first's files
    out = bubbles(project, "gc", "--keep", "2").stdout
    assert out.startswith("deleted 1 run(s)") and "0 kept output file(s)" in out
    assert all(p.exists() for p in shared)  # still used by the second run
    listed = bubbles(project, "runs").stdout
    assert second in listed and third in listed and first not in listed
    out = bubbles(project, "gc", "--keep", "0").stdout
    assert out.startswith("deleted 2 run(s)") and not any(p.exists() for p in shared)
    assert "no runs recorded yet" in bubbles(project, "runs").stdout


CHECKED = '''
import pyarrow as pa
from bubbles import Workflow, validate
from bubbles.data.quality import Column, Contract

wf = Workflow("checked")
contract = Contract("orders", columns=[Column("amount", min=0)])


def check():
    rows = pa.table({"amount": [5.0, -1.0, 3.0]})
    return validate(rows, contract, quarantine="quarantine/orders").valid.num_rows


wf.add_task(check)
'''


def test_gc_deletes_the_quarantine_parts_of_the_runs_it_deletes(tmp_path: Path) -> None:
    (tmp_path / "etl.py").write_text(CHECKED)
    first = run_id_of(bubbles(tmp_path, "run", "etl.py", "--no-progress"))
    second = run_id_of(bubbles(tmp_path, "run", "etl.py", "--no-progress"))
    parts = sorted((tmp_path / "quarantine" / "orders").glob("part-*.parquet"))
    assert len(parts) == 2 and first in parts[0].name and second in parts[1].name
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = bubbles(elsewhere, "gc", "--keep", "1").stdout  # (from another folder: parts are recorded absolute)
    assert "1 quarantine part(s)" in out, out
    assert sorted((tmp_path / "quarantine" / "orders").glob("part-*.parquet")) == [parts[1]]
    with open_store() as store:
        assert store.quarantines(first) == [] and len(store.quarantines(second)) == 1


DATACLASSES = '''
from __future__ import annotations

import os
from dataclasses import dataclass

from bubbles import Workflow


@dataclass
class Order:
    id: int
    amount: float


def make():
    with open("calls.log", "a") as fh:
        fh.write("make\\n")
    return [Order(1, 2.0), Order(2, 3.5)]


def total(orders):
    if os.path.exists("fail"):
        raise RuntimeError("not today")
    return sum(o.amount for o in orders)


wf = Workflow("dataclasses")
wf.add_task(total, requires=[wf.add_task(make)])
'''


def test_a_script_with_dataclasses_runs_on_processes_and_its_objects_resume(tmp_path: Path) -> None:
    (tmp_path / "etl.py").write_text(DATACLASSES)  # (postponed annotations: @dataclass looks the module up)
    (tmp_path / "fail").touch()
    failed = bubbles(tmp_path, "run", "etl.py", "-e", "processes", "--no-progress", ok=False)
    assert failed.returncode == 1 and "not today" in failed.stderr, failed.stderr
    assert calls(tmp_path) == ["make"]
    (tmp_path / "fail").unlink()
    resumed = bubbles(tmp_path, "run", "etl.py", "-e", "processes", "--resume", "--no-progress")
    assert calls(tmp_path) == []  # the Order objects were kept (by value: no process can import the script)
    assert re.search(r"│ total\s+│ succeeded", resumed.stderr), resumed.stderr


BAD_LINES = '''
import os
from bubbles import Workflow, read_csv

wf = Workflow("bad-lines")


def extract():
    return read_csv("orders.csv", on_bad_lines="quarantine", quarantine="quarantine/orders.csv")


def publish(rows):
    if os.path.exists("fail"):
        raise RuntimeError("not today")
    return rows.num_rows


wf.add_task(publish, requires=[wf.add_task(extract)])
'''


def test_gc_keeps_the_quarantine_parts_of_a_task_a_kept_run_reused(tmp_path: Path) -> None:
    (tmp_path / "etl.py").write_text(BAD_LINES)
    (tmp_path / "orders.csv").write_text("id,amount\n1,2.5\n2,3.5,extra\n3,4.5\n")
    (tmp_path / "fail").touch()
    first = run_id_of(bubbles(tmp_path, "run", "etl.py", "--no-progress", ok=False))
    (tmp_path / "fail").unlink()
    bubbles(tmp_path, "run", "etl.py", "--no-progress", "--resume")  # extract (and its bad line) reused
    parts = list((tmp_path / "quarantine" / "orders.csv").glob("part-*.parquet"))
    assert len(parts) == 1 and first in parts[0].name
    out = bubbles(tmp_path, "gc", "--keep", "1").stdout
    assert "deleted 1 run(s)" in out and "0 quarantine part(s)" in out, out
    assert parts[0].exists()  # the bad line belongs to the kept run's result too

"""Crash and resume, exactly once (issue 15).

A real ETL workflow (``etl_orders.py``: a CSV export and a paginated HTTP API merged by key into
DuckDB, a partitioned Parquet dataset, a split CSV set delivered to a drop folder with its
manifest, a final announcement) runs as ``python -m bubbles run etl.py`` and is killed with
SIGKILL at a point chosen by an event — a write step the data layer announces, a page or batch
read, a commit, a task's start — never by a timer. Then ``bubbles run etl.py --resume`` must
finish it, and afterwards every row and every file is there exactly once: the table holds each
key once with the newest values, the dataset and the split set every row once with no leftover
of the killed write, the drop folder one batch with one manifest listing exactly its files; the
run store says the killed run crashed, and the resumed run reused what the killed one had
finished (and recorded) and ran the rest — which ``trace.log``, written by the tasks themselves,
and the API server's request log confirm independently of the store.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import duckdb
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from bubbles.cli.history import runs_command, show_command
from bubbles.data.files._leftovers import find
from bubbles.store import open_store

WORKFLOW = (Path(__file__).parent / "etl_orders.py").read_text(encoding="utf-8")
TASKS = ["extract_csv", "extract_api", "merge_orders", "write_lake", "write_extracts", "deliver_extracts", "announce"]
REGIONS = ("north", "south", "east", "west")
COLUMNS = ("order_id", "customer", "region", "amount", "status")
PAGE = 50


def _order(i: int, source: str) -> dict[str, Any]:
    return {
        "order_id": i,
        "customer": f"c{i % 37:02d}",
        "region": REGIONS[i % 4],
        "amount": i * 1.25 + (0.5 if source == "api" else 0.0),  # exact in binary: survives any round trip
        "status": "shipped" if source == "api" else "paid",
    }


CSV_ROWS = [_order(i, "csv") for i in range(1, 241)]  # 240 rows: four batches of 64
API_ROWS = [_order(i, "api") for i in range(201, 361)]  # 160 rows: pages of 50, 50, 50, 10; 40 keys also in the CSV
# What the table must hold, computed here from the inputs: every key once, the API's row where both have one.
EXPECTED = {r["order_id"]: r for r in CSV_ROWS} | {r["order_id"]: r for r in API_ROWS}
EXPECTED_ROWS = sorted(tuple(r[c] for c in COLUMNS) for r in EXPECTED.values())
assert len(EXPECTED_ROWS) == 360


# -- the API server ------------------------------------------------------------------------------------
class _OrdersApi(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if url.path != "/orders":
            self.send_error(404)
            return
        page, size = int(query["page"][0]), int(query["per_page"][0])
        self.server.pages.append(page)
        body = json.dumps({"data": API_ROWS[(page - 1) * size : page * size], "page": page}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    pages: list[int]


@pytest.fixture(scope="module")
def api() -> Iterator[_Server]:
    server = _Server(("127.0.0.1", 0), _OrdersApi)
    server.pages = []
    thread = threading.Thread(target=server.serve_forever, name="orders-api", daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


# -- a job folder and its runs ------------------------------------------------------------------------
class Job:
    """One ETL project folder: the workflow, its input export, its outputs, and how to run it."""

    def __init__(self, root: Path, api: _Server) -> None:
        self.root = root
        self.api = api
        self.tmp = root / "tmp"  # the runs' TMPDIR: dataset staging and delivery staging go there
        self.tmp.mkdir(parents=True)
        (root / "etl.py").write_text(WORKFLOW, encoding="utf-8")
        with open(root / "orders_export.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(CSV_ROWS)
        api.pages.clear()

    def run(self, *args: str, kill_at: str | None = None, wait: tuple[str, ...] = (), executor: str = "threads",
            target: str = "group") -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "TMPDIR": str(self.tmp), "ORDERS_API": f"http://127.0.0.1:{self.api.server_port}",
               "COLUMNS": "200"}
        for name in ("KILL_AT", "KILL_WAIT", "KILL_TARGET", "ETL_MAIN_PID"):
            env.pop(name, None)
        if kill_at is not None:
            env |= {"KILL_AT": kill_at, "KILL_WAIT": ",".join(wait), "KILL_TARGET": target}
        self.api.pages.clear()
        return subprocess.run(
            [sys.executable, "-m", "bubbles", "run", "etl.py", "--executor", executor, "--workers", "4", "--no-progress", *args],
            cwd=self.root, env=env, capture_output=True, text=True, timeout=120,
            start_new_session=True,  # the kill takes the run's process group: the run, and its workers
        )

    def trace(self, run_id: str) -> list[str]:
        """The tasks that really started in ``run_id`` (each task notes itself in trace.log)."""
        lines = (self.root / "trace.log").read_text(encoding="utf-8").splitlines()
        return [task for rid, task in (line.split() for line in lines) if rid == run_id]


@pytest.fixture
def job(tmp_path: Path, api: _Server) -> Job:
    return Job(tmp_path / "job", api)


def _run_id(proc: subprocess.CompletedProcess[str]) -> str:
    match = re.search(r"^(\S+) succeeded$", proc.stdout, re.M)
    assert match, f"the run did not succeed:\n{proc.stdout}\n{proc.stderr}"
    return match.group(1)


def _cli(command: Any, *args: str) -> str:
    result = CliRunner().invoke(command, list(args), terminal_width=200)
    assert result.exit_code == 0, result.output
    return result.output


def crash(job: Job, kill_at: str, wait: tuple[str, ...], *args: str, executor: str = "threads", target: str = "group") -> str:
    """Run the job until ``kill_at``; check the run died there and is recorded as crashed; its run id."""
    proc = job.run(*args, kill_at=kill_at, wait=wait, executor=executor, target=target)
    assert proc.returncode == -signal.SIGKILL, f"not killed at {kill_at} (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    assert (job.root / "killed.log").read_text(encoding="utf-8").splitlines()[-1].split()[0] == kill_at
    listed = _cli(runs_command, "--status", "crashed")  # a reader marks the dead run crashed
    with open_store() as store:
        (newest,) = store.runs(limit=1, workflow="orders_etl")
    crashed = newest["run_id"]
    assert crashed in listed, listed
    shown = json.loads(_cli(show_command, crashed, "--json"))
    assert shown["run"]["status"] == "crashed" and shown["run"]["workflow"] == "orders_etl"
    assert "is gone" in shown["run"]["error"]
    return crashed


# -- what must hold after a resume --------------------------------------------------------------------
def _typed(row: dict[str, str]) -> tuple[Any, ...]:
    return int(row["order_id"]), row["customer"], row["region"], float(row["amount"]), row["status"]


def _csv_rows(path: Path) -> list[tuple[Any, ...]]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames or ()) == COLUMNS, f"{path}: columns {reader.fieldnames}"
        return [_typed(r) for r in reader]


def assert_table_once(job: Job) -> None:
    with duckdb.connect(str(job.root / "warehouse.duckdb"), read_only=True) as db:
        rows = db.execute(f"SELECT {', '.join(COLUMNS)} FROM orders ORDER BY order_id").fetchall()
        keys, distinct = db.execute("SELECT count(*), count(DISTINCT order_id) FROM orders").fetchone() or (0, 0)
    assert (keys, distinct) == (360, 360), f"{keys} rows for {distinct} keys"
    assert rows == EXPECTED_ROWS


def assert_lake_once(job: Job) -> None:
    lake = job.root / "lake"
    assert sorted(p.name for p in lake.iterdir()) == ["orders"]  # no staging folder beside the dataset
    everything = sorted(str(p.relative_to(lake / "orders")) for p in (lake / "orders").rglob("*") if p.is_file())
    assert all(re.fullmatch(r"region=(north|south|east|west)/[^./][^/]*\.parquet", f) for f in everything), everything
    assert sorted({f.split("/")[0] for f in everything}) == sorted(f"region={r}" for r in REGIONS)
    rows = []
    for name in everything:
        region = name.split("/")[0].removeprefix("region=")
        for r in pq.read_table(lake / "orders" / name).to_pylist():
            rows.append((r["order_id"], r["customer"], region, r["amount"], r["status"]))
    assert sorted(rows) == EXPECTED_ROWS  # every row once: no part twice, none missing


def assert_extracts_once(job: Job) -> None:
    folder = job.root / "extracts"
    visible = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
    assert visible == sorted(f"orders_{r}.csv" for r in REGIONS)
    hidden = sorted(p.name for p in folder.iterdir() if p.name.startswith("."))
    assert hidden == [".orders_{key}.csv.bubbles-set.json"], hidden  # the set's record, no temporary file or journal
    rows = [row for name in visible for row in _csv_rows(folder / name)]
    assert sorted(rows) == EXPECTED_ROWS
    for name in visible:
        assert {r[2] for r in _csv_rows(folder / name)} == {name.removeprefix("orders_").removesuffix(".csv")}


def assert_delivered_once(job: Job) -> str:
    drop = job.root / "drop"
    batches = sorted(p.name for p in drop.iterdir())
    assert len(batches) == 1, f"delivered {len(batches)} times: {batches}"
    (batch,) = batches
    names = sorted(f"orders_{r}.csv" for r in REGIONS)
    assert sorted(p.name for p in (drop / batch).iterdir()) == sorted([*names, "_manifest.json"])
    manifest = json.loads((drop / batch / "_manifest.json").read_text(encoding="utf-8"))
    assert manifest["batch"] == batch
    assert sorted(e["name"] for e in manifest["files"]) == names
    assert manifest["rows"] == 360 == sum(e["rows"] for e in manifest["files"])
    for entry in manifest["files"]:
        data = (drop / batch / entry["name"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"] and len(data) == entry["bytes"], entry["name"]
        assert data == (job.root / "extracts" / entry["name"]).read_bytes()  # what was published is what was delivered
    rows = [row for name in names for row in _csv_rows(drop / batch / name)]
    assert sorted(rows) == EXPECTED_ROWS
    announced = sorted(p.name for p in (job.root / "announced").iterdir())
    assert announced == [f"{batch}.json"]
    note = json.loads((job.root / "announced" / f"{batch}.json").read_text(encoding="utf-8"))
    assert (note["batch"], sorted(note["files"]), note["rows"]) == (batch, names, 360)
    return batch


def assert_no_leftovers(job: Job) -> None:
    assert find(str(job.root), temp_dir=str(job.tmp)) == []
    assert sorted(p.name for p in job.tmp.iterdir() if "bubbles" in p.name) == []


def assert_exactly_once(job: Job) -> str:
    assert_table_once(job)
    assert_lake_once(job)
    assert_extracts_once(job)
    batch = assert_delivered_once(job)
    assert_no_leftovers(job)
    return batch


def assert_resumed(job: Job, resumed: str, crashed: str, reused: set[str]) -> None:
    """``resumed`` reused exactly ``reused`` from ``crashed``, and ran (and succeeded at) the rest."""
    shown = json.loads(_cli(show_command, resumed, "--json"))
    assert shown["run"]["status"] == "succeeded"
    states = {t["task"]: t["state"] for t in shown["tasks"]}
    assert states == {t: "reused" if t in reused else "succeeded" for t in TASKS}
    why = {e["task"]: e["payload"] for e in shown["events"] if e["kind"] == "reuse"}
    assert sorted(why) == sorted(TASKS)
    for task in TASKS:
        if task in reused:
            assert why[task] == {"action": "reused", "reason": f"reused from run {crashed}", "from_run": crashed}, task
        else:
            assert why[task]["action"] == "ran" and why[task]["from_run"] == crashed, (task, why[task])
    assert sorted(job.trace(resumed)) == sorted(t for t in TASKS if t not in reused)  # what really ran
    # The API was read again only if its extract had to run again, and then every page once.
    assert job.api.pages == ([] if "extract_api" in reused else [1, 2, 3, 4])
    with open_store() as store:
        assert store.run(crashed)["status"] == "crashed"
        recorded = {t["task"] for t in store.tasks(crashed) if t["state"] in ("succeeded", "reused")}
    assert recorded == reused  # what the killed run finished and recorded is what was reused


BEFORE = {  # the tasks done before a kill point in each task (the kill waits for their record; the extracts run side by side)
    "extract_csv": ("extract_api",),
    "extract_api": ("extract_csv",),
    "merge_orders": ("extract_csv", "extract_api"),
    "write_lake": ("extract_csv", "extract_api", "merge_orders"),
    "write_extracts": ("extract_csv", "extract_api", "merge_orders", "write_lake"),
    "deliver_extracts": ("extract_csv", "extract_api", "merge_orders", "write_lake", "write_extracts"),
    "announce": ("extract_csv", "extract_api", "merge_orders", "write_lake", "write_extracts", "deliver_extracts"),
}
KILLS = [  # (kill point, the task it is in)
    ("csv:batch", "extract_csv"),  # mid CSV read: the first of four batches read
    ("api:page", "extract_api"),  # mid API read: the first of four pages fetched
    ("merge:committed", "merge_orders"),  # the DuckDB merge committed, the task not finished (nor recorded)
    ("dir:staged", "write_lake"),  # the partitioned dataset staged in TMPDIR, not yet swapped in
    ("dir:swapped", "write_lake"),  # the dataset swapped in, the staging folder not yet removed
    ("set:journaled", "write_extracts"),  # the split CSV set's journal written, no file moved yet
    ("set:moved", "write_extracts"),  # the first file of the set moved into place
    ("deliver:files", "deliver_extracts"),  # every file delivered, no manifest yet
    ("deliver:manifest", "deliver_extracts"),  # the manifest written, the task not finished
    ("task:announce", "announce"),  # the last task started, after the delivery was recorded
]


def _stale(job: Job) -> list[str]:
    return sorted(f.kind for f in find(str(job.root), temp_dir=str(job.tmp)) if f.stale)


def _visible(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) if folder.exists() else []


def _left_by(job: Job, kill_at: str) -> None:
    """What the killed run left: the kill came where it was asked for, and left what such a kill leaves."""
    root = job.root
    warehouse, lake, extracts, drop = root / "warehouse.duckdb", root / "lake" / "orders", root / "extracts", root / "drop"
    if kill_at in ("csv:batch", "api:page"):
        assert not warehouse.exists()
        return
    with duckdb.connect(str(warehouse), read_only=True) as db:
        assert db.execute("SELECT count(*) FROM orders").fetchone() == (360,)  # the merge had committed
    if kill_at == "merge:committed":
        assert not lake.exists()
    elif kill_at == "dir:staged":
        assert not lake.exists() and _stale(job) == ["staging"]
    elif kill_at == "dir:swapped":
        assert pq.read_table(lake).num_rows == 360 and _stale(job) == ["staging"]  # swapped in; its stage not removed
    elif kill_at == "set:journaled":
        assert _visible(extracts) == [] and _stale(job) == ["journal", *["temporary"] * 4]
    elif kill_at == "set:moved":
        assert len(_visible(extracts)) == 1 and _stale(job) == ["journal", *["temporary"] * 3]
    elif kill_at == "deliver:files":
        (batch,) = _visible(drop)
        assert _visible(drop / batch) == sorted(f"orders_{r}.csv" for r in REGIONS)  # no manifest yet
        assert [p.name.split("-")[:2] for p in job.tmp.iterdir()] == [["bubbles", "deliver"]]  # its staging folder
    elif kill_at in ("deliver:manifest", "task:announce"):
        (batch,) = _visible(drop)
        assert "_manifest.json" in _visible(drop / batch) and not (root / "announced").exists()


@pytest.mark.parametrize(("kill_at", "task"), KILLS, ids=[k for k, _ in KILLS])
def test_killed_run_resumes_exactly_once(job: Job, kill_at: str, task: str) -> None:
    crashed = crash(job, kill_at, BEFORE[task])
    ran = job.trace(crashed)
    assert task in ran and set(BEFORE[task]) <= set(ran)
    assert not set(ran) - {task, *BEFORE[task]}, f"tasks after the kill point started: {ran}"
    _left_by(job, kill_at)
    resumed = job.run("--resume")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    rid = _run_id(resumed)
    assert f"resuming run {crashed}" in resumed.stderr
    assert_resumed(job, rid, crashed, set(BEFORE[task]))
    assert_exactly_once(job)


def test_plain_rerun_after_a_resume_neither_delivers_nor_loads_twice(job: Job) -> None:
    crashed = crash(job, "deliver:files", BEFORE["deliver_extracts"])
    assert job.run("--resume").returncode == 0
    batch = assert_exactly_once(job)
    drop = job.root / "drop" / batch
    delivered = {p.name: p.read_bytes() for p in drop.iterdir()}
    manifest = json.loads(delivered["_manifest.json"])
    assert manifest["run_id"] != crashed  # the resumed run completed the batch the killed one began
    again = job.run()  # no --resume: every task runs again on the same inputs
    rid = _run_id(again)
    assert sorted(job.trace(rid)) == sorted(TASKS)
    assert job.api.pages == [1, 2, 3, 4]
    assert assert_exactly_once(job) == batch  # the same content is the same batch: delivered once
    assert {p.name: p.read_bytes() for p in drop.iterdir()} == delivered  # not even rewritten


def test_a_run_killed_again_while_resuming_resumes_exactly_once(job: Job) -> None:
    """The processes executor, and a resume that is itself killed: first the run and its workers, then only
    the run's process (its worker is left to notice)."""
    first = crash(job, "merge:committed", BEFORE["merge_orders"], executor="processes")
    second = crash(job, "deliver:manifest", BEFORE["deliver_extracts"], "--resume", executor="processes", target="main")
    assert sorted(job.trace(second)) == ["deliver_extracts", "merge_orders", "write_extracts", "write_lake"]
    with open_store() as store:
        assert {t["task"]: t["state"] for t in store.tasks(second)} == {
            "extract_csv": "reused", "extract_api": "reused", "merge_orders": "succeeded", "write_lake": "succeeded",
            "write_extracts": "succeeded"}
        assert store.run(first)["status"] == "crashed"
    resumed = job.run("--resume", executor="processes")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert_resumed(job, _run_id(resumed), second, set(BEFORE["deliver_extracts"]))
    assert_exactly_once(job)


def test_a_task_that_finished_just_before_the_kill_is_not_redone(job: Job) -> None:
    """DESIGN.md: "A run killed at any point can be resumed: finished tasks are not redone". Here the kill comes
    as the last task starts, without waiting for the record of the tasks before it."""
    crashed = crash(job, "task:announce", ())
    assert sorted(job.trace(crashed)) == sorted(TASKS)  # every task before the last had finished
    resumed = job.run("--resume")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    rid = _run_id(resumed)
    assert_exactly_once(job)  # whatever ran again did no harm
    with open_store() as store:
        recorded = sorted(t["task"] for t in store.tasks(crashed))
    again = [t for t in job.trace(rid) if t != "announce"]
    assert again == [], (
        f"tasks that had finished before the kill ran again: {again} (the killed run's record holds only {recorded})")
    assert_resumed(job, rid, crashed, set(BEFORE["announce"]))


def test_resuming_a_crashed_run_says_that_it_crashed(job: Job) -> None:
    """As a scheduler would: the job dies and ``bubbles run --resume`` is the next command; no reader in between."""
    killed = job.run(kill_at="dir:swapped", wait=BEFORE["write_lake"])
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    resumed = job.run("--resume")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    with open_store() as store:
        crashed = store.runs(limit=2, workflow="orders_etl")[1]["run_id"]
        assert store.run(crashed)["status"] == "crashed"
    (said,) = [line for line in resumed.stderr.splitlines() if "resuming run" in line]
    assert f"resuming run {crashed} (crashed)" in said, said
    assert "new since then" not in said, f"every task was in the workflow then; the killed run just has no record of them: {said}"
    shown = json.loads(_cli(show_command, _run_id(resumed), "--json"))
    why = {e["task"]: e["payload"]["reason"] for e in shown["events"] if e["kind"] == "reuse"}
    assert "did not run" not in why["write_lake"], f"write_lake was running when the run was killed: {why['write_lake']!r}"


HELPERS = """
import os
from bubbles import Workflow


def rate():
    return RATE


def compute():
    with open("calls.log", "a") as f:
        f.write("compute\\n")
    return [rate() * i for i in range(4)]


def publish(values):
    if os.path.exists("fail"):
        raise RuntimeError("the target is read-only")
    with open("published.txt", "w") as f:
        f.write(repr(values))
    return values


wf = Workflow("helpers")
wf.add_task(publish, requires=[wf.add_task(compute)])
"""


def test_resume_after_fixing_a_helper_reruns_the_task_that_calls_it(tmp_path: Path) -> None:
    """The usual story after a failure: fix the code, resume. A helper's code is part of its caller's key."""
    (tmp_path / "etl.py").write_text(HELPERS.replace("RATE", "2"), encoding="utf-8")
    (tmp_path / "fail").touch()
    command = [sys.executable, "-m", "bubbles", "run", "etl.py", "--executor", "serial", "--no-progress"]
    failed = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert failed.returncode == 1 and "the target is read-only" in failed.stderr
    (tmp_path / "fail").unlink()
    (tmp_path / "etl.py").write_text(HELPERS.replace("RATE", "3"), encoding="utf-8")  # the fix: in the helper
    resumed = subprocess.run([*command, "--resume"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert (tmp_path / "calls.log").read_text().split() == ["compute", "compute"], "compute was reused after its helper changed"
    assert (tmp_path / "published.txt").read_text() == "[0, 3, 6, 9]"

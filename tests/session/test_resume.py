"""Resume and the cache (issue 15): what reruns, what is reused and why, on real runs with a real store.

Each task appends its name to a log file when it really runs, so a test counts executions from
outside the runner; a "fail" flag file makes ``load`` fail the way a warehouse that is down would,
without changing any task's code or arguments.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from bubbles import ConfigError, RunFailed, Workflow, flow, task
from bubbles.store import open_store


# -- tasks (module level: the processes executor imports them) --------------------------------------
def _mark(log: str, name: str) -> None:
    with open(log, "a") as fh:
        fh.write(name + "\n")


def extract(log: str) -> pa.Table:
    _mark(log, "extract")
    return pa.table({"id": [1, 2, 3], "amount": [10.0, 20.0, 30.5]})


def transform(table: pa.Table, log: str) -> pa.Table:
    _mark(log, "transform")
    return table.append_column("double", pc.multiply(table["amount"], 2))


def transform_v2(table: pa.Table, log: str) -> pa.Table:  # new code, a different output
    _mark(log, "transform")
    return table.append_column("double", pc.multiply(table["amount"], 3))


def transform_refactored(table: pa.Table, log: str) -> pa.Table:  # new code, the same output
    _mark(log, "transform")
    doubled = pc.add(table["amount"], table["amount"])
    return table.append_column("double", doubled)


def load(table: pa.Table, log: str, fail: str) -> int:
    _mark(log, "load")
    if os.path.exists(fail):
        raise RuntimeError("warehouse is down")
    return table.num_rows


def lookup(log: str) -> dict[str, Any]:
    _mark(log, "lookup")
    return {"rates": [1.0, 1.1], "currency": "EUR"}


def scaled(table: pa.Table, log: str, factor: int) -> float:
    _mark(log, "scaled")
    return float(pc.sum(table["amount"]).as_py()) * factor


def ran(tmp_path: Path) -> list[str]:
    """The tasks that really ran since the last call (and forget them)."""
    path = tmp_path / "calls.log"
    names = path.read_text().split() if path.exists() else []
    path.unlink(missing_ok=True)
    return names


def etl(tmp_path: Path, transform_fn: Any = transform) -> Workflow:
    log, fail = str(tmp_path / "calls.log"), str(tmp_path / "fail")
    wf = Workflow("resume-etl")
    e = wf.add_task(extract, kwargs={"log": log})
    t = wf.add_task(transform_fn, requires=[e], name="transform", kwargs={"log": log})
    wf.add_task(load, requires=[t], kwargs={"log": log, "fail": fail})
    wf.add_task(lookup, kwargs={"log": log})
    return wf


def run(wf: Workflow, **options: Any) -> Any:
    settings = {"persist": True, "resources": False, **options.pop("settings", {})}
    return wf.run(settings=settings, raise_on_error=False, **options)


def reasons(result: Any) -> dict[str, tuple[str, str]]:
    """task -> (action, reason) from the Reuse events in the run's record."""
    out = {}
    for name, t in result.tasks.items():
        for e in t.events:
            if getattr(e, "kind", "") == "reuse":
                out[name] = (e.action, e.reason)
    return out


# -- resume ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("executor", ["serial", "threads", "processes", "dask"])
def test_resume_reruns_only_the_failed_task(
    tmp_path: Path, executor: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    if executor == "dask":  # real `dask scheduler` and `dask worker` processes on this machine
        monkeypatch.setenv("BUBBLES_DASK_ADDRESS", request.getfixturevalue("conformance_cluster").address)
    (tmp_path / "fail").touch()
    first = run(etl(tmp_path), executor=executor)
    assert first.tasks["load"].state == "failed" and sorted(ran(tmp_path)) == ["extract", "load", "lookup", "transform"]
    (tmp_path / "fail").unlink()  # the warehouse is back
    second = run(etl(tmp_path), executor=executor, resume="last")
    assert second.ok, second.summary()
    assert ran(tmp_path) == ["load"]  # nothing else executed
    assert second.tasks["load"].result == 3  # with the transform's kept output as its input
    assert {n: second.tasks[n].reused_from for n in ("extract", "transform", "lookup")} == dict.fromkeys(
        ("extract", "transform", "lookup"), first.run_id
    )
    assert second.tasks["load"].reused_from is None
    assert reasons(second)["load"] == ("ran", f"failed in run {first.run_id}")
    assert reasons(second)["extract"] == ("reused", f"reused from run {first.run_id}")


def test_resume_chains_and_the_store_says_reused(tmp_path: Path) -> None:
    (tmp_path / "fail").touch()
    first = run(etl(tmp_path))
    ran(tmp_path)
    second = run(etl(tmp_path), resume="last")  # still failing: only load runs (and fails)
    assert ran(tmp_path) == ["load"] and second.tasks["load"].state == "failed"
    (tmp_path / "fail").unlink()
    third = run(etl(tmp_path), resume=second.run_id)  # resumes a resumed run: what it reused is kept by it too
    assert third.ok and ran(tmp_path) == ["load"]
    with open_store() as store:
        states = {t["task"]: t["state"] for t in store.tasks(third.run_id)}
        assert states == {"extract": "reused", "transform": "reused", "lookup": "reused", "load": "succeeded"}
        events = store.events(third.run_id, "reuse")
    assert {e["task"]: e["payload"]["action"] for e in events}["transform"] == "reused"
    assert first.run_id != second.run_id != third.run_id


def test_a_changed_task_reruns_and_downstream_only_if_its_output_changed(tmp_path: Path) -> None:
    run(etl(tmp_path))
    ran(tmp_path)
    same = run(etl(tmp_path, transform_refactored), resume="last")  # new code, same numbers
    assert ran(tmp_path) == ["transform"]  # load's input is identical: it is reused
    assert reasons(same)["transform"] == ("ran", "its code changed")
    assert reasons(same)["load"][0] == "reused"
    other = run(etl(tmp_path, transform_v2), resume="last")
    assert sorted(ran(tmp_path)) == ["load", "transform"]
    assert reasons(other)["load"] == ("ran", "upstream 'transform' changed")
    assert other.tasks["load"].ok


def test_changed_arguments_or_params_rerun_the_task(tmp_path: Path) -> None:
    log = str(tmp_path / "calls.log")

    def workflow(factor: int) -> Workflow:
        wf = Workflow("params")
        e = wf.add_task(extract, kwargs={"log": log})
        wf.add_task(scaled, requires=[e], kwargs={"log": log, "factor": factor})
        return wf

    first = run(workflow(2))
    assert first.tasks["scaled"].result == pytest.approx(121.0)
    ran(tmp_path)
    again = run(workflow(2), resume="last")
    assert ran(tmp_path) == [] and again.tasks["scaled"].result == pytest.approx(121.0)  # loaded back from the store
    changed = run(workflow(3), resume="last")
    assert ran(tmp_path) == ["scaled"] and changed.tasks["scaled"].result == pytest.approx(181.5)
    assert reasons(changed)["scaled"] == ("ran", "its arguments or parameters changed")


def test_run_params_are_part_of_the_key(tmp_path: Path) -> None:
    log = str(tmp_path / "calls.log")
    wf = Workflow("run-params")
    e = wf.add_task(extract, kwargs={"log": log})
    wf.add_task(scaled, requires=[e], kwargs={"log": log})  # factor comes from the run's params
    run(wf, params={"factor": 2})
    ran(tmp_path)
    run(wf, params={"factor": 2}, resume="last")
    assert ran(tmp_path) == []
    result = run(wf, params={"factor": 5}, resume="last")
    assert ran(tmp_path) == ["scaled"] and result.tasks["scaled"].result == pytest.approx(302.5)


def test_resuming_another_workflows_run_is_a_clear_error(tmp_path: Path) -> None:
    first = run(etl(tmp_path))
    other = Workflow("something-else")
    other.add_task(lookup, kwargs={"log": str(tmp_path / "calls.log")})
    with pytest.raises(ConfigError, match=r"is of workflow 'resume-etl', not 'something-else'.*bubbles runs --workflow"):
        run(other, resume=first.run_id)
    nothing = Workflow("never-ran")
    nothing.add_task(lookup, kwargs={"log": str(tmp_path / "calls.log")})
    with pytest.raises(ConfigError, match=r"Nothing to resume.*'never-ran'"):
        run(nothing, resume="last")


def test_a_new_task_runs_and_the_change_of_shape_is_said(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    first = run(etl(tmp_path))
    ran(tmp_path)
    wf = etl(tmp_path)
    wf.add_task(scaled, requires=["extract"], kwargs={"log": str(tmp_path / "calls.log"), "factor": 1})
    with caplog.at_level(logging.WARNING, logger="bubbles"):
        second = run(wf, resume="last")
    assert ran(tmp_path) == ["scaled"]
    assert reasons(second)["scaled"] == ("ran", f"did not run in run {first.run_id}")
    assert f"resuming run {first.run_id} (succeeded); new since then: scaled" in caplog.text


def _checkpoint_file(run_id: str, task_name: str) -> Path:
    with open_store() as store:
        row = next(c for c in store.checkpoints(run_id) if c["task"] == task_name)
    return Path(row["location"].split(":", 1)[1])


@pytest.mark.parametrize("damage", ["missing", "truncated", "garbage", "one byte changed"])
def test_a_damaged_checkpoint_is_never_trusted(tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture) -> None:
    first = run(etl(tmp_path))
    ran(tmp_path)
    path = _checkpoint_file(first.run_id, "transform")
    if damage == "missing":
        path.unlink()
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "garbage":
        size = path.stat().st_size
        path.write_bytes(b"\x00" * size)  # same size, not Arrow
    else:  # same size, still valid Arrow, other values: only the content hash sees it
        data = bytearray(path.read_bytes())
        values = pa.array([10.0, 20.0, 30.5]).buffers()[1].to_pybytes()  # the amounts, as they sit in the file
        at = bytes(data).find(values)
        assert at > 0
        data[at] ^= 0x40
        path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="bubbles"):
        second = run(etl(tmp_path), resume="last")
    assert second.ok
    assert ran(tmp_path) == ["transform"]  # recomputed; load's input is the same again, so it is reused
    assert reasons(second)["transform"] == ("ran", f"its checkpoint from run {first.run_id} cannot be read")
    assert "It runs again." in caplog.text and "transform" in caplog.text


def test_checkpoint_files_are_private(tmp_path: Path) -> None:
    first = run(etl(tmp_path))
    path = _checkpoint_file(first.run_id, "transform")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.suffix == ".arrow"
    with pa.memory_map(str(path)) as source:  # a standard Arrow IPC file other tools read
        assert pa.ipc.open_file(source).read_all().column_names == ["id", "amount", "double"]


def token_holder(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Session:  # an object (pickled when kept) that holds a credential
    def __init__(self, token: str) -> None:
        self.token = token


def session(token: str) -> Session:
    return Session(token)


@pytest.mark.parametrize("fn", [token_holder, session])
def test_an_output_holding_a_secret_is_not_kept(
    tmp_path: Path, fn: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from bubbles._secrets import get_secret

    secret = "s3cr3t-token-value-42"
    monkeypatch.setenv("API_TOKEN", secret)

    def with_token() -> Any:
        return fn(get_secret("API_TOKEN"))

    wf = Workflow("secretive")
    wf.add_task(with_token, name="auth")
    with caplog.at_level(logging.WARNING, logger="bubbles"):
        first = run(wf)
    assert "holds one of the run's secrets; it is not kept" in caplog.text
    home = Path(os.environ["BUBBLES_HOME"])
    for path in home.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
    second = run(wf, resume="last")
    assert reasons(second)["auth"] == ("ran", f"its output was not kept in run {first.run_id}")


def test_persist_false_on_a_task_keeps_nothing_for_it(tmp_path: Path) -> None:
    log = str(tmp_path / "calls.log")
    wf = Workflow("private")
    e = wf.add_task(extract, kwargs={"log": log}, persist=False)
    wf.add_task(transform, requires=[e], kwargs={"log": log})
    first = run(wf)
    with open_store() as store:
        kept = {c["task"]: c["format"] for c in store.checkpoints(first.run_id)}
    assert kept["transform"] == "arrow" and kept.get("extract") in (None, "unkept")
    ran(tmp_path)
    run(wf, resume="last")
    assert ran(tmp_path) == ["extract"]  # transform's key (from extract's fingerprint) still matches


def test_without_persist_there_is_nothing_to_resume(tmp_path: Path) -> None:
    first = run(etl(tmp_path), settings={"persist": False})
    ran(tmp_path)
    second = run(etl(tmp_path), resume="last")
    assert sorted(ran(tmp_path)) == ["extract", "load", "lookup", "transform"]
    assert reasons(second)["extract"] == ("ran", f"its output was not kept in run {first.run_id}")


# -- the cache ---------------------------------------------------------------------------------------------
def cached_etl(tmp_path: Path, cache: Any) -> Workflow:
    log = str(tmp_path / "calls.log")
    wf = Workflow("cached")
    e = wf.add_task(extract, kwargs={"log": log}, cache=cache)
    wf.add_task(transform, requires=[e], kwargs={"log": log})
    return wf


def test_a_cached_task_is_reused_by_later_runs_without_resume(tmp_path: Path) -> None:
    first = run(cached_etl(tmp_path, True), settings={"persist": False})
    assert reasons(first)["extract"] == ("ran", "cache miss")
    ran(tmp_path)
    second = run(cached_etl(tmp_path, True), settings={"persist": False})
    assert ran(tmp_path) == ["transform"]  # not cached itself: it runs, on the cached table
    action, reason = reasons(second)["extract"]
    assert action == "reused" and reason.startswith(f"cache hit from run {first.run_id} (kept ")
    assert second.tasks["transform"].result.column("double").to_pylist() == [20.0, 40.0, 61.0]


def test_an_expired_cache_entry_is_not_used(tmp_path: Path) -> None:
    first = run(cached_etl(tmp_path, "1h"), settings={"persist": False})
    ran(tmp_path)
    home = Path(os.environ["BUBBLES_HOME"])
    with sqlite3.connect(home / "history.db") as db:  # as if it were kept two hours ago
        db.execute("UPDATE checkpoints SET at = at - 7200, expires_at = expires_at - 7200 WHERE run_id = ?",
                   [first.run_id])
    second = run(cached_etl(tmp_path, "1h"), settings={"persist": False})
    assert ran(tmp_path) == ["extract", "transform"]
    assert reasons(second)["extract"] == ("ran", "cache miss")
    third = run(cached_etl(tmp_path, "1h"), settings={"persist": False})  # the fresh entry second kept
    assert reasons(third)["extract"] == ("reused", reasons(third)["extract"][1])
    assert second.run_id in reasons(third)["extract"][1]


def stream_of(log: str) -> Any:
    _mark(log, "stream")
    return pa.table({"a": [1, 2]}).to_reader()


def count_stream(reader: Any, log: str) -> int:
    _mark(log, "count")
    return sum(b.num_rows for b in reader)


def test_a_cached_task_whose_input_cannot_be_fingerprinted_runs_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log = str(tmp_path / "calls.log")
    wf = Workflow("streams")
    s = wf.add_task(stream_of, kwargs={"log": log})
    wf.add_task(count_stream, requires=[s], kwargs={"log": log}, cache=True)
    with caplog.at_level(logging.WARNING, logger="bubbles"):
        run(wf, settings={"persist": False})
        second = run(wf, settings={"persist": False})
    assert ran(tmp_path) == ["stream", "count", "stream", "count"]
    assert "task 'count_stream' is cached, but 'stream_of' cannot be fingerprinted" in caplog.text
    assert second.tasks["count_stream"].result == 2


def test_bad_cache_values_are_clear_errors() -> None:
    wf = Workflow("bad-cache")
    with pytest.raises(ConfigError, match="cache"):
        wf.add_task(lookup, kwargs={"log": "x"}, cache="soon")


# -- flows -----------------------------------------------------------------------------------------------------
@task
def fetch(day: str, log: str) -> list[int]:
    _mark(log, f"fetch:{day}")
    return [len(day), 1, 2]


@task
def store_day(rows: list[int], log: str, fail: str) -> int:
    _mark(log, "store")
    if os.path.exists(fail):
        raise RuntimeError("disk full")
    return sum(rows)


@flow(name="daily")
def daily(days: list[str], log: str, fail: str) -> int:
    totals = [store_day(fetch(day, log), log, fail) for day in days]
    return sum(t.result() for t in totals)


def test_a_flow_resumes_too(tmp_path: Path) -> None:
    log, fail = str(tmp_path / "calls.log"), str(tmp_path / "fail")
    (tmp_path / "fail").touch()
    settings = {"persist": True, "resources": False}
    with pytest.raises(RunFailed):
        daily.options(settings=settings).run(["mon", "tue"], log, fail)
    ran(tmp_path)
    (tmp_path / "fail").unlink()
    result = daily.options(settings=settings, resume="last").run(["mon", "tue"], log, fail)
    assert result.ok
    assert sorted(ran(tmp_path)) == ["store", "store"]  # the fetches were reused
    assert result.output == 2 * (3 + 3)


def test_resume_of_a_hundred_tasks_reruns_one(tmp_path: Path) -> None:
    log, fail = str(tmp_path / "calls.log"), str(tmp_path / "fail")
    wf = Workflow("wide")
    prev = wf.add_task(extract, kwargs={"log": log})
    for i in range(98):
        prev = wf.add_task(transform, requires=[prev] if i % 10 == 0 else ["extract"], name=f"t{i}", kwargs={"log": log})
    wf.add_task(load, requires=["t97"], kwargs={"log": log, "fail": fail})
    (tmp_path / "fail").touch()
    run(wf)
    ran(tmp_path)
    (tmp_path / "fail").unlink()
    second = run(wf, resume="last")  # (how fast: benchmarks/resume.py)
    assert second.ok and ran(tmp_path) == ["load"]
    assert sum(1 for t in second.tasks.values() if t.reused_from) == 99


def test_a_task_fed_by_a_stream_reruns_on_resume_and_says_why(tmp_path: Path) -> None:
    log = str(tmp_path / "calls.log")
    wf = Workflow("stream-resume")
    s = wf.add_task(stream_of, kwargs={"log": log})
    wf.add_task(count_stream, requires=[s], kwargs={"log": log})
    run(wf)
    ran(tmp_path)
    second = run(wf, resume="last")
    assert ran(tmp_path) == ["stream", "count"]  # a stream is not kept, and what reads it cannot be compared
    why = "'stream_of' cannot be fingerprinted (a stream, or an object of unknown kind)"
    assert reasons(second)["count_stream"] == ("ran", why)


def double(x: int, log: str) -> int:
    _mark(log, f"double:{x}")
    return 2 * x


def summarise(groups: list[Any], doubled: list[int], log: str) -> int:
    _mark(log, "summarise")
    return len(groups) + sum(doubled)


def publish(total: int, log: str, fail: str) -> int:
    _mark(log, "publish")
    if os.path.exists(fail):
        raise RuntimeError("the summary table is locked")
    return total


def test_a_task_after_a_parallel_group_and_a_map_is_reused(tmp_path: Path) -> None:
    import functools

    from bubbles import ParallelTask

    log, fail = str(tmp_path / "calls.log"), str(tmp_path / "fail")
    wf = Workflow("groups")
    group = wf.add_task(ParallelTask([functools.partial(extract, log), functools.partial(lookup, log)]), name="sources")
    mapped = wf.map(double, [1, 2, 3], name="doubled", kwargs={"log": log})
    total = wf.add_task(summarise, requires=[group, mapped], kwargs={"log": log})
    wf.add_task(publish, requires=[total], kwargs={"log": log, "fail": fail})
    (tmp_path / "fail").touch()
    run(wf)
    ran(tmp_path)
    (tmp_path / "fail").unlink()
    second = run(wf, resume="last")
    assert second.ok and second.tasks["publish"].result == 2 + 12
    assert ran(tmp_path) == ["publish"]  # the group's and the map's outputs are known (their children's): summarise is reused


def test_lineage_goes_through_a_validation_and_across_a_resume(tmp_path: Path) -> None:
    import bubbles
    from bubbles.data.quality import Column, Contract
    from bubbles.observe.lineage_graph import edges_of

    csv, out, fail = tmp_path / "orders.csv", tmp_path / "clean.parquet", tmp_path / "fail"
    csv.write_text("id,amount\n1,10.5\n2,-3.0\n3,7.25\n")
    contract = Contract("orders", columns=[Column("amount", min=0)])

    def extract() -> pa.Table:
        return bubbles.read_csv(csv)

    def check(orders: pa.Table) -> pa.Table:
        return bubbles.validate(orders, contract, quarantine=False).valid  # the valid rows keep their origin

    def write(valid: pa.Table) -> None:
        if fail.exists():
            raise RuntimeError("the lake is read-only")
        bubbles.write_parquet(bubbles.sql("SELECT id, amount * 2 AS doubled FROM v", v=valid), out)

    wf = Workflow("lineage-resume")
    wf.add_task(write, requires=[wf.add_task(check, requires=[wf.add_task(extract)])])
    fail.touch()
    run(wf)
    fail.unlink()
    second = run(wf, resume="last")  # extract and check are reused: their outputs come from checkpoints
    assert second.tasks["check"].reused_from and second.tasks["write"].ok
    with open_store() as store:
        edges = edges_of(store.lineage(second.run_id))
        columns = {(e["field"], e["input_field"]) for e in store.lineage(second.run_id) if e["field"]}
    assert any(o.endswith("clean.parquet") and i.endswith("orders.csv") for o, i in edges), edges
    assert ("doubled", "amount") in columns


def test_a_task_whose_input_file_changed_is_not_reused(tmp_path: Path) -> None:
    import bubbles

    csv, fail = tmp_path / "orders.csv", tmp_path / "fail"
    csv.write_text("id,amount\n1,10.5\n2,3.0\n")
    log = str(tmp_path / "calls.log")

    def read_orders() -> pa.Table:
        _mark(log, "read")
        return bubbles.read_csv(csv)

    def publish(orders: pa.Table) -> int:
        if fail.exists():
            raise RuntimeError("the target is down")
        return orders.num_rows

    def workflow(cache: Any = None) -> Workflow:
        wf = Workflow("file-input")
        wf.add_task(publish, requires=[wf.add_task(read_orders, cache=cache)])
        return wf

    fail.touch()
    first = run(workflow())
    fail.unlink()
    csv.write_text("id,amount\n1,10.5\n2,3.0\n3,4.5\n")  # a new delivery of the file
    ran(tmp_path)
    second = run(workflow(), resume="last")
    assert ran(tmp_path) == ["read"] and second.tasks["publish"].result == 3
    assert reasons(second)["read_orders"][1].startswith(f"its input {csv} changed since run {first.run_id}")
    third = run(workflow(cache=True))  # cached: reused while the file is the same ...
    fourth = run(workflow(cache=True))
    assert reasons(fourth)["read_orders"][0] == "reused" and third.ok
    csv.unlink()  # ... and not once it is gone
    fifth = run(workflow(cache=True))
    assert fifth.tasks["read_orders"].state == "failed"  # it ran (and found no file), rather than serve stale rows

"""Lazy tables (issue 17): a read -> sql -> write pipeline of separate tasks runs as one DuckDB plan.

Every test runs real workflows on real files with real DuckDB; the materialised path (``lazy =
off``) is the reference each fused result is compared with. Tasks are module-level functions so
that the processes executor can import them.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import bubbles
from bubbles import LazyTable, SourceChangedError, Workflow
from bubbles.data.files import BadLineError
from bubbles.data.quality import read_quarantine
from bubbles.store import open_store

QUERY = """
SELECT id, created_at, CAST(created_at AS DATE) AS day, amount, amount * 2 AS doubled, status, upper(country) AS country, note
FROM orders WHERE status IN ('paid', 'shipped')
"""


def orders_csv(path: Path, rows: int = 30_000, *, lines: dict[int, str] | None = None) -> Path:
    """An orders file of ``rows`` rows; ``lines`` replaces physical lines (1 = the header) by raw text."""
    statuses = ["paid", "shipped", "cancelled", "refunded"]
    out = ["id,created_at,amount,status,country,note"]
    for i in range(rows):
        out.append(f'{i},2025-{1 + i % 12:02d}-{1 + i % 28:02d} {i % 24:02d}:{i % 60:02d}:{(i * 7) % 60:02d},'
                   f'{(i * 37) % 10000 / 100:.2f},{statuses[(i // 3) % 4]},{["de", "fr", "nl"][i % 3]},"note {i % 100}, ""x"""')
    for number, text in (lines or {}).items():
        out[number - 1] = text
    path.write_text("\n".join(out) + "\n")
    return path


# -- tasks ------------------------------------------------------------------------------------------
def extract(csv: str, on_bad_lines: str = "error") -> Any:
    return bubbles.read_csv(csv, schema={"amount": "decimal(10,2)"}, on_bad_lines=on_bad_lines)


def transform(orders: Any) -> Any:
    return bubbles.sql(QUERY, orders=orders)


def load(table: Any, out: str) -> int:
    return sum(f.rows for f in bubbles.write_parquet(table, out))


def load_csv(table: Any, out: str) -> int:
    return sum(f.rows for f in bubbles.write_csv(table, out))


def count_rows(table: Any) -> int:
    return int(table.num_rows)  # Python needs the values: the table is read, once


def still_a_plan(table: Any) -> bool:
    return isinstance(table, LazyTable) and not table.is_read


def rewrite(csv: str, how: str) -> None:
    if how == "delete":
        os.unlink(csv)
    else:
        with open(csv, "a") as f:
            f.write('99999999,2025-01-01 00:00:00,1.00,paid,de,"late"\n')


def pipeline(csv: Path, out: Path, *, executor: str = "threads", lazy: str = "on", loader: Any = load,
             on_bad_lines: str = "error", **settings: Any) -> Any:
    wf = Workflow("lazy-etl")
    e = wf.add_task(extract, kwargs={"csv": str(csv), "on_bad_lines": on_bad_lines})
    t = wf.add_task(transform, requires=[e])
    wf.add_task(loader, requires=[t], name="load", kwargs={"out": str(out)})
    return wf.run(executor=executor, settings={"lazy": lazy, "resources": False, **settings}, raise_on_error=False)


def set_aside(sink: Path, run_id: str) -> list[tuple[Any, ...]]:
    """The bad lines a run put in a quarantine sink: (line, column, reason, raw text, source), in line order."""
    rows = read_quarantine(sink, run_id=run_id).to_pylist()
    return sorted((r["_line"], r["_column"], r["_reason"], r["_raw"], r["_source"]) for r in rows)


def fused_events(result: Any, task: str = "load") -> list[Any]:
    return [e for e in result.tasks[task].events if getattr(e, "kind", "") == "fused"]


# -- the fused pipeline gives what the materialised one gives ---------------------------------------------
@pytest.mark.parametrize("executor", ["serial", "threads", "processes", "dask"])
def test_fused_pipeline_equals_the_materialised_one(
    tmp_path: Path, executor: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    if executor == "dask":  # real `dask scheduler` and `dask worker` processes: the plans travel to the workers
        monkeypatch.setenv("BUBBLES_DASK_ADDRESS", request.getfixturevalue("conformance_cluster").address)
    csv = orders_csv(tmp_path / "orders.csv")
    fused = pipeline(csv, tmp_path / "fused.parquet", executor=executor)
    eager = pipeline(csv, tmp_path / "eager.parquet", executor=executor, lazy="off")
    assert fused.ok and eager.ok, (fused.summary(), eager.summary())
    a, b = pq.read_table(tmp_path / "fused.parquet"), pq.read_table(tmp_path / "eager.parquet")
    assert a.schema == b.schema and a.equals(b) and a.num_rows == 15_000
    [event] = fused_events(fused)
    assert event.tasks == "extract, transform, load"
    steps = json.loads(event.steps)
    assert [s["step"] for s in steps] == ["read_csv", "sql", "write_parquet"]
    assert steps[0]["rows"] == 30_000 and steps[0]["parsed_by"] == "duckdb" and event.rows_out == 15_000
    assert not fused_events(eager)
    load_metrics = fused.tasks["load"].metrics
    assert load_metrics["rows_read"] == 30_000 and load_metrics["rows_written"] == 15_000


def test_the_engine_measures_a_plan_without_reading_it(tmp_path: Path) -> None:
    csv = orders_csv(tmp_path / "orders.csv")
    wf = Workflow("measure")
    e = wf.add_task(extract, kwargs={"csv": str(csv)})
    wf.add_task(still_a_plan, requires=[e])
    result = wf.run(settings={"lazy": "on", "resources": False})
    assert result.tasks["still_a_plan"].result is True  # measuring extract's output did not read it
    assert "rows_out" not in result.tasks["extract"].metrics and "rows_in" not in result.tasks["still_a_plan"].metrics


def test_types_and_values_match_for_every_column_kind(tmp_path: Path) -> None:
    csv = tmp_path / "kinds.csv"
    rows = ["i,f,b,d,ts,tsf,dec,s"]
    for k in range(6000):
        rows.append(f"{k - 3000},{k / 7:.6f},{'true' if k % 2 else 'false'},2024-{1 + k % 12:02d}-{1 + k % 28:02d},"
                    f"2024-01-01 {k % 24:02d}:{k % 60:02d}:00,2024-01-01 00:00:{k % 60:02d}.{k % 1000:03d},"
                    f"{k % 500}.{k % 100:02d},{'' if k % 50 == 0 else 'v' + str(k)}")
    csv.write_text("\n".join(rows) + "\n")

    def both(lazy: bool) -> pa.Table:
        t = bubbles.read_csv(csv, schema={"dec": "decimal(6,2)"}, lazy=lazy)
        return bubbles.sql("SELECT * FROM t", t=t).to_arrow() if lazy else bubbles.sql("SELECT * FROM t", t=t)

    fused, eager = both(True), both(False)
    assert fused.schema == eager.schema and fused.equals(eager)
    assert str(eager.schema.field("tsf").type) == "timestamp[ns]" and eager.column("s")[0].as_py() == ""


# -- bad lines on the fused path ----------------------------------------------------------------------------
def test_a_bad_line_after_the_first_block_names_the_reading_task_the_file_and_the_line(tmp_path: Path) -> None:
    # line 20,001 is far past the first block, and its row is one the query filters out: the plan still stops
    csv = orders_csv(tmp_path / "orders.csv", lines={20_001: '19999,2025-01-01 00:00:00,oops,cancelled,de,"n"'})
    result = pipeline(csv, tmp_path / "out.parquet")
    assert result.tasks["load"].state == "failed" and result.tasks["extract"].state == "succeeded"
    error = result.tasks["load"].error
    assert isinstance(error, BadLineError) and error.line == 20_001 and error.column == "amount"
    text = str(error)
    assert "Task 'extract' planned this read_csv" in text and "task 'load'" in text and str(csv) in text
    assert "line 20001" in text and not (tmp_path / "out.parquet").exists()
    assert result.tasks["load"].attempts == 1  # a bad line is not retried


def test_quarantine_on_the_fused_path_equals_the_materialised_one(tmp_path: Path) -> None:
    bad = {22_000: '21998,2025-13-01 00:00:00,1.00,paid,de,"bad month"', 25_000: "24999,2025-01-01 00:00:00,2.00,paid",
           28_000: '27999,2025-01-01 00:00:00,3.00,paid,de,"x",extra'}
    csv = orders_csv(tmp_path / "orders.csv", lines=bad)
    where = {"quarantine_dir": str(tmp_path / "quarantine")}
    eager = pipeline(csv, tmp_path / "eager.parquet", lazy="off", on_bad_lines="quarantine", **where)
    fused = pipeline(csv, tmp_path / "fused.parquet", on_bad_lines="quarantine", **where)
    assert fused.ok and eager.ok
    sink = tmp_path / "quarantine" / "orders.csv"
    expected, got = (set_aside(sink, r.run_id) for r in (eager, fused))
    assert got == expected and [row[0] for row in expected] == sorted(bad)
    assert pq.read_table(tmp_path / "fused.parquet").equals(pq.read_table(tmp_path / "eager.parquet"))
    [event] = fused_events(fused)
    step = json.loads(event.steps)[0]
    assert step["parsed_by"] == "bubbles reader" and event.fallback and "read by the bubbles reader" in event.plan
    assert fused.tasks["load"].metrics["bad_lines"] == 3

    # a bad line in the first block: the read is not planned, extract reads the file at once (and quarantines)
    early = orders_csv(tmp_path / "early.csv", lines={50: '48,2025-01-01 00:00:00,zz,paid,de,"x"'})
    result = pipeline(early, tmp_path / "early.parquet", on_bad_lines="quarantine", **where)
    assert result.ok and result.tasks["extract"].metrics["bad_lines"] == 1 and "bad_lines" not in result.tasks["load"].metrics
    assert [row[0] for row in set_aside(tmp_path / "quarantine" / "early.csv", result.run_id)] == [50]


@pytest.mark.parametrize(
    "line",
    [
        '7,2025-01-01 00:00:00,1.00,paid,de,"x",',  # a trailing delimiter (DuckDB alone would drop the empty field)
        "7,2025-01-01 00:00:00,1.00,paid",  # too few fields
        '7,2025-01-01 00:00:00,1.00,paid,de,"open',  # a quote not closed on its line
        '7,2025-01-01 00:00:00,1.00,paid,de,"two\nlines"',  # a quoted line break
        "7,2025-01-01 00:00:00,1.005,paid,de,x",  # more decimals than declared (DuckDB alone would round)
        "7.5,2025-01-01 00:00:00,1.00,paid,de,x",  # a float in an integer column (DuckDB alone would round)
        "7,2025-01-01 00:00:00+01:00,1.00,paid,de,x",  # an offset on a timestamp without zone (DuckDB drops it)
        "7,2025-01-01 00:00:00.5,1.00,paid,de,x",  # a fraction on a timestamp[s] (DuckDB rounds it)
        "1_000,2025-01-01 00:00:00,1.00,paid,de,x",  # digit separators (DuckDB reads 1000)
        "NA,2025-01-01 00:00:00,1.00,paid,de,x",  # one of Arrow's null markers
        "+7,2025-01-01 00:00:00,1.00,paid,de,x",
        " 7,2025-01-01 00:00:00,1.00,paid,de,x",
        "7,2025-01-01 00:00:00,1.00,paid,de,\xe9t\xe9",
    ],
)
def test_what_duckdb_would_read_otherwise_gives_the_readers_result(tmp_path: Path, line: str) -> None:
    csv = orders_csv(tmp_path / "orders.csv", rows=40_000, lines={30_001: line})  # far past the first block
    if "\xe9" in line:  # as latin-1 bytes: not valid UTF-8
        csv.write_bytes(csv.read_bytes().replace("\xe9".encode(), b"\xe9"))
    outcomes = []
    for lazy in ("off", "on"):
        out = tmp_path / f"out-{lazy}.parquet"
        result = pipeline(csv, out, lazy=lazy, on_bad_lines="quarantine", quarantine_dir=str(tmp_path / "quarantine"))
        sink = tmp_path / "quarantine" / "orders.csv"
        bad = set_aside(sink, result.run_id) if sink.exists() else []
        outcomes.append((result.ok, pq.read_table(out) if out.exists() else None, bad))
        if lazy == "on":  # the plan ran, DuckDB's scan stopped, and the file was read by the bubbles reader
            [event] = fused_events(result)
            assert json.loads(event.steps)[0]["parsed_by"] == "bubbles reader", event
    (ok_eager, eager, bad_eager), (ok_fused, fused, bad_fused) = outcomes
    assert ok_eager == ok_fused and bad_fused == bad_eager
    assert fused is not None and eager is not None and fused.equals(eager) and fused.schema == eager.schema


def test_a_bad_line_past_a_limit_is_still_reported(tmp_path: Path) -> None:
    csv = orders_csv(tmp_path / "orders.csv", lines={29_000: '28998,2025-01-01 00:00:00,zz,paid,de,"x"'})

    def first_ten() -> Any:
        return bubbles.write_parquet(bubbles.sql("SELECT * FROM o LIMIT 10", o=bubbles.read_csv(csv)), tmp_path / "t.parquet")

    def unused() -> Any:  # a query that never reads its input: the input is read all the same
        return bubbles.write_parquet(bubbles.sql("SELECT 1 AS one", o=bubbles.read_csv(csv)), tmp_path / "u.parquet")

    for step in (first_ten, unused):
        wf = Workflow("limit")
        wf.add_task(step)
        result = wf.run(settings={"lazy": "on", "resources": False}, raise_on_error=False)
        error = result.tasks[step.__name__].error
        assert isinstance(error, BadLineError) and error.line == 29_000, step


# -- reads planned in a task that does nothing with them ------------------------------------------------------
def test_a_read_nobody_uses_still_happens_in_its_task(tmp_path: Path) -> None:
    csv = orders_csv(tmp_path / "orders.csv", lines={3: '1,2025-01-01 00:00:00,nope,paid,de,"x"'})

    def validate() -> None:
        bubbles.read_csv(csv, schema={"amount": "decimal(10,2)"}, on_bad_lines="quarantine")  # called for its quarantine file

    def malformed() -> Any:
        return bubbles.read_csv(csv, schema={"amount": "decimal(10,2)"})  # the run's final output

    wf = Workflow("unused")
    wf.add_task(validate)
    wf.add_task(malformed)
    result = wf.run(settings={"lazy": "on", "resources": False, "quarantine_dir": str(tmp_path / "quarantine")},
                    raise_on_error=False, fail_fast=False)
    assert result.tasks["validate"].state == "succeeded"
    assert [row[0] for row in set_aside(tmp_path / "quarantine" / "orders.csv", result.run_id)] == [3]
    assert result.tasks["validate"].metrics["bad_lines"] == 1
    assert isinstance(result.tasks["malformed"].error, BadLineError) and result.tasks["malformed"].error.line == 3


def test_a_final_output_is_an_arrow_table(tmp_path: Path) -> None:
    csv = orders_csv(tmp_path / "orders.csv", rows=100)
    wf = Workflow("final")
    e = wf.add_task(extract, kwargs={"csv": str(csv)})
    wf.add_task(transform, requires=[e])
    result = wf.run(settings={"lazy": "on", "resources": False})
    table = result.tasks["transform"].result
    assert isinstance(table, pa.Table) and table.num_rows == 52  # read in its task, where errors belong


# -- the file changes between planning and running ----------------------------------------------------------------
@pytest.mark.parametrize("how", ["delete", "append"])
def test_a_file_that_changes_after_planning_is_a_clear_error(tmp_path: Path, how: str) -> None:
    csv = orders_csv(tmp_path / "orders.csv", rows=1000)
    wf = Workflow("changed")
    e = wf.add_task(extract, kwargs={"csv": str(csv)})
    t = wf.add_task(transform, requires=[e])
    r = wf.add_task(rewrite, kwargs={"csv": str(csv), "how": how}, after=[t])
    wf.add_task(load, requires=[t], after=[r], kwargs={"out": str(tmp_path / "out.parquet")}, retries=2, retry_delay=0.01)
    result = wf.run(settings={"lazy": "on", "resources": False}, raise_on_error=False)
    error = result.tasks["load"].error
    assert isinstance(error, SourceChangedError) and error.planned_by == "extract" and error.task == "load"
    text = str(error)
    assert "Task 'extract' planned a read of" in text and str(csv) in text and "task 'load' runs it" in text
    assert ("the file is gone" if how == "delete" else "the file changed (size") in text
    assert result.tasks["load"].attempts == 1 and not (tmp_path / "out.parquet").exists()


# -- consumed twice -------------------------------------------------------------------------------------------
def test_a_plan_consumed_twice_is_read_twice_or_kept_never_half(tmp_path: Path) -> None:
    csv = orders_csv(tmp_path / "orders.csv")
    outs = {name: str(tmp_path / f"{name}.parquet") for name in ("a", "b")}
    wf = Workflow("twice")
    e = wf.add_task(extract, kwargs={"csv": str(csv)})
    t = wf.add_task(transform, requires=[e])
    wf.add_task(load, requires=[t], name="load_a", kwargs={"out": outs["a"]})
    wf.add_task(load, requires=[t], name="load_b", kwargs={"out": outs["b"]})
    wf.add_task(count_rows, requires=[e], name="count")  # Python reads extract's plan (once, kept)
    wf.add_task(load_csv, requires=[e], name="load_raw", kwargs={"out": str(tmp_path / "raw.csv")})
    result = wf.run(settings={"lazy": "on", "resources": False})
    a, b = pq.read_table(outs["a"]), pq.read_table(outs["b"])
    assert a.equals(b) and a.num_rows == 15_000 and result.tasks["count"].result == 30_000
    assert result.tasks["load_raw"].result == 30_000
    assert bubbles.read_csv(tmp_path / "raw.csv", lazy=False).num_rows == 30_000

    # in one task: a lazy table read by Python, then used by a query, is not read again
    orders = bubbles.read_csv(csv, lazy=True)
    assert orders.num_rows == 30_000 and orders.is_read
    again = bubbles.sql("SELECT count(*) AS n FROM o", o=orders)
    assert again.plan.inputs["o"].step == "table" and again.to_pylist() == [{"n": 30_000}]


# -- resume: a lazy output is kept as its plan ---------------------------------------------------------------------
def flaky_load(table: Any, out: str, fail: str) -> int:
    if os.path.exists(fail):
        raise RuntimeError("the lake is down")
    return load(table, out)


def test_resume_reuses_the_plans_and_reads_the_file_once_where_it_is_used(tmp_path: Path) -> None:
    csv = orders_csv(tmp_path / "orders.csv")
    out, fail = tmp_path / "out.parquet", tmp_path / "fail"

    def workflow() -> Workflow:
        wf = Workflow("lazy-resume")
        e = wf.add_task(extract, kwargs={"csv": str(csv)})
        t = wf.add_task(transform, requires=[e])
        wf.add_task(flaky_load, requires=[t], name="load", kwargs={"out": str(out), "fail": str(fail)})
        return wf

    settings = {"lazy": "on", "persist": True, "resources": False}
    fail.touch()
    first = workflow().run(settings=settings, raise_on_error=False)
    assert first.tasks["load"].state == "failed"
    kept = {c.fingerprint: c for t in first.tasks.values() for c in t.events if getattr(c, "kind", "") == "checkpoint"}
    formats = {c.format for c in kept.values()}
    assert formats == {"plan"} and all(c.bytes < 20_000 for c in kept.values())  # not the data: the plans
    fail.unlink()
    second = workflow().run(settings=settings, resume="last")
    assert second.tasks["extract"].reused_from == first.run_id and second.tasks["transform"].reused_from == first.run_id
    assert pq.read_table(out).num_rows == 15_000 and second.tasks["load"].metrics["rows_read"] == 30_000

    # the file changes: the kept plan is no longer trusted, and extract plans the read again
    csv.write_text(csv.read_text() + '999999,2025-01-01 00:00:00,1.00,paid,de,"new"\n')
    third = workflow().run(settings=settings, resume=first.run_id)
    assert third.tasks["extract"].reused_from is None and third.tasks["load"].result == 15_001

    # same size, same modification time, same inode, other bytes: the content hash tells
    stat = csv.stat()
    text = csv.read_text()
    with open(csv, "r+") as f:  # (in place: the inode stays)
        f.write(text.replace(",paid,", ",PAID,", 1))
    os.utime(csv, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert csv.stat().st_size == stat.st_size and csv.stat().st_ino == stat.st_ino
    fourth = workflow().run(settings=settings, resume=third.run_id)
    assert fourth.tasks["extract"].reused_from is None and fourth.tasks["transform"].reused_from is None
    assert fourth.tasks["load"].result == 15_000  # the row now says PAID: the query does not keep it


# -- lineage, and bubbles show ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("executor", ["threads", "processes"])
def test_column_lineage_is_recorded_through_a_fused_plan(tmp_path: Path, executor: str) -> None:
    csv = orders_csv(tmp_path / "orders.csv", rows=100)
    out = tmp_path / "out.parquet"
    result = pipeline(csv, out, executor=executor, lineage="file")
    assert result.ok
    with open_store() as store:
        edges = store.lineage(result.run_id)
        datasets = store.datasets(result.run_id)
    columns = {(e["field"], e["input_field"], e["transformation"]) for e in edges if e["field"] and e["name"] == str(out)}
    assert ("doubled", "amount", "TRANSFORMATION") in columns and ("id", "id", "IDENTITY") in columns
    reads = {(d["task"], d["rows"]) for d in datasets if d["direction"] == "read"}
    assert reads == {("extract", None), ("load", 100)}


def test_bubbles_show_says_which_steps_ran_fused(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from bubbles.cli.main import _register, cli

    csv = orders_csv(tmp_path / "orders.csv", rows=500)
    result = pipeline(csv, tmp_path / "out.parquet")
    _register()
    shown = CliRunner().invoke(cli, ["show", result.run_id])
    assert shown.exit_code == 0, shown.output
    text = " ".join(shown.output.split())
    assert "fused:" in text and "load ran, as one duckdb plan: extract: read_csv" in text
    assert "(500 rows) -> transform: sql" in text and "-> load: write_parquet" in text


# -- other sources and sinks ---------------------------------------------------------------------------------------------
def test_parquet_into_csv_and_a_join_of_three_sources(tmp_path: Path) -> None:
    csv = orders_csv(tmp_path / "orders.csv")
    bubbles.write_parquet(pa.table({"country": ["de", "fr", "nl"], "name": ["Germany", "France", "Netherlands"]}),
                          tmp_path / "countries.parquet")
    bubbles.write_parquet(pa.table({"status": ["paid", "shipped"], "final": [True, False]}), tmp_path / "statuses.parquet")
    query = """SELECT c.name, s.final, count(*) AS n, sum(o.amount) AS total
               FROM o JOIN c USING (country) JOIN s USING (status) GROUP BY ALL ORDER BY ALL"""

    def job(lazy: bool, out: Path) -> Any:
        sources = {"o": bubbles.read_csv(csv, lazy=lazy), "c": bubbles.read_parquet(tmp_path / "countries.parquet", lazy=lazy),
                   "s": bubbles.read_parquet(tmp_path / "statuses.parquet", lazy=lazy)}
        return bubbles.write_csv(bubbles.sql(query, lazy=lazy, **sources), out)

    wf = Workflow("join")
    wf.add_task(job, kwargs={"lazy": True, "out": tmp_path / "fused.csv"}, name="fused")
    wf.add_task(job, kwargs={"lazy": False, "out": tmp_path / "eager.csv"}, name="eager")
    result = wf.run(settings={"resources": False})
    assert (tmp_path / "fused.csv").read_text() == (tmp_path / "eager.csv").read_text()
    assert len((tmp_path / "fused.csv").read_text().splitlines()) == 1 + 6
    [event] = fused_events(result, "fused")
    assert [s["step"] for s in json.loads(event.steps)] == ["read_csv", "read_parquet", "read_parquet", "sql", "write_csv"]


def test_parquet_written_by_duckdb_reads_back_as_pyarrow_writes_it(tmp_path: Path) -> None:
    import datetime as dt
    import decimal

    table = pa.table({
        "i8": pa.array([1, None], pa.int8()), "u32": pa.array([1, 2], pa.uint32()), "f32": pa.array([1.5, None], pa.float32()),
        "f": [0.1, 2.5], "b": [True, None], "s": ["a", ""], "bin": pa.array([b"x", None], pa.binary()),
        "d": pa.array([dt.date(2024, 1, 2), None]), "ts_s": pa.array([dt.datetime(2024, 1, 2, 3, 4, 5), None], pa.timestamp("s")),
        "ts_ms": pa.array([dt.datetime(2024, 1, 2), None], pa.timestamp("ms")),
        "ts_ns": pa.array([dt.datetime(2024, 1, 2, 0, 0, 0, 5), None], pa.timestamp("ns")),
        "dec": pa.array([decimal.Decimal("1.25"), None], pa.decimal128(20, 2)),
    })
    source = tmp_path / "t.parquet"
    pq.write_table(table, source)
    via_pyarrow, via_duckdb = tmp_path / "a.parquet", tmp_path / "b.parquet"
    bubbles.write_parquet(bubbles.sql("SELECT * FROM t", t=table, lazy=False), via_pyarrow)
    lazy = bubbles.sql("SELECT * FROM t", t=bubbles.read_parquet(source, lazy=True))
    assert isinstance(lazy, LazyTable)
    bubbles.write_parquet(lazy, via_duckdb)
    a, b = pq.read_table(via_pyarrow), pq.read_table(via_duckdb)
    assert a.schema == b.schema and a.equals(b)
    assert pq.ParquetFile(via_duckdb).metadata.created_by.startswith("DuckDB")  # the plan's statement wrote it


def test_sql_stream_over_a_plan_and_json_avro_writers(tmp_path: Path) -> None:
    csv = orders_csv(tmp_path / "orders.csv", rows=2000)
    orders = bubbles.read_csv(csv, lazy=True)
    reader = bubbles.sql("SELECT id FROM o WHERE status = 'paid'", o=orders, stream=True)
    assert isinstance(reader, pa.RecordBatchReader) and reader.read_all().num_rows == 501
    plan = bubbles.sql(QUERY, orders=bubbles.read_csv(csv, lazy=True))
    eager = bubbles.sql(QUERY, orders=bubbles.read_csv(csv, lazy=False))
    assert bubbles.write_json(plan, tmp_path / "a.ndjson")[0].rows == eager.num_rows == 1002
    bubbles.write_json(eager, tmp_path / "b.ndjson")
    assert (tmp_path / "a.ndjson").read_text() == (tmp_path / "b.ndjson").read_text()
    assert bubbles.write_avro(plan, tmp_path / "a.avro")[0].rows == 1002


def test_a_writer_starts_over_when_a_streamed_plan_falls_back(tmp_path: Path) -> None:
    csv = orders_csv(tmp_path / "orders.csv", lines={20_006: '20004,2025-01-01 00:00:00,1.00,paid,de,"x",'})
    plan = bubbles.sql(QUERY, orders=bubbles.read_csv(csv, lazy=True, on_bad_lines="skip"))
    eager = bubbles.sql(QUERY, orders=bubbles.read_csv(csv, lazy=False, on_bad_lines="skip"))
    written = bubbles.write_json(plan, tmp_path / "a.ndjson")  # streams out of DuckDB into DuckDB's JSON writer
    assert plan.plan.inputs["orders"].exact  # the guard stopped the stream; the writer started over
    bubbles.write_json(eager, tmp_path / "b.ndjson")
    assert written[0].rows == eager.num_rows == 14_999
    assert (tmp_path / "a.ndjson").read_text() == (tmp_path / "b.ndjson").read_text()
    plan = bubbles.sql(QUERY, orders=bubbles.read_csv(csv, lazy=True, on_bad_lines="skip"))
    parts = bubbles.write_parquet(plan, tmp_path / "lake", partition_by=["country"])  # a dataset: pyarrow's writer
    assert sum(p.rows for p in parts) == 14_999 and plan.plan.inputs["orders"].exact


def test_read_sql_from_postgres_streams_into_the_query(tmp_path: Path, pg_url: str) -> None:
    import psycopg

    from bubbles.data.db.url import parse_url

    with bubbles.connect(pg_url) as conn:
        bubbles.write_table(conn, "orders", pa.table({"id": list(range(50_000)), "amount": [i % 100 / 4 for i in range(50_000)],
                                                     "status": ["paid", "cancelled"] * 25_000}))
    out = tmp_path / "paid.parquet"

    def extract_db() -> Any:
        with bubbles.connect(pg_url) as conn:  # closed when the task ends: the plan connects again where it runs
            return bubbles.read_sql(conn, "SELECT * FROM orders WHERE amount > ?", [1.0])

    def transform_db(orders: Any) -> Any:
        return bubbles.sql("SELECT status, count(*) AS n, sum(amount) AS total FROM o GROUP BY status ORDER BY status", o=orders)

    def load_db(table: Any) -> int:
        assert isinstance(table, LazyTable) and not table.is_read  # nothing was copied on the way
        return sum(f.rows for f in bubbles.write_parquet(table, out))

    wf = Workflow("pg")
    e = wf.add_task(extract_db)
    t = wf.add_task(transform_db, requires=[e])
    wf.add_task(load_db, requires=[t])
    result = wf.run(settings={"lazy": "on", "resources": False}, executor="processes")
    assert result.tasks["load_db"].result == 2
    assert result.tasks["load_db"].metrics["db_rows_read"] == 47_500 and "db_rows_read" not in result.tasks["extract_db"].metrics
    spec = parse_url(pg_url)
    with psycopg.connect(host=spec.host, port=spec.port, user=spec.user, dbname=spec.database,
                         password=os.environ["BUBBLES_TEST_PGPASSWORD"]) as db:
        query = "SELECT status, count(*), sum(amount) FROM orders WHERE amount > 1 GROUP BY 1 ORDER BY 1"
        expected = db.execute(query).fetchall()
    got = pq.read_table(out).to_pylist()
    assert [(r["status"], r["n"], r["total"]) for r in got] == [(s, n, float(t)) for s, n, t in expected]
    [event] = fused_events(result, "load_db")
    assert [s["step"] for s in json.loads(event.steps)] == ["read_sql", "sql", "write_parquet"]


# -- the object itself ---------------------------------------------------------------------------------------------------
def test_a_lazy_table_behaves_like_the_table_and_pickles_as_its_plan(tmp_path: Path) -> None:
    csv = orders_csv(tmp_path / "orders.csv", rows=1000)
    lazy = bubbles.read_csv(csv, lazy=True)
    assert isinstance(lazy, LazyTable) and lazy.column_names[:2] == ["id", "created_at"] and not lazy.is_read
    assert "not read yet" in repr(lazy) and "read_csv" in lazy.explain()
    copy = pickle.loads(pickle.dumps(lazy))
    assert not copy.is_read and len(pickle.dumps(lazy)) < 5000  # the plan, not the data
    table = bubbles.read_csv(csv, lazy=False)
    assert lazy.num_rows == 1000 and lazy.equals(table) and lazy.to_pandas().shape == (1000, 6)
    assert pa.table(lazy).equals(table) and lazy.column("id").to_pylist()[:3] == [0, 1, 2]
    assert pickle.loads(pickle.dumps(lazy)).is_read  # read: the table travels
    with pytest.raises(AttributeError, match=r"to_arrow\(\)\.flatten"):
        lazy.flatten  # noqa: B018
    assert bubbles.read_csv(csv) is not None and isinstance(bubbles.read_csv(csv), pa.Table)  # outside a task: a table


# -- the malformed corpus, read by a plan -------------------------------------------------------------------------------
def _padded(case: Any, size: int) -> tuple[bytes, int]:
    """The case's file with good rows (``size`` bytes of them) after its header: its lines lie past the first block."""
    import csv as pycsv
    import io

    lines = case.data.split(b"\n")
    bad = {line for line, _ in case.bad}
    good = next(lines[i] for i in range(1, len(lines)) if lines[i] and (i + 1) not in bad)
    fields = next(pycsv.reader(io.StringIO(good.decode())))
    out = io.StringIO()
    writer = pycsv.writer(out, lineterminator="\n")
    rows = size // (len(good) + 3)
    for i in range(rows):
        writer.writerow([str(10_000_000 + i), *fields[1:]])
    return lines[0] + b"\n" + out.getvalue().encode() + b"\n".join(lines[1:]), rows


@pytest.mark.parametrize("policy", ["quarantine", "error"])
def test_the_malformed_corpus_gives_the_same_on_both_paths(tmp_path: Path, policy: str) -> None:
    from .files.corpus import CSV

    for case in [c for c in CSV if c.suffix == ".csv" and not c.options.get("newlines_in_values")]:
        data, pad = _padded(case, (1 << 20) + (1 << 18))
        path = tmp_path / "case.csv"
        path.write_bytes(data)
        results = []
        for lazy in (False, True):
            quarantine = tmp_path / f"bad-{lazy}"
            shutil.rmtree(quarantine, ignore_errors=True)
            try:
                table = bubbles.read_csv(path, lazy=lazy, on_bad_lines=policy, quarantine=str(quarantine), **case.options)
                assert isinstance(table, LazyTable) == lazy, case.name  # planned: its lines lie past the first block
                got: Any = bubbles.sql("SELECT * FROM t", t=table, lazy=lazy)
                got = got.to_arrow() if lazy else got
            except BadLineError as exc:
                got = ("error", exc.line, exc.column)
            bad = read_quarantine(quarantine).to_pylist() if quarantine.exists() else []
            results.append((got, [(b["_line"], b["_column"], b["_reason"]) for b in bad]))
        (eager, eager_bad), (fused, fused_bad) = results
        assert fused_bad == eager_bad, case.name
        if isinstance(eager, tuple):
            assert fused == eager == ("error", case.bad[0][0] + pad, case.bad[0][1]), case.name
        else:
            assert isinstance(fused, pa.Table) and fused.equals(eager) and fused.schema == eager.schema, case.name
            assert fused.column("id").to_pylist()[pad:] == case.ids, case.name
            assert [(line - pad, column) for line, column, _ in fused_bad] == case.bad, case.name


# -- the guards: what DuckDB converts, the reader converts alike --------------------------------------------------------
def _shapes() -> Any:
    import datetime as dt

    from hypothesis import strategies as st

    # (with texts DuckDB reads and renders, some of which the reader does not read: what a shape must refuse)
    rendered = st.sampled_from(["inf", "-inf", "nan", "infinity", "1e-300", "0999-01-01", "12025-01-01", "0001-01-01 (BC)",
                                "0999-01-01 00:00:00", "12025-01-01 00:00:00", "9223372036854775807", "-9223372036854775808",
                                "255", "256", "-0"])
    junk = st.one_of(st.text(alphabet="0123456789-+.eE: T_xZ", min_size=1, max_size=14), rendered)
    stamps = st.datetimes(min_value=dt.datetime(1000, 1, 1), max_value=dt.datetime(9999, 12, 31))

    def stamp(t: dt.datetime, sep: str, fraction: int) -> str:
        text = t.strftime(f"%Y-%m-%d{sep}%H:%M:%S")
        return text + (f".{t.microsecond:06d}"[: fraction + 1] if fraction else "")

    return {
        pa.int64(): st.one_of(st.integers(-(10**18), 10**18).map(str), st.integers(0, 999).map(lambda i: f"{i:05d}"), junk),
        pa.int16(): st.one_of(st.integers(-40_000, 40_000).map(str), junk),
        pa.uint8(): st.one_of(st.integers(-5, 300).map(str), junk),
        pa.float64(): st.one_of(st.floats(allow_nan=False, allow_infinity=False).map(repr),
                                st.floats(-1e6, 1e6).map(lambda f: f"{f:.3f}"), st.floats(-1e30, 1e30).map(lambda f: f"{f:e}"),
                                st.sampled_from(["1.", ".5", "-0.0", "1e05", "1E-7", "00.5"]), junk),
        pa.decimal128(10, 2): st.one_of(st.decimals(-(10**7), 10**7, places=2).map(str),
                                        st.decimals(-100, 100, places=1).map(str), st.sampled_from(["5.", "-0", "007.10"]), junk),
        pa.bool_(): st.sampled_from(["true", "false", "True", "FALSE", "1", "0", "t", "yes", "tRue"]),
        pa.date32(): st.one_of(stamps.map(lambda t: t.strftime("%Y-%m-%d")), st.sampled_from(["2024-02-30", "2023-02-29"]), junk),
        pa.timestamp("s"): st.one_of(stamps.map(lambda t: stamp(t, " ", 0)), stamps.map(lambda t: stamp(t, "T", 0)[:16]),
                                     stamps.map(lambda t: t.strftime("%Y-%m-%d")), stamps.map(lambda t: stamp(t, " ", 3)), junk),
        pa.timestamp("ms"): st.one_of(stamps.map(lambda t: stamp(t, " ", 3)), stamps.map(lambda t: stamp(t, "T", 1)), junk),
        pa.timestamp("us"): st.one_of(stamps.map(lambda t: stamp(t, " ", 6)), stamps.map(lambda t: stamp(t, " ", 2)), junk),
        pa.timestamp("ns"): st.one_of(stamps.map(lambda t: stamp(t, " ", 6) + "123"), stamps.map(lambda t: stamp(t, " ", 4)),
                                      junk),
    }


@pytest.mark.parametrize("dtype", list(_shapes()), ids=str)
def test_a_value_the_guard_lets_through_is_read_alike_by_both(dtype: pa.DataType) -> None:
    import io

    import duckdb
    import pyarrow.csv as pacsv
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from bubbles.data.lazy.csvscan import duck_type

    duck, shape = duck_type(dtype)  # type: ignore[misc]
    con = duckdb.connect()

    def arrow(text: str) -> Any:
        options = pacsv.ConvertOptions(column_types={"x": dtype})
        try:
            return pacsv.read_csv(io.BytesIO(f"x\n{text}\n".encode()), convert_options=options).column("x")[0]
        except pa.ArrowInvalid:
            return "rejected"

    @settings(max_examples=150, deadline=None)
    @given(st.lists(_shapes()[dtype], min_size=1, max_size=40))
    def check(values: list[str]) -> None:
        got = con.sql(f"SELECT x, regexp_full_match(x, $shape) AS ok, TRY_CAST(x AS {duck}) AS y FROM (SELECT unnest($v) AS x)",
                      params={"shape": shape, "v": values}).to_arrow_table()
        assert got.schema.field("y").type == dtype  # DuckDB hands the reader's type back to Arrow
        for text, passes, duck_value in zip(*(got.column(c).to_pylist() for c in ("x", "ok")), got.column("y"), strict=True):
            if passes and duck_value.is_valid:  # (a shape DuckDB cannot convert stops the plan: the reader reads it)
                assert arrow(text) == duck_value, (text, duck_value)

    check()


def test_when_a_filter_runs_before_the_guard_the_file_is_checked_whole(tmp_path: Path) -> None:
    """DuckDB puts a filter on a raw column before the guard (the plan's columns are never raw, so this
    is forced here): the profile shows it, and the scan is finished by a count that meets the bad line."""
    import re

    import duckdb

    from bubbles.data.lazy.engine import Binder, _complete, _profile, connect

    csv = orders_csv(tmp_path / "orders.csv", lines={20_001: '19999,2025-01-01 00:00:00,oops,cancelled,de,"n"'})
    lazy = bubbles.read_csv(csv, schema={"amount": "decimal(10,2)"}, lazy=True)
    scan = lazy.plan
    con = connect(scan)
    b = Binder(con, "run")
    text = b.relation(scan, memo=False)
    raw = re.sub(r"coalesce\((\"\w+\"), error\('[^']*'\)\) AS", r"\1 AS", text)
    assert raw != text
    rows = con.sql(f"SELECT count(*) FROM {raw} AS o WHERE status IN ('paid', 'shipped')").fetchall()[0][0]
    assert rows == 15_000  # the bad row was filtered out before the guard could see it
    found, limited = _profile(con)
    assert found == {str(csv): -1} and not limited
    scan.scan_sql = lambda: raw  # type: ignore[method-assign]
    with pytest.raises(duckdb.Error, match="bubbles-guard"):
        _complete(con, b)


@pytest.mark.parametrize("lazy", ["off", "on"])
def test_bytes_read_is_the_size_of_the_files_on_both_paths(tmp_path: Path, lazy: str) -> None:
    csv = orders_csv(tmp_path / "orders.csv", rows=20_000)
    pq.write_table(pa.table({"id": list(range(1000))}), tmp_path / "ids.parquet")

    def read_both() -> int:
        orders = bubbles.read_csv(csv, schema={"amount": "decimal(10,2)"})
        ids = bubbles.read_parquet(tmp_path / "ids.parquet")
        return int(orders.num_rows) + int(ids.num_rows)  # Python uses the values: both are read here

    def fused(orders: Any) -> int:
        return load(transform(orders), str(tmp_path / "out.parquet"))

    wf = Workflow("bytes")
    wf.add_task(read_both)
    e = wf.add_task(extract, kwargs={"csv": str(csv)})
    wf.add_task(fused, requires=[e])
    result = wf.run(settings={"lazy": lazy, "resources": False})
    assert result.ok, result.summary()
    sizes = os.path.getsize(csv) + os.path.getsize(tmp_path / "ids.parquet")
    assert result.tasks["read_both"].metrics["bytes_read"] == sizes
    assert result.tasks["read_both"].metrics["rows_read"] == 21_000
    reader = "extract" if lazy == "off" else "fused"  # (lazy: the plan reads the file where it is used)
    assert result.tasks[reader].metrics["bytes_read"] == os.path.getsize(csv)
    assert result.tasks[reader].metrics["rows_read"] == 20_000


def test_num_rows_after_a_write_is_the_rows_written_not_a_new_read(tmp_path: Path) -> None:
    csv = orders_csv(tmp_path / "orders.csv")

    def write_then_count(table: Any, out: str) -> tuple[int, int, bool]:
        written = load(table, out)
        return written, table.num_rows, table.is_read  # (a user's "return table.num_rows" after the write)

    wf = Workflow("count-after-write")
    e = wf.add_task(extract, kwargs={"csv": str(csv)})
    t = wf.add_task(transform, requires=[e])
    wf.add_task(write_then_count, requires=[t], name="load", kwargs={"out": str(tmp_path / "out.parquet")})
    result = wf.run(settings={"lazy": "on", "resources": False})
    assert result.tasks["load"].result == (15_000, 15_000, False)  # the plan ran once: in the writer
    [event] = fused_events(result)
    assert json.loads(event.steps)[0]["rows"] == 30_000


def test_rows_in_counts_lazy_inputs_once_read_and_stays_unknown_otherwise(tmp_path: Path) -> None:
    csv = orders_csv(tmp_path / "orders.csv", rows=1_000)

    def extract_two() -> list[Any]:
        return [extract(str(csv)), extract(str(csv))]  # a list of plans, handed on as it is

    def both(tables: list[Any]) -> int:
        return sum(int(t.num_rows) for t in tables)  # Python reads both plans here

    def neither(tables: list[Any]) -> int:
        return len(tables)  # reads nothing: the size of its input is unknown, never zero

    wf = Workflow("rows-in")
    wf.add_task(both, requires=[wf.add_task(extract_two, name="two")])
    wf.add_task(neither, requires=[wf.add_task(extract_two, name="other_two")])
    result = wf.run(settings={"lazy": "on", "resources": False}, executor="serial")
    assert result.ok, result.summary()
    assert result.tasks["both"].metrics["rows_in"] == 2_000 and result.tasks["both"].result == 2_000
    assert "rows_in" not in result.tasks["neither"].metrics


@pytest.mark.parametrize("executor", ["threads", "processes"])
@pytest.mark.parametrize("kind", ["sqlite", "duckdb"])
def test_read_sql_from_embedded_databases_reads_at_once(tmp_path: Path, kind: str, executor: str) -> None:
    """A planned SQLite read deadlocked in DuckDB's pull threads; a planned DuckDB-file read could not be opened
    by another worker process (the file's lock): embedded databases are read where read_sql is called."""
    url = f"{kind}:///{tmp_path / f'db.{kind}'}"
    with bubbles.connect(url) as conn:
        bubbles.write_table(conn, "t", pa.table({"id": list(range(100)), "txt": [f"s{i}" for i in range(100)]}))
    out = tmp_path / "out.parquet"

    def extract_db() -> Any:
        table = bubbles.read_sql(url, "SELECT id, txt FROM t")
        assert isinstance(table, pa.Table)  # not a plan
        return table

    def transform_db(t: Any) -> Any:
        return bubbles.sql("SELECT * FROM t WHERE id % 2 = 0", t=t)

    def load_db(t: Any) -> int:
        return sum(f.rows for f in bubbles.write_parquet(t, out))

    wf = Workflow("embedded")
    e = wf.add_task(extract_db)
    t = wf.add_task(transform_db, requires=[e])
    wf.add_task(load_db, requires=[t], timeout=60)  # (the deadlock: the run would not end)
    result = wf.run(executor=executor, settings={"lazy": "on", "resources": False}, raise_on_error=False)
    assert result.ok, result.summary()
    assert result.tasks["load_db"].result == 50 and pq.read_table(out).column("id").to_pylist() == list(range(0, 100, 2))


def test_duckdb_types_parquet_would_store_otherwise_are_written_by_pyarrow(tmp_path: Path) -> None:
    """sum() of integers is a HUGEINT, which DuckDB's Parquet writer stores as a double (losing digits past 2^53):
    such results, and UUID / JSON / BIT columns, go through pyarrow's writer as on the eager path."""
    csv = tmp_path / "big.csv"
    csv.write_text("id\n" + "\n".join(str(2**53 + 1) for _ in range(3)) + "\n")
    query = "SELECT sum(id) AS s, '00000000-0000-0000-0000-000000000001'::UUID AS u, '{\"a\":1}'::JSON AS j FROM t"
    tables = {}
    for lazy in ("on", "off"):
        out = tmp_path / f"{lazy}.parquet"

        def extract_big() -> Any:
            return bubbles.read_csv(csv)

        def transform_big(t: Any) -> Any:
            return bubbles.sql(query, t=t)

        def load_big(t: Any, out: str) -> int:
            return sum(f.rows for f in bubbles.write_parquet(t, out))

        wf = Workflow("types")
        e = wf.add_task(extract_big)
        t = wf.add_task(transform_big, requires=[e])
        wf.add_task(load_big, requires=[t], kwargs={"out": str(out)})
        assert wf.run(settings={"lazy": lazy, "resources": False}).ok
        tables[lazy] = pq.read_table(out)
    assert tables["on"].equals(tables["off"]) and tables["on"].schema == tables["off"].schema
    assert tables["on"].column("s").to_pylist() == [3 * (2**53 + 1)]  # exact


@pytest.mark.parametrize("style", ['{i},"name {i}" ', '{i}, "name {i}"', '{i}, "",x'])
def test_blanks_outside_quotes_are_read_as_the_reader_reads_them(tmp_path: Path, style: str) -> None:
    """DuckDB drops blanks around a quoted field (and the quotes of ', "x"') where the reader keeps them: a
    file written that way is not planned (its first block shows it), so both paths give the reader's values."""
    header = "id,name,extra" if style.endswith(",x") else "id,name"
    csv = tmp_path / "spaced.csv"
    csv.write_text(header + "\n" + "\n".join(style.format(i=i) for i in range(20_000)) + "\n")
    got = {}
    for lazy in ("on", "off"):
        out = tmp_path / f"{lazy}.parquet"

        def extract_spaced() -> Any:
            return bubbles.read_csv(csv)

        def load_spaced(t: Any, out: str) -> int:
            return sum(f.rows for f in bubbles.write_parquet(bubbles.sql("SELECT * FROM t", t=t), out))

        wf = Workflow("spaced")
        wf.add_task(load_spaced, requires=[wf.add_task(extract_spaced)], kwargs={"out": str(out)})
        result = wf.run(settings={"lazy": lazy, "resources": False})
        steps = [s["step"] for e in fused_events(result, "load_spaced") for s in json.loads(e.steps)]
        assert result.ok and "read_csv" not in steps  # (the read was not planned: the reader read the file)
        got[lazy] = pq.read_table(out)
    assert got["on"].equals(got["off"])
    assert got["on"].column("name").to_pylist()[:1] == [pacsv_first_name(style)]


def pacsv_first_name(style: str) -> str:
    import io

    import pyarrow.csv as pacsv

    header = "id,name,extra" if style.endswith(",x") else "id,name"
    return str(pacsv.read_csv(io.BytesIO((header + "\n" + style.format(i=0) + "\n").encode())).column("name")[0])


@pytest.mark.parametrize("executor", ["serial", "threads"])
def test_a_bad_line_is_quarantined_once_by_two_consumers_and_a_failing_write(tmp_path: Path, executor: str) -> None:
    csv = orders_csv(tmp_path / "orders.csv", lines={25_000: '24998,2025-01-01 00:00:00,zz,paid,de,"x"'})
    where = {"quarantine_dir": str(tmp_path / "quarantine")}
    sink = tmp_path / "quarantine" / "orders.csv"

    def extract_q() -> Any:
        return bubbles.read_csv(csv, schema={"amount": "decimal(10,2)"}, on_bad_lines="quarantine")

    def load_a(t: Any) -> int:
        return load(t, str(tmp_path / "a.parquet"))

    def load_b(t: Any) -> int:
        return load(transform(t), str(tmp_path / "b.parquet"))

    def load_bad(t: Any) -> int:  # fails after the plan fell back: the writer's second run reads the file again
        return load(bubbles.sql("SELECT CAST(note AS INTEGER) AS n FROM t", t=t), str(tmp_path / "c.parquet"))

    wf = Workflow("once")
    e = wf.add_task(extract_q)
    wf.add_task(load_a, requires=[e])
    wf.add_task(load_b, requires=[e])
    result = wf.run(executor=executor, settings={"lazy": "on", "resources": False, **where})
    assert result.ok, result.summary()
    assert [row[0] for row in set_aside(sink, result.run_id)] == [25_000]  # once, not once per consumer

    wf = Workflow("once-failing")
    wf.add_task(load_bad, requires=[wf.add_task(extract_q)])
    failed = wf.run(executor=executor, settings={"lazy": "on", "resources": False, **where}, raise_on_error=False)
    assert failed.tasks["load_bad"].state == "failed"
    assert [row[0] for row in set_aside(sink, failed.run_id)] == [25_000]

"""One quarantine: bad lines and rejected rows in the same sink format, Parquet or a table, appendable, replayable."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import bubbles
from bubbles import Column, Contract, validate
from bubbles.data.quality import read_quarantine, replay
from bubbles.data.quality.quarantine import META_COLUMNS, parts

CONTRACT = Contract("orders", columns=[Column("id", "bigint", primary_key=True), Column("amount", "double", min=0)])


def test_bad_lines_and_rejected_rows_share_one_appendable_sink(tmp_path: Path) -> None:
    sink = tmp_path / "q" / "orders"
    src = tmp_path / "orders.csv"
    src.write_text("id,amount\n1,5\n2,oops,extra\n3,-1\n4,7\n")
    wf = bubbles.Workflow("shared")
    raw = wf.add_task(lambda: bubbles.read_csv(src, on_bad_lines="quarantine", quarantine=str(sink)), name="extract")
    wf.add_task(bubbles.check(CONTRACT, quarantine=str(sink), source=str(src)), requires=[raw])
    result = wf.run()
    assert result.tasks["check_orders"].result.column("id").to_pylist() == [1, 4]
    assert len(parts(bubbles.data.quality.Sink(str(sink)))) == 2  # one part file per append
    rows = read_quarantine(sink).to_pylist()
    assert [(r["_rules"], r["_line"], r["_raw"]) for r in rows] == [("bad_line", 3, "2,oops,extra"), ("amount.range", None, None)]
    assert all(r["_run_id"] == result.run_id and r["_source"] == str(src) for r in rows)
    assert rows[0]["_task"] == "extract" and rows[1]["_task"] == "check_orders" and rows[1]["amount"] == -1
    assert set(META_COLUMNS) <= set(rows[0])
    again = wf.run()
    assert len(read_quarantine(sink)) == 4 and len(read_quarantine(sink, run_id=again.run_id)) == 2


def test_a_database_table_is_a_sink_too(tmp_path: Path) -> None:
    url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    target = f"{url}#quarantine_orders"
    data = pa.table({"id": [1, 1, 2], "amount": [1.0, 2.0, -3.0]})
    v = validate(data, CONTRACT, quarantine=target)
    assert v.written is not None and v.written.sink_kind == "table" and v.written.rows == 3
    validate(data, CONTRACT, quarantine=target)
    rows = read_quarantine(target).to_pylist()
    assert len(rows) == 6 and {r["_rules"] for r in rows} == {"id.primary_key", "amount.range"}
    bad = tmp_path / "x.csv"
    bad.write_text("id,amount\n1,2\n3\n")
    bubbles.read_csv(bad, on_bad_lines="quarantine", quarantine=target)
    assert [r["_raw"] for r in read_quarantine(target).to_pylist() if r["_rules"] == "bad_line"] == ["3"]


def test_the_default_sink_is_under_the_quarantine_dir_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUBBLES_QUARANTINE_DIR", str(tmp_path / "qd"))
    v = validate(pa.table({"id": [1, None], "amount": [1.0, 1.0]}), CONTRACT)
    assert v.written is not None and v.written.sink == str(tmp_path / "qd" / "orders")
    (part,) = parts(bubbles.data.quality.Sink(v.written.sink))
    assert pq.read_table(part).column("_rules").to_pylist() == ["id.primary_key"]


def test_replay_delivers_rows_that_pass_now_and_keeps_the_rest(tmp_path: Path) -> None:
    sink = tmp_path / "q"
    data = pa.table({"id": [1, 2, 3, 3], "amount": [1.0, -5.0, -1.0, 2.0]})
    validate(data, CONTRACT, quarantine=str(sink))
    bad = tmp_path / "o.csv"
    bad.write_text("id,amount\n9,1\n8\n")
    bubbles.read_csv(bad, on_bad_lines="quarantine", quarantine=str(sink))
    assert len(read_quarantine(sink)) == 4  # 2 (range), both 3s (not unique), and the bad line
    relaxed = Contract("orders", columns=[Column("id", "bigint", primary_key=True), Column("amount", "double", min=-2)])
    done = replay(str(sink), to=str(tmp_path / "fixed.parquet"), contract=relaxed)
    assert (done.rows, done.replayed, done.kept, done.parts) == (4, 0, 4, 2)  # id 3 repeats: still not unique
    assert len(parts(bubbles.data.quality.Sink(str(sink)))) == 1  # the replayed parts became one new part
    assert not (tmp_path / "fixed.parquet").exists()
    loose = Contract("orders", columns=[Column("id", "bigint"), Column("amount", "double", min=-2)])
    done = replay(str(sink), to=str(tmp_path / "fixed.parquet"), contract=loose)
    assert (done.replayed, done.kept) == (2, 2)  # -5.0 is still out of range; the bad line has no row to check
    assert sorted(pq.read_table(tmp_path / "fixed.parquet").column("amount").to_pylist()) == [-1.0, 2.0]
    kept = read_quarantine(sink).to_pylist()
    assert sorted(r["_rules"] for r in kept) == ["amount.range", "bad_line"]
    assert json.loads(next(r for r in kept if r["_rules"] == "amount.range")["_values"]) == {"amount": "-5.0"}

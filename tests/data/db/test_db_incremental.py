"""read_incremental: watermarks advance only when the run's load committed; nothing skipped or doubled."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

import bubbles
import bubbles.data.db as db
from bubbles._errors import RunFailed
from bubbles.data.state import StateStore


def source_rows(ids: list[int], day: int) -> pa.Table:
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "status": pa.array([f"s{day}"] * len(ids)),
            "updated_at": pa.array([dt.datetime(2024, 1, day, 12, 0, i) for i in range(len(ids))], pa.timestamp("us")),
        }
    )


def test_reads_only_new_rows_outside_a_run(any_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with db.connect(any_url) as src:
        db.write_table(src, "orders", source_rows([1, 2, 3], day=1))
        first = db.read_incremental(src, "orders", cursor="updated_at", key="id")
        assert first.column("id").to_pylist() == [1, 2, 3]
        # not committed yet: a second read (as after a failed load) sees the same rows
        assert db.read_incremental(src, "orders", cursor="updated_at").num_rows == 3
        assert db.commit_watermarks() == [f"{src.name}:orders:updated_at"]
        assert db.read_incremental(src, "orders", cursor="updated_at").num_rows == 0
        db.write_table(src, "orders", source_rows([4], day=2))
        again = db.read_incremental(src, "orders", cursor="updated_at", commit=True)
        assert again.column("id").to_pylist() == [4]
        assert StateStore().get(f"{src.name}:orders:updated_at") == dt.datetime(2024, 1, 2, 12, 0, 0)


def test_query_source_with_params_and_lookback(any_url: str) -> None:
    with db.connect(any_url) as src:
        db.write_table(src, "orders", source_rows([1, 2, 3], day=1))
        q = "SELECT id, updated_at FROM orders WHERE id <> :skip"
        rows = db.read_incremental(src, query=q, cursor="updated_at", params={"skip": 2}, name="q", commit=True)
        assert rows.column("id").to_pylist() == [1, 3]
        assert db.read_incremental(src, query=q, cursor="updated_at", params={"skip": 2}, name="q").num_rows == 0
        back = db.read_incremental(src, query=q, cursor="updated_at", params={"skip": 2}, name="q",
                                   lookback=dt.timedelta(seconds=1))
        assert back.column("id").to_pylist() == [3]


def test_watermark_commits_with_the_run_and_failed_runs_reread(pg_url: str, tmp_path, home) -> None:  # type: ignore[no-untyped-def]
    """The seed-003 pipeline: extract incrementally from PostgreSQL, merge into DuckDB."""
    warehouse = f"duckdb:///{tmp_path}/wh.duckdb"
    with db.connect(pg_url) as src:
        db.write_table(src, "orders", source_rows([1, 2, 3], day=1), mode="merge", key="id")
    fail = {"load": True}

    @bubbles.task
    def extract() -> pa.Table:
        return db.read_incremental(pg_url, "orders", cursor="updated_at", key="id", name="orders")

    @bubbles.task
    def load(rows: pa.Table) -> int:
        n = db.write_table(warehouse, "orders", rows, mode="merge", key="id")
        if fail["load"]:
            raise RuntimeError("the load step crashed after writing")
        return n

    @bubbles.flow
    def pipeline() -> int:
        return load(extract())

    with pytest.raises(RunFailed):
        pipeline.run()
    assert StateStore().get("orders") is None  # the failed run did not advance the watermark
    fail["load"] = False
    assert pipeline.run().output == 3  # the same three rows again; merge keeps them once
    assert StateStore().get("orders") == dt.datetime(2024, 1, 1, 12, 0, 2)
    with db.connect(pg_url) as src:
        db.write_table(src, "orders", source_rows([3, 4], day=2), mode="merge", key="id")  # 3 updated, 4 new
    assert pipeline.run().output == 2
    assert pipeline.run().output == 0
    with db.connect(warehouse) as wh:
        got = db.read_sql(wh, "SELECT id, status FROM orders ORDER BY id").to_pylist()
    assert got == [{"id": 1, "status": "s1"}, {"id": 2, "status": "s1"}, {"id": 3, "status": "s2"}, {"id": 4, "status": "s2"}]


def test_null_cursor_values_are_an_error(any_url: str) -> None:
    with db.connect(any_url) as src:
        db.write_table(src, "t", pa.table({"id": [1, 2], "updated_at": pa.array([1, None], pa.int64())}))
        with pytest.raises(bubbles.ConfigError, match="null value"):
            db.read_incremental(src, "t", cursor="updated_at")


def test_integer_cursor(any_url: str) -> None:
    with db.connect(any_url) as src:
        db.write_table(src, "events", pa.table({"seq": pa.array([5, 6, 7], pa.int64())}))
        assert db.read_incremental(src, "events", cursor="seq", initial=5, commit=True).column("seq").to_pylist() == [6, 7]
        db.write_table(src, "events", pa.table({"seq": pa.array([8], pa.int64())}))
        assert db.read_incremental(src, "events", cursor="seq").column("seq").to_pylist() == [8]

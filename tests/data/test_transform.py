from __future__ import annotations

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

import bubbles
from bubbles._errors import ConfigError, DataError
from bubbles.data.files import read_csv, read_parquet, write_csv, write_parquet
from bubbles.data.transform import sql

ORDERS = pa.table({"id": [1, 2, 3, 4], "amount": [5.0, 50.0, 500.0, None], "currency": ["EUR", "USD", "EUR", "EUR"]})


def test_query_over_arrow_with_bound_params() -> None:
    out = sql("SELECT id, amount * 2 AS doubled FROM orders WHERE amount > ? ORDER BY id", orders=ORDERS, params=[10])
    assert out.to_pydict() == {"id": [2, 3], "doubled": [100.0, 1000.0]}


def test_frames_in_frames_out() -> None:
    rates = pl.DataFrame({"currency": ["EUR", "USD"], "rate": [1.0, 0.9]})
    extra = pd.DataFrame({"id": [1, 3]})
    out = sql("SELECT o.id, o.amount * r.rate AS eur FROM o JOIN r USING (currency) JOIN e USING (id) ORDER BY id",
              o=ORDERS, r=rates, e=extra, output="polars")
    assert isinstance(out, pl.DataFrame) and out["eur"].to_list() == [5.0, 500.0]
    assert isinstance(sql("SELECT 1 AS x", output="pandas"), pd.DataFrame)


def test_streams_in_and_out(tmp_path) -> None:
    big = pa.table({"x": list(range(100_000))})
    result = sql("SELECT x FROM s WHERE x % 2 = 0", s=big.to_reader(max_chunksize=10_000), stream=True, batch_size=5_000)
    assert isinstance(result, pa.RecordBatchReader)
    assert sum(b.num_rows for b in result) == 50_000


def test_paths_are_scanned_in_place(tmp_path) -> None:
    write_parquet(ORDERS, tmp_path / "lake", partition_by=["currency"])
    write_csv(ORDERS, tmp_path / "o.csv")
    n = sql("SELECT count(*) AS n FROM p WHERE currency = 'EUR'", p=tmp_path / "lake").column("n")[0].as_py()
    assert n == 3
    assert sql("SELECT sum(id) AS s FROM c", c=str(tmp_path / "o.csv")).column("s")[0].as_py() == 10


def test_errors_name_the_problem(tmp_path) -> None:
    with pytest.raises(ConfigError, match="tables given are: orders"):
        sql("SELECT * FROM nope", orders=ORDERS)
    with pytest.raises(ConfigError, match="column names"):
        sql("SELECT missing FROM orders", orders=ORDERS)
    with pytest.raises(DataError, match="TRY_CAST"):
        sql("SELECT CAST(currency AS INTEGER) FROM orders", orders=ORDERS)
    with pytest.raises(DataError, match="does not exist"):
        sql("SELECT * FROM p", p=tmp_path / "none.parquet")


def test_task_returning_a_stream_feeds_the_next_steps(tmp_path) -> None:
    src = tmp_path / "orders.csv"
    write_csv(pa.table({"id": list(range(10_000)), "amount": [float(i % 100) for i in range(10_000)]}), src)
    out = tmp_path / "big.parquet"

    def extract() -> pa.RecordBatchReader:
        return read_csv(src, batch_size=1_000, block_size=16 << 10)

    def transform(orders: pa.RecordBatchReader) -> pa.RecordBatchReader:
        return sql("SELECT id, amount * 1.19 AS gross FROM orders WHERE amount >= 50", orders=orders, stream=True)

    def load(rows: pa.RecordBatchReader) -> int:
        return write_parquet(rows, out)[0].rows

    mc = bubbles.MetricsCollector()
    p = bubbles.Pipeline("stream").attach(mc)
    for fn in (extract, transform, load):
        p.add_task(fn)
    result = p.run()
    assert result.output == 5_000
    assert read_parquet(out).num_rows == 5_000
    assert mc.get_metric("rows_written", task="load") == 5_000
    # rows are counted by the task that is running when they are read: DuckDB reads a little ahead
    # when the query is planned (in "transform"); the rest is read as "load" pulls the result.
    # DuckDB's own threads may read ahead between two tasks too, so the split is not exact.
    read = {task: mc.get_metric("rows_read", task=task) or 0 for task in ("extract", "transform", "load")}
    assert 5_000 < sum(read.values()) <= 10_000 and read["load"] > 0


def test_abandoned_stream_stops_its_threads() -> None:
    import threading

    big = pa.table({"x": list(range(200_000))})
    result = sql("SELECT x FROM s", s=big.to_reader(max_chunksize=1_000), stream=True, batch_size=1_000)
    first = result.read_next_batch()
    assert first.num_rows == 1_000
    del result
    import gc

    gc.collect()
    assert not [t for t in threading.enumerate() if t.name == "bubbles-prefetch" and t.is_alive()]

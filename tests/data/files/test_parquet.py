from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from bubbles._errors import DataError
from bubbles.data.files import compact, read_parquet, write_parquet


def _orders(n: int = 1000, day: str = "2026-01-01") -> pa.Table:
    return pa.table({"id": pa.array(range(n), pa.int64()),
                     "country": pa.array(["DE", "FR", "US", "NL"] * (n // 4)),
                     "day": pa.array([day] * n),
                     "amount": pa.array([float(i) for i in range(n)])})


def test_file_roundtrip_zstd_and_pushdown(tmp_path) -> None:
    (f,) = write_parquet(_orders(), tmp_path / "o.parquet")
    assert f.rows == 1000
    assert pq.ParquetFile(f.path).metadata.row_group(0).column(0).compression == "ZSTD"
    t = read_parquet(f.path, columns=["id"], filters=[("amount", ">=", 990)])
    assert t.column_names == ["id"] and t.num_rows == 10
    t2 = read_parquet(f.path, filters=pc.field("country") == "DE")
    assert t2.num_rows == 250


def test_partitioned_dataset_append_and_compact(tmp_path) -> None:
    ds = tmp_path / "lake"
    files = write_parquet(_orders(day="2026-01-01"), ds, partition_by=["day", "country"])
    assert len(files) == 4 and all("day=2026-01-01" in f.path for f in files)
    for day in ("2026-01-01", "2026-01-02", "2026-01-02"):
        write_parquet(_orders(day=day), ds, partition_by=["day", "country"], mode="append")
    assert read_parquet(ds).num_rows == 4000
    de = read_parquet(ds, filters=[("day", "=", "2026-01-02"), ("country", "=", "DE")])
    assert de.num_rows == 500
    stats = compact(ds)
    assert stats["files_before"] == 16 and stats["files_after"] == 8 and stats["rows"] == 4000
    assert read_parquet(ds).num_rows == 4000
    assert not [n for _r, _d, fs in os.walk(ds) for n in fs if n.startswith(".")]


def test_overwrite_replaces_dataset_and_target_size_splits(tmp_path) -> None:
    ds = tmp_path / "lake"
    write_parquet(_orders(), ds, partition_by=["country"])
    write_parquet(_orders(8000), ds, target_file_size=20_000)
    files = [n for _r, _d, fs in os.walk(ds) for n in fs]
    assert len(files) > 2 and not any("country=" in r for r, _d, _f in os.walk(ds))
    assert read_parquet(ds).num_rows == 8000


def test_streams_are_written_as_they_flow(tmp_path) -> None:
    reader = _orders(4000).to_reader(max_chunksize=500)
    (f,) = write_parquet(reader, tmp_path / "s.parquet")
    assert f.rows == 4000
    stream = read_parquet(f.path, batch_size=1000)
    assert isinstance(stream, pa.RecordBatchReader) and stream.read_all().num_rows == 4000


def test_not_parquet_is_a_clear_error(tmp_path) -> None:
    bad = tmp_path / "x.parquet"
    bad.write_text("id,amount\n1,2\n")
    with pytest.raises(DataError, match="not a Parquet file"):
        read_parquet(bad)
    with pytest.raises(DataError, match="does not exist"):
        read_parquet(tmp_path / "nothing")


def test_failed_writes_leave_the_previous_version(tmp_path) -> None:
    schema = _orders(4).schema

    def dying():
        yield _orders(4).to_batches()[0]
        raise RuntimeError("upstream died")

    (f,) = write_parquet(_orders(8), tmp_path / "o.parquet")
    with pytest.raises(RuntimeError, match="upstream died"):
        write_parquet(pa.RecordBatchReader.from_batches(schema, dying()), f.path)
    assert read_parquet(f.path).num_rows == 8
    write_parquet(_orders(8), tmp_path / "ds", partition_by=["country"])
    with pytest.raises(RuntimeError, match="upstream died"):
        write_parquet(pa.RecordBatchReader.from_batches(schema, dying()), tmp_path / "ds", partition_by=["country"])
    assert read_parquet(tmp_path / "ds").num_rows == 8
    assert sorted(os.listdir(tmp_path)) == ["ds", "o.parquet"]

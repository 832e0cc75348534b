from __future__ import annotations

import datetime
import decimal

import pyarrow as pa
import pytest

from bubbles._errors import DataError
from bubbles.data.files import read_avro, read_json, read_orc, write_avro, write_json, write_orc


@pytest.fixture
def nested() -> pa.Table:
    return pa.table({
        "id": [1, 2],
        "tags": [["a", "b"], []],
        "customer": [{"name": "Zoë", "country": "DE"}, {"name": "Li", "country": None}],
        "day": [datetime.date(2026, 1, 2), None],
        "at": pa.array([datetime.datetime(2026, 1, 2, 3, 4, 5)] * 2, pa.timestamp("us", tz="UTC")),
        "amount": pa.array([decimal.Decimal("1.50"), decimal.Decimal("2.25")], pa.decimal128(10, 2)),
    })


def test_ndjson_and_array_roundtrip(tmp_path, nested) -> None:
    write_json(nested, tmp_path / "n.ndjson")
    t = read_json(tmp_path / "n.ndjson")
    assert t.column("customer").to_pylist()[0] == {"name": "Zoë", "country": "DE"}
    assert t.column("tags").to_pylist() == [["a", "b"], []]
    write_json(nested, tmp_path / "a.json", lines=False)
    assert (tmp_path / "a.json").read_text().lstrip().startswith("[")
    assert read_json(tmp_path / "a.json").column("id").to_pylist() == [1, 2]
    stream = read_json(tmp_path / "n.ndjson", batch_size=1)
    assert [b.num_rows for b in stream] == [1, 1]


def test_json_errors_name_the_line(tmp_path) -> None:
    p = tmp_path / "b.ndjson"
    p.write_text('{"a": 1}\n{"a": 2\n{"a": 3}\n')
    with pytest.raises(DataError) as info:
        read_json(p)
    assert info.value.line == 2
    (tmp_path / "e.json").write_text("")
    with pytest.raises(DataError, match="empty"):
        read_json(tmp_path / "e.json")


def test_orc_roundtrip_with_projection_and_stream(tmp_path, nested) -> None:
    flat = nested.drop_columns(["tags", "customer"])
    write_orc(flat, tmp_path / "o.orc")
    assert read_orc(tmp_path / "o.orc", columns=["id"]).column_names == ["id"]
    assert read_orc(tmp_path / "o.orc", batch_size=1).read_all().num_rows == 2
    (tmp_path / "x.orc").write_text("nope")
    with pytest.raises(DataError, match="not a readable ORC"):
        read_orc(tmp_path / "x.orc")


def test_avro_roundtrip_keeps_types(tmp_path, nested) -> None:
    (f,) = write_avro(nested, tmp_path / "n.avro")
    assert f.rows == 2
    t = read_avro(f.path)
    assert t.schema.field("amount").type == pa.decimal128(10, 2)
    assert t.schema.field("day").type == pa.date32()
    assert t.to_pylist()[0]["customer"] == {"name": "Zoë", "country": "DE"}
    assert t.column("at").to_pylist() == nested.column("at").to_pylist()
    assert read_avro(f.path, batch_size=1).read_all().num_rows == 2


def test_readers_return_frames_on_request(tmp_path, nested) -> None:
    import pandas as pd
    import polars as pl

    from bubbles.data.files import read_csv, read_parquet, write_csv, write_parquet

    flat = nested.select(["id", "day"])
    write_csv(flat, tmp_path / "f.csv")
    write_parquet(flat, tmp_path / "f.parquet")
    assert isinstance(read_csv(tmp_path / "f.csv", output="pandas"), pd.DataFrame)
    frame = read_parquet(tmp_path / "f.parquet", output="polars")
    assert isinstance(frame, pl.DataFrame) and frame["id"].to_list() == [1, 2]
    write_avro(flat, tmp_path / "f.avro")
    assert isinstance(read_avro(tmp_path / "f.avro", output="polars"), pl.DataFrame)

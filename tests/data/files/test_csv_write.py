from __future__ import annotations

import datetime
import decimal
import gzip
import os

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

from bubbles._errors import ConfigError, DataError
from bubbles.data.files import CsvFormat, read_csv, write_csv


@pytest.fixture
def table() -> pa.Table:
    return pa.table({
        "id": [1, 2, 3],
        "name": ["Zoë", 'say "hi", ok', None],
        "day": [datetime.date(2026, 1, 2)] * 3,
        "at": [datetime.datetime(2026, 1, 2, 3, 4, 5)] * 3,
        "amount": pa.array([decimal.Decimal("1234.50"), decimal.Decimal("2.00"), None], pa.decimal128(10, 2)),
        "currency": ["EUR", "USD", "EUR"],
    })


def test_default_profile_roundtrips(tmp_path, table) -> None:
    (f,) = write_csv(table, tmp_path / "o.csv")
    assert f.rows == 3 and f.bytes == os.path.getsize(tmp_path / "o.csv")
    back = read_csv(f.path, schema={"amount": "decimal(10,2)"})
    assert back.column("name").to_pylist() == ["Zoë", 'say "hi", ok', ""]
    assert back.column("amount").to_pylist()[0] == decimal.Decimal("1234.50")


def test_finance_profile(tmp_path, table) -> None:
    finance = CsvFormat(delimiter=";", decimal_separator=",", date_format="%d.%m.%Y", timestamp_format="%d.%m.%Y %H:%M",
                        encoding="latin-1", line_terminator="\r\n", null="NULL", quoting="all",
                        columns={"id": "ID", "amount": "Betrag", "day": "Datum", "at": "Zeit", "name": "Name"})
    write_csv(table, tmp_path / "f.csv", finance)
    raw = (tmp_path / "f.csv").read_bytes()
    lines = raw.decode("latin-1").split("\r\n")
    assert lines[0] == '"ID";"Betrag";"Datum";"Zeit";"Name"'
    assert lines[1] == '"1";"1234,50";"02.01.2026";"02.01.2026 03:04";"Zoë"'
    assert lines[3] == '"3";NULL;"02.01.2026";"02.01.2026 03:04";NULL'
    assert "Zoë".encode("latin-1") in raw


def test_variants_without_header_and_fixed_places(tmp_path, table) -> None:
    base = CsvFormat(header=False, columns=["amount", "id"], decimal_places=1, quoting="none")
    write_csv(table, tmp_path / "v.csv", base)
    assert (tmp_path / "v.csv").read_text() == "1234.5,1\n2.0,2\n,3\n"
    assert base.replace(header=True).header is True


def test_split_by_rows_and_key_and_gzip(tmp_path, table) -> None:
    parts = write_csv(table, tmp_path / "p_{part}.csv.gz", split_rows=2)
    assert [os.path.basename(p.path) for p in parts] == ["p_00001.csv.gz", "p_00002.csv.gz"]
    assert gzip.decompress((tmp_path / "p_00002.csv.gz").read_bytes()).decode().count("\n") == 2
    by = write_csv(table, tmp_path / "cur.csv", split_by="currency")
    assert sorted((os.path.basename(p.path), p.rows) for p in by) == [("cur-EUR.csv", 2), ("cur-USD.csv", 1)]


def test_frames_and_streams_are_accepted(tmp_path, table) -> None:
    assert write_csv(pd.DataFrame({"x": [1, 2]}), tmp_path / "a.csv")[0].rows == 2
    assert write_csv(pl.DataFrame({"x": [1, 2]}), tmp_path / "b.csv")[0].rows == 2
    assert write_csv(table.to_reader(max_chunksize=1), tmp_path / "c.csv")[0].rows == 3


def test_unencodable_character_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(DataError, match="latin-1 cannot encode"):
        write_csv(pa.table({"x": ["ok", "€ and 漢"]}), tmp_path / "x.csv", encoding="latin-1")
    assert os.listdir(tmp_path) == []


def test_failed_write_keeps_previous_version(tmp_path) -> None:
    target = tmp_path / "keep.csv"
    write_csv(pa.table({"x": [1]}), target)
    before = target.read_bytes()

    def batches():
        yield pa.record_batch({"x": [2]})
        raise RuntimeError("producer died")

    with pytest.raises(Exception, match="producer died"):
        write_csv(pa.RecordBatchReader.from_batches(pa.schema({"x": pa.int64()}), batches()), target)
    assert target.read_bytes() == before
    assert os.listdir(tmp_path) == ["keep.csv"]


def test_bad_profile_options_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="quoting"):
        CsvFormat(quoting="sometimes")
    with pytest.raises(ConfigError):
        CsvFormat(split_rows=10, split_by="x")


@pytest.mark.parametrize("compression", [None, "gzip"])
def test_utf8_sig_writes_one_byte_order_mark_at_the_start(tmp_path, compression) -> None:
    table = pa.table({"year": [2013 + i for i in range(500)], "name": ["Zoë"] * 500})
    suffix = ".csv.gz" if compression else ".csv"
    (f,) = write_csv(table, tmp_path / f"o{suffix}", encoding="utf-8-sig")
    with open(f.path, "rb") as fh:
        raw = fh.read()
    if compression:
        raw = gzip.decompress(raw)
    assert raw.startswith(b"\xef\xbb\xbf") and raw.count(b"\xef\xbb\xbf") == 1
    back = read_csv(f.path, encoding="utf-8-sig")
    assert back.column("year").to_pylist()[:2] == [2013, 2014] and back.num_rows == 500


def test_unknown_encoding_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="encoding='no-such'"):
        CsvFormat(encoding="no-such")

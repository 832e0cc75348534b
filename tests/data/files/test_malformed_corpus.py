"""Every physical line of every malformed file ends up as a good row, a bad line with its number, or the error."""

from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bubbles._errors import DataError
from bubbles.data.files import BadLineError, read_csv, read_json, read_parquet, write_parquet

from .corpus import CSV, NDJSON, Case, gzip_case_data


def bad_lines(sink) -> list[dict]:
    """The bad lines a reader set aside in a quarantine sink, as {source, line, column, reason, raw}."""
    from bubbles.data.quality import read_quarantine

    rows = read_quarantine(str(sink)).to_pylist()
    assert all(r["_rules"] == "bad_line" for r in rows)
    return [{"source": r["_source"], "line": r["_line"], "column": r["_column"], "reason": r["_reason"], "raw": r["_raw"]}
            for r in rows]

def _file(tmp_path, case: Case) -> str:
    path = tmp_path / ("case" + case.suffix)
    path.write_bytes(gzip_case_data() if case.suffix == ".csv.gz" else case.data)
    return str(path)


def _read(case: Case, path: str, **options):  # type: ignore[no-untyped-def]
    reader = read_json if case.suffix == ".ndjson" else read_csv
    return reader(path, **case.options, **options)


@pytest.mark.parametrize("stream", [False, True], ids=["table", "stream"])
@pytest.mark.parametrize("case", CSV + NDJSON, ids=lambda c: c.name)
def test_quarantine_accounts_for_every_line(tmp_path, case: Case, stream: bool) -> None:
    path = _file(tmp_path, case)
    q = tmp_path / "quarantine"
    got = _read(case, path, on_bad_lines="quarantine", quarantine=str(q), **({"batch_size": 2} if stream else {}))
    table = got.read_all() if stream else got
    assert table.column("id").to_pylist() == case.ids
    bad = bad_lines(q) if q.exists() else []
    assert [(b["line"], b["column"]) for b in bad] == case.bad
    assert all(b["source"] == path and b["reason"] for b in bad)


@pytest.mark.parametrize("case", [c for c in CSV + NDJSON if c.bad], ids=lambda c: c.name)
def test_error_names_the_first_bad_line(tmp_path, case: Case) -> None:
    path = _file(tmp_path, case)
    with pytest.raises(BadLineError) as info:
        _read(case, path)
    err = info.value
    assert err.line == case.bad[0][0] and err.source == path and err.transient is False
    assert f"line {case.bad[0][0]}" in str(err) and "Not retried" in str(err)


def test_inferred_columns_do_not_bend_on_a_big_file(tmp_path) -> None:
    """The issue's case: 200,000 rows, one '1000x' in the key and one impossible date."""
    from .corpus import _many

    data = _many(200_000, {1000: "1000x,2024-01-01 10:00:00,3.5", 5000: "5000,2024-02-30 10:00:00,3.5"})
    path = tmp_path / "orders.csv"
    path.write_bytes(data)
    t = read_csv(path, on_bad_lines="skip")
    assert t.schema.field("id").type == pa.int64() and t.schema.field("ts").type == pa.timestamp("s")
    assert t.num_rows == 199_998
    s = read_csv(path, on_bad_lines="skip", batch_size=50_000).read_all()
    assert s.schema == t.schema and s.num_rows == 199_998
    with pytest.raises(BadLineError, match="line 1001, column 'id'"):
        read_csv(path)


def test_an_unclosed_quote_in_a_big_file_is_one_bad_line(tmp_path) -> None:
    path = tmp_path / "big.csv"
    path.write_text('id,name\n1,"open\n' + "".join(f"{i},name{i}\n" for i in range(2, 100_000)))
    assert read_csv(path, on_bad_lines="skip").num_rows == 99_998
    assert read_csv(path, on_bad_lines="skip", batch_size=10_000).read_all().num_rows == 99_998
    with pytest.raises(BadLineError, match="line 2:"):
        read_csv(path, batch_size=10_000).read_all()
    # with line breaks allowed in values, the open quote takes lines with it: they are in the bad record
    q = tmp_path / "quarantine"
    t = read_csv(path, on_bad_lines="quarantine", quarantine=str(q), newlines_in_values=True)
    (bad,) = bad_lines(q)
    assert bad["line"] == 2 and t.num_rows + bad["raw"].count("\n") + 1 == 99_999


def test_parquet_corpus(tmp_path) -> None:
    good = tmp_path / "lake" / "k=1" / "a.parquet"
    write_parquet(pa.table({"id": [1, 2]}), good)
    full = good.read_bytes()
    cases = {"truncated.parquet": full[: len(full) // 2], "empty.parquet": b"", "not.parquet": b"id,name\n1,a\n",
             "footer-only.parquet": full[-8:]}
    for name, data in cases.items():
        p = tmp_path / name
        p.write_bytes(data)
        with pytest.raises(DataError) as info:
            read_parquet(p)
        assert str(p) in str(info.value) and info.value.transient is False, name
    # a dataset with one broken file names that file, reads nothing half
    (tmp_path / "lake" / "k=2").mkdir()
    (tmp_path / "lake" / "k=2" / "b.parquet").write_bytes(full[: len(full) // 2])
    with pytest.raises(DataError, match=r"b\.parquet"):
        read_parquet(tmp_path / "lake")
    os.unlink(tmp_path / "lake" / "k=2" / "b.parquet")
    assert pq.read_table(good).num_rows == read_parquet(tmp_path / "lake").num_rows == 2

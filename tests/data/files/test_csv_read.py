from __future__ import annotations

import bz2
import gzip
import pickle

import pyarrow as pa
import pytest

import bubbles
from bubbles._errors import DataError
from bubbles.data.files import BadLineError, read_csv


def bad_lines(sink) -> list[dict]:
    """The bad lines a reader set aside in a quarantine sink, as {source, line, column, reason, raw}."""
    from bubbles.data.quality import read_quarantine

    rows = read_quarantine(str(sink)).to_pylist()
    assert all(r["_rules"] == "bad_line" for r in rows)
    return [{"source": r["_source"], "line": r["_line"], "column": r["_column"], "reason": r["_reason"], "raw": r["_raw"]}
            for r in rows]

def _write(path, text: str | bytes) -> str:
    data = text.encode() if isinstance(text, str) else text
    path.write_bytes(data)
    return str(path)


def test_reads_with_inference_and_declared_types(tmp_path) -> None:
    p = _write(tmp_path / "o.csv", "id,amount,ts,note\n1,1.50,2026-01-02 03:04:05,\"a, b\"\n2,2.25,2026-01-03 00:00:00,\n")
    t = read_csv(p, schema={"amount": "decimal(10,2)"})
    assert t.schema.field("id").type == pa.int64()
    assert t.schema.field("amount").type == pa.decimal128(10, 2)
    assert t.schema.field("ts").type == pa.timestamp("s")
    assert t.column("note").to_pylist() == ["a, b", ""]


def test_dialect_encoding_header_and_nulls(tmp_path) -> None:
    p = _write(tmp_path / "l.csv", "1;'Müller; Jörg';NA\n2;'Zoë';7\n".encode("latin-1"))
    t = read_csv(p, delimiter=";", quotechar="'", header=False, encoding="latin-1", null_values=["NA"],
                 schema={"id": "int64", "name": "string", "n": "int32"})
    assert t.column_names == ["id", "name", "n"]
    assert t.column("name").to_pylist() == ["Müller; Jörg", "Zoë"]
    assert t.column("n").to_pylist() == [None, 7]
    bom = _write(tmp_path / "b.csv", b"\xef\xbb\xbfa,b\n1,2\n")
    assert read_csv(bom, encoding="utf-8-sig").column_names == ["a", "b"]


@pytest.mark.parametrize("suffix, compress", [(".gz", gzip.compress), (".bz2", bz2.compress)])
def test_compression_inferred_from_name(tmp_path, suffix, compress) -> None:
    p = _write(tmp_path / f"c.csv{suffix}", compress(b"a,b\n1,x\n2,y\n"))
    assert read_csv(p).num_rows == 2


def test_zstd_and_streaming(tmp_path) -> None:
    import pyarrow as pa

    rows = "".join(f"{i},name {i}\n" for i in range(50_000))
    p = str(tmp_path / "big.csv.zst")
    with pa.CompressedOutputStream(p, "zstd") as out:
        out.write(("id,name\n" + rows).encode())
    reader = read_csv(p, batch_size=7_000, block_size=64 << 10)
    assert isinstance(reader, pa.RecordBatchReader)
    sizes = [b.num_rows for b in reader]
    assert sum(sizes) == 50_000 and max(sizes) <= 7_000 and len(sizes) > 5


def test_timestamp_formats(tmp_path) -> None:
    p = _write(tmp_path / "d.csv", "ts\n02.01.2026 10:00\n03.01.2026 11:30\n")
    t = read_csv(p, schema={"ts": "timestamp[us]"}, timestamp_formats=["%d.%m.%Y %H:%M"])
    assert str(t.column("ts")[1].as_py()) == "2026-01-03 11:30:00"


# line 5 is short; line 7 opens a quote that never closes, which swallows the rest of the file
BAD = "id,amount,name\n1,2.5,a\n2,x,b\n3\n6,1.0,c\n7,\"unbalanced,5.0\n"


def test_bad_line_error_names_file_line_column_and_raw(tmp_path) -> None:
    p = _write(tmp_path / "bad.csv", "id,amount\n1,2.5\n2,1.0\n3,oops\n")
    with pytest.raises(BadLineError) as info:
        read_csv(p, schema={"amount": "float64"})
    err = info.value
    assert (err.source, err.line, err.column, err.raw) == (p, 4, "amount", "3,oops")
    assert "bad.csv" in str(err) and "line 4" in str(err) and "on_bad_lines" in str(err)
    assert isinstance(pickle.loads(pickle.dumps(err)), BadLineError)


def test_wrong_column_count_error(tmp_path) -> None:
    p = _write(tmp_path / "bad.csv", "a,b\n1,2\n3\n")
    with pytest.raises(BadLineError) as info:
        read_csv(p)
    assert info.value.line == 3 and info.value.raw == "3"


def test_quarantine_keeps_going(tmp_path) -> None:
    p = _write(tmp_path / "bad.csv", BAD)
    q = tmp_path / "quarantine"
    t = read_csv(p, schema={"amount": "float64"}, on_bad_lines="quarantine", quarantine=str(q))
    assert t.column("id").to_pylist() == [1, 6]
    bad = bad_lines(q)
    assert [b["line"] for b in bad] == [3, 4, 6]
    assert bad[0]["column"] == "amount" and bad[0]["raw"] == "2,x,b" and "x" in bad[0]["reason"]
    assert "expected 3 columns" in bad[1]["reason"]


def test_quarantine_streaming_and_undecodable_bytes(tmp_path) -> None:
    p = _write(tmp_path / "enc.csv", b"id,name\n1,ok\n2,\xff\xfe\n3,fine\n")
    q = tmp_path / "quarantine"
    reader = read_csv(p, on_bad_lines="quarantine", quarantine=str(q), batch_size=10)
    t = reader.read_all()
    assert t.column("name").to_pylist() == ["ok", "fine"] and t.schema.field("name").type == pa.string()
    (bad,) = bad_lines(q)
    assert bad["line"] == 3 and "undecodable" in bad["reason"]


def test_skip_counts_bad_lines_in_task_metrics(tmp_path) -> None:
    p = _write(tmp_path / "bad.csv", BAD)
    mc = bubbles.MetricsCollector()
    wf = bubbles.Workflow("skip")
    wf.add_task(lambda: read_csv(p, schema={"amount": "float64"}, on_bad_lines="skip"), name="extract").attach(mc)
    result = wf.run(executor="serial")
    assert result.tasks["extract"].result.num_rows == 2
    assert mc.get_metric("bad_lines") == 3
    assert mc.get_metric("rows_read") == 2


def test_clear_errors_for_broken_files(tmp_path) -> None:
    data = gzip.compress(b"a,b\n" + b"1,2\n" * 50_000)
    truncated = _write(tmp_path / "t.csv.gz", data[: len(data) // 2])
    with pytest.raises(DataError, match="truncated"):
        read_csv(truncated)
    empty = _write(tmp_path / "e.csv", b"")
    with pytest.raises(DataError, match="is empty"):
        read_csv(empty)
    with pytest.raises(DataError, match="does not exist"):
        read_csv(tmp_path / "missing.csv")


def test_line_numbers_count_line_breaks_inside_quotes(tmp_path) -> None:
    p = _write(tmp_path / "m.csv", 'id,note\n1,"two\nlines"\n2\n3,x\n4,oops,extra\n')
    q = tmp_path / "quarantine"
    t = read_csv(p, newlines_in_values=True, on_bad_lines="quarantine", quarantine=str(q))
    assert t.column("id").to_pylist() == [1, 3]
    assert [b["line"] for b in bad_lines(q)] == [4, 6]


def test_bad_first_record_does_not_shift_line_numbers(tmp_path) -> None:
    p = _write(tmp_path / "f.csv", "id,amount\n1\n2,3.5\n3,bad\n")
    q = tmp_path / "quarantine"
    t = read_csv(p, schema={"amount": "float64"}, on_bad_lines="quarantine", quarantine=str(q))
    assert t.column("id").to_pylist() == [2]
    assert [(b["line"], b["column"]) for b in bad_lines(q)] == [(2, None), (4, "amount")]


def test_streaming_finds_bad_values_in_later_blocks(tmp_path) -> None:
    rows = [f"{i},{i}.5" for i in range(20_000)]
    rows[15_000] = "15000,oops"
    p = _write(tmp_path / "s.csv", "id,amount\n" + "\n".join(rows) + "\n")
    q = tmp_path / "quarantine"
    reader = read_csv(p, on_bad_lines="quarantine", quarantine=str(q), batch_size=4_000, block_size=32 << 10)
    assert sum(b.num_rows for b in reader) == 19_999
    (bad,) = bad_lines(q)
    assert (bad["line"], bad["column"], bad["raw"]) == (15_002, "amount", "15000,oops")
    with pytest.raises(BadLineError) as info:
        read_csv(p, schema={"amount": "float64"}, batch_size=4_000, block_size=32 << 10).read_all()
    assert (info.value.line, info.value.column) == (15_002, "amount")


def test_parallel_stream_matches_table_read(tmp_path, monkeypatch) -> None:
    import pyarrow.compute as pc

    from bubbles.data.files import csv as csv_module

    rows = "".join(f'{i},"name, {i}",{i % 7}.25,2026-01-{i % 28 + 1:02d} 10:00:00\n' for i in range(60_000))
    p = _write(tmp_path / "p.csv", "id,name,amount,at\n" + rows)
    monkeypatch.setattr(csv_module, "_CHUNK_BYTES", 100_000)  # many chunks, cut mid-file
    streamed = read_csv(p, batch_size=5_000, block_size=32 << 10).read_all()
    table = read_csv(p)
    assert streamed.schema == table.schema and streamed.num_rows == 60_000
    assert pc.all(pc.equal(streamed.column("id"), table.column("id"))).as_py()
    assert streamed.column("name")[59_999].as_py() == "name, 59999"


def test_parallel_stream_with_names_skip_rows_and_latin1(tmp_path, monkeypatch) -> None:
    from bubbles.data.files import csv as csv_module

    lines = "".join(f"{i};Jörg {i};{i * 2}\n" for i in range(5_000))
    p = _write(tmp_path / "l.csv", ("generated by X\n" + lines).encode("latin-1"))
    monkeypatch.setattr(csv_module, "_CHUNK_BYTES", 10_000)
    t = read_csv(p, delimiter=";", header=False, column_names=["id", "name", "n"], skip_rows=1, encoding="latin-1",
                 columns=["name", "n"], batch_size=1_000).read_all()
    assert t.column_names == ["name", "n"] and t.num_rows == 5_000
    assert t.column("name")[4_999].as_py() == "Jörg 4999" and t.column("n")[4_999].as_py() == 9_998


@pytest.mark.parametrize("batch_size", [None, 2])
def test_a_bad_decimal_is_a_bad_line_like_any_other_type(tmp_path, batch_size) -> None:  # type: ignore[no-untyped-def]
    from decimal import Decimal

    import bubbles
    from bubbles._settings import current_settings

    path = tmp_path / "amounts.csv"
    path.write_text("id,amount\n1,10.50\n2,abc\n3,7.25\n")
    with pytest.raises(bubbles.BadLineError) as info:
        table = bubbles.read_csv(path, schema={"amount": "decimal(12,2)"}, batch_size=batch_size)
        if batch_size:
            table.read_all()
    err = info.value
    assert (err.line, err.column, err.raw) == (3, "amount", "2,abc") and "decimal" in str(err)
    kept = bubbles.read_csv(path, schema={"amount": "decimal(12,2)"}, on_bad_lines="quarantine")
    assert kept.column("amount").to_pylist() == [Decimal("10.50"), Decimal("7.25")]
    bad = bad_lines(current_settings().home_path() / "quarantine" / "amounts.csv")
    assert [(b["line"], b["column"]) for b in bad] == [(3, "amount")]


def test_lines_pythons_csv_module_refuses_are_bad_lines_or_read(tmp_path) -> None:
    """A lone carriage return inside an unquoted field, and a field over Python's 128 KiB csv limit, ended
    in a bare _csv.Error (no file, no line) on the exact path."""
    cr = _write(tmp_path / "cr.csv", b"id,v,s\n1,2,x\n3,4,a\rb,5,c\n")
    with pytest.raises(BadLineError) as err:
        read_csv(cr)
    assert err.value.line == 3 and "cr.csv" in str(err.value)
    q = tmp_path / "quarantine"
    t = read_csv(cr, on_bad_lines="quarantine", quarantine=str(q))
    assert t.num_rows == 1 and [b["line"] for b in bad_lines(q)] == [3]
    long = _write(tmp_path / "long.csv", b"id,v,s\n1,2,x\n3,4," + b"y" * 3_000_000 + b"\n")
    assert read_csv(long).column("s").to_pylist() == ["x", "y" * 3_000_000]

"""SIGKILL at chosen steps of every writer, driven by the writer's own step announcements
(``write_steps``), never by sleeps: afterwards a reader sees the old version or the new one, glob
readers see no leftovers, and the next write (or ``bubbles clean``) clears what the kill left."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from click.testing import CliRunner

from bubbles.cli.files import clean
from bubbles.data.files import read_csv, read_json, read_orc, read_parquet
from bubbles.data.files._leftovers import find

SCRIPT = textwrap.dedent("""
    import os, signal, sys
    import pyarrow as pa
    import bubbles
    from bubbles.data.files._atomic import write_steps

    writer, target, version, kill_at = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    rows = 3 * version
    table = pa.table({"id": list(range(rows)), "v": [version] * rows, "k": [f"k{i % version}" for i in range(rows)]})

    def hook(step, path):
        if step == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    with write_steps(hook):
        if writer == "parquet":
            bubbles.write_parquet(table, target)
        elif writer == "dataset":
            bubbles.write_parquet(table, target, partition_by=["k"])
        elif writer == "append":
            bubbles.write_parquet(table, target, partition_by=["k"], mode="append")
        elif writer == "csv":
            bubbles.write_csv(table, target)
        elif writer == "csv-latin1":
            bubbles.write_csv(table, target, encoding="latin-1")
        elif writer == "split":
            bubbles.write_csv(table, target, split_by="k")
        elif writer == "json":
            bubbles.write_json(table, target)
        elif writer == "orc":
            bubbles.write_orc(table, target)
        elif writer == "avro":
            bubbles.write_avro(table, target)
        elif writer == "deliver":
            files = bubbles.write_csv(table, target + "-src/orders.csv")
            bubbles.deliver(files, to=target)
""")


def run(writer: str, target: Path, version: int, kill_at: str = "-") -> int:
    proc = subprocess.run([sys.executable, "-c", SCRIPT, writer, str(target), str(version), kill_at],
                          capture_output=True, text=True, timeout=120)
    if kill_at == "-":
        assert proc.returncode == 0, proc.stderr
    return proc.returncode


def versions(writer: str, target: Path) -> list[int]:
    """The versions a reader sees (one value per row)."""
    if writer in ("parquet", "dataset", "append"):
        t = read_parquet(target)
    elif writer in ("csv", "csv-latin1"):
        t = read_csv(target, encoding="latin-1")
    elif writer == "split":
        files = sorted(target.parent.glob("orders-*.csv"))
        return sorted(v for f in files for v in read_csv(f).column("v").to_pylist())
    elif writer == "json":
        t = read_json(target)
    elif writer == "orc":
        t = read_orc(target)
    else:
        from bubbles.data.files import read_avro

        t = read_avro(target)
    return sorted(t.column("v").to_pylist())


def glob_rows(folder: Path) -> int:
    """What a plain glob reader over the whole folder sees (DuckDB matches hidden files too)."""
    return int(duckdb.sql(f"SELECT count(*) FROM read_parquet('{folder}/**/*.parquet')").fetchall()[0][0])


SINGLE = [("parquet", "x.parquet"), ("csv", "x.csv"), ("csv-latin1", "x.csv"), ("json", "x.ndjson"),
          ("orc", "x.orc"), ("avro", "x.avro")]


@pytest.mark.parametrize(("writer", "name"), SINGLE, ids=[w for w, _ in SINGLE])
def test_single_file_killed_before_the_rename_keeps_the_old_file(tmp_path, writer: str, name: str) -> None:
    target = tmp_path / "out" / name
    run(writer, target, 1)
    assert run(writer, target, 2, "file:written") == -signal.SIGKILL
    assert versions(writer, target) == [1] * 3
    assert [f.kind for f in find(tmp_path)] == ["temporary"] and all(f.stale for f in find(tmp_path))
    assert sorted(p.name for p in (tmp_path / "out").glob("*" + target.suffix)) == [name]  # a glob sees one file
    run(writer, target, 3)
    assert versions(writer, target) == [3] * 9 and find(tmp_path) == []  # the next write removed the leftover


@pytest.mark.parametrize("kill_at", ["dir:staged", "dir:swapped"])
def test_dataset_overwrite_is_old_or_new_and_invisible_leftovers(tmp_path, kill_at: str) -> None:
    lake = tmp_path / "lake"
    target = lake / "orders"
    run("dataset", target, 1)
    assert run("dataset", target, 2, kill_at) == -signal.SIGKILL
    expected = [1] * 3 if kill_at == "dir:staged" else [2] * 6
    assert versions("dataset", target) == expected
    assert glob_rows(lake) == len(expected)  # nothing of the killed write is visible to a glob of the lake
    assert [p.name for p in lake.iterdir()] == ["orders"]
    assert [f.kind for f in find(lake)] == ["staging"]
    run("dataset", target, 3)
    assert versions("dataset", target) == [3] * 9 and find(lake) == [] and glob_rows(lake) == 9


@pytest.mark.parametrize("kill_at", ["dir:staged", "set:journaled", "set:moved"])
def test_dataset_append_is_rolled_forward_by_the_next_write(tmp_path, kill_at: str) -> None:
    target = tmp_path / "lake" / "orders"
    run("append", target, 1)
    assert run("append", target, 2, kill_at) == -signal.SIGKILL
    seen = versions("append", target)
    if kill_at == "dir:staged":
        assert seen == [1] * 3  # nothing committed
    elif kill_at == "set:journaled":
        assert seen == [1] * 3  # committed, not yet moved: the next write finishes it
    else:
        assert seen.count(2) in (1, 2, 3, 4, 5)  # inside the rename window: some files of the set are in
    result = CliRunner().invoke(clean, [str(tmp_path), "--remove"])
    assert result.exit_code == 0, result.output
    after = versions("append", target)
    assert after == ([1] * 3 if kill_at == "dir:staged" else [1] * 3 + [2] * 6)
    assert find(tmp_path) == []


@pytest.mark.parametrize("kill_at", ["set:staged", "set:journaled", "set:moved"])
def test_split_csv_set_is_replaced_as_a_unit(tmp_path, kill_at: str) -> None:
    target = tmp_path / "out" / "orders.csv"
    run("split", target, 3)  # keys k0, k1, k2
    assert run("split", target, 2, kill_at) == -signal.SIGKILL  # keys k0, k1: k2 must go
    seen = versions("split", target)
    if kill_at == "set:staged":
        assert seen == [3] * 9
    elif kill_at == "set:journaled":
        assert seen == [3] * 9  # committed, not yet moved
    assert sorted(p.name for p in (tmp_path / "out").glob("*.csv")) in (
        ["orders-k0.csv", "orders-k1.csv", "orders-k2.csv"], ["orders-k0.csv", "orders-k1.csv"])
    run("split", target, 2)  # the next write to the same target: rolls forward or replaces, removes leftovers
    assert versions("split", target) == [2] * 6
    assert sorted(p.name for p in (tmp_path / "out").glob("*.csv")) == ["orders-k0.csv", "orders-k1.csv"]
    assert find(tmp_path) == []


def test_split_csv_set_journal_is_finished_by_clean(tmp_path) -> None:
    target = tmp_path / "out" / "orders.csv"
    run("split", target, 3)
    assert run("split", target, 2, "set:journaled") == -signal.SIGKILL
    listed = CliRunner().invoke(clean, [str(tmp_path)])
    assert "journal" in listed.output and "stale" in listed.output and "--remove" in listed.output
    CliRunner().invoke(clean, [str(tmp_path), "--remove"])
    assert versions("split", target) == [2] * 6 and find(tmp_path) == []
    assert "no leftovers" in CliRunner().invoke(clean, [str(tmp_path)]).output


@pytest.mark.parametrize("kill_at", ["deliver:files", "deliver:manifest"])
def test_delivery_killed_then_rerun_delivers_once(tmp_path, kill_at: str) -> None:
    box = tmp_path / "box"
    assert run("deliver", box, 1, kill_at) == -signal.SIGKILL
    run("deliver", box, 1)
    (batch,) = os.listdir(box)
    manifest = json.loads((box / batch / "_manifest.json").read_text())
    assert manifest["rows"] == 3 and [e["name"] for e in manifest["files"]] == ["orders.csv"]
    assert sorted(os.listdir(box / batch)) == ["_manifest.json", "orders.csv"]
    assert read_csv(box / batch / "orders.csv").num_rows == 3


def test_steps_are_announced_in_order(tmp_path) -> None:
    from bubbles.data.files import write_parquet
    from bubbles.data.files._atomic import write_steps

    seen: list[str] = []
    with write_steps(lambda step, path: seen.append(step)):
        write_parquet(pa.table({"x": [1]}), tmp_path / "x.parquet")
        write_parquet(pa.table({"x": [1], "k": [1]}), tmp_path / "d", partition_by=["k"])
    assert seen == ["file:written", "file:published", "dir:staged", "dir:swapped", "dir:published"]


def test_staging_beside_the_dataset_when_the_temp_directory_is_another_filesystem() -> None:
    import shutil
    import tempfile

    if not os.path.isdir("/dev/shm") or os.stat("/dev/shm").st_dev == os.stat(tempfile.gettempdir()).st_dev:
        pytest.fail("this test needs /dev/shm on another filesystem than the temp directory (Linux has it)")
    base = Path(tempfile.mkdtemp(dir="/dev/shm"))
    try:
        target = base / "lake" / "orders"
        run("dataset", target, 1)
        assert run("dataset", target, 2, "dir:staged") == -signal.SIGKILL
        (stage,) = find(base)
        assert stage.kind == "staging" and Path(stage.path).parent == base / "lake"
        assert Path(stage.path).name.startswith(".bubbles-stage-")
        assert versions("dataset", target) == [1] * 3
        run("dataset", target, 3)
        assert versions("dataset", target) == [3] * 9 and find(base) == []
    finally:
        shutil.rmtree(base, ignore_errors=True)

"""The ETL example on the real cluster: Arrow extract -> pyarrow.compute transform -> Parquet load,
as a Python API run and as ``bubbles run etl.py --distributed``; identical to the serial executor."""

from __future__ import annotations

from pathlib import Path

import pytest

from bubbles.cli.load import load_target

ETL = """
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

import bubbles


def extract(rows: int = 50_000) -> pa.Table:
    ids = pa.array(range(rows), pa.int64())
    return pa.table({"id": ids, "amount": pc.multiply(pc.cast(pc.bit_wise_and(ids, 1023), pa.float64()), 0.25),
                     "country": pa.array(["de", "fr", "nl", "pl"] * (rows // 4))})


def transform(table: pa.Table) -> pa.Table:
    kept = table.filter(pc.greater(table["amount"], 10.0))
    return kept.append_column("amount_eur_cents", pc.cast(pc.multiply(kept["amount"], 100), pa.int64()))


def load(table: pa.Table, out_dir: str) -> dict:
    import os

    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for country in sorted(set(table["country"].to_pylist())):
        part = table.filter(pc.equal(table["country"], country))
        path = os.path.join(out_dir, f"country={country}.parquet")
        pq.write_table(part, path + ".tmp")
        os.replace(path + ".tmp", path)
        paths.append(path)
    return {"rows": table.num_rows, "files": len(paths)}


pipeline = bubbles.Pipeline("etl")
pipeline.add_task(extract)
pipeline.add_task(transform)
pipeline.add_task(load)
"""


@pytest.fixture
def etl_file(tmp_path: Path) -> Path:
    path = tmp_path / "etl.py"
    path.write_text(ETL)
    return path


def _read(out: Path) -> dict[str, object]:
    import pyarrow.parquet as pq

    return {p.name: pq.read_table(p) for p in sorted(out.glob("*.parquet"))}


def test_etl_on_dask_matches_serial(address: str, etl_file: Path, tmp_path: Path) -> None:
    _, pipeline = load_target(str(etl_file))
    serial = pipeline.run(executor="serial", params={"out_dir": str(tmp_path / "serial")}, keep_outputs=True)
    on_dask = pipeline.run(distributed=True, address=address, params={"out_dir": str(tmp_path / "dask")}, keep_outputs=True)
    assert on_dask.output == serial.output == {"rows": 47_991, "files": 4}
    assert on_dask.tasks["transform"].result.equals(serial.tasks["transform"].result)
    expected, got = _read(tmp_path / "serial"), _read(tmp_path / "dask")
    assert list(got) == list(expected) and len(got) == 4
    for name, table in expected.items():
        assert got[name].equals(table), name
    assert on_dask.tasks["transform"].metrics["rows_in"] == 50_000
    assert on_dask.tasks["transform"].metrics["bytes_out"] > 0


def test_bubbles_run_distributed_cli(address: str, etl_file: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from bubbles.cli.main import cli

    out = tmp_path / "cli"
    result = CliRunner().invoke(cli, ["run", str(etl_file), "--distributed", "--address", address, "-p", f"out_dir={out}"])
    assert result.exit_code == 0, result.output
    assert len(_read(out)) == 4


def test_large_pipeline_input_is_scattered_not_embedded(address: str) -> None:
    """20 MB handed to a pipeline goes to a worker directly (Dask would warn about it in the graph)."""
    import pyarrow as pa

    from bubbles import Pipeline

    table = pa.table({"x": pa.array(range(2_500_000), pa.int64())})
    p = Pipeline("big-input")
    p.add_task(lambda t: t.num_rows, name="count")
    assert p.run(table, distributed=True, address=address).output == 2_500_000  # warnings are errors here

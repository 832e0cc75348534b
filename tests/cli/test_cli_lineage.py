"""``bubbles lineage`` and the run's lineage views, on runs recorded by a real workflow (issue 16)."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
from click.testing import CliRunner

import bubbles
from bubbles import Workflow
from bubbles.cli.main import _register, cli
from bubbles.observe.lineage_graph import report_datasets, show_lineage
from bubbles.store import open_store


def _two_hop(tmp_path: Path) -> str:
    """orders.csv -(clean)-> clean.parquet -(summary)-> summary.csv; returns the last run id."""
    csv = tmp_path / "orders.csv"
    csv.write_text("id,amount,country\n1,10.5,DE\n2,3.0,FR\n3,7.0,DE\n")
    clean, summary = tmp_path / "clean.parquet", tmp_path / "summary.csv"

    def clean_step() -> None:
        bubbles.write_parquet(bubbles.sql("SELECT id, amount * 2 AS amount2, country FROM o", o=bubbles.read_csv(csv)), clean)

    def summary_step() -> None:
        t = bubbles.sql("SELECT country, sum(amount2) AS total FROM c GROUP BY country", c=bubbles.read_parquet(clean))
        bubbles.write_csv(t, summary)

    wf = Workflow("hops")
    a = wf.add_task(clean_step)
    wf.add_task(summary_step, after=[a])
    return wf.run(settings={"resources": False}).run_id


def _invoke(*args: str) -> str:
    _register()
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_lineage_tree_upstream_and_downstream_across_tasks(tmp_path: Path) -> None:
    _two_hop(tmp_path)
    out = _invoke("lineage", "clean.parquet")
    assert out.splitlines()[0].endswith(str(tmp_path / "clean.parquet"))
    up, down = out.split("downstream:")
    assert str(tmp_path / "orders.csv") in up and "<-" in up
    assert str(tmp_path / "summary.csv") in down and "->" in down


def test_lineage_of_a_column_follows_it_through_two_queries(tmp_path: Path) -> None:
    _two_hop(tmp_path)
    out = _invoke("lineage", str(tmp_path / "summary.csv"), "--column", "total")
    lines = out.splitlines()
    assert "[amount2]" in lines[2] and "clean.parquet" in lines[2]
    assert "[amount]" in lines[3] and "orders.csv" in lines[3]  # two hops up, through both tasks
    assert "country" not in out


def test_mermaid_and_dot(tmp_path: Path) -> None:
    _two_hop(tmp_path)
    mermaid = _invoke("lineage", "clean.parquet", "--format", "mermaid")
    assert mermaid.startswith("graph LR") and mermaid.count("-->") == 2
    dot = _invoke("lineage", "clean.parquet", "--format", "dot")
    assert dot.startswith("digraph lineage {") and dot.count(" -> ") == 2 and dot.rstrip().endswith("}")


def test_unknown_dataset_is_a_clear_error(tmp_path: Path) -> None:
    _two_hop(tmp_path)
    _register()
    result = CliRunner().invoke(cli, ["lineage", "nothing-like-this.csv"])
    assert result.exit_code == 2 and "No dataset matching" in result.output


def test_show_lineage_and_report_datasets(tmp_path: Path) -> None:
    run_id = _two_hop(tmp_path)
    with open_store(Path(os.environ["BUBBLES_HOME"]) / "history.db") as store:
        lines = show_lineage(store, run_id)
        fragment = report_datasets(store, run_id)
    text = "\n".join(lines)
    assert "clean_step:" in text and "summary_step:" in text
    assert "total <- clean.parquet.amount2 (computed)" in text
    assert "xxh3:" in text
    assert fragment.startswith('<section class="datasets">') and fragment.count("<tr>") == 1 + 4
    clean_row = next(r for r in fragment.split("<tr>") if "clean.parquet</td>" in r and ">write<" in r)
    assert str(tmp_path / "orders.csv") in clean_row  # the "derived from" cell


def test_report_escapes_html(tmp_path: Path) -> None:
    odd = tmp_path / "<b>odd</b>.parquet"

    def step() -> None:
        bubbles.write_parquet(pa.table({"a": [1]}), odd)

    wf = Workflow("odd")
    wf.add_task(step)
    run_id = wf.run(settings={"resources": False}).run_id
    with open_store(Path(os.environ["BUBBLES_HOME"]) / "history.db") as store:
        fragment = report_datasets(store, run_id)
    assert "<b>odd</b>" not in fragment and "&lt;b&gt;odd&lt;/b&gt;" in fragment


def test_show_with_lineage_flag_and_the_report_carry_the_datasets(tmp_path: Path) -> None:
    run_id = _two_hop(tmp_path)
    out = _invoke("show", run_id, "--lineage")
    section = out.split("datasets and lineage", 1)[1]
    assert "clean_step:" in section and "reads  file://" in section and "orders.csv" in section
    assert "total <- clean.parquet.amount2 (computed)" in section
    assert "datasets and lineage" not in _invoke("show", run_id)  # only when asked
    report = tmp_path / "r.html"
    _invoke("report", run_id, "-o", str(report))
    page = report.read_text()
    assert '<section class="datasets">' in page and "summary.csv" in page


def test_a_file_read_reports_its_size_on_disk_like_its_write(tmp_path: Path) -> None:
    target = tmp_path / "t.csv"

    def step() -> None:
        written = bubbles.write_csv(pa.table({"a": list(range(500)), "b": ["text"] * 500}), target)
        assert bubbles.read_csv(written[0]).num_rows == 500  # a written file is a path

    wf = Workflow("sizes")
    wf.add_task(step)
    run_id = wf.run(settings={"resources": False}).run_id
    with open_store(Path(os.environ["BUBBLES_HOME"]) / "history.db") as store:
        rows = store.datasets(run_id)
    sizes = {r["direction"]: r["bytes"] for r in rows}
    assert sizes == {"write": target.stat().st_size, "read": target.stat().st_size}

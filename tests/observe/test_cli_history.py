"""bubbles runs / show / report, and the system-resource samples they show."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import bubbles
from bubbles import Workflow
from bubbles.cli.history import report_command, runs_command, show_command
from bubbles.observe.resources import ResourceSampler
from bubbles.store import open_store

SRC = str(Path(bubbles.__file__).parent.parent)


@pytest.fixture(autouse=True)
def _wide(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # rich sizes tables to the terminal


def spin(n: int) -> int:
    return sum(i * i for i in range(n))


def broken(x: int) -> None:
    raise ValueError(f"bad value {x}")


def warn_then_break(x: int) -> None:
    logging.getLogger("etl.load").warning("refusing %d rows", x)
    broken(x)


def make_runs() -> tuple[str, str]:
    ok = Workflow("nightly")
    a = ok.add_task(lambda: list(range(100)), name="extract")
    ok.add_task(lambda rows: [r * 2 for r in rows], name="transform", requires=[a])
    first = ok.run().run_id
    bad = Workflow("nightly")
    a = bad.add_task(lambda: list(range(100)), name="extract")
    t = bad.add_task(lambda rows: [r * 2 for r in rows], name="transform", requires=[a])
    bad.add_task(lambda rows: warn_then_break(len(rows)), name="load", requires=[t], retries=1, retry_delay=0.01)
    second = bad.run(raise_on_error=False).run_id
    return first, second


def test_runs_lists_recent_runs() -> None:
    first, second = make_runs()
    result = CliRunner().invoke(runs_command, ["-n", "5"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert first in result.output and second in result.output
    assert result.output.index(second) < result.output.index(first)  # newest first
    assert re.search(re.escape(second) + r".*failed.*\b1\b", result.output)
    assert "history.db" in result.output  # which store it reads


def test_show_prints_tasks_errors_and_logs() -> None:
    _, second = make_runs()
    result = CliRunner().invoke(show_command, [second[-8:]], terminal_width=200)
    assert result.exit_code == 0, result.output
    out = result.output
    assert f"run {second}" in out and "nightly" in out
    assert re.search(r"extract\W+succeeded\W+1\W.*100", out)
    assert "runs in" not in out  # (the show header names the run)
    assert re.search(r"load\W+failed\W+2\W", out)
    assert "ValueError: bad value 100" in out and "raise ValueError" in out
    assert "WARNING load#2 etl.load: refusing 100 rows" in out  # logs of failed tasks are shown


def test_show_json_gives_every_attempt_with_its_metrics_and_the_logs() -> None:
    import json

    _, second = make_runs()
    result = CliRunner().invoke(show_command, [second, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["run"]["run_id"] == second and data["run"]["status"] == "failed" and data["run"]["params"] == {}
    assert all("group" in a and "grp" not in a for a in data["attempts"])
    seen = [(a["task"], a["attempt"], a["state"]) for a in data["attempts"]]
    assert seen == [("extract", 1, "succeeded"), ("transform", 1, "succeeded"), ("load", 1, "retrying"), ("load", 2, "failed")]
    extract = data["attempts"][0]
    assert extract["rows_out"] == 100 and extract["duration"] > 0 and extract["peak_memory"] > 0
    assert data["attempts"][-1]["error"] == "ValueError: bad value 100"
    assert {(entry["task"], entry["attempt"]) for entry in data["logs"]} == {("load", 1), ("load", 2)}


def test_show_unknown_run_exits_2_with_a_hint() -> None:
    make_runs()
    result = CliRunner().invoke(show_command, ["zzz"])
    assert result.exit_code == 2
    assert "No run 'zzz'" in result.output and "bubbles runs" in result.output


def test_no_history_yet_is_a_clear_error() -> None:
    result = CliRunner().invoke(runs_command, [])
    assert result.exit_code == 2 and "No run store at" in result.output and "nothing has run" in result.output


def test_report_is_self_contained_html_with_timeline_failures_and_comparison(tmp_path: Path) -> None:
    for _ in range(2):
        make_runs()
    store = open_store()
    last = store.runs(limit=1)[0]["run_id"]
    store.close()
    out = tmp_path / "report.html"
    result = CliRunner().invoke(report_command, [last, "-o", str(out), "--compare", "4"])
    assert result.exit_code == 0, result.output
    assert re.search(r"wrote .*report\.html \([\d.]+ KB\)", result.output)  # says how big it is
    text = out.read_text()
    assert text.startswith("<!DOCTYPE html>") and "</html>" in text
    assert "<script" not in text and "<svg" in text  # static SVG charts: no script, nothing fetched
    assert not re.search(r"https?://", text)
    timeline = text[text.index("Timeline of task attempts by worker") : text.index("<h2>Per task")]
    for task in ("extract", "transform", "load"):
        assert f">{task}</text>" in timeline, task  # each bar's row carries its task's name
    for needle in (
        "Retries and failures (2)",
        "ValueError: bad value 100",
        "System resources",
        "Duration of the last 4 runs",
        "median before",
        "Task warnings and errors",
        "load#2 etl.load: refusing 100 rows",
    ):
        assert needle in text, needle
    assert "rows out" not in text[: text.index("<h2>Timeline")]  # the header no longer sums rows over tasks


def test_report_interactive_inlines_plotly_once(tmp_path: Path) -> None:
    make_runs()
    out = tmp_path / "report.html"
    result = CliRunner().invoke(report_command, ["last", "-o", str(out), "--interactive"])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert text.count("<script src=") == 0  # nothing fetched from the network
    assert len(re.findall(r"plotly\.js v\d", text)) == 1  # the library once, however many charts
    assert text.count("Plotly.newPlot") >= 3  # timeline, per task, resources
    assert "Timeline of task attempts by worker" in text and "ValueError: bad value 100" in text


def test_resource_sampler_sees_worker_processes_and_cpu() -> None:
    sampler = ResourceSampler(interval=0.1)
    wf = Workflow("busy")
    for i in range(2):
        wf.add_task(lambda: spin(3_000_000), name=f"spin{i}")
    wf.run("processes", max_workers=2, hooks=[sampler])
    assert len(sampler.samples) >= 3
    assert max(s[3] for s in sampler.samples) >= 3  # this process + 2 workers
    assert max(s[1] for s in sampler.samples) > 50  # CPU % of the tree
    assert all(s[2] > 10 * 2**20 for s in sampler.samples)


def test_importing_bubbles_and_observe_defaults_stays_light() -> None:
    code = (
        "import sys, bubbles, bubbles.observe.defaults, bubbles.observe.metrics, bubbles.cli.history\n"
        "heavy = [m for m in ('pyarrow', 'pandas', 'polars', 'plotly', 'matplotlib', 'prometheus_client', 'psutil',"
        " 'rich', 'sqlite3') if m in sys.modules]\nprint(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={"PYTHONPATH": SRC}, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr


@pytest.mark.parametrize("flag", ["--log-format", "--metrics-port"])
def test_bad_cli_values_are_usage_errors(flag: str, tmp_path: Path) -> None:
    script = tmp_path / "f.py"
    script.write_text("from bubbles import Workflow\nwf = Workflow('x')\nwf.add_task(lambda: 1, name='one')\n")
    proc = subprocess.run(
        [sys.executable, "-m", "bubbles.cli.main", "run", str(script), flag, "nonsense"],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": SRC, "BUBBLES_HOME": str(tmp_path)},
        timeout=60,
    )
    assert proc.returncode == 2

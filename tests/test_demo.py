"""`bubbles demo` end to end: what a new user runs first must work, and re-running must be safe."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import duckdb

from bubbles.data.quality import read_quarantine


def run_demo(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bubbles", "demo", "--rows", "3000", "--workdir", str(workdir), *args],
        capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "200"},
    )


def warehouse_rows(workdir: Path) -> int:
    with duckdb.connect(str(workdir / "warehouse.duckdb"), read_only=True) as con:
        return int(con.execute("SELECT count(*) FROM orders_clean").fetchone()[0])  # type: ignore[index]


def test_demo_runs_and_reruns_without_duplicates(tmp_path: Path) -> None:
    first = run_demo(tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "succeeded" in first.stdout
    rows = warehouse_rows(tmp_path)
    assert 0 < rows < 3000  # cancelled orders are filtered out
    bad = read_quarantine(tmp_path / "quarantine" / "orders.csv").to_pylist()
    assert [b["_line"] for b in bad] == [3002, 3003] and all(b["_rules"] == "bad_line" for b in bad)
    broken = read_quarantine(tmp_path / "quarantine" / "orders").to_pylist()
    assert sorted(b["_rules"] for b in broken) == ["amount.range", "customer_id.foreign_key", "status.accepted_values"]
    assert "quarantine: 3 rows that broke contract 'orders'" in " ".join(first.stdout.split())
    delivered = "".join(p.read_text(encoding="utf-8") for p in (tmp_path / "outbox").rglob("*.csv"))
    assert "@example.com" in delivered and "customer1@" not in delivered and "c***@example.com" in delivered
    with sqlite3.connect(tmp_path / "reporting.sqlite") as db:
        (orders,) = db.execute("SELECT sum(orders) FROM revenue_by_country").fetchone()
    assert orders == rows
    manifests = list((tmp_path / "outbox").rglob("*manifest*"))
    assert manifests, list((tmp_path / "outbox").rglob("*"))
    assert list((tmp_path / "lake" / "orders").glob("order_month=*"))

    second = run_demo(tmp_path, "--executor", "processes")
    assert second.returncode == 0, second.stdout + second.stderr
    assert warehouse_rows(tmp_path) == rows  # merged by order_id, not appended again


def test_demo_fails_at_a_load_and_resumes_only_it(tmp_path: Path) -> None:
    failed = run_demo(tmp_path, "--fail-at", "load_reporting")
    assert failed.returncode == 1
    out = " ".join(failed.stdout.split())
    assert "refused the connection (bubbles demo --fail-at)" in out and "`bubbles demo --resume` runs load_reporting" in out
    assert not (tmp_path / "reporting.sqlite").exists()
    rows = warehouse_rows(tmp_path)
    resumed = run_demo(tmp_path, "--resume")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    lines = {line.split("│")[1].strip(): line for line in resumed.stdout.splitlines() if line.count("│") > 3}
    assert "succeeded" in lines["load_reporting"]
    assert all("reused" in lines[t] for t in ("extract_orders", "check_orders", "transform", "load_warehouse",
                                              "write_lake", "deliver_finance"))
    assert "8 task(s) reused from run" in " ".join(resumed.stdout.split())
    with sqlite3.connect(tmp_path / "reporting.sqlite") as db:
        (orders,) = db.execute("SELECT sum(orders) FROM revenue_by_country").fetchone()
    assert orders == rows == warehouse_rows(tmp_path)  # loaded once, from the kept transform output


def test_demo_resume_with_nothing_to_resume_says_so_without_a_traceback(tmp_path: Path) -> None:
    resumed = run_demo(tmp_path, "--resume")
    assert resumed.returncode == 2  # a usage error
    text = " ".join(resumed.stderr.split())
    assert "Nothing to resume" in text and "Run `bubbles demo`" in text and "Traceback" not in resumed.stderr

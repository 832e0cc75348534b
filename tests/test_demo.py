"""`bubbles demo` end to end: what a new user runs first must work, and re-running must be safe."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import duckdb


def run_demo(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bubbles", "demo", "--rows", "3000", "--workdir", str(workdir), *args],
        capture_output=True, text=True, timeout=300,
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
    bad = (tmp_path / "quarantine" / "orders.bad.jsonl").read_text().splitlines()
    assert len(bad) == 2 and all("line" in json.loads(b) for b in bad)
    with sqlite3.connect(tmp_path / "reporting.sqlite") as db:
        (orders,) = db.execute("SELECT sum(orders) FROM revenue_by_country").fetchone()
    assert orders == rows
    manifests = list((tmp_path / "outbox").rglob("*manifest*"))
    assert manifests, list((tmp_path / "outbox").rglob("*"))
    assert list((tmp_path / "lake" / "orders").glob("order_month=*"))

    second = run_demo(tmp_path, "--executor", "processes")
    assert second.returncode == 0, second.stdout + second.stderr
    assert warehouse_rows(tmp_path) == rows  # merged by order_id, not appended again

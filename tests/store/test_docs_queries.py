"""Every example query of docs/store.md runs against a store written by real runs, and answers."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

import bubbles
from bubbles import Workflow
from bubbles._context import record_event
from bubbles._events import Dataset, QualityResult
from bubbles.observe.history import history_path

DOC = Path(__file__).resolve().parents[2] / "docs" / "store.md"
QUERIES = re.findall(r"```sql\n(.*?)```", DOC.read_text(), flags=re.S)
EXPECT_ROWS = {  # the queries that must find something in the store written below (by their first words)
    "SELECT run_id, workflow, status",
    "SELECT task, attempt, error",
    "SELECT task, duration",
    "SELECT r.run_id, t.task",
    "SELECT task, COUNT(*)",
    "SELECT r.started_at, m.task",
    "SELECT task, direction",
    "SELECT d.run_id, d.task",
    "SELECT task, attempt, level",
    "SELECT task, contract, rule",
}


def _extract() -> list[int]:
    record_event(Dataset(direction="read", namespace="file://host", name="/in/orders.csv", rows=3, format="csv"))
    record_event(QualityResult(contract="orders", rule="amount.range", check="range", column="amount", rows_checked=3,
                               rows_failed=1, rows_quarantined=1, outcome="quarantined", examples=['{"amount": "-1"}']))
    return [1, 2, 3]


def _load(rows: list[int]) -> int:
    import logging

    bubbles.log_metric("loaded", len(rows))
    record_event(Dataset(direction="write", namespace="duckdb:///w.duckdb", name="main.orders", dataset_kind="table", rows=3))
    logging.getLogger("etl").warning("3 rows had no customer")
    raise ValueError("the warehouse refused the load")


@pytest.fixture
def run_id() -> str:
    wf = Workflow("docs")
    rows = wf.add_task(_extract, name="extract")
    wf.add_task(_load, requires=[rows], name="load", retries=1, retry_delay=0.01)
    return wf.run(raise_on_error=False).run_id


def test_the_doc_has_its_queries() -> None:
    assert len(QUERIES) >= 10


@pytest.mark.parametrize("sql", QUERIES, ids=[q.split("\n")[0][:50] for q in QUERIES])
def test_every_example_query_answers(sql: str, run_id: str) -> None:
    db = sqlite3.connect(history_path())
    try:
        rows = db.execute(sql, {"run": run_id, "workflow": "docs"}).fetchall()
    finally:
        db.close()
    if any(sql.startswith(prefix) for prefix in EXPECT_ROWS):
        assert rows, sql

"""The HTML report of a run: small, self-contained, its timeline naming every task, its figures right."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from bubbles import Workflow
from bubbles._context import record_event
from bubbles._events import Dataset
from bubbles.observe.report import build_report, write_report
from bubbles.store import open_store

SOURCE_ROWS = 171_643


def extract() -> list[int]:
    # what the CSV reader reports about the file it read (the run store's `datasets`)
    orders = Dataset(direction="read", namespace="file://host", name="/data/orders.csv", rows=SOURCE_ROWS, bytes=12_000_000)
    record_event(orders)
    return list(range(1000))


def export(rows: list[int]) -> list[int]:
    for part in range(3):
        record_event(Dataset(direction="write", namespace="file://host", name=f"/out/part-{part}.csv", rows=SOURCE_ROWS // 3))
    return rows


def load(rows: list[int]) -> int:
    loaded = Dataset(direction="write", namespace="duckdb:///w", name="main.orders_clean", dataset_kind="table", rows=SOURCE_ROWS)
    record_event(loaded)
    return SOURCE_ROWS


def broken(rows: list[int]) -> None:
    logging.getLogger("etl.check").warning("refusing %d rows", len(rows))
    raise ValueError("bad batch")


def hundred_task_run() -> str:
    """A 100-task run: a source, 96 transforms (each returning rows of data), a file export, a load, a failure."""
    wf = Workflow("hundred")
    source = wf.add_task(extract, name="extract_orders")
    for i in range(96):
        wf.add_task(lambda rows: rows, name=f"transform_customer_segment_{i:03d}", requires=[source])
    wf.add_task(export, name="export_csv", requires=[source])
    wf.add_task(load, name="load_warehouse", requires=[source])
    wf.add_task(broken, name="check_totals", requires=[source], retries=1, retry_delay=0)
    result = wf.run(fail_fast=False, raise_on_error=False)
    assert len(result.tasks) == 100
    return result.run_id


def section(text: str, start: str, end: str) -> str:
    return text[text.index(start) : text.index(end, text.index(start))]


def test_a_100_task_report_is_small_self_contained_and_names_every_task(tmp_path: Path) -> None:
    run_id = hundred_task_run()
    with open_store() as store:
        path = write_report(run_id, tmp_path / "report.html", store=store)
        tasks = [t["task"] for t in store.tasks(run_id)]
    size = path.stat().st_size
    text = path.read_text(encoding="utf-8")
    assert size < 1_000_000, f"{size:,} bytes"
    # self-contained: nothing is fetched, not a script, a stylesheet, a font or an image
    assert "<script" not in text and "<link" not in text and "@import" not in text
    assert not re.search(r"https?://", text), re.findall(r".{40}https?://.{40}", text)[:3]
    assert not re.search(r"""(src|href)=["'](?!#|data:)""", text)
    # ids are unique in the page (several SVGs in one document) and every reference resolves
    ids = re.findall(r' id="([^"]+)"', text)
    assert len(ids) == len(set(ids))
    assert set(re.findall(r"url\(#([^)]+)\)", text)) | set(re.findall(r'href="#([^"]+)"', text)) <= set(ids)
    timeline = section(text, "Timeline of task attempts by worker", "<h2>")
    missing = [t for t in tasks if f">{t}</text>" not in timeline]
    assert len(tasks) == 100 and missing == []


def test_the_header_says_what_was_read_and_written_not_a_sum_of_rows_out() -> None:
    run_id = hundred_task_run()
    with open_store() as store:
        text = build_report(store, run_id)
    header = text[: text.index("<h2>Timeline")]
    assert "<th>read</th><td>1 file, 171,643 rows, 11.4 MB</td>" in header
    assert "<th>wrote</th><td>3 files, 171,642 rows; orders_clean: 171,643 rows</td>" in header
    assert "<th>tasks</th><td>100: " in header and "1 <span" in header and "99 <span" in header
    assert "rows out" not in header and "97,000" not in header  # (the old header summed rows out over tasks)
    tasks = section(text, "<h2>Tasks</h2>", "</table>")
    load = re.search(r"<tr><td>load_warehouse</td>.*?</tr>", tasks)
    export = re.search(r"<tr><td>export_csv</td>.*?</tr>", tasks)
    assert load and "<td>orders_clean: 171,643 rows</td>" in load.group(0)
    assert '<td class="n"></td><td>orders_clean' in load.group(0)  # a loader's count is not rows out
    assert export and "<td>3 files, 171,642 rows</td>" in export.group(0)
    failures = section(text, "Retries and failures", "<h2>")
    assert "Retries and failures (2)" in failures and "ValueError: bad batch" in failures and "raise ValueError" in failures
    assert "check_totals#2 etl.check: refusing 1000 rows" in text


def test_a_run_without_datasets_has_no_read_or_written_lines() -> None:
    wf = Workflow("plain")
    wf.add_task(lambda: [1, 2, 3], name="three")
    run_id = wf.run().run_id
    with open_store() as store:
        text = build_report(store, run_id)
    header = text[: text.index("<h2>Timeline")]
    assert "<th>read</th>" not in header and "<th>wrote</th>" not in header
    assert ">three</text>" in text


def test_too_many_tasks_to_name_get_one_row_per_worker_and_say_so() -> None:
    n = 400
    wf = Workflow("wide")
    for i in range(n):
        wf.add_task(lambda: None, name=f"t{i:04d}")
    run_id = wf.run().run_id
    with open_store() as store:
        text = build_report(store, run_id)
    timeline = section(text, "Timeline of task attempts by worker", "<h2>")
    assert f"{n:,} tasks: one row per worker" in timeline
    assert "bubbles-worker" in timeline  # the rows are the workers
    assert len(text) < 1_000_000

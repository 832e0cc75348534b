"""MetricsCollector: built-in and custom metrics per attempt, tables, plots; sizes of outputs."""

from __future__ import annotations

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

import bubbles
from bubbles import ConfigError, MetricsCollector, RunFailed, Workflow
from bubbles.observe.sizes import counted, measure


def test_single_task_collector_returns_values_and_workflow_collector_returns_dicts() -> None:
    wf = Workflow("m")
    mc_one, mc_all = MetricsCollector(), MetricsCollector()
    a = wf.add_task(lambda: list(range(10)), name="a")
    wf.add_task(lambda rows: rows[:4], name="b", requires=[a])
    a.attach(mc_one)
    wf.attach(mc_all)
    wf.run()
    assert mc_one.get_metric("rows_out") == 10
    assert mc_all.get_metric("rows_out") == {"a": 10, "b": 4}
    assert mc_all.get_metric("rows_in", task="b") == 10
    rec = mc_one.records[0]
    assert rec["status"] == "succeeded" and rec["attempt"] == 1 and rec["worker"]
    assert rec["started_at"] <= rec["ended_at"]
    assert rec["execution_time"] >= 0 and rec["cpu_time"] >= 0 and rec["peak_memory"] > 10 * 2**20


@pytest.mark.parametrize(
    "make, rows, has_bytes",
    [
        (lambda: pa.table({"x": list(range(7))}), 7, True),
        (lambda: [pa.record_batch({"x": [1, 2]}), pa.record_batch({"x": [3]})], 3, True),
        (lambda: pd.DataFrame({"x": range(5)}), 5, True),
        (lambda: pl.DataFrame({"x": list(range(6))}), 6, True),
        (lambda: [1, 2, 3], 3, False),
        (lambda: b"abcd", None, True),
    ],
)
def test_rows_and_bytes_counted_for_common_outputs(make, rows, has_bytes) -> None:
    wf = Workflow("sizes")
    mc = MetricsCollector()
    wf.add_task(make, name="out").attach(mc)
    wf.run(executor="serial")
    assert mc.get_metric("rows_out") == rows
    assert (mc.get_metric("bytes_out") is not None) == has_bytes


def test_stream_counted_as_consumed() -> None:
    batch = pa.record_batch({"x": list(range(100))})

    def consume() -> int:
        return sum(b.num_rows for b in counted(iter([batch, batch, batch])))

    wf = Workflow("stream")
    mc = MetricsCollector()
    wf.add_task(consume).attach(mc)
    wf.run()
    assert mc.get_metric("rows_in") == 300
    assert mc.get_metric("bytes_in") == 3 * batch.nbytes
    assert measure(pa.RecordBatchReader.from_batches(batch.schema, [batch])) == (None, None)


def test_custom_metrics_and_retries_recorded_per_attempt() -> None:
    calls = {"n": 0}

    def flaky() -> int:
        calls["n"] += 1
        bubbles.log_metric("files", 2)
        bubbles.log_metric("files", 3, add=True)
        if calls["n"] == 1:
            raise ValueError("first")
        return 1

    wf = Workflow("retry")
    mc = MetricsCollector()
    wf.add_task(flaky, retries=2, retry_delay=0.01).attach(mc)
    wf.run()
    assert [r["status"] for r in mc.records] == ["retrying", "succeeded"]
    assert [r["attempt"] for r in mc.records] == [1, 2]
    assert mc.records[0]["error"] == "ValueError: first"
    assert mc.records[1]["error"] is None  # the retry that succeeded carries no error
    assert mc.get_metric("files") == 5.0
    assert mc.summary()["flaky"]["attempts"] == 2


@pytest.mark.parametrize(
    "name, value, words",
    [
        (3, 1.0, "name must be a non-empty string"),
        ("x", "12", "must be a finite number"),
        ("x", float("nan"), "must be a finite number"),
        ("x", True, "must be a finite number"),
    ],
)
def test_bad_log_metric_is_rejected_naming_the_task(name, value, words) -> None:
    def report() -> None:
        bubbles.log_metric(name, value)

    wf = Workflow("bad")
    wf.add_task(report, name="reporter")
    with pytest.raises(RunFailed) as info:
        wf.run(executor="serial")
    error = info.value.result.tasks["reporter"].error
    assert isinstance(error, ConfigError)
    assert "in task 'reporter'" in str(error) and words in str(error)
    assert error.task == "reporter"


def test_tables_and_plot() -> None:
    def tagged() -> list[int]:
        bubbles.log_metric("quality", 0.5)
        return [1, 2]

    wf = Workflow("tables")
    mc = MetricsCollector()
    wf.attach(mc)
    a = wf.add_task(tagged)
    wf.add_task(lambda xs: xs * 3, name="triple", requires=[a])
    wf.run()
    table = mc.to_arrow()
    assert table.num_rows == 2
    assert set(table.column_names) >= {"task", "execution_time", "peak_memory", "rows_out", "quality"}
    assert table.schema.field("peak_memory").type == pa.int64()
    df = mc.to_pandas()
    assert list(df.sort_values("task")["rows_out"]) == [2, 6]
    fig = mc.plot()
    assert [ax.get_title() for ax in fig.axes] == ["Timeline (by worker)", "Peak memory (MB)", "Rows out"]
    assert len(fig.axes[0].patches) == 2  # one bar per attempt

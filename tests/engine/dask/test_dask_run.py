"""What only the Dask executor does: outputs stay on the workers, addresses, flows, freeing.

The behaviour every executor shares runs on Dask in ``tests/engine/test_conformance.py``.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

import bubbles
from bubbles import MetricsCollector, Workflow
from bubbles._errors import NotPicklableError
from bubbles.api.decorators import flow, task
from bubbles.engine.executors.dask import DaskExecutor


# -- task functions (module level: shipped to the workers by value) ------------------------------
def numbers() -> list[int]:
    return list(range(10))


def double(xs: list[int]) -> list[int]:
    return [2 * x for x in xs]


def square(xs: list[int]) -> list[int]:
    return [x * x for x in xs]


def merge(a: list[int], b: list[int]) -> list[int]:
    bubbles.log_metric("merged", len(a) + len(b))
    return sorted(a + b)


def inc(x: int) -> int:
    return x + 1


def pid_and_item(x: int) -> tuple[int, int]:
    import os

    return os.getpid(), x


def sleepy(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def boom() -> None:
    raise ValueError("bad row 7")


def make_workflow() -> Workflow:
    wf = Workflow("diamond")
    n = wf.add_task(numbers)
    d = wf.add_task(double, requires=[n])
    s = wf.add_task(square, requires=[n])
    m = wf.add_task(merge, requires=[d, s])
    wf.map(inc, n, name="incs")
    wf.add_task(sum, requires=[m], name="total")
    return wf


def outputs(result: bubbles.RunResult) -> dict[str, Any]:
    return {name: t.result for name, t in result.tasks.items()}


# -- results ------------------------------------------------------------------------------------
def test_run_distributed_true_with_env_address(address: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUBBLES_DASK_ADDRESS", address)
    result = make_workflow().run(distributed=True)
    assert result.executor == "dask"
    assert result.tasks["total"].result == 375
    assert result.tasks["total"].worker.startswith("tcp://127.0.0.1:")


def test_fanout_runs_on_both_workers(address: str) -> None:
    wf = Workflow("fan")
    wf.map(pid_and_item, list(range(40)), name="items")
    result = wf.run(distributed=True, address=address)
    out = result.tasks["items"].result
    assert [x for _, x in out] == list(range(40))
    assert len({pid for pid, _ in out}) == 2  # spread over both worker processes
    assert len({t.worker for t in result.tasks.values() if t.group == "items"}) == 2


def _named(name: str) -> Any:
    def fn() -> float:
        return sleepy(0.3)

    fn.__name__ = fn.__qualname__ = name
    return fn


@task
def load_n(n: int) -> list[int]:
    return list(range(n))


@task
def total(xs: list[int]) -> int:
    return sum(xs)


@task
def bump(x: int, by: int) -> int:
    return x + by


def test_flow_futures(address: str) -> None:
    @flow(executor="dask", address=address)
    def process(n: int) -> Any:
        rows = load_n(n)
        if len(rows.result()) > 3:  # the client fetches only because the body asks
            parts = [total(rows) for _ in range(3)]
            bumped = bump.map(rows, 100, max_concurrent=2)  # fan-out over a future, extra arg
            return [p.result() for p in parts], bumped
        return None

    sums, bumped = process(5)
    assert sums == [10, 10, 10]
    assert bumped == [100, 101, 102, 103, 104]


def test_outputs_stay_on_the_cluster(address: str) -> None:
    """Only the final output is fetched by the client; intermediates go worker to worker."""
    fetched: list[Any] = []

    class Watching(DaskExecutor):
        def _fetch(self, handle: Any) -> Any:
            value = super()._fetch(handle)
            fetched.append(value)
            return value

    pa = pytest.importorskip("pyarrow")
    wf = Workflow("arrow")
    big = wf.add_task(lambda: pa.table({"x": list(range(100_000))}), name="big")
    wf.add_task(lambda t: t.num_rows, requires=[big], name="count")
    result = wf.run(executor=Watching(address=address))
    assert result.tasks["count"].result == 100_000
    assert fetched == [100_000]
    assert result.tasks["count"].metrics["rows_in"] == 100_000  # measured on the worker


# -- failures, retries, timeouts ----------------------------------------------------------------
def flaky(marker: str) -> str:
    path = Path(marker)
    if not path.exists():
        path.write_text("failed once")
        raise ConnectionError("network blip")
    return "ok"


class QuotaExceeded(Exception):
    """A user's own exception class, defined in the module the task comes from."""


def over_quota(marker: str) -> str:
    path = Path(marker)
    if not path.exists():
        path.write_text("once")
        raise QuotaExceeded("try later")
    raise KeyError("now something else")


def test_user_exception_class_survives_the_round_trip(address: str, tmp_path: Path) -> None:
    wf = Workflow("quota")
    wf.add_task(over_quota, kwargs={"marker": str(tmp_path / "q")}, retries=3, retry_delay=0.01, retry_on=QuotaExceeded)
    mc = MetricsCollector()
    result = wf.run(distributed=True, address=address, hooks=[mc], raise_on_error=False)
    assert mc.records[0]["error"] == "QuotaExceeded: try later"  # retried: retry_on matched the user's class
    assert result.tasks["over_quota"].attempts == 2  # KeyError is not in retry_on
    assert isinstance(result.tasks["over_quota"].error, KeyError)


def test_metrics_and_worker_address(address: str) -> None:
    mc = MetricsCollector()
    wf = Workflow("metrics")
    n = wf.add_task(numbers)
    d = wf.add_task(double, requires=[n])
    wf.add_task(merge, requires=[n, d]).attach(mc)
    wf.run(distributed=True, address=address)
    [record] = mc.records
    assert record["merged"] == 20
    assert record["rows_out"] == 20 and record["rows_in"] == 20
    assert record["execution_time"] > 0
    assert record["worker"].startswith("tcp://127.0.0.1:")


def test_unpicklable_task_is_rejected_before_running(address: str) -> None:
    lock = threading.Lock()
    wf = Workflow("bad")
    wf.add_task(lambda: lock.locked(), name="locked")
    with pytest.raises(NotPicklableError, match="locked"):
        wf.run(distributed=True, address=address)


# -- the seed's pipeline, verbatim shape, on a LocalCluster -------------------------------------
def extract() -> list[dict[str, Any]]:
    return [{"id": i, "amount": i * 1.5} for i in range(5)]


def transform(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**r, "amount": round(r["amount"] * 2, 2)} for r in rows if r["id"] % 2 == 0]


def load(rows: list[dict[str, Any]]) -> int:
    return len(rows)


@pytest.mark.slow
def test_seed_pipeline_on_a_local_cluster(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("BUBBLES_DASK_ADDRESS", raising=False)
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    monkeypatch.setenv("BUBBLES_HOME", str(tmp_path))
    caplog.set_level("INFO", logger="bubbles")

    pipeline = bubbles.Pipeline()
    pipeline.add_task(extract)
    pipeline.add_task(transform)
    pipeline.add_task(load)
    result = pipeline.run(distributed=True)

    assert result.output == 3
    assert result.executor == "dask"
    assert "started a LocalCluster" in caplog.text


def test_address_from_dask_config_and_an_existing_client(address: str) -> None:
    import dask.config
    from distributed import Client

    with dask.config.set({"scheduler-address": address}):
        assert make_workflow().run(distributed=True).tasks["total"].result == 375
    with Client(address, set_as_default=False) as client:
        result = make_workflow().run(distributed=True, client=client)
        assert result.tasks["total"].result == 375
        assert client.status == "running"  # the user's client is left open
        assert client.submit(sum, [1, 1]).result() == 2


@pytest.mark.parametrize("keep_outputs", [False, True])
def test_intermediate_outputs_are_freed_on_the_workers(address: str, keep_outputs: bool) -> None:
    """Once its last consumer has run, an output is released on the cluster, not kept to the end."""
    seen: dict[str, list[str]] = {}

    class Watch:
        def __init__(self, client: Any) -> None:
            self.client = client

        def on_task_start(self, *, task: str, **future_kwargs: Any) -> None:
            if task == "d":
                time.sleep(0.2)  # releases travel asynchronously
                seen["d"] = [str(k) for keys in self.client.has_what().values() for k in keys]

    from distributed import Client

    wf = Workflow("chain")
    a = wf.add_task(lambda: list(range(1000)), name="a")
    b = wf.add_task(lambda xs: [x + 1 for x in xs], requires=[a], name="b")
    c = wf.add_task(lambda xs: sleepy(0.3) and xs, requires=[b], name="c")
    wf.add_task(len, requires=[c], name="d")
    with Client(address, set_as_default=False) as watcher:
        result = wf.run(distributed=True, address=address, hooks=[Watch(watcher)], keep_outputs=keep_outputs)
    assert result.tasks["d"].result == 1000
    a_kept = any(k.startswith(f"a-1-{result.run_id}") for k in seen["d"])
    assert a_kept == keep_outputs  # without keep_outputs, a's output was freed once b had run


SEED_SCRIPT = """
import bubbles

def extract():
    return [{"id": i, "amount": i * 1.5} for i in range(10)]

def transform(rows):
    return [r for r in rows if r["amount"] > 3]

def load(rows):
    return len(rows)

pipeline = bubbles.Pipeline()
pipeline.add_task(extract)
pipeline.add_task(transform)
pipeline.add_task(load)
print("output:", pipeline.run(distributed=True).output)
"""


@pytest.mark.slow
def test_seed_script_without_main_guard(tmp_path: Path) -> None:
    """``python etl.py`` with the run at top level: the LocalCluster's workers must not re-run the script."""
    import os
    import subprocess
    import sys

    from .dask_procs import SRC

    script = tmp_path / "etl.py"
    script.write_text(SEED_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k not in ("BUBBLES_DASK_ADDRESS", "DASK_SCHEDULER_ADDRESS")}
    env.update(PYTHONPATH=SRC, BUBBLES_HOME=str(tmp_path / "home"))
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("output: 7") == 1
    assert "started a LocalCluster" in done.stderr  # the log says so, with no logging set up by the script

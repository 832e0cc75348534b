"""Prometheus: /metrics served during a run, and pushes to a real Pushgateway at its end."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

import bubbles
from bubbles import Workflow
from bubbles.observe.prometheus import PrometheusExporter

from .conftest import free_port

SRC = str(Path(bubbles.__file__).parent.parent)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(text: str, metric: str, **labels: str) -> float | None:
    for (n, lbls), v in samples(text).items():
        if n == metric and all(dict(lbls).get(k) == want for k, want in labels.items()):
            return v
    return None


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


def test_metrics_served_during_the_run() -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"

    def scrape() -> str:
        return fetch(url)

    wf = Workflow("served")
    first = wf.add_task(lambda: list(range(5)), name="first")
    wf.add_task(lambda rows: scrape(), name="scrape", requires=[first])
    result = wf.run(hooks=[PrometheusExporter(port, addr="127.0.0.1")])
    text = result["scrape"].result
    assert value(text, "bubbles_tasks_running", workflow="served") == 1.0  # the scraping task itself
    assert value(text, "bubbles_task_runs_total", workflow="served", task="first", status="succeeded") == 1.0
    assert value(text, "bubbles_rows_total", workflow="served", task="first", direction="out") == 5.0
    assert value(text, "bubbles_task_duration_seconds_count", workflow="served", task="first") == 1.0
    assert value(text, "bubbles_run_start_timestamp_seconds", workflow="served") == pytest.approx(result.started_at)
    with pytest.raises(OSError):
        fetch(url)  # served during the run only


def test_push_to_pushgateway_keeps_last_success_after_a_failure(pushgateway: str) -> None:
    ok = Workflow("pushed")
    ok.add_task(lambda: [1, 2, 3], name="load")
    exporter = PrometheusExporter(pushgateway=pushgateway)
    result = ok.run(hooks=[exporter])
    assert exporter.pushed
    text = fetch(pushgateway + "/metrics")
    success = value(text, "bubbles_run_last_success_timestamp_seconds", workflow="pushed", job="bubbles")
    assert success == pytest.approx(result.ended_at)
    assert value(text, "bubbles_task_runs_total", workflow="pushed", task="load", status="succeeded") == 1.0
    assert value(text, "bubbles_rows_total", workflow="pushed", task="load", direction="out") == 3.0
    assert value(text, "bubbles_task_duration_seconds_bucket", workflow="pushed", task="load", le="+Inf") == 1.0

    def broken() -> None:
        raise RuntimeError("down")

    bad = Workflow("pushed")
    bad.add_task(broken, name="load")
    failed = bad.run(hooks=[PrometheusExporter(pushgateway=pushgateway)], raise_on_error=False)
    text = fetch(pushgateway + "/metrics")
    assert value(text, "bubbles_run_last_success_timestamp_seconds", workflow="pushed") == pytest.approx(result.ended_at)
    assert value(text, "bubbles_run_last_failure_timestamp_seconds", workflow="pushed") == pytest.approx(failed.ended_at)
    assert value(text, "bubbles_task_runs_total", workflow="pushed", task="load", status="failed") == 1.0


def test_cli_run_pushes_and_serves(pushgateway: str, tmp_path: Path) -> None:
    port = free_port()
    script = tmp_path / "flow.py"
    script.write_text(textwrap_flow(port))
    env = {**os.environ, "PYTHONPATH": SRC, "BUBBLES_METRICS_ADDR": "127.0.0.1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bubbles.cli.main",
            "run",
            str(script),
            "--metrics-port",
            str(port),
            "--pushgateway",
            pushgateway,
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    text = fetch(pushgateway + "/metrics")
    assert value(text, "bubbles_task_runs_total", workflow="cliflow", task="scrape", status="succeeded") == 1.0
    assert value(text, "bubbles_task_metric", workflow="cliflow", task="scrape", name="scraped_bytes") > 100


def textwrap_flow(port: int) -> str:
    return (
        "import urllib.request, bubbles\nfrom bubbles import Workflow\nwf = Workflow('cliflow')\n"
        "def scrape():\n"
        f"    body = urllib.request.urlopen('http://127.0.0.1:{port}/metrics', timeout=10).read()\n"
        "    assert b'bubbles_tasks_running' in body\n"
        "    bubbles.log_metric('scraped_bytes', len(body))\n"
        "wf.add_task(scrape)\n"
    )


def test_grafana_dashboard_queries_only_metrics_the_exporter_exports() -> None:
    import json
    import re

    root = Path(__file__).resolve().parents[2]
    dashboard = json.loads((root / "dashboards" / "grafana-bubbles.json").read_text())
    exporter = PrometheusExporter()
    wf = Workflow("dash")
    wf.add_task(lambda: [1], name="one")
    wf.run(hooks=[exporter])

    def broken() -> None:
        bubbles.log_metric("seen", 1)
        raise RuntimeError("x")

    bad = Workflow("dash")
    bad.add_task(broken, retries=1, retry_delay=0.01)
    bad.run(hooks=[exporter], raise_on_error=False)
    from prometheus_client import generate_latest

    exported = {
        s.name for family in text_string_to_metric_families(generate_latest(exporter.registry).decode()) for s in family.samples
    }
    used = set()
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            used |= set(re.findall(r"\b(bubbles_[a-z_]+)\b", target["expr"]))
    assert used and used <= exported, used - exported

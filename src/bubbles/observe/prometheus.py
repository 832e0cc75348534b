"""Prometheus metrics of runs: served on ``/metrics`` during a run, or pushed to a Pushgateway at its end.

``bubbles run --metrics-port PORT`` (``BUBBLES_METRICS_PORT``; bind address
``BUBBLES_METRICS_ADDR``, default ``0.0.0.0``) serves the metrics while the run goes;
``--pushgateway URL`` (``BUBBLES_PUSHGATEWAY``) pushes them when it ends, the convention for
batch jobs, with ``job="bubbles"`` and the grouping key ``workflow=<name>``. The push adds to what
the gateway holds (``pushadd``), so ``bubbles_run_last_success_timestamp_seconds`` keeps the time
of the last successful run while later runs fail — alert on ``time() - that > threshold``.

=============================================== ========= ===================================
metric                                          type      labels
=============================================== ========= ===================================
``bubbles_task_duration_seconds``               histogram workflow, task
``bubbles_task_runs_total``                     counter   workflow, task, status
``bubbles_task_retries_total``                  counter   workflow, task
``bubbles_task_cpu_seconds_total``              counter   workflow, task
``bubbles_rows_total``                          counter   workflow, task, direction (in/out)
``bubbles_bytes_total``                         counter   workflow, task, direction (in/out)
``bubbles_task_peak_memory_bytes``              gauge     workflow, task
``bubbles_task_metric``                         gauge     workflow, task, name (log_metric)
``bubbles_tasks_running``                       gauge     workflow
``bubbles_run_duration_seconds``                gauge     workflow, status
``bubbles_run_start_timestamp_seconds``         gauge     workflow
``bubbles_run_last_success_timestamp_seconds``  gauge     workflow
``bubbles_run_last_failure_timestamp_seconds``  gauge     workflow
``bubbles_quality_rows_total``                  counter   workflow, task, contract, rule,
                                                          outcome (checked/failed/quarantined)
=============================================== ========= ===================================

``bubbles_quality_rows_total`` counts, per data-contract rule, the rows checked, those that broke
it (``failed``) and those of them set aside (``quarantined``): checked ⊇ failed ⊇ quarantined. It
comes from the attempts' ``QualityResult`` events (:mod:`bubbles.data.quality`), also those of
attempts that were retried.

The ``task`` label of a ``map`` item or ``ParallelTask`` member is its group's name, to keep the
number of series bounded.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["PrometheusExporter"]

log = logging.getLogger("bubbles")

_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, float("inf"))


class PrometheusExporter:
    """Hook exporting run and task metrics to Prometheus (own registry, no global state).

    Args:
        port: serve ``/metrics`` on this port during the run (``None``: do not serve).
        addr: bind address for ``port``.
        pushgateway: push to this Pushgateway URL at the end of the run (``None``: do not push).
        job: the Pushgateway job name.

    Example:
        >>> from bubbles import Workflow
        >>> exporter = PrometheusExporter(pushgateway="http://127.0.0.1:9091")  # doctest: +SKIP
        >>> Workflow("nightly", hooks=[exporter])                                # doctest: +SKIP
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        addr: str = "0.0.0.0",
        pushgateway: str | None = None,
        job: str = "bubbles",
        push_timeout: float = 10.0,
    ) -> None:
        try:
            import prometheus_client as pc
        except ImportError as exc:
            from .._errors import MissingDependencyError

            raise MissingDependencyError("Prometheus export", "prometheus-client", "prometheus") from exc
        self.port = port
        self.addr = addr
        self.pushgateway = pushgateway
        self.job = job
        self.push_timeout = push_timeout
        self.registry = pc.CollectorRegistry()
        self.pushed = False
        self._server: Any = None
        r = self.registry
        self.duration = pc.Histogram(
            "bubbles_task_duration_seconds", "Wall time of task attempts.", ["workflow", "task"], buckets=_BUCKETS, registry=r
        )
        self.runs = pc.Counter(
            "bubbles_task_runs_total",
            "Task attempts by final status (retried attempts: status=retried).",
            ["workflow", "task", "status"],
            registry=r,
        )
        self.retries = pc.Counter(
            "bubbles_task_retries_total", "Task attempts that failed and were retried.", ["workflow", "task"], registry=r
        )
        self.cpu = pc.Counter(
            "bubbles_task_cpu_seconds_total", "CPU time of task attempts (thread CPU).", ["workflow", "task"], registry=r
        )
        self.rows = pc.Counter(
            "bubbles_rows_total", "Rows read (in) and produced (out) by tasks.", ["workflow", "task", "direction"], registry=r
        )
        self.bytes = pc.Counter(
            "bubbles_bytes_total", "Bytes read (in) and produced (out) by tasks.", ["workflow", "task", "direction"], registry=r
        )
        self.memory = pc.Gauge(
            "bubbles_task_peak_memory_bytes",
            "Peak RSS of the process while the task ran (latest).",
            ["workflow", "task"],
            registry=r,
        )
        self.custom = pc.Gauge(
            "bubbles_task_metric",
            "Custom metrics from bubbles.log_metric (latest value).",
            ["workflow", "task", "name"],
            registry=r,
        )
        self.running = pc.Gauge("bubbles_tasks_running", "Task attempts running now.", ["workflow"], registry=r)
        self.run_duration = pc.Gauge(
            "bubbles_run_duration_seconds", "Wall time of the last run.", ["workflow", "status"], registry=r
        )
        self.run_start = pc.Gauge(
            "bubbles_run_start_timestamp_seconds", "Start time of the last run (Unix time).", ["workflow"], registry=r
        )
        self.quality = pc.Counter(
            "bubbles_quality_rows_total",
            "Rows checked by data-contract rules, rows that broke them (failed) and rows set aside (quarantined).",
            ["workflow", "task", "contract", "rule", "outcome"],
            registry=r,
        )
        self.last_success: Any = None
        self.last_failure: Any = None
        self._pc = pc

    def _status_gauge(self, name: str, text: str) -> Any:
        return self._pc.Gauge(name, text, ["workflow"], registry=self.registry)

    # -- hook API ---------------------------------------------------------------------------
    def on_run_start(self, *, workflow: str, started_at: float, **future_kwargs: Any) -> None:
        self.run_start.labels(workflow).set(started_at)
        self.running.labels(workflow).set(0)
        if self.port is not None and self._server is None:
            started = self._pc.start_http_server(self.port, addr=self.addr, registry=self.registry)
            self._server = started[0] if isinstance(started, tuple) else started

    def on_task_start(self, *, workflow: str, **future_kwargs: Any) -> None:
        self.running.labels(workflow).inc()

    def on_task_retry(
        self,
        *,
        workflow: str,
        task: str,
        group: str | None = None,
        duration: float | None = None,
        metrics: dict[str, float] | None = None,
        events: list[Any] | None = None,
        **future_kwargs: Any,
    ) -> None:
        name = group or task
        self.running.labels(workflow).dec()
        self.retries.labels(workflow, name).inc()
        self.runs.labels(workflow, name, "retried").inc()
        self._observe(workflow, name, duration, metrics)
        self._quality(workflow, name, events)

    def on_task_end(
        self,
        *,
        workflow: str,
        task: str,
        status: str,
        attempt: int,
        group: str | None = None,
        duration: float | None = None,
        metrics: dict[str, float] | None = None,
        events: list[Any] | None = None,
        **future_kwargs: Any,
    ) -> None:
        name = group or task
        if attempt and status in ("succeeded", "failed"):
            self.running.labels(workflow).dec()
            self._observe(workflow, name, duration, metrics)
            self._quality(workflow, name, events)
        self.runs.labels(workflow, name, status).inc()

    def _quality(self, workflow: str, name: str, events: list[Any] | None) -> None:
        for event in events or ():
            if getattr(event, "kind", None) != "quality_result":
                continue
            for outcome, value in (("checked", event.rows_checked), ("failed", event.rows_failed),
                                   ("quarantined", event.rows_quarantined)):
                self.quality.labels(workflow, name, event.contract, event.rule, outcome).inc(max(value, 0))

    def _observe(self, workflow: str, name: str, duration: float | None, metrics: dict[str, float] | None) -> None:
        if duration is not None:
            self.duration.labels(workflow, name).observe(duration)
        for key, value in (metrics or {}).items():
            if key == "cpu_time":
                self.cpu.labels(workflow, name).inc(max(value, 0.0))
            elif key in ("rows_in", "rows_out"):
                self.rows.labels(workflow, name, key[5:]).inc(value)
            elif key in ("bytes_in", "bytes_out"):
                self.bytes.labels(workflow, name, key[6:]).inc(value)
            elif key == "peak_memory":
                self.memory.labels(workflow, name).set(value)
            elif key != "execution_time":
                self.custom.labels(workflow, name, key).set(value)

    def on_run_end(self, *, workflow: str, status: str, ended_at: float, duration: float, **future_kwargs: Any) -> None:
        self.run_duration.labels(workflow, status).set(duration)
        self.running.labels(workflow).set(0)
        # only the gauge of this outcome is registered, so a push keeps the other one's last value
        if status == "succeeded":
            if self.last_success is None:
                self.last_success = self._status_gauge(
                    "bubbles_run_last_success_timestamp_seconds", "End time of the last successful run (Unix time)."
                )
            self.last_success.labels(workflow).set(ended_at)
        else:
            if self.last_failure is None:
                self.last_failure = self._status_gauge(
                    "bubbles_run_last_failure_timestamp_seconds", "End time of the last failed or cancelled run (Unix time)."
                )
            self.last_failure.labels(workflow).set(ended_at)
        if self.pushgateway:
            self.push(workflow)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def push(self, workflow: str) -> None:
        """Push the registry to the Pushgateway (``pushadd``: other metrics of the group are kept)."""
        if not self.pushgateway:
            return
        try:
            self._pc.pushadd_to_gateway(
                self.pushgateway,
                job=self.job,
                grouping_key={"workflow": workflow},
                registry=self.registry,
                timeout=self.push_timeout,
            )
            self.pushed = True
        except OSError as exc:
            log.warning("bubbles: could not push metrics to the Pushgateway %s: %s", self.pushgateway, exc)

"""``MetricsCollector``: per-task, per-attempt metrics of runs, in memory.

Attach it to one task (``handle.attach(mc)``) or to a whole workflow (``wf.attach(mc)``); it
subscribes to the runner's events like any hook. Each attempt becomes one record with the
built-in metrics (``execution_time``, ``cpu_time``, ``rows_in``/``rows_out``,
``bytes_in``/``bytes_out`` when known), the custom ones from ``bubbles.log_metric``, and
``attempt``, ``status``, ``started_at``, ``ended_at``, ``worker``.
"""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["MetricsCollector"]

_FIELDS = ("run_id", "workflow", "task", "attempt", "status", "started_at", "ended_at", "worker")


class MetricsCollector:
    """Collects metrics of task attempts. Thread-safe; one collector may watch many runs.

    Example:
        >>> from bubbles import Workflow, MetricsCollector
        >>> wf = Workflow("example")
        >>> mc = MetricsCollector()
        >>> wf.add_task(lambda: [1, 2, 3], name="extract").attach(mc)  # doctest: +ELLIPSIS
        <TaskHandle 'extract' of 'example'>
        >>> _ = wf.run(executor="serial")
        >>> mc.get_metric("rows_out")
        3
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.records: list[dict[str, Any]] = []

    def __repr__(self) -> str:
        return f"<MetricsCollector: {len(self.records)} attempts of {len(self.tasks)} tasks>"

    # -- hook API ---------------------------------------------------------------------------
    def on_task_retry(
        self,
        *,
        run_id: str,
        workflow: str,
        task: str,
        attempt: int,
        metrics: dict[str, float],
        duration: float | None,
        error: BaseException | None = None,
        **future_kwargs: Any,
    ) -> None:
        self._record(
            run_id=run_id,
            workflow=workflow,
            task=task,
            attempt=attempt,
            status="retrying",
            metrics=metrics,
            error=error,
            **future_kwargs,
        )

    def on_task_end(
        self, *, run_id: str, workflow: str, task: str, attempt: int, status: str, metrics: dict[str, float], **future_kwargs: Any
    ) -> None:
        if status not in ("succeeded", "failed") and not attempt:
            return  # never ran (upstream failed, skipped): no attempt to measure
        self._record(
            run_id=run_id, workflow=workflow, task=task, attempt=attempt, status=status, metrics=metrics, **future_kwargs
        )

    def _record(self, *, metrics: dict[str, float], error: BaseException | None = None, **fields: Any) -> None:
        record = {name: fields.get(name) for name in _FIELDS}
        record["error"] = f"{type(error).__name__}: {error}" if error is not None else None
        record.update(metrics or {})
        with self._lock:
            self.records.append(record)

    # -- reading ----------------------------------------------------------------------------
    @property
    def tasks(self) -> list[str]:
        """Names of the tasks seen, in first-seen order."""
        return list(dict.fromkeys(r["task"] for r in self.records))

    def get_metric(self, name: str, task: str | None = None) -> Any:
        """The latest value of metric ``name``.

        For a collector that saw one task, the value itself; otherwise ``{task: value}``
        (or the value for ``task`` when given). ``None`` where the metric was not recorded.
        """
        latest: dict[str, Any] = {}
        with self._lock:
            for record in self.records:
                latest[record["task"]] = record.get(name)
        if task is not None:
            return latest.get(task)
        if len(latest) == 1:
            return next(iter(latest.values()))
        return latest

    def summary(self) -> dict[str, dict[str, Any]]:
        """Per task: attempts, final status, total execution time, rows out."""
        out: dict[str, dict[str, Any]] = {}
        with self._lock:
            for r in self.records:
                s = out.setdefault(r["task"], {"attempts": 0, "status": None, "execution_time": 0.0, "rows_out": None})
                s["attempts"] += 1
                s["status"] = r["status"]
                s["execution_time"] += r.get("execution_time") or 0.0
                if r.get("rows_out") is not None:
                    s["rows_out"] = r["rows_out"]
        return out

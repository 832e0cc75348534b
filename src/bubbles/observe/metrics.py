"""``MetricsCollector``: per-task, per-attempt metrics of runs, in memory.

Attach it to one task (``handle.attach(mc)``) or to a whole workflow (``wf.attach(mc)``); it
subscribes to the runner's events like any hook. Each attempt becomes one record with the
built-in metrics (``execution_time``, ``cpu_time``, ``peak_memory``, ``rows_in``/``rows_out``,
``bytes_in``/``bytes_out`` when known), the custom ones from ``bubbles.log_metric``, and
``attempt``, ``status``, ``started_at``, ``ended_at``, ``worker``.

What each built-in metric means:

* ``execution_time``: wall seconds of the attempt, measured where it ran.
* ``cpu_time``: CPU seconds of the thread that ran the attempt (threads the task starts itself
  are not counted).
* ``peak_memory``: bytes, the peak RSS of the process while the attempt ran (see
  :mod:`bubbles.observe.memory` for what that means per executor).
* ``rows_*``/``bytes_*``: counted for Arrow tables, record batches and lists of them, pandas and
  polars frames, numpy arrays, lists and bytes (see :mod:`bubbles.observe.sizes`).

The event methods only keep the event's fields (so watching a 10,000-task run stays cheap);
records are built when read.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas
    import pyarrow
    from matplotlib.figure import Figure

__all__ = ["MetricsCollector"]

_FIELDS = ("run_id", "workflow", "task", "attempt", "status", "started_at", "ended_at", "worker")
_N = len(_FIELDS)
_TASK = _FIELDS.index("task")
_BUILTIN = ("execution_time", "cpu_time", "peak_memory", "rows_in", "rows_out", "bytes_in", "bytes_out")


def _flat(status: str, f: dict[str, Any]) -> tuple[Any, ...]:
    metrics = f.get("metrics")
    return (
        f.get("run_id"),
        f.get("workflow"),
        f.get("task"),
        f.get("attempt"),
        status,
        f.get("started_at"),
        f.get("ended_at"),
        f.get("worker"),
        f.get("error"),
        tuple(metrics.items()) if metrics else (),
    )


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
        self._raw: list[tuple[Any, ...]] = []
        self._built: list[dict[str, Any]] = []

    def __repr__(self) -> str:
        return f"<MetricsCollector: {len(self.records)} attempts of {len(self.tasks)} tasks>"

    # -- hook API ---------------------------------------------------------------------------
    # Each attempt is kept as a flat tuple of plain values (metrics as a tuple of pairs): the
    # garbage collector stops tracking such tuples, so a 10,000-task run adds no GC work.
    def on_task_retry(self, **fields: Any) -> None:
        self._raw.append(_flat("retrying", fields))  # list.append is atomic: no lock on the hot path

    def on_task_end(self, **fields: Any) -> None:
        if fields.get("attempt") or fields.get("status") in ("succeeded", "failed"):
            self._raw.append(_flat(fields["status"], fields))
        # else: never ran (upstream failed, skipped): no attempt to measure

    # -- reading ----------------------------------------------------------------------------
    @property
    def records(self) -> list[dict[str, Any]]:
        """One dict per attempt: the fields above, ``error`` (text) and every metric."""
        with self._lock:
            for flat in self._raw[len(self._built) :]:
                record = dict(zip(_FIELDS, flat[:_N], strict=True))
                error = flat[_N]
                record["error"] = f"{type(error).__name__}: {error}" if error is not None else None
                record.update(flat[_N + 1])
                self._built.append(record)
            return list(self._built)

    @property
    def tasks(self) -> list[str]:
        """Names of the tasks seen, in first-seen order."""
        return list(dict.fromkeys(flat[_TASK] for flat in self._raw))

    def get_metric(self, name: str, task: str | None = None) -> Any:
        """The latest value of metric ``name``.

        For a collector that saw one task, the value itself; otherwise ``{task: value}``
        (or the value for ``task`` when given). ``None`` where the metric was not recorded.

        Example:
            >>> mc = MetricsCollector()
            >>> mc.get_metric("execution_time")
            {}
        """
        latest: dict[str, Any] = {}
        for record in self.records:
            latest[record["task"]] = record.get(name)
        if task is not None:
            return latest.get(task)
        if len(latest) == 1:
            return next(iter(latest.values()))
        return latest

    def summary(self) -> dict[str, dict[str, Any]]:
        """Per task: attempts, final status, total execution and CPU time, peak memory, rows in and out.

        Example:
            >>> MetricsCollector().summary()
            {}
        """
        out: dict[str, dict[str, Any]] = {}
        for r in self.records:
            s = out.setdefault(
                r["task"],
                {
                    "attempts": 0,
                    "status": None,
                    "execution_time": 0.0,
                    "cpu_time": 0.0,
                    "peak_memory": None,
                    "rows_in": None,
                    "rows_out": None,
                },
            )
            s["attempts"] += 1
            s["status"] = r["status"]
            s["execution_time"] += r.get("execution_time") or 0.0
            s["cpu_time"] += r.get("cpu_time") or 0.0
            if r.get("peak_memory") is not None:
                s["peak_memory"] = max(s["peak_memory"] or 0, r["peak_memory"])
            for key in ("rows_in", "rows_out"):
                if r.get(key) is not None:
                    s[key] = r[key]
        return out

    def clear(self) -> None:
        """Forget everything collected."""
        with self._lock:
            self._raw.clear()
            self._built.clear()

    # -- tables and plots -------------------------------------------------------------------
    def _columns(self) -> tuple[list[dict[str, Any]], list[str]]:
        records = self.records
        names = [*_FIELDS, "error", *_BUILTIN]
        for r in records:
            for key in r:
                if key not in names:
                    names.append(key)
        return records, names

    def to_arrow(self) -> pyarrow.Table:
        """One row per attempt as an Arrow table (custom metrics become columns).

        Example:
            >>> MetricsCollector().to_arrow().num_rows
            0
        """
        import pyarrow as pa

        records, names = self._columns()
        columns: dict[str, list[Any]] = {name: [r.get(name) for r in records] for name in names}
        types = {name: pa.float64() for name in names if name not in (*_FIELDS, "error")}
        types.update({"attempt": pa.int64(), "started_at": pa.float64(), "ended_at": pa.float64()})
        for name in ("peak_memory", "rows_in", "rows_out", "bytes_in", "bytes_out"):
            types[name] = pa.int64()
            columns[name] = [None if v is None else int(v) for v in columns[name]]
        fields = [pa.field(name, types.get(name, pa.string())) for name in names]
        return pa.Table.from_pydict(columns, schema=pa.schema(fields))

    def to_pandas(self) -> pandas.DataFrame:
        """One row per attempt as a pandas DataFrame (see :meth:`to_arrow`).

        Example:
            >>> len(MetricsCollector().to_pandas())
            0
        """
        return self.to_arrow().to_pandas()

    def plot(self) -> Figure:
        """A matplotlib figure: timeline of attempts by worker, peak memory and rows per task.

        Example:
            >>> fig = MetricsCollector().plot()
            >>> len(fig.axes)
            3
        """
        from .plots import plot_records

        return plot_records(self.records)

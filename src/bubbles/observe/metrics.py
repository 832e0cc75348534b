"""``MetricsCollector``: per-task, per-attempt metrics of runs, in memory.

Attach it to one task (``handle.attach(mc)``) or to a whole workflow (``wf.attach(mc)``). It
is a hook that only uses ``on_run_start``: it keeps the run's live view
(:mod:`bubbles.engine.live`) and reads the attempts from it when you ask for records, so a run
pays nothing per task for being collected. Each attempt becomes one record with the
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

Records are built when read (``records``, ``get_metric``, ``to_arrow``, ...), also while the
run goes; until then the collector holds the run's journal (not the tasks' outputs).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from .._errors import describe_error

if TYPE_CHECKING:
    import pandas
    import pyarrow
    from matplotlib.figure import Figure

__all__ = ["MetricsCollector"]

_FIELDS = ("run_id", "workflow", "task", "attempt", "status", "started_at", "ended_at", "worker")
_N = len(_FIELDS)
_TASK = _FIELDS.index("task")
_BUILTIN = ("execution_time", "cpu_time", "peak_memory", "rows_in", "rows_out", "bytes_in", "bytes_out")


def _flat(run_id: str, workflow: str, e: Any) -> tuple[Any, ...]:
    """An attempt record (:class:`bubbles.engine.attempt.Attempt`) as a flat tuple of plain values."""
    metrics = e.metrics
    return (
        run_id,
        workflow,
        e.task,
        e.attempt,
        e.status,
        e.started_at,
        e.ended_at,
        e.worker,
        e.error,
        tuple(metrics.items()) if metrics else (),
    )


class _Watch:
    """A run whose attempts are still to be read: its live view, the tasks watched, how far read."""

    __slots__ = ("live", "scope", "seen")

    def __init__(self, live: Any, scope: frozenset[str] | None) -> None:
        self.live = live
        self.scope = scope
        self.seen = 0


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
        self._watching: list[_Watch] = []
        self._raw: list[tuple[Any, ...]] = []
        self._built: list[dict[str, Any]] = []

    def __repr__(self) -> str:
        return f"<MetricsCollector: {len(self.records)} attempts of {len(self.tasks)} tasks>"

    # -- hook API ---------------------------------------------------------------------------
    def on_run_start(self, *, live: Any = None, scope: frozenset[str] | None = None, **future_kwargs: Any) -> None:
        if live is None:
            return
        with self._lock:
            self._read_locked()  # a run watched before: read what is left of it, let it go
            self._watching.append(_Watch(live, scope))

    # -- reading ----------------------------------------------------------------------------
    def _read_locked(self) -> None:
        """Turn the attempts appended since the last read into flat tuples of plain values.

        (Metrics become a tuple of pairs: the garbage collector stops tracking such tuples, so
        keeping a 10,000-task run adds no GC work.)
        """
        still: list[_Watch] = []
        for w in self._watching:
            live, scope = w.live, w.scope
            finished = live.finished  # read first: once set, nothing more is appended
            entries = live.attempts
            n = len(entries)
            raw = self._raw
            for e in entries[w.seen : n]:
                if scope is not None and e.task not in scope and e.group not in scope:
                    continue
                if e.attempt or e.status in ("succeeded", "failed"):  # else it never ran: nothing measured
                    raw.append(_flat(live.run_id, live.workflow, e))
            w.seen = n
            if not finished:
                still.append(w)
        self._watching = still

    @property
    def records(self) -> list[dict[str, Any]]:
        """One dict per attempt: the fields above, ``error`` (text) and every metric."""
        with self._lock:
            self._read_locked()
            for flat in self._raw[len(self._built) :]:
                record = dict(zip(_FIELDS, flat[:_N], strict=True))
                error = flat[_N]
                record["error"] = describe_error(error) if error is not None else None
                record.update(flat[_N + 1])
                self._built.append(record)
            return list(self._built)

    @property
    def tasks(self) -> list[str]:
        """Names of the tasks seen, in first-seen order."""
        with self._lock:
            self._read_locked()
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
            self._read_locked()
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

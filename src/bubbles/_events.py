"""Typed task events: what an attempt reports beyond its metrics, one class per kind.

A connector or check calls :func:`bubbles._context.record_event` with one of these; the event
travels with the attempt's record (:class:`bubbles.engine.attempt.Attempt`, field ``events``)
from wherever the task ran to the run's journal, its hooks, the run store and ``TaskRun``. A
new kind of per-attempt information is one subclass here: the store keeps every kind in one
table (``task_events``: kind + JSON), and readers rebuild them with :func:`event_from_dict`.

Subclasses are frozen dataclasses of plain values (they pickle across processes and Dask and
turn into JSON): give them a ``kind`` and fields. A kind that deserves its own table in the store
(datasets, quality results) names it in ``store_table`` and returns its row from
:meth:`TaskEvent.store_row` (the table's columns are in :mod:`bubbles.store.schema`); every other
kind goes to ``task_events`` as JSON.

Example:
    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class Note(TaskEvent):
    ...     kind = "note"
    ...     text: str = ""
    >>> event_from_dict("note", Note("hi").to_dict())
    Note(text='hi')
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

__all__ = [
    "Checkpoint",
    "Dataset",
    "Fused",
    "LineageEdge",
    "QualityResult",
    "QuarantineWrite",
    "Reuse",
    "TaskEvent",
    "Watermark",
    "event_from_dict",
    "event_kinds",
]

_KINDS: dict[str, type[TaskEvent]] = {}


@dataclass(frozen=True)
class TaskEvent:
    """Base of every typed task event."""

    kind: ClassVar[str] = "event"
    store_table: ClassVar[str | None] = None  # its own table in the run store, if any

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _KINDS[cls.kind] = cls

    def to_dict(self) -> dict[str, Any]:
        """The event's fields as plain values (what the run store keeps as JSON)."""
        return asdict(self)

    def store_row(self, run_id: str, task: str, attempt: int, mask: Any) -> tuple[Any, ...]:
        """The row of ``store_table`` for this event (text masked with ``mask``)."""
        raise TypeError(f"{type(self).__name__} has no store_table row")

    def masked(self, mask: Any) -> TaskEvent:
        """A copy with every text field passed through ``mask`` (secrets never leave a worker)."""
        changes = {f.name: mask(v) for f in fields(self) if isinstance((v := getattr(self, f.name)), str)}
        if not changes or all(changes[k] == getattr(self, k) for k in changes):
            return self
        return type(self)(**{**self.to_dict(), **changes})


def event_kinds() -> dict[str, type[TaskEvent]]:
    """Every known event kind and its class."""
    return dict(_KINDS)


def event_from_dict(kind: str, data: dict[str, Any]) -> TaskEvent | dict[str, Any]:
    """Rebuild an event from its stored form; an unknown kind (a newer bubbles) stays a dict."""
    cls = _KINDS.get(kind)
    if cls is None:
        return {"kind": kind, **data}
    known = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class Dataset(TaskEvent):
    """A dataset a task read or wrote, as the connector that touched it reports it.

    Named by the OpenLineage convention: ``namespace`` says where (``file://host``,
    ``postgres://host:5432``, ``duckdb:///path/to/warehouse.duckdb``, ``https://api.host``) and
    ``name`` what (``/data/orders.csv``, ``shop.public.orders``, ``/v1/orders``).

    Attributes:
        direction: ``read`` or ``write``.
        dataset_kind: ``file``, ``table``, ``api`` or ``delivery``.
        format: ``csv``, ``parquet``, ``json``, ... (files).
        rows, bytes: what was read or written, when known.
        content_hash: of a file written or delivered (``xxh3:...`` or ``sha256:...``).
        schema: ``[[column, type], ...]`` when known.
        at: epoch seconds.
    """

    kind = "dataset"
    store_table = "datasets"
    direction: str = "read"
    namespace: str = ""
    name: str = ""
    dataset_kind: str = "file"
    format: str | None = None
    rows: int | None = None
    bytes: int | None = None
    content_hash: str | None = None
    schema: list[list[str]] | None = None
    at: float = field(default_factory=time.time)

    def store_row(self, run_id: str, task: str, attempt: int, mask: Any) -> tuple[Any, ...]:
        import json

        schema = json.dumps(self.schema) if self.schema is not None else None
        return (
            run_id,
            task,
            attempt,
            self.direction,
            self.namespace,
            mask(self.name),
            self.dataset_kind,
            self.format,
            self.rows,
            self.bytes,
            self.content_hash,
            schema,
            self.at,
        )


@dataclass(frozen=True)
class Checkpoint(TaskEvent):
    """A task's output, kept so a resumed run or a cache hit can reuse it instead of running the task.

    Attributes:
        key: what the output depends on — the task's code, parameters and inputs — as one
            fingerprint; a later run reuses the output only for the same key.
        code, params, inputs: the parts of the key (``inputs`` maps each upstream task to the
            fingerprint of its output), so a rerun can say what changed.
        fingerprint: of the output itself (what downstream keys are made of).
        format: ``arrow`` (an Arrow IPC file), ``pickle`` (a file), ``json`` (small values, inline
            in ``value``), ``plan`` (a lazy table's plan, a small file: see
            :mod:`bubbles.session.checkpoints`) or ``none`` (the task returned ``None``).
        location: the file, or ``None`` when inline.
        bytes: size of the file.
        expires_at: for a cached task (``cache=``), when the entry stops being reused.
        content_hash: the file's ``xxh3:`` hash; a file whose bytes differ is never reused.
    """

    kind = "checkpoint"
    store_table = "checkpoints"
    key: str = ""
    code: str | None = None
    params: str | None = None
    inputs: str | None = None  # JSON {upstream task: fingerprint}
    fingerprint: str | None = None
    format: str = "none"
    location: str | None = None
    value: str | None = None  # the JSON of a small output
    bytes: int | None = None
    expires_at: float | None = None
    at: float = field(default_factory=time.time)
    content_hash: str | None = None  # of the file (``xxh3:...``), checked before it is reused

    def store_row(self, run_id: str, task: str, attempt: int, mask: Any) -> tuple[Any, ...]:
        return (
            run_id,
            task,
            attempt,
            self.key,
            self.code,
            self.params,
            self.inputs,
            self.fingerprint,
            self.format,
            self.location,
            self.value,
            self.bytes,
            self.expires_at,
            self.at,
            self.content_hash,
        )


@dataclass(frozen=True)
class Reuse(TaskEvent):
    """Why a task ran or was reused in a resumed or cached run: ``reused`` or ``ran``, and the reason."""

    kind = "reuse"
    action: str = "ran"
    reason: str = ""
    from_run: str | None = None


@dataclass(frozen=True)
class Watermark(TaskEvent):
    """A watermark an incremental read proposed (``name``, its new ``value`` as JSON text).

    The proposal itself waits in the store until the run settles; this event keeps it with the
    task, so a resumed run that reuses the task proposes it again (see bubbles.session.resume).
    """

    kind = "watermark"
    name: str = ""
    value: str = ""


@dataclass(frozen=True)
class LineageEdge(TaskEvent):
    """One step of lineage: a dataset (or one of its columns) a task wrote, and what it came from.

    Recorded when a connector writes data whose origin bubbles knows (a reader's table, a
    ``bubbles.sql`` result over such tables; see :mod:`bubbles.data.lineage`). ``column`` and
    ``input_column`` are ``None`` for a table-level edge ("the output derives from this input").

    Attributes:
        namespace, name, column: the dataset written (OpenLineage naming) and its column.
        input_namespace, input_name, input_column: where it came from.
        transformation: ``IDENTITY`` (the same values) or ``TRANSFORMATION`` (computed from them);
            ``None`` for table-level edges.
        note: why the lineage is coarser than columns, when it is (e.g. a query sqlglot cannot parse).
        at: epoch seconds.
    """

    kind = "lineage"
    store_table = "lineage"
    namespace: str = ""
    name: str = ""
    column: str | None = None
    input_namespace: str = ""
    input_name: str = ""
    input_column: str | None = None
    transformation: str | None = None
    note: str | None = None
    at: float = field(default_factory=time.time)

    def store_row(self, run_id: str, task: str, attempt: int, mask: Any) -> tuple[Any, ...]:
        return (
            run_id,
            task,
            attempt,
            self.namespace,
            mask(self.name),
            self.column,
            self.input_namespace,
            mask(self.input_name),
            self.input_column,
            self.transformation,
            mask(self.note) if self.note else None,
            self.at,
        )


@dataclass(frozen=True)
class QualityResult(TaskEvent):
    """One rule of a data contract, checked once over one batch (:mod:`bubbles.data.quality`).

    Attributes:
        contract: the contract's name.
        rule: the rule's name, ``column.check`` or ``table.check`` (``amount.range``, ``table.row_count``).
        check: what kind of check (``not_null``, ``unique``, ``range``, ``regex``, ``type``, ...).
        column: the column(s) it is about (comma-separated), if any.
        action: ``warn``, ``quarantine`` or ``fail``.
        rows_checked, rows_failed, rows_quarantined: rows seen, rows breaking the rule, and of
            those the rows set aside in quarantine.
        outcome: ``passed``, ``warned``, ``quarantined`` or ``failed`` (the task failed because of it).
        observed: what a table rule saw (``rows 0``, ``latest 2024-06-01 10:00:00``), else ``None``.
        examples: a few offending values as JSON text, PII columns masked.
        source: the file or table the rows came from, when known.
        at: epoch seconds.
    """

    kind = "quality_result"
    store_table = "quality_results"
    contract: str = ""
    rule: str = ""
    check: str = ""
    column: str | None = None
    action: str = "quarantine"
    rows_checked: int = 0
    rows_failed: int = 0
    rows_quarantined: int = 0
    outcome: str = "passed"
    observed: str | None = None
    examples: list[str] = field(default_factory=list)
    source: str | None = None
    at: float = field(default_factory=time.time)
    # the dataset checked, named as lineage names it (from the data's origin, else ``source``):
    # where OpenLineage's dataQualityAssertions facet goes; not a column of ``quality_results``
    namespace: str | None = None
    name: str | None = None

    def store_row(self, run_id: str, task: str, attempt: int, mask: Any) -> tuple[Any, ...]:
        import json

        return (
            run_id,
            task,
            attempt,
            self.contract,
            self.rule,
            self.check,
            self.column,
            self.action,
            self.rows_checked,
            self.rows_failed,
            self.rows_quarantined,
            self.outcome,
            mask(self.observed) if self.observed else self.observed,
            mask(json.dumps(self.examples)),
            mask(self.source) if self.source else self.source,
            self.at,
        )

    def masked(self, mask: Any) -> TaskEvent:
        copy = super().masked(mask)
        examples = [mask(e) for e in self.examples]
        if examples == self.examples:
            return copy
        return type(self)(**{**copy.to_dict(), "examples": examples})


@dataclass(frozen=True)
class QuarantineWrite(TaskEvent):
    """Rows a task set aside in a quarantine sink: bad lines of a reader, or rows a contract rejected.

    Attributes:
        sink: where (a Parquet dataset folder, or ``URL#table`` for a database table).
        sink_kind: ``parquet`` or ``table``.
        part: the file (or table) appended to.
        source: the file or table the rows came from.
        contract: the contract that rejected them (``None`` for bad lines).
        rows: how many rows were appended.
        at: epoch seconds.
    """

    kind = "quarantine_write"
    store_table = "quarantines"
    sink: str = ""
    sink_kind: str = "parquet"
    part: str = ""
    source: str | None = None
    contract: str | None = None
    rows: int = 0
    at: float = field(default_factory=time.time)

    def store_row(self, run_id: str, task: str, attempt: int, mask: Any) -> tuple[Any, ...]:
        return (
            run_id,
            task,
            attempt,
            mask(self.sink),
            self.sink_kind,
            mask(self.part),
            mask(self.source) if self.source else self.source,
            self.contract,
            self.rows,
            self.at,
        )


@dataclass(frozen=True)
class Fused(TaskEvent):
    """Steps of several tasks that ran as one engine plan in this task (see :mod:`bubbles.data.lazy`).

    A read planned by one task and a query planned by another run where their result is used,
    in one DuckDB statement; the task that ran it records this event. ``bubbles show`` prints it.

    Attributes:
        engine: ``duckdb``.
        tasks: the tasks whose steps ran, in plan order (comma-separated).
        plan: the steps, one line: ``extract: read_csv /data/orders.csv (2,000,000 rows) -> transform: sql -> ...``.
        steps: the same as JSON: ``[{"task", "step", "source", "rows", "parsed_by", "fallback"}, ...]``.
        fallback: why files were read by the bubbles reader instead of DuckDB's, when they were.
        rows_out: rows the plan produced.
    """

    kind = "fused"
    engine: str = "duckdb"
    tasks: str = ""
    plan: str = ""
    steps: str = "[]"
    fallback: str | None = None
    rows_out: int | None = None
    at: float = field(default_factory=time.time)

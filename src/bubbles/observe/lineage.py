"""OpenLineage events for every run and task: the observer behind the ``lineage`` settings.

:class:`LineageEmitter` is a hook that is on for every run unless ``lineage`` is ``off``. It
reads the run's journal (:mod:`bubbles.engine.live`) from its own thread, as the run history
does, and turns what it finds into OpenLineage run events built and sent with the
``openlineage-python`` client:

==========  =====================================================================================
run         ``START`` when the run starts; ``COMPLETE``, ``FAIL`` or ``ABORT`` (cancelled) when it ends.
            Job ``{lineage_namespace}`` / ``{workflow}``.
task        ``START`` (at the attempt's start time), ``RUNNING`` for an attempt that failed and is
            retried (with its error), then ``COMPLETE``, ``FAIL`` or ``ABORT``. Job
            ``{workflow}.{task}``, with a ``parent`` facet pointing at the run. A task that never ran
            (``upstream_failed``, ``skipped``) has no run, hence no events. With ``lineage_tasks =
            "data"`` (the default) a task that succeeded without touching data (no dataset, no
            lineage, no quality result) has none either: it adds nothing to lineage, and building
            its two events would cost a 10,000-task run of tiny tasks ~300 µs a task;
            ``lineage_tasks = "all"`` sends them for every task.
==========  =====================================================================================

A task's last event carries its datasets: the inputs it read (and those its written data derives
from through in-memory hand-overs, see :mod:`bubbles.data.lineage`), and the outputs it wrote
with their ``schema``, ``columnLineage``, ``version`` (the content hash), ``outputStatistics``
(rows, bytes) and data-quality facets (:func:`quality_facets`). Run ids are UUIDs derived from
the bubbles run id (and task name), so the same run always has the same OpenLineage ids.

Transports (settings, each also ``BUBBLES_*`` and ``bubbles.toml``):

* ``lineage = "file"`` (default): each event is a line of ``lineage.jsonl`` in the bubbles home;
  ``"console"``: each event is printed to stderr; ``"off"``: no lineage at all.
* ``lineage_url = "http://marquez:5000"``: also POST each event to that OpenLineage backend
  (``lineage_api_key`` for a bearer token, ``lineage_timeout`` seconds per request). A backend
  that cannot be reached never fails or holds up a run: after the first failure the run's
  remaining events go to ``lineage-outbox/RUN_ID.jsonl`` in the home without being tried, and
  the next run that has a ``lineage_url`` sends the outbox first.

Secrets are masked (with the run's own mask) in every name and message before an event is built.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .._errors import describe_error
from .._secrets import mask as mask_here

__all__ = ["PRODUCER", "LineageEmitter", "quality_facets", "run_uuid", "task_uuid"]

log = logging.getLogger("bubbles")

PRODUCER = "https://github.com/python-bubbles/python-bubbles"
OUTBOX = "lineage-outbox"
_END_STATES = {"succeeded": "COMPLETE", "failed": "FAIL", "cancelled": "ABORT"}
_warned: set[str] = set()


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts or 0.0, UTC).isoformat()


def run_uuid(run_id: str, started_at: float) -> str:
    """The OpenLineage run id of a bubbles run: a UUID (v7, time-ordered) derived from the run id and start."""
    from openlineage.client.uuid import generate_static_uuid

    return str(generate_static_uuid(datetime.fromtimestamp(started_at, UTC), run_id.encode()))


def task_uuid(run_id: str, task: str, started_at: float) -> str:
    """The OpenLineage run id of one task of a run (``started_at`` is the run's start)."""
    from openlineage.client.uuid import generate_static_uuid

    return str(generate_static_uuid(datetime.fromtimestamp(started_at, UTC), f"{run_id}/{task}".encode()))


# events every task of a persisting or resumed run carries, which say nothing about data
_BOOKKEEPING = frozenset({"checkpoint", "reuse"})


def quality_facets(dataset: tuple[str, str], events: Iterable[Any]) -> dict[str, Any]:
    """The data-quality facets of ``dataset`` from a task's events: the place data-quality results plug in.

    Each ``quality_result`` event (one rule of a data contract, :mod:`bubbles.data.quality`) whose
    checked dataset is ``dataset`` becomes one assertion: the rule's name (``amount.range``), passed
    when no row broke it, and its column; together one ``dataQualityAssertions`` facet.
    """
    from openlineage.client.generated.data_quality_assertions_dataset import Assertion, DataQualityAssertionsDatasetFacet

    assertions = [
        Assertion(assertion=f"{e.contract}.{e.rule}", success=not e.rows_failed, column=e.column)
        for e in events
        if getattr(e, "kind", "") == "quality_result" and (e.namespace, e.name) == dataset
    ]
    if not assertions:
        return {}
    return {"dataQualityAssertions": DataQualityAssertionsDatasetFacet(assertions=assertions, producer=PRODUCER)}


class LineageEmitter:
    """Hook that sends OpenLineage events for runs and tasks (see the module docstring).

    Args:
        transport: ``"file"``, ``"console"`` or ``None`` (only ``url``); default from the settings.
        url: an OpenLineage backend to POST events to; default the ``lineage_url`` setting.
        path: the JSON-lines file of the file transport (default ``lineage.jsonl`` in the home).
        flush_every: seconds between reads of the run's journal.

    Example:
        >>> from bubbles import Workflow
        >>> wf = Workflow("orders", hooks=[LineageEmitter(url="http://127.0.0.1:5000")])  # doctest: +SKIP
    """

    events = frozenset({"on_run_start", "on_run_end"})

    def __init__(self, transport: str | None = "settings", *, url: str | None = "settings", path: str | None = None,
                 flush_every: float = 1.0) -> None:
        self.transport, self.url, self.path, self.flush_every = transport, url, path, flush_every
        self._runs: dict[str, _RunEmitter] = {}
        self._lock = threading.Lock()

    def on_run_start(self, *, run_id: str, workflow: str, started_at: float, live: Any = None, settings: Any = None,
                     mask: Callable[[str], str] | None = None, params: dict[str, Any] | None = None,
                     **future_kwargs: Any) -> None:
        from .._settings import current_settings

        settings = settings or current_settings()
        try:
            sinks = _sinks(self, settings, mask or mask_here)
        except ImportError:
            _warn_once("missing", "bubbles: OpenLineage events need the openlineage-python client: "
                                  "pip install 'pybubbles[lineage]' (or set lineage = \"off\")")
            return
        emitter = _RunEmitter(self, run_id, workflow, started_at, live, settings, mask or mask_here, sinks)
        with self._lock:
            self._runs[run_id] = emitter
        emitter.start()

    def on_run_end(self, *, run_id: str, status: str, ended_at: float, result: Any = None, **future_kwargs: Any) -> None:
        with self._lock:
            emitter = self._runs.pop(run_id, None)
        if emitter is not None:
            emitter.finish(status, ended_at, getattr(result, "error", None))


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        log.warning(message)


# -- transports --------------------------------------------------------------------------------------
class _Console:
    """Each event as one JSON line on stderr."""

    def emit(self, event: Any) -> None:
        from openlineage.client.serde import Serde

        print(Serde.to_json(event), file=sys.stderr, flush=True)


class _Http:
    """POST to an OpenLineage backend; after a failure, this run's events wait in the outbox."""

    def __init__(self, url: str, api_key: str | None, timeout: float, outbox: Path, mask: Callable[[str], str]) -> None:
        from openlineage.client.transport.http import ApiKeyTokenProvider, HttpConfig, HttpTransport, TokenProvider

        auth = ApiKeyTokenProvider({"apiKey": api_key}) if api_key else TokenProvider({})
        # one quick retry: a backend that is down must not hold the run's events up
        retry = {"total": 1, "connect": 1, "read": 1, "backoff_factor": 0.1, "status_forcelist": [500, 502, 503, 504],
                 "allowed_methods": ["POST"]}
        self.transport = HttpTransport(HttpConfig(url=url, timeout=timeout, auth=auth, retry=retry))
        self.shown = mask(_without_credentials(url))
        self.outbox = outbox
        self.down = False

    def send(self, event: Any) -> bool:
        try:
            self.transport.emit(event)
        except Exception as exc:  # refused, timed out, 4xx/5xx: keep it for later, never fail the run
            self.down = True
            _warn_once(f"down:{self.shown}",
                       f"bubbles: the lineage backend {self.shown} cannot be reached ({type(exc).__name__}); "
                       f"events are kept in {self.outbox} and sent by the next run")
            return False
        return True

    def emit(self, event: Any, keep: Callable[[Any], None]) -> None:
        if self.down or not self.send(event):
            keep(event)

    def close(self) -> None:
        self.transport.close()


def _without_credentials(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


def _sinks(owner: LineageEmitter, settings: Any, mask: Callable[[str], str]) -> dict[str, Any]:
    from openlineage.client.transport.file import FileConfig, FileTransport

    home = settings.home_path()
    transport = settings.lineage if owner.transport == "settings" else owner.transport
    url = settings.lineage_url if owner.url == "settings" else owner.url
    sinks: dict[str, Any] = {}
    if transport == "file":
        home.mkdir(parents=True, exist_ok=True)
        sinks["file"] = FileTransport(FileConfig(log_file_path=owner.path or str(home / "lineage.jsonl"), append=True))
    elif transport == "console":
        sinks["console"] = _Console()
    if url:
        from .._secrets import resolve

        key = resolve(settings.lineage_api_key, purpose="the lineage backend") if settings.lineage_api_key else None
        sinks["http"] = _Http(url, key, settings.lineage_timeout, home / OUTBOX, mask)
    return sinks


# -- one run -----------------------------------------------------------------------------------------
class _RunEmitter:
    """The events of one run: built from its journal and sent on a thread of its own."""

    def __init__(self, owner: LineageEmitter, run_id: str, workflow: str, started_at: float, live: Any, settings: Any,
                 mask: Callable[[str], str], sinks: dict[str, Any]) -> None:
        self.run_id, self.workflow, self.started_at, self.live = run_id, workflow, started_at, live
        self.namespace = settings.lineage_namespace
        self.mask, self.sinks, self.flush_every = mask, sinks, owner.flush_every
        self.outbox = settings.home_path() / OUTBOX / f"{run_id}.jsonl"
        self.seen = 0
        self.started: set[str] = set()
        self.last_ran: dict[str, Any] = {}  # task -> its last attempt that ran
        self.end: tuple[str, float, Any] | None = None
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None
        self.uuid = run_uuid(run_id, started_at)
        self.every_task = settings.lineage_tasks == "all"

    def start(self) -> None:
        thread = threading.Thread(target=self.loop, name=f"bubbles-lineage-{self.run_id}", daemon=False)
        try:
            thread.start()
        except RuntimeError:  # no thread to be had: everything is sent at the end, on the caller's thread
            return
        self.thread = thread

    def finish(self, status: str, ended_at: float, error: Any) -> None:
        self.end = (status, ended_at, error)
        self.stop.set()
        if self.thread is not None:
            self.thread.join()
        else:
            self.loop()

    def loop(self) -> None:
        main = threading.main_thread()
        try:
            http = self.sinks.get("http")
            if http is not None:
                send_outbox(self.outbox.parent, http)
            self.emit(self.run_event("START", self.started_at))
            while True:
                last = self.stop.wait(self.flush_every) or not main.is_alive()
                try:
                    self.read_journal()
                except Exception as exc:  # a bug here must never touch the run
                    log.warning("bubbles: lineage events of run %s: %r", self.run_id, exc, exc_info=True)
                if last:
                    break
            if self.end is not None:
                status, ended_at, error = self.end
                self.emit(self.run_event(_END_STATES.get(status, "ABORT"), ended_at, error))
        except Exception as exc:
            log.warning("bubbles: lineage events of run %s stopped: %r", self.run_id, exc, exc_info=True)
        finally:
            if http is not None:
                http.close()
            self.live = None

    # -- sending --------------------------------------------------------------------------------------
    def emit(self, event: Any) -> None:
        for kind, sink in self.sinks.items():
            try:
                if kind == "http":
                    sink.emit(event, self.keep)
                else:
                    sink.emit(event)
            except Exception as exc:  # a full disk, a closed stderr: lineage never fails a run
                _warn_once(f"sink:{kind}", f"bubbles: lineage events could not be written ({kind}): {exc}")

    def keep(self, event: Any) -> None:
        from openlineage.client.serde import Serde

        self.outbox.parent.mkdir(parents=True, exist_ok=True)
        with open(self.outbox, "a", encoding="utf-8") as f:
            f.write(Serde.to_json(event) + "\n")

    # -- building -------------------------------------------------------------------------------------
    def read_journal(self) -> None:
        live = self.live
        if live is None:
            return
        entries = live.attempts
        n = len(entries)
        new, self.seen = entries[self.seen:n], n
        for entry in new:
            self.task_events(entry)

    def task_events(self, entry: Any) -> None:
        task = entry.task
        if entry.ran:
            touched = any(getattr(e, "kind", "") not in _BOOKKEEPING for e in entry.events or ())
            if not (self.every_task or touched or entry.status != "succeeded" or task in self.started):
                return  # succeeded without touching data: nothing for lineage (lineage_tasks = "data")
            self.last_ran[task] = entry
            if task not in self.started:
                self.started.add(task)
                self.emit(self.task_event("START", task, entry.started_at, None))
        elif task not in self.started:
            return  # never ran: no run to report
        ran = self.last_ran[task]
        if entry.status == "retrying":
            self.emit(self.task_event("RUNNING", task, entry.ended_at, ran))
        elif entry.status in _END_STATES:
            self.emit(self.task_event(_END_STATES[entry.status], task, entry.ended_at, ran, error=entry.error or ran.error))

    def run_event(self, state: str, when: float, error: Any = None) -> Any:
        from openlineage.client.event_v2 import Job, Run, RunEvent, RunState
        from openlineage.client.generated.job_type_job import JobTypeJobFacet

        facets = self.run_facets(error)
        job = Job(namespace=self.namespace, name=self.mask(self.workflow), facets={
            "jobType": JobTypeJobFacet(processingType="BATCH", integration="BUBBLES", jobType="DAG", producer=PRODUCER)})
        return RunEvent(eventType=RunState[state], eventTime=_when(when), run=Run(runId=self.uuid, facets=facets), job=job,
                        producer=PRODUCER)

    def run_facets(self, error: Any, traceback: str | None = None) -> dict[str, Any]:
        from openlineage.client.generated.error_message_run import ErrorMessageRunFacet
        from openlineage.client.generated.processing_engine_run import ProcessingEngineRunFacet

        from .._version import __version__

        facets: dict[str, Any] = {"processing_engine": ProcessingEngineRunFacet(version=__version__, name="bubbles",
                                                                                producer=PRODUCER)}
        if error is not None:
            facets["errorMessage"] = ErrorMessageRunFacet(message=self.mask(describe_error(error)), programmingLanguage="python",
                                                          stackTrace=self.mask(traceback) if traceback else None,
                                                          producer=PRODUCER)
        return facets

    def task_event(self, state: str, task: str, when: float | None, ran: Any, error: Any = None) -> Any:
        from openlineage.client.event_v2 import Job, Run, RunEvent, RunState
        from openlineage.client.generated.job_type_job import JobTypeJobFacet
        from openlineage.client.generated.parent_run import Job as ParentJob
        from openlineage.client.generated.parent_run import ParentRunFacet, Root, RootJob, RootRun
        from openlineage.client.generated.parent_run import Run as ParentRun

        failed = ran is not None and state in ("RUNNING", "FAIL")
        facets = self.run_facets(error if error is not None else ran.error if failed else None,
                                 ran.traceback if failed and ran is not None else None)
        facets["parent"] = ParentRunFacet(
            run=ParentRun(runId=self.uuid), job=ParentJob(namespace=self.namespace, name=self.mask(self.workflow)),
            root=Root(run=RootRun(runId=self.uuid), job=RootJob(namespace=self.namespace, name=self.mask(self.workflow))),
            producer=PRODUCER)
        name = self.mask(f"{self.workflow}.{task}")
        job = Job(namespace=self.namespace, name=name, facets={
            "jobType": JobTypeJobFacet(processingType="BATCH", integration="BUBBLES", jobType="TASK", producer=PRODUCER)})
        inputs, outputs = self.datasets(ran.events or []) if ran is not None and state != "START" else ([], [])
        return RunEvent(eventType=RunState[state], eventTime=_when(when), producer=PRODUCER, job=job, inputs=inputs,
                        outputs=outputs, run=Run(runId=task_uuid(self.run_id, task, self.started_at), facets=facets))

    def datasets(self, events: list[Any]) -> tuple[list[Any], list[Any]]:
        """A task's input and output datasets, with their facets, from its attempt's events."""
        from .._events import Dataset, LineageEdge

        reads: dict[tuple[str, str], Any] = {}
        writes: dict[tuple[str, str], Any] = {}
        edges: dict[tuple[str, str], list[Any]] = {}
        for e in events:
            if isinstance(e, Dataset):
                key = (e.namespace, self.mask(e.name))
                (reads if e.direction == "read" else writes)[key] = e
            elif isinstance(e, LineageEdge):
                edges.setdefault((e.namespace, self.mask(e.name)), []).append(e)
        for found in edges.values():  # inputs reached through in-memory hand-overs count as inputs
            for e in found:
                source = (e.input_namespace, self.mask(e.input_name))
                if source not in reads and source not in writes:
                    reads[source] = None
        for e in events:  # so does a dataset a task checked against a data contract
            if getattr(e, "kind", "") == "quality_result" and e.namespace and e.name:
                checked = (e.namespace, self.mask(e.name))
                if checked not in reads and checked not in writes:
                    reads[checked] = None
        inputs = [self.input_dataset(key, e, events) for key, e in reads.items()]
        outputs = [self.output_dataset(key, e, edges.get(key, []), events) for key, e in writes.items()]
        return inputs, outputs

    def input_dataset(self, key: tuple[str, str], e: Any, events: list[Any]) -> Any:
        from openlineage.client.event_v2 import InputDataset

        facets = self.dataset_facets(key, e)
        facets.update(quality_facets(key, events))
        return InputDataset(namespace=key[0], name=key[1], facets=facets)

    def output_dataset(self, key: tuple[str, str], e: Any, edges: list[Any], events: list[Any]) -> Any:
        from openlineage.client.event_v2 import OutputDataset
        from openlineage.client.generated.column_lineage_dataset import (
            ColumnLineageDatasetFacet,
            Fields,
            InputField,
            Transformation,
        )
        from openlineage.client.generated.dataset_version_dataset import DatasetVersionDatasetFacet
        from openlineage.client.generated.output_statistics_output_dataset import OutputStatisticsOutputDatasetFacet

        facets = self.dataset_facets(key, e)
        if e.content_hash:
            facets["version"] = DatasetVersionDatasetFacet(datasetVersion=e.content_hash, producer=PRODUCER)
        fields: dict[str, list[Any]] = {}
        for edge in edges:
            if edge.column is None or edge.input_column is None:
                continue
            how = Transformation(type="DIRECT", subtype=edge.transformation or "TRANSFORMATION")
            fields.setdefault(edge.column, []).append(InputField(namespace=edge.input_namespace, name=self.mask(edge.input_name),
                                                                 field=edge.input_column, transformations=[how]))
        if fields:
            facets["columnLineage"] = ColumnLineageDatasetFacet(
                fields={c: Fields(inputFields=inputs) for c, inputs in fields.items()}, producer=PRODUCER)
        facets.update(quality_facets(key, events))
        stats = OutputStatisticsOutputDatasetFacet(rowCount=e.rows, size=e.bytes, producer=PRODUCER)
        return OutputDataset(namespace=key[0], name=key[1], facets=facets, outputFacets={"outputStatistics": stats})

    def dataset_facets(self, key: tuple[str, str], e: Any) -> dict[str, Any]:
        from openlineage.client.generated.datasource_dataset import DatasourceDatasetFacet
        from openlineage.client.generated.schema_dataset import SchemaDatasetFacet, SchemaDatasetFacetFields

        facets: dict[str, Any] = {"dataSource": DatasourceDatasetFacet(name=key[0], uri=key[0], producer=PRODUCER)}
        if e is not None and e.schema:
            facets["schema"] = SchemaDatasetFacet(fields=[SchemaDatasetFacetFields(name=n, type=t) for n, t in e.schema],
                                                  producer=PRODUCER)
        return facets


def send_outbox(folder: Path, http: _Http) -> int:
    """Send the events runs kept while the backend was down (oldest run first); returns how many went."""
    if not folder.is_dir():
        return 0
    sent = 0
    for file in sorted(folder.glob("*.jsonl"), key=lambda p: p.stat().st_mtime):
        claimed = file.with_suffix(f".sending-{os.getpid()}")
        try:
            file.rename(claimed)  # one process sends it
        except OSError:
            continue
        lines = claimed.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            if not http.send(json.loads(line)):
                rest = "\n".join(lines[i:]) + "\n"
                claimed.write_text(rest, encoding="utf-8")
                claimed.rename(file)
                return sent
            sent += 1
        claimed.unlink()
    return sent

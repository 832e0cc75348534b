"""OpenLineage events, checked by a real consumer on 127.0.0.1 against the spec's JSON schema (issue 16)."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonschema
import pyarrow as pa
import pytest

import bubbles
from bubbles import Workflow
from bubbles._secrets import get_secret
from bubbles.observe.lineage import run_uuid
from bubbles.store import open_store

from .conftest import free_port

SPEC = json.loads((Path(__file__).parent / "openlineage_spec" / "OpenLineage-2-0-2.json").read_text())


class Consumer:
    """An OpenLineage backend: POST /api/v1/lineage, each event validated against the spec (400 if invalid)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.invalid: list[str] = []
        validator = jsonschema.Draft202012Validator(SPEC, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
        consumer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                errors = [e.message for e in validator.iter_errors(body)]
                for facets in _all_facets(body):  # every facet: a URI producer and schema URL
                    errors += [f"facet without {k}" for k in ("_producer", "_schemaURL") if k not in facets]
                if self.path != "/api/v1/lineage":
                    errors.append(f"posted to {self.path}")
                consumer.invalid += errors
                consumer.events.append(body)
                self.send_response(400 if errors else 201)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _all_facets(event: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from event["run"].get("facets", {}).values()
    yield from event["job"].get("facets", {}).values()
    for d in [*event.get("inputs", []), *event.get("outputs", [])]:
        yield from d.get("facets", {}).values()
        yield from d.get("inputFacets", {}).values()
        yield from d.get("outputFacets", {}).values()


@pytest.fixture
def consumer() -> Iterator[Consumer]:
    c = Consumer()
    yield c
    c.close()


def _pipeline(tmp_path: Path, *, fail: bool = False) -> Workflow:
    csv = tmp_path / "orders.csv"
    csv.write_text("id,amount\n1,10.5\n2,3.0\n3,7.25\n")
    out = tmp_path / "out.parquet"
    wf = Workflow("orders")

    def extract() -> pa.Table:
        return bubbles.read_csv(csv)

    def transform(orders: pa.Table) -> pa.Table:
        return bubbles.sql("SELECT id, amount * 2 AS doubled FROM orders", orders=orders)

    def load(table: pa.Table) -> None:
        bubbles.write_parquet(table, out)

    def flaky() -> None:
        raise ValueError("the source said no")

    e = wf.add_task(extract)
    t = wf.add_task(transform, requires=[e])
    wf.add_task(load, requires=[t])
    if fail:
        wf.add_task(flaky, retries=1, retry_delay=0.01)
    return wf


def _by_job(events: list[dict[str, Any]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for e in events:
        out.setdefault(e["job"]["name"], []).append(e["eventType"])
    return out


def test_every_event_is_valid_openlineage_and_carries_the_lineage(tmp_path: Path, consumer: Consumer) -> None:
    result = _pipeline(tmp_path, fail=True).run(settings={"lineage_url": consumer.url, "resources": False},
                                                  raise_on_error=False, fail_fast=False)
    assert result.status == "failed"
    assert consumer.invalid == []
    jobs = _by_job(consumer.events)
    assert jobs["orders"] == ["START", "FAIL"]
    assert "orders.transform" not in jobs  # in memory only: no dataset of its own (lineage_tasks = "data")
    assert jobs["orders.extract"] == ["START", "COMPLETE"]
    assert jobs["orders.load"] == ["START", "COMPLETE"]
    assert jobs["orders.flaky"] == ["START", "RUNNING", "FAIL"]  # RUNNING: the attempt that was retried

    run_event = consumer.events[0]
    run_id = run_event["run"]["runId"]
    assert str(uuid.UUID(run_id)) == run_id == run_uuid(result.run_id, result.started_at)
    load = next(e for e in consumer.events if e["job"]["name"] == "orders.load" and e["eventType"] == "COMPLETE")
    assert load["run"]["facets"]["parent"]["run"]["runId"] == run_id
    parent_job = load["run"]["facets"]["parent"]["job"]
    assert (parent_job["namespace"], parent_job["name"]) == ("bubbles", "orders")
    (output,) = load["outputs"]
    assert output["name"] == str(tmp_path / "out.parquet") and output["namespace"].startswith("file://")
    assert output["outputFacets"]["outputStatistics"]["rowCount"] == 3
    assert [f["name"] for f in output["facets"]["schema"]["fields"]] == ["id", "doubled"]
    fields = output["facets"]["columnLineage"]["fields"]
    assert fields["doubled"]["inputFields"][0]["name"] == str(tmp_path / "orders.csv")
    assert fields["doubled"]["inputFields"][0]["field"] == "amount"
    assert fields["doubled"]["inputFields"][0]["transformations"][0]["subtype"] == "TRANSFORMATION"
    assert fields["id"]["inputFields"][0]["transformations"][0]["subtype"] == "IDENTITY"
    # the CSV reached the load through in-memory hand-overs: it is the load's input too
    assert [i["name"] for i in load["inputs"]] == [str(tmp_path / "orders.csv")]
    with open_store(Path(os.environ["BUBBLES_HOME"]) / "history.db") as store:
        written = next(d for d in store.datasets(result.run_id) if d["direction"] == "write")
    assert output["facets"]["version"]["datasetVersion"] == written["content_hash"]
    flaky = [e for e in consumer.events if e["job"]["name"] == "orders.flaky"]
    assert "the source said no" in flaky[1]["run"]["facets"]["errorMessage"]["message"]
    assert "the source said no" in flaky[2]["run"]["facets"]["errorMessage"]["message"]


def test_the_file_transport_writes_json_lines_in_the_home(tmp_path: Path) -> None:
    _pipeline(tmp_path).run(settings={"resources": False})
    lines = (Path(os.environ["BUBBLES_HOME"]) / "lineage.jsonl").read_text().splitlines()
    events = [json.loads(line) for line in lines]
    validator = jsonschema.Draft202012Validator(SPEC, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    assert all(validator.is_valid(e) for e in events)
    jobs = _by_job(events)
    assert jobs["orders"] == ["START", "COMPLETE"]
    # the transform only touched data in memory: with lineage_tasks = "data" it has no events of its own
    assert sorted(jobs) == ["orders", "orders.extract", "orders.load"] and len(events) == 6


def test_kept_outputs_do_not_make_a_task_a_data_task(tmp_path: Path) -> None:
    # persist (on for `bubbles run`) gives every task a checkpoint event; a resume, reuse events
    for options in ({}, {"resume": "last"}):
        home = Path(os.environ["BUBBLES_HOME"])
        (home / "lineage.jsonl").unlink(missing_ok=True)
        _pipeline(tmp_path).run(settings={"resources": False, "persist": True}, **options)  # type: ignore[arg-type]
        jobs = _by_job([json.loads(line) for line in (home / "lineage.jsonl").read_text().splitlines()])
        assert "orders.transform" not in jobs, options


def test_lineage_tasks_all_sends_every_task(tmp_path: Path) -> None:
    _pipeline(tmp_path).run(settings={"resources": False, "lineage_tasks": "all"})
    lines = (Path(os.environ["BUBBLES_HOME"]) / "lineage.jsonl").read_text().splitlines()
    jobs = _by_job([json.loads(line) for line in lines])
    assert jobs["orders.transform"] == ["START", "COMPLETE"] and len(lines) == 8


def test_console_transport_prints_each_event(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    _pipeline(tmp_path).run(settings={"lineage": "console", "resources": False})
    err = capfd.readouterr().err
    events = [json.loads(line) for line in err.splitlines() if line.startswith('{"eventTime"')]
    assert len(events) == 6
    assert not (Path(os.environ["BUBBLES_HOME"]) / "lineage.jsonl").exists()


def test_an_unreachable_backend_never_fails_a_run_and_gets_the_events_later(tmp_path: Path, consumer: Consumer,
                                                                            caplog: pytest.LogCaptureFixture) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    started = time.perf_counter()
    first = _pipeline(tmp_path).run(settings={"lineage_url": dead, "resources": False})
    assert first.status == "succeeded"
    assert time.perf_counter() - started < 10
    assert "cannot be reached" in caplog.text
    outbox = Path(os.environ["BUBBLES_HOME"]) / "lineage-outbox" / f"{first.run_id}.jsonl"
    kept = [json.loads(line) for line in outbox.read_text().splitlines()]
    assert len(kept) == 6  # every event of the run, in order
    # the file transport has them as well
    assert len((Path(os.environ["BUBBLES_HOME"]) / "lineage.jsonl").read_text().splitlines()) == 6

    wf = Workflow("later")
    wf.add_task(lambda: None, name="noop")
    second = wf.run(settings={"lineage_url": consumer.url, "resources": False})
    assert consumer.invalid == []
    first_id = run_uuid(first.run_id, first.started_at)
    assert sum(e["run"]["runId"] == first_id for e in consumer.events) == 2  # the kept run events arrived
    assert [e["eventType"] for e in consumer.events[:2]] == ["START", "START"]
    assert not outbox.exists()
    assert _by_job(consumer.events)["later"] == ["START", "COMPLETE"]  # (its no-op task touched no data)
    assert second.status == "succeeded"


def test_secrets_never_leave_in_events(tmp_path: Path, consumer: Consumer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LINEAGE_TEST_TOKEN", "s3cr3t-t0ken-value")
    folder = tmp_path / "s3cr3t-t0ken-value"
    folder.mkdir()

    def leak() -> None:
        get_secret("LINEAGE_TEST_TOKEN")  # the task uses the secret: the run masks it
        bubbles.write_parquet(pa.table({"a": [1]}), folder / "x.parquet")
        raise RuntimeError("failed with s3cr3t-t0ken-value")

    wf = Workflow("secretive")
    wf.add_task(leak)
    wf.run(settings={"lineage_url": consumer.url, "resources": False}, raise_on_error=False)
    text = json.dumps(consumer.events)
    assert consumer.events and "s3cr3t-t0ken-value" not in text
    assert "failed with" in text


def test_no_task_events_for_tasks_that_never_ran(tmp_path: Path, consumer: Consumer) -> None:
    wf = Workflow("chain")

    def boom() -> None:
        raise ValueError("no")

    a = wf.add_task(boom)
    wf.add_task(lambda _x: None, name="after", requires=[a])
    wf.run(settings={"lineage_url": consumer.url, "lineage": "off", "resources": False}, raise_on_error=False)
    assert consumer.events == []  # off means off, whatever else is set
    wf.run(settings={"lineage_url": consumer.url, "resources": False}, raise_on_error=False)
    jobs = _by_job(consumer.events)
    assert jobs == {"chain": ["START", "FAIL"], "chain.boom": ["START", "FAIL"]}


def test_contract_results_are_data_quality_assertions_on_the_dataset_checked(tmp_path: Path, consumer: Consumer) -> None:
    from bubbles.data.quality import Column, Contract

    csv = tmp_path / "orders.csv"
    csv.write_text("id,amount\n1,10.5\n2,-3.0\n3,7.25\n")
    contract = Contract("orders", columns=[Column("id", "bigint", primary_key=True), Column("amount", min=0)])
    wf = Workflow("checked")

    def extract() -> pa.Table:
        return bubbles.read_csv(csv)

    def check(orders: pa.Table) -> int:  # the rows came from another task: the CSV is still the dataset checked
        return int(bubbles.validate(orders, contract, quarantine=False).valid.num_rows)

    wf.add_task(check, requires=[wf.add_task(extract)])
    result = wf.run(settings={"lineage_url": consumer.url, "resources": False})
    assert result.tasks["check"].result == 2 and consumer.invalid == []
    done = next(e for e in consumer.events if e["job"]["name"] == "checked.check" and e["eventType"] == "COMPLETE")
    (checked,) = done["inputs"]
    assert checked["name"] == str(csv)
    assertions = {a["assertion"]: a for a in checked["facets"]["dataQualityAssertions"]["assertions"]}
    assert assertions["orders.amount.range"]["success"] is False and assertions["orders.amount.range"]["column"] == "amount"
    assert assertions["orders.id.primary_key"]["success"] is True and assertions["orders.id.type"]["success"] is True

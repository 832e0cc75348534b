"""Results everywhere: the run store, bubbles show and report fragments, Prometheus, the run's result."""

from __future__ import annotations

import hashlib
import hmac
import sqlite3

import pyarrow as pa
import pytest
from prometheus_client.parser import text_string_to_metric_families

import bubbles
from bubbles import Column, Contract, QualityError
from bubbles.data.quality import mask, report_quality, show_quality
from bubbles.observe.history import history_path
from bubbles.observe.prometheus import PrometheusExporter
from bubbles.store import open_store

CONTRACT = Contract("people", columns=[
    Column("id", "bigint", primary_key=True),
    Column("email", pii=True, mask="email", regex="@example[.]com$"),
    Column("age", min=0, max=130, action="warn"),
])


def people() -> pa.Table:
    return pa.table({"id": ["1", "2", "2", "4"], "email": ["ann@example.com", "bob@evil.org", "cy@example.com", "di@example.com"],
                     "age": [30, 40, 200, 50]})


def test_results_reach_the_store_show_report_and_prometheus(tmp_path) -> None:  # type: ignore[no-untyped-def]
    exporter = PrometheusExporter()
    wf = bubbles.Workflow("people", hooks=[exporter])
    raw = wf.add_task(people, name="extract")
    wf.add_task(bubbles.check(CONTRACT, quarantine=str(tmp_path / "q")), requires=[raw])
    run_id = wf.run().run_id
    with open_store() as store:
        rows = store.quality_results(run_id)
        assert [(r["rule"], r["rows_checked"], r["rows_failed"], r["rows_quarantined"], r["outcome"]) for r in rows] == [
            ("id.type", 4, 0, 0, "passed"),
            ("id.primary_key", 4, 2, 2, "quarantined"),
            ("email.regex", 4, 1, 1, "quarantined"),
            ("age.range", 4, 1, 1, "warned"),  # its row was set aside by id.primary_key anyway
        ]
        assert all(r["task"] == "check_people" and r["contract"] == "people" for r in rows)
        (q,) = store.quarantines(run_id)
        assert (q["rows"], q["sink"], q["sink_kind"], q["contract"]) == (2, str(tmp_path / "q"), "parquet", "people")
        lines = show_quality(store, run_id)
        html = report_quality(store, run_id)
    text = "\n".join(lines)
    assert "contract people in task check_people" in text and "email.regex" in text and "quarantined" in text
    assert "quarantine: 2 rows from task check_people (people) -> " in text
    assert "bob@evil.org" not in text + html and "b***@evil.org" in text
    assert html.startswith('<section class="quality">') and "<td>email.regex</td>" in html and "b***@evil.org" in html
    with sqlite3.connect(history_path()) as db:  # plain tables: anyone can query them
        (n,) = db.execute("SELECT sum(rows_failed) FROM quality_results WHERE run_id = ?", [run_id]).fetchone()
    assert n == 4
    got = {}
    for family in text_string_to_metric_families(_scrape(exporter)):
        for s in family.samples:
            if s.name == "bubbles_quality_rows_total":
                got[(s.labels["rule"], s.labels["outcome"])] = s.value
    assert got[("id.primary_key", "checked")] == 4 and got[("id.primary_key", "failed")] == 2
    assert got[("email.regex", "quarantined")] == 1 and got[("age.range", "failed")] == 1


def _scrape(exporter: PrometheusExporter) -> str:
    from prometheus_client import generate_latest

    return generate_latest(exporter.registry).decode()


def test_show_and_report_are_empty_for_a_run_without_contracts() -> None:
    wf = bubbles.Workflow("plain")
    wf.add_task(lambda: 1, name="one")
    run_id = wf.run().run_id
    with open_store() as store:
        assert show_quality(store, run_id) == [] and report_quality(store, run_id) == ""


def test_a_fail_rule_fails_the_task_naming_rule_count_examples_and_fix(tmp_path) -> None:  # type: ignore[no-untyped-def]
    strict = Contract("people", columns=[Column("email", pii=True, mask="email", regex="@example[.]com$", action="fail")])
    wf = bubbles.Workflow("strict")
    raw = wf.add_task(people, name="extract")
    wf.add_task(bubbles.check(strict, quarantine=str(tmp_path / "q")), requires=[raw])
    result = wf.run(raise_on_error=False)
    run = result.tasks["check_people"]
    assert run.state == "failed" and isinstance(run.error, QualityError)
    message = str(run.error)
    assert "rule 'email.regex'" in message and "1 of 4 rows" in message and "task 'check_people'" in message
    assert "b***@evil.org" in message and "bob@evil.org" not in message and "Fix the data" in message
    assert run.attempts == 1  # not retried: the same data breaks the same rule
    assert [e.outcome for e in run.events if e.kind == "quality_result"] == ["failed"]
    with open_store() as store:
        (row,) = store.quality_results(result.run_id)
        assert row["outcome"] == "failed" and "bob@evil.org" not in row["examples"]
        attempt = next(a for a in store.attempts(result.run_id) if a["task"] == "check_people")
        assert "bob@evil.org" not in (attempt["error"] or "") + (attempt["traceback"] or "")


def test_hash_mask_is_hmac_sha256_with_the_key_from_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUBBLES_MASK_KEY", "k3y-for-tests")
    t = pa.table({"email": ["ann@example.com", None], "card": ["4111-1111-1111-1234", "1"], "phone": ["+49 170 1234567", ""],
                  "n": [1234.5678, 9.0], "ts": pa.array([1_700_000_000, 0], pa.timestamp("s"))})
    out = mask(t, {"email": "hash", "card": "card", "phone": "phone", "n": "round:1", "ts": "truncate:day"}).to_pydict()
    want = hmac.new(b"k3y-for-tests", b"ann@example.com", hashlib.sha256).hexdigest()
    assert out["email"] == [want, None]
    assert out["card"] == ["**** **** **** 1234", "**** **** **** 1"]
    assert out["phone"] == ["**********67", ""]
    assert out["n"] == [1234.6, 9.0]
    assert str(out["ts"][0]) == "2023-11-14 00:00:00"
    again = mask(pa.table({"email": ["ann@example.com"]}), {"email": "hash"}).column("email").to_pylist()
    assert again == [want]  # deterministic: joins on masked keys work
    redacted = mask(pa.table({"x": ["secret", None]}), {"x": "redact"}).column("x").to_pylist()
    assert redacted == ["***", None]
    assert mask(pa.table({"s": ["abcdef"]}), {"s": "truncate:3"}).column("s").to_pylist() == ["abc"]


def test_a_hash_mask_without_its_secret_says_which_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BUBBLES_MASK_KEY", raising=False)
    with pytest.raises(bubbles.ConfigError, match="BUBBLES_MASK_KEY"):
        mask(pa.table({"x": ["a"]}), {"x": "hash"})

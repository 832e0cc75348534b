"""Alerting: task and run callbacks, and a webhook posting a failed run's summary to a local server."""

from __future__ import annotations

import pytest

from bubbles import Workflow
from bubbles.observe.alerts import Callbacks, WebhookNotifier


def broken(rows: list[int]) -> None:
    raise RuntimeError(f"cannot load {len(rows)} rows")


def test_task_callbacks_get_the_end_event_fields() -> None:
    seen: list[tuple[str, str]] = []
    wf = Workflow("cb")
    a = wf.add_task(lambda: [1], name="ok", on_success=lambda *, task, status, **kw: seen.append((task, status)))
    wf.add_task(broken, requires=[a], on_failure=lambda *, task, status, error, **kw: seen.append((task, str(error))))
    wf.run(raise_on_error=False)
    assert seen == [("ok", "succeeded"), ("broken", "cannot load 1 rows")]


def test_run_callbacks() -> None:
    calls: list[str] = []
    hooks = [Callbacks(on_success=lambda r: calls.append("ok " + r.status), on_failure=lambda r: calls.append("bad " + r.status))]
    good = Workflow("good", hooks=hooks)
    good.add_task(lambda: 1, name="one")
    good.run()
    bad = Workflow("bad", hooks=hooks)
    bad.add_task(lambda: [1], name="src")
    bad.add_task(broken, requires=["src"])
    bad.run(raise_on_error=False)
    assert calls == ["ok succeeded", "bad failed"]


def test_a_raising_callback_does_not_break_the_run(caplog: pytest.LogCaptureFixture) -> None:
    wf = Workflow("raising", hooks=[Callbacks(on_success=lambda r: 1 / 0)])
    wf.add_task(lambda: 1, name="one")
    assert wf.run().ok
    assert "ZeroDivisionError" in caplog.text


def test_webhook_posts_failed_run_summary(webhook_server) -> None:
    url, received = webhook_server
    received.posts.clear()
    notifier = WebhookNotifier(url + "/alerts", headers={"X-Token": "t"})
    good = Workflow("hooked")
    good.attach(notifier)
    good.add_task(lambda: 1, name="one")
    good.run()
    assert received.posts == []  # success: nothing sent
    bad = Workflow("hooked")
    bad.attach(notifier)
    src = bad.add_task(lambda: [1, 2], name="src")
    bad.add_task(broken, requires=[src])
    bad.add_task(lambda x: x, name="after", requires=["broken"])
    result = bad.run(raise_on_error=False)
    assert len(received.posts) == 1
    post = received.posts[0]
    assert post["path"] == "/alerts" and post["headers"]["X-Token"] == "t"
    body = post["json"]
    assert body["event"] == "run_failed" and body["run_id"] == result.run_id and body["workflow"] == "hooked"
    assert body["tasks"] == {"succeeded": 1, "failed": 1, "upstream_failed": 1}
    failed = body["failed_tasks"][0]
    assert failed["task"] == "broken" and failed["error_type"] == "RuntimeError" and failed["error"] == "cannot load 2 rows"
    assert "in broken" in failed["where"]
    assert body["show"] == f"bubbles show {result.run_id}"
    assert notifier.last_response == 204


def test_webhook_to_a_dead_endpoint_only_warns(caplog: pytest.LogCaptureFixture) -> None:
    from .conftest import free_port

    wf = Workflow("dead", hooks=[WebhookNotifier(f"http://127.0.0.1:{free_port()}/x", retries=1, timeout=1)])
    wf.add_task(lambda: broken([1]), name="b")
    result = wf.run(raise_on_error=False)
    assert result.status == "failed"
    assert "webhook" in caplog.text

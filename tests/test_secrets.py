"""Secrets: every form is masked, registries are per run, a worker's secrets come back with its attempt."""

from __future__ import annotations

import base64
import json
import logging
import pickle
import threading
from typing import Any
from urllib.parse import quote, quote_plus

import pytest

from bubbles import BubblesError, Workflow
from bubbles._secrets import MaskedError, SecretRegistry, mask_error, resolve

SECRET = 'Zq+9/aB=c"d\\e-8812'


def test_every_encoded_form_is_masked() -> None:
    reg = SecretRegistry()
    reg.add(SECRET)
    for form in (
        SECRET,
        quote(SECRET, safe=""),
        quote_plus(SECRET),
        json.dumps(SECRET)[1:-1],
        base64.b64encode(SECRET.encode()).decode(),
        base64.urlsafe_b64encode(SECRET.encode()).decode().rstrip("="),
    ):
        assert reg.mask(f"before {form} after") == "before *** after", form
    assert reg.mask("nothing here") == "nothing here"


def test_basic_auth_pairs_are_masked_in_their_header_form() -> None:
    from bubbles import BasicAuth

    reg = SecretRegistry()
    from bubbles._secrets import _run_registry

    token = _run_registry.set(reg)
    try:
        header = BasicAuth("etl", "pw-2291-secret").headers()["Authorization"]
    finally:
        _run_registry.reset(token)
    assert reg.mask(f"sent {header}") == "sent Basic ***"


def test_a_registry_never_travels() -> None:
    reg = SecretRegistry()
    reg.add("travel-secret-1")
    arrived = pickle.loads(pickle.dumps(reg))
    assert arrived.values() == [] and arrived.remote
    arrived.add("worker-secret-2")
    assert arrived.values() == ["worker-secret-2"]
    assert b"travel-secret-1" not in pickle.dumps(reg)


def test_mask_error_keeps_the_class_and_masks_causes() -> None:
    reg = SecretRegistry()
    reg.add(SECRET)
    try:
        try:
            raise KeyError(f"inner {SECRET}")
        except KeyError as inner:
            raise ConnectionError(f"refused {quote_plus(SECRET)}") from inner
    except ConnectionError as exc:
        masked = mask_error(exc, reg)
    assert type(masked) is ConnectionError and str(masked) == "refused ***"
    assert SECRET not in str(masked.__cause__) and "***" in str(masked.__cause__)
    bubbles_error = mask_error(BubblesError(f"bad {SECRET}", source=f"url?k={SECRET}"), reg)
    assert str(bubbles_error) == "bad ***" and bubbles_error.source == "url?k=***"  # type: ignore[attr-defined]
    assert SECRET.encode() not in pickle.dumps(bubbles_error)


def test_an_error_whose_text_cannot_be_changed_is_replaced() -> None:
    class Stubborn(Exception):
        def __str__(self) -> str:
            return f"always {SECRET}"

    reg = SecretRegistry()
    reg.add(SECRET)
    masked = mask_error(Stubborn(), reg)
    assert isinstance(masked, MaskedError) and masked.error_type == "Stubborn"  # type: ignore[attr-defined]
    assert str(masked) == "Stubborn: always ***"


def _resolve_and_fail(name: str) -> None:
    value = resolve("${" + name + "}")
    logging.getLogger("etl").warning("using %s", value)
    raise ValueError(f"rejected {value} ({json.dumps(value)})")


@pytest.mark.parametrize("executor", ["threads", "processes", "serial"])
def test_a_secret_resolved_in_a_task_is_masked_everywhere_it_goes(executor: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASK_SECRET", SECRET)
    wf = Workflow("resolved-in-task")
    wf.add_task(_resolve_and_fail, kwargs={"name": "TASK_SECRET"}, name="uses")
    result = wf.run(executor=executor, raise_on_error=False)
    task = result.tasks["uses"]
    assert str(task.error) == 'rejected *** ("***")'
    assert SECRET not in task.traceback and json.dumps(SECRET)[1:-1] not in task.traceback
    assert task.record is not None and task.record.logs is not None
    assert [e["message"] for e in task.record.logs] == ["using ***"]
    with pytest.raises(BubblesError) as info:
        result.raise_for_status()
    assert SECRET not in str(info.value) and "***" in str(info.value)


def test_two_runs_in_two_threads_keep_their_secrets_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    """A secret one run resolved does not mask the other run's text (and each masks its own)."""
    monkeypatch.setenv("SECRET_A", "alpha-secret-7761")
    monkeypatch.setenv("SECRET_B", "bravo-secret-9923")
    barrier = threading.Barrier(2)

    def task(mine: str, other: str) -> None:
        resolve("${" + mine + "}")
        barrier.wait(10)  # both runs have resolved theirs now
        import os

        raise ValueError(f"{os.environ[mine]} | {os.environ[other]}")

    results: dict[str, Any] = {}

    def run(mine: str, other: str) -> None:
        wf = Workflow(f"run-{mine}")
        wf.add_task(task, kwargs={"mine": mine, "other": other}, name="t")
        results[mine] = wf.run(executor="threads", raise_on_error=False)

    threads = [threading.Thread(target=run, args=p) for p in (("SECRET_A", "SECRET_B"), ("SECRET_B", "SECRET_A"))]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    assert str(results["SECRET_A"].tasks["t"].error) == "*** | bravo-secret-9923"
    assert str(results["SECRET_B"].tasks["t"].error) == "*** | alpha-secret-7761"

"""Incremental extraction through the watermark store, and auth with masked secrets."""

from __future__ import annotations

import base64
import logging

import pytest

from bubbles import ConfigError, Workflow
from bubbles.data.http import ApiKey, ApiRequestError, BasicAuth, BearerToken, Incremental, PageNumber, Retry, read_api
from bubbles.data.state import StateStore

from .fault_server import FaultServer, make_records

PAGES = PageNumber(size=25, size_param="per_page")
START = "2024-01-02T00:00:00+00:00"


def _since(api: FaultServer) -> list[str | None]:
    return sorted({h.query.get("updated_since") for h in api.hits_for("pages")}, key=str)


def test_watermark_advances_only_when_the_run_succeeds(api: FaultServer) -> None:
    loaded: list[int] = []

    def build(fail_load: bool) -> Workflow:
        def extract():
            inc = Incremental("updated_at", param="updated_since", initial=START, name="items")
            return read_api(api.url + "/pages", paginate=PAGES, records_path="data", incremental=inc)

        def load(table):
            if fail_load:
                raise RuntimeError("warehouse is down")
            loaded.append(table.num_rows)

        wf = Workflow("incremental")
        t = wf.add_task(extract, name="extract")
        wf.add_task(load, requires=[t], name="load")
        return wf

    assert not build(fail_load=True).run(executor="serial", raise_on_error=False).ok
    assert StateStore().get("items") is None  # the load failed: not advanced
    assert _since(api) == [START]

    api.hits.clear()
    build(fail_load=False).run(executor="serial")
    assert _since(api) == [START]  # read again from the old watermark
    newest = max(r["updated_at"] for r in make_records(237))
    assert StateStore().get("items") == newest
    assert loaded == [sum(r["updated_at"] >= START for r in make_records(237))]

    api.hits.clear()
    build(fail_load=False).run(executor="serial")
    assert _since(api) == [newest]
    assert loaded[-1] == sum(r["updated_at"] >= newest for r in make_records(237))  # inclusive: the boundary rows again


def test_outside_a_run_commit_is_explicit(api: FaultServer, tmp_path) -> None:
    store = StateStore(tmp_path / "state.db")
    inc = Incremental("updated_at", state=store)
    read_api(api.url + "/pages", paginate=PAGES, records_path="data", incremental=inc)
    name = f"http:{api.url}/pages"
    assert store.get(name) is None  # proposed, not committed
    inc.commit()  # ... after the load committed
    assert store.get(name) == max(r["updated_at"] for r in make_records(237))
    assert _since(api) == [None]  # first read: no watermark sent


def test_a_read_cut_short_by_max_pages_does_not_advance(api: FaultServer, tmp_path) -> None:
    store = StateStore(tmp_path / "state.db")
    for concurrency in (1, 4):
        inc = Incremental("updated_at", state=store, name="items")
        table = read_api(
            api.url + "/pages", paginate=PAGES, records_path="data", incremental=inc, max_pages=3, concurrency=concurrency
        )
        assert table.num_rows == 75
        assert store.commit_run(None) == []
    inc = Incremental("updated_at", state=store, name="items")
    read_api(api.url + "/pages", paginate=PAGES, records_path="data", incremental=inc, max_pages=10)  # 10 is all there is
    assert store.commit_run(None) == ["items"]


@pytest.mark.parametrize(
    ("auth", "field", "expected"),
    [
        (BearerToken("${HTTP_TEST_TOKEN}"), "authorization", "Bearer tok-3141592"),
        (BasicAuth("etl", "${HTTP_TEST_TOKEN}"), "authorization", "Basic " + base64.b64encode(b"etl:tok-3141592").decode()),
        (ApiKey("${HTTP_TEST_TOKEN}"), "x_api_key", "tok-3141592"),
        (ApiKey("${HTTP_TEST_TOKEN}", query="api_key"), "key", "tok-3141592"),
    ],
    ids=["bearer", "basic", "key-header", "key-query"],
)
def test_auth_is_sent(api: FaultServer, monkeypatch: pytest.MonkeyPatch, auth, field: str, expected: str) -> None:
    monkeypatch.setenv("HTTP_TEST_TOKEN", "tok-3141592")
    table = read_api(api.url + "/auth", records_path="data", auth=auth)
    assert table[field][0].as_py() == expected
    assert "tok-3141592" not in repr(auth)


def test_secret_in_query_is_masked_in_errors_and_logs(
    api: FaultServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("HTTP_TEST_KEY", "key-2718281828")
    caplog.set_level(logging.INFO, logger="bubbles.http")
    api.inject("auth", 1, "500", "500")
    with pytest.raises(ApiRequestError) as info:
        read_api(
            api.url + "/auth",
            records_path="data",
            auth=ApiKey("${HTTP_TEST_KEY}", query="api_key"),
            retry=Retry(attempts=2, backoff=0.01),
            breaker=None,
        )
    assert api.hits[0].query["api_key"] == "key-2718281828"  # it was sent ...
    assert "key-2718281828" not in str(info.value) + info.value.source + caplog.text  # ... and never shown
    assert "api_key=***" in info.value.source and "api_key=***" in caplog.text


def test_missing_secret_is_a_config_error(api: FaultServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HTTP_NO_SUCH_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="HTTP_NO_SUCH_TOKEN"):
        read_api(api.url + "/auth", records_path="data", auth=BearerToken("${HTTP_NO_SUCH_TOKEN}"))

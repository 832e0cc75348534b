"""Retries, Retry-After, timeouts, the shared rate limiter and the circuit breaker, against real faults."""

from __future__ import annotations

import logging
import time
import uuid

import pytest

from bubbles import Workflow
from bubbles.data.http import (
    ApiRequestError,
    ApiResponseError,
    ApiSource,
    Breaker,
    CircuitOpenError,
    Cursor,
    LinkHeader,
    PageNumber,
    RateLimit,
    Retry,
    read_api,
)
from bubbles.data.http._fetch import _retry_after

from .fault_server import FaultServer

FAST_RETRY = Retry(attempts=4, backoff=0.01, max_backoff=0.05)
PAGES = PageNumber(size=25, size_param="per_page")


def _key() -> str:
    return uuid.uuid4().hex  # keeps this test's breaker/limiter apart from the others' (they are per process)


def _inject_all_faults(api: FaultServer) -> None:
    api.slow_seconds = 0.8
    for page, fault in enumerate(["429", "500", "503", "drop", "truncate", "cut_json", "slow"], start=2):
        api.inject("pages", page, fault)


@pytest.mark.parametrize("concurrency", [1, 4])
def test_every_fault_is_retried_and_every_record_arrives_once(api: FaultServer, concurrency: int) -> None:
    _inject_all_faults(api)

    def extract():
        return read_api(
            api.url + "/pages",
            paginate=PAGES,
            records_path="data",
            concurrency=concurrency,
            timeout=0.4,
            retry=FAST_RETRY,
            breaker=Breaker(failures=20, key=_key()),
        )

    wf = Workflow("faults")
    wf.add_task(extract, name="extract")
    result = wf.run(executor="serial")
    table = result.tasks["extract"].result
    assert table["id"].to_pylist() == list(range(237))
    hits = {page: [h.outcome for h in api.hits if h.page == page] for page in range(2, 9)}
    assert hits == {
        2: ["429", "ok"],
        3: ["500", "ok"],
        4: ["503", "ok"],
        5: ["drop", "ok"],
        6: ["truncate", "ok"],
        7: ["cut_json", "ok"],
        8: ["slow", "ok"],
    }
    metrics = result.tasks["extract"].metrics
    assert metrics["http_retries"] == 7
    assert metrics["http_retry_wait_seconds"] >= 1.0  # the 429 asked for 1 s
    assert metrics["http_pages"] == 10
    assert metrics["http_records"] == 237
    assert metrics["http_requests"] == len(api.hits)
    assert metrics["http_breaker_trips"] == 0


def test_retry_after_is_honoured(api: FaultServer) -> None:
    api.inject("cursor", 2, "429")
    read_api(api.url + "/cursor", paginate=Cursor("meta.next"), records_path="data", retry=FAST_RETRY)
    first, second = [h.at for h in api.hits if h.page == 2]
    assert second - first >= 0.95  # Retry-After: 1, not the 10 ms backoff


def test_retry_after_longer_than_allowed_fails_at_once(api: FaultServer) -> None:
    api.retry_after = "600"
    api.inject("cursor", 1, "429")
    started = time.monotonic()
    with pytest.raises(ApiRequestError) as info:
        read_api(api.url + "/cursor", paginate=Cursor("meta.next"), records_path="data", retry=Retry(max_retry_after=5))
    assert time.monotonic() - started < 2
    err = info.value
    assert (err.status, err.page, err.transient) == (429, 1, True)
    assert "max_retry_after" in str(err) and "/cursor" in err.source


def test_retry_after_http_date() -> None:
    from email.utils import formatdate

    assert 8 <= _retry_after(formatdate(time.time() + 10, usegmt=True)) <= 10.5
    assert _retry_after("3") == 3.0
    assert _retry_after("soon") is None


def test_retries_run_out_with_a_clear_transient_error(api: FaultServer) -> None:
    api.inject("pages", 2, "500", "503", "500")
    with pytest.raises(ApiRequestError) as info:
        read_api(api.url + "/pages", paginate=PAGES, records_path="data", retry=Retry(attempts=3, backoff=0.01), breaker=None)
    err = info.value
    assert (err.page, err.status, err.transient) == (2, 500, True)
    assert "after 3 attempt(s)" in str(err) and "/pages?page=2" in str(err)
    assert len(api.hits_for("pages")) == 4  # page 1 once, page 2 three times


def test_timeout_is_retried_then_reported(api: FaultServer) -> None:
    api.slow_seconds = 0.6
    api.inject("cursor", 1, "slow", "slow")
    with pytest.raises(ApiRequestError) as info:
        read_api(
            api.url + "/cursor",
            paginate=Cursor("meta.next"),
            records_path="data",
            timeout=0.2,
            retry=Retry(attempts=2, backoff=0.01),
            breaker=None,
        )
    assert "timeout" in str(info.value) and info.value.status is None


def test_client_errors_are_not_retried(api: FaultServer) -> None:
    with pytest.raises(ApiRequestError) as info:
        read_api(api.url + "/missing", retry=FAST_RETRY)
    assert (info.value.status, info.value.transient) == (404, False)
    assert "Check the URL" in str(info.value)
    assert [h.outcome for h in api.hits] == ["404"]


def test_rate_limit_is_respected_at_the_server(api: FaultServer) -> None:
    limit = RateLimit(20, key=_key())
    read_api(api.url + "/cursor", paginate=Cursor("meta.next"), records_path="data", rate_limit=limit)
    times = [h.at for h in api.hits]
    assert len(times) == 10
    achieved = (len(times) - 1) / (times[-1] - times[0])
    assert achieved <= 20 * 1.05
    # Never ahead of the schedule: request k arrives at least k intervals after the first
    # (a late request may be followed by a closer one: the limiter keeps the average, not each gap).
    assert all(t - times[0] >= k * 0.05 - 0.02 for k, t in enumerate(times))


def test_rate_limit_is_shared_by_concurrent_tasks_on_one_host(api: FaultServer) -> None:
    limit = RateLimit(30, key=_key())

    def read_cursor():
        return read_api(api.url + "/cursor", paginate=Cursor("meta.next"), records_path="data", rate_limit=limit).num_rows

    def read_pages():
        return read_api(api.url + "/pages", paginate=PAGES, records_path="data", rate_limit=limit, concurrency=4).num_rows

    wf = Workflow("shared-limit")
    wf.add_task(read_cursor, name="a")
    wf.add_task(read_pages, name="b")
    result = wf.run(executor="threads", max_workers=2)
    assert result.tasks["a"].result == result.tasks["b"].result == 237
    times = sorted(h.at for h in api.hits)
    assert len(times) >= 20
    assert (len(times) - 1) / (times[-1] - times[0]) <= 30 * 1.05  # both tasks together, not each
    waits = result.tasks["a"].metrics["http_throttled_waits"] + result.tasks["b"].metrics["http_throttled_waits"]
    assert waits >= 10


def test_429_slows_down_every_user_of_the_host(api: FaultServer) -> None:
    import threading

    limit = RateLimit(1000, key=_key())
    api.inject("cursor", 1, "429")
    reader = threading.Thread(
        target=read_api,
        args=(api.url + "/cursor",),
        kwargs=dict(paginate=Cursor("meta.next"), records_path="data", rate_limit=limit, retry=FAST_RETRY),
    )
    reader.start()
    deadline = time.monotonic() + 5
    while not api.hits and time.monotonic() < deadline:
        time.sleep(0.005)
    got_429 = api.hits[0].at
    # Another source on the same host and limit, started after the 429, waits out the Retry-After too.
    other = read_api(api.url + "/link", paginate=LinkHeader(), rate_limit=limit, retry=FAST_RETRY, max_pages=2)
    reader.join()
    assert other.num_rows == 50
    assert min(h.at for h in api.hits_for("link")) - got_429 >= 0.95


def test_breaker_opens_fails_fast_and_recovers(api: FaultServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bubbles.http")
    source = ApiSource(api.url, retry=Retry(attempts=6, backoff=0.01), breaker=Breaker(failures=3, cooldown=1.0, key=_key()))
    api.inject("cursor", 1, *["500"] * 10)

    def extract():
        return source.read("/cursor", paginate=Cursor("meta.next"), records_path="data")

    wf = Workflow("breaker")
    wf.add_task(extract, name="extract")
    result = wf.run(executor="serial", raise_on_error=False)
    err = result.tasks["extract"].error
    assert isinstance(err, CircuitOpenError) and err.transient is True and err.page == 1
    assert len(api.hits) == 3  # the 4th attempt was stopped by the open breaker, not sent
    metrics = result.tasks["extract"].metrics
    assert (metrics["http_breaker_trips"], metrics["http_breaker_rejections"], metrics["http_breaker_open"]) == (1, 1, 1)
    assert any("opened after 3 consecutive failures" in r.getMessage() for r in caplog.records)

    with pytest.raises(CircuitOpenError):  # still open: fails fast, nothing sent
        extract()
    assert len(api.hits) == 3 and source.circuit(api.url).state == "open"

    time.sleep(1.05)
    assert source.circuit(api.url).state == "half-open"
    with pytest.raises(CircuitOpenError):  # the probe fails (500): open again at once
        extract()
    assert len(api.hits) == 4

    time.sleep(1.05)
    api.reset()  # the server is healthy again
    assert extract().num_rows == 237
    assert source.circuit(api.url).state == "closed"
    assert any("closed" in r.getMessage() for r in caplog.records)
    source.close()


def test_429_does_not_trip_the_breaker(api: FaultServer) -> None:
    api.retry_after = "0"
    api.inject("cursor", 1, "429", "429", "429")
    breaker = Breaker(failures=2, cooldown=60, key=_key())
    table = read_api(api.url + "/cursor", paginate=Cursor("meta.next"), records_path="data", retry=FAST_RETRY, breaker=breaker)
    assert table.num_rows == 237
    assert ApiSource(api.url, breaker=breaker).circuit(api.url).state == "closed"


def test_a_failed_page_stops_the_other_pages_retrying(api: FaultServer) -> None:
    api.retry_after = "5"
    api.inject("pages", 2, "html")
    api.inject("pages", 3, "429")
    api.inject("pages", 4, "429")
    started = time.monotonic()
    with pytest.raises(ApiResponseError) as info:
        read_api(api.url + "/pages", paginate=PAGES, records_path="data", concurrency=4, retry=FAST_RETRY)
    assert info.value.page == 2
    assert time.monotonic() - started < 3  # not the 5 s the 429s asked pages 3 and 4 to wait

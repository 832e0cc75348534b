"""Bad responses: clear errors naming URL, page and reason; nothing half-returned."""

from __future__ import annotations

import pickle

import pytest

from bubbles import DataError
from bubbles.data.http import (
    ApiResponseError,
    ApiSource,
    Cursor,
    Incremental,
    PageNumber,
    PaginationLoopError,
    Retry,
    read_api,
)
from bubbles.data.state import StateStore

from .fault_server import FaultServer

PAGES = PageNumber(size=25, size_param="per_page")


def test_non_json_body_is_not_retried(api: FaultServer) -> None:
    with pytest.raises(ApiResponseError) as info:
        read_api(api.url + "/notjson", retry=Retry(attempts=5, backoff=0.01))
    err = info.value
    assert isinstance(err, DataError) and err.transient is False
    assert (err.page, err.status) == (1, 200)
    assert err.source == api.url + "/notjson"
    assert "not JSON" in str(err) and "'OK: 42 records'" in str(err)
    assert len(api.hits) == 1


def test_wrong_content_type(api: FaultServer) -> None:
    with pytest.raises(ApiResponseError) as info:
        read_api(api.url + "/html")
    assert "Content-Type 'text/html'" in str(info.value) and "Please log in" in str(info.value)
    with pytest.raises(ApiResponseError, match="body is not JSON"):  # told to parse it anyway
        read_api(api.url + "/html", check_content_type=False)


def test_failure_on_a_later_page_returns_nothing(api: FaultServer) -> None:
    api.inject("pages", 3, "html")
    with pytest.raises(ApiResponseError) as info:
        read_api(api.url + "/pages", paginate=PAGES, records_path="data")
    assert info.value.page == 3 and "page=3" in info.value.source


def test_streaming_raises_on_the_failing_page_and_proposes_no_watermark(api: FaultServer, tmp_path) -> None:
    api.inject("pages", 3, "html")
    store = StateStore(tmp_path / "state.db")
    inc = Incremental("updated_at", state=store, name="items")
    staging = []
    with pytest.raises(ApiResponseError):
        for batch in ApiSource(api.url).read_batches("/pages", paginate=PAGES, records_path="data", incremental=inc):
            staging.append(batch)
    assert sum(b.num_rows for b in staging) == 50  # pages 1-2 reached the consumer, who must not publish them
    assert store.commit_run(None) == [] and store.get("items") is None


def test_unexpected_shape_at_records_path(api: FaultServer) -> None:
    with pytest.raises(ApiResponseError) as info:
        read_api(api.url + "/shape", paginate=PageNumber(), records_path="data")
    err = info.value
    assert err.page == 3
    assert "expected a list of records at 'data', found dict" in str(err)
    with pytest.raises(ApiResponseError, match=r"no 'items' on the way to records_path 'items'.*keys \['data'\]"):
        read_api(api.url + "/shape", records_path="items")
    with pytest.raises(ApiResponseError, match="found an object with keys"):
        read_api(api.url + "/shape")  # the body is an object, not a list: records_path is missing


def test_records_must_be_objects(api: FaultServer) -> None:
    with pytest.raises(ApiResponseError, match=r"record 0 at 'data' is int 1, expected a JSON object"):
        read_api(api.url + "/scalars", records_path="data")
    with pytest.raises(ApiResponseError, match=r"expected a list of records at 'data.0.owner.geo', found dict"):
        read_api(api.url + "/pages", records_path="data.0.owner.geo")


def test_same_cursor_twice_is_a_loop(api: FaultServer) -> None:
    with pytest.raises(PaginationLoopError) as info:
        read_api(api.url + "/loop", paginate=Cursor("meta.next"), records_path="data")
    err = info.value
    assert err.page == 2 and "same-token" in str(err) and "/loop" in err.source
    assert len(api.hits) == 2


@pytest.mark.parametrize("concurrency", [1, 3])
def test_server_ignoring_the_page_parameter_is_a_loop(api: FaultServer, concurrency: int) -> None:
    with pytest.raises(PaginationLoopError, match="same body as page 1"):
        read_api(api.url + "/stuck", paginate=PageNumber(), records_path="data", concurrency=concurrency)


def test_errors_pickle_with_their_fields(api: FaultServer) -> None:
    with pytest.raises(ApiResponseError) as info:
        read_api(api.url + "/loop", paginate=Cursor("meta.next"), records_path="data")
    clone = pickle.loads(pickle.dumps(info.value))
    assert type(clone) is PaginationLoopError
    assert (clone.source, clone.page, clone.reason, str(clone)) == (
        info.value.source,
        info.value.page,
        info.value.reason,
        str(info.value),
    )

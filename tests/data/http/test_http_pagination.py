"""Every pagination style against the local server: all records, exactly once, in order."""

from __future__ import annotations

import pyarrow as pa
import pytest

from bubbles import DataError
from bubbles.data.http import ApiSource, Cursor, LinkHeader, NextLink, OffsetLimit, PageNumber, read_api

from .fault_server import FaultServer

ALL_IDS = list(range(237))


@pytest.mark.parametrize(
    ("path", "paginate", "records_path"),
    [
        ("/pages", PageNumber(size=25, size_param="per_page"), "data"),
        ("/pages", PageNumber(size=25, size_param="per_page", total_pages_path="meta.pages"), "data"),
        ("/pages", PageNumber(size=25, size_param="per_page", total_path="meta.total"), "data"),
        ("/offset", OffsetLimit(limit=25), "items"),
        ("/offset", OffsetLimit(limit=25, total_path="total"), "items"),
        ("/cursor", Cursor("meta.next", param="cursor"), "data"),
        ("/next", NextLink("next"), "results"),
        ("/link", LinkHeader(), None),
    ],
    ids=["page", "page-total-pages", "page-total", "offset", "offset-total", "cursor", "next-link", "link-header"],
)
@pytest.mark.parametrize("concurrency", [1, 4])
def test_every_record_arrives_once_in_order(api: FaultServer, path: str, paginate, records_path, concurrency: int) -> None:
    table = read_api(api.url + path, paginate=paginate, records_path=records_path, concurrency=concurrency)
    assert table["id"].to_pylist() == ALL_IDS
    # Known totals mean no request past the end; otherwise at most concurrency-1 speculative ones.
    pages_needed = 10
    requests = len(api.hits)
    if path in ("/cursor", "/next", "/link") or concurrency == 1:
        assert requests == pages_needed
    else:
        assert pages_needed <= requests <= pages_needed + concurrency - 1


def test_page_number_without_size_stops_at_empty_page(api: FaultServer) -> None:
    table = read_api(api.url + "/pages", paginate=PageNumber(), records_path="data")
    assert table.num_rows == 237
    assert [h.page for h in api.hits] == list(range(1, 12))  # page 11 is empty: that is how it knows


def test_nested_objects_as_structs_or_flattened(api: FaultServer) -> None:
    nested = read_api(api.url + "/pages", paginate=PageNumber(size=25, size_param="per_page"), records_path="data", max_pages=1)
    assert pa.types.is_struct(nested.schema.field("owner").type)
    assert nested["owner"][3].as_py() == {"login": "user3", "geo": {"lat": 0.3}}
    flat = read_api(
        api.url + "/pages", paginate=PageNumber(size=25, size_param="per_page"), records_path="data", max_pages=1, flatten=True
    )
    assert flat.column_names == ["id", "name", "updated_at", "owner__login", "owner__geo__lat"]
    assert flat["owner__geo__lat"][3].as_py() == 0.3


def test_max_pages_bounds_the_read(api: FaultServer) -> None:
    table = ApiSource(api.url, concurrency=3).read(
        "/pages", paginate=PageNumber(size=25, size_param="per_page"), records_path="data", max_pages=4
    )
    assert table["id"].to_pylist() == list(range(100))
    assert sorted(h.page for h in api.hits) == [1, 2, 3, 4]


def test_schema_inferred_across_pages_that_change(api: FaultServer) -> None:
    table = read_api(api.url + "/schema", paginate=PageNumber(), records_path="data")
    assert table.num_rows == 30
    assert table.schema.field("amount").type == pa.float64()  # int on pages 1 and 3, fractional on page 2
    assert table["note"].null_count == 20  # only page 2 has it
    assert table["amount"].to_pylist()[10:12] == [0.5, 1.5]


def test_declared_schema_is_applied_to_every_page(api: FaultServer) -> None:
    schema = pa.schema([("id", pa.int32()), ("amount", pa.float32())])
    batches = list(ApiSource(api.url).read_batches("/schema", paginate=PageNumber(), records_path="data", schema=schema))
    assert len(batches) == 3
    assert all(b.schema == schema for b in batches)


def test_schema_conflict_between_pages_names_column_and_pages(api: FaultServer) -> None:
    with pytest.raises(DataError) as info:
        read_api(api.url + "/schema", params={"bad": "1"}, paginate=PageNumber(), records_path="data")
    err = info.value
    assert err.column == "amount" and err.page == 3
    assert "page 2" in str(err) and "page 3" in str(err) and "schema=" in str(err)


def test_declared_schema_mismatch_names_page_and_column(api: FaultServer) -> None:
    schema = pa.schema([("id", pa.int64()), ("amount", pa.float64())])
    with pytest.raises(DataError) as info:
        read_api(api.url + "/schema", params={"bad": "1"}, paginate=PageNumber(), records_path="data", schema=schema)
    assert info.value.page == 3 and info.value.column == "amount"
    assert "/schema" in info.value.source


def test_source_reads_many_endpoints_and_pickles(api: FaultServer) -> None:
    import pickle

    with ApiSource(api.url + "/", params={"per_page": 25}) as source:
        a = source.read("pages", paginate=PageNumber(size=25), records_path="data")
        b = source.read("/cursor", paginate=Cursor("meta.next"), records_path="data")
        clone = pickle.loads(pickle.dumps(source))
    assert a.num_rows == b.num_rows == 237
    assert clone.read("/link", paginate=LinkHeader()).num_rows == 237
    clone.close()


def test_empty_endpoint_gives_empty_table(api: FaultServer) -> None:
    api.reset(records=0)
    assert read_api(api.url + "/cursor", paginate=Cursor("meta.next"), records_path="data").num_rows == 0
    schema = pa.schema([("id", pa.int64())])
    assert read_api(api.url + "/cursor", paginate=Cursor("meta.next"), records_path="data", schema=schema).schema == schema


def _extract_all(url: str) -> int:
    return read_api(
        url + "/pages", paginate=PageNumber(size=25, size_param="per_page"), records_path="data", concurrency=3
    ).num_rows


def test_read_api_in_a_worker_process(api: FaultServer) -> None:
    from bubbles import Workflow

    wf = Workflow("processes")
    wf.add_task(_extract_all, kwargs={"url": api.url}, name="extract")
    result = wf.run(executor="processes", max_workers=1)
    assert result.tasks["extract"].result == 237
    assert result.tasks["extract"].metrics["http_records"] == 237  # metrics come back from the worker

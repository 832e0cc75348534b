"""Datasets recorded by the connectors, and the column lineage bubbles derives from queries (issue 16)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import xxhash

import bubbles
from bubbles import Workflow
from bubbles._naming import api_dataset, db_dataset, file_dataset, host
from bubbles.data import lineage as data_lineage
from bubbles.data.db.url import parse_url
from bubbles.data.sqllineage import query_lineage
from bubbles.store import open_store


def _store(tmp: Path | None = None) -> Any:
    return open_store(Path(os.environ["BUBBLES_HOME"]) / "history.db")


def _run(*steps: Any, executor: str = "threads", settings: dict[str, Any] | None = None) -> str:
    """Run the steps as a chain of tasks (each gets the previous output); returns the run id."""
    wf = Workflow("lineage-test")
    previous = None
    for step in steps:
        previous = wf.add_task(step, requires=[previous] if previous is not None else None)
    return wf.run(executor=executor, settings={"resources": False, **(settings or {})}).run_id


def _orders(tmp_path: Path) -> str:
    path = tmp_path / "orders.csv"
    path.write_text("id,amount,currency,status\n1,10.5,EUR,paid\n2,3.0,USD,open\n3,7.25,EUR,paid\n")
    return str(path)


# -- naming ---------------------------------------------------------------------------------------------
def test_names_follow_the_openlineage_convention(tmp_path: Path) -> None:
    assert file_dataset(str(tmp_path / "a.csv")) == (f"file://{host()}", str(tmp_path / "a.csv"))
    assert file_dataset("s3://lake/orders/part-0.parquet") == ("s3://lake", "/orders/part-0.parquet")
    assert file_dataset("s3://key:secret@lake/x.csv") == ("s3://lake", "/x.csv")  # credentials never name a dataset
    pg = parse_url("postgresql://etl:${BUBBLES_NAMING_PW}@db.internal:6543/shop", allow_literal_password=True) \
        if "BUBBLES_NAMING_PW" in os.environ else parse_url("postgresql://etl@db.internal:6543/shop")
    assert db_dataset(pg, "orders", "sales") == ("postgres://db.internal:6543", "shop.sales.orders")
    assert db_dataset(parse_url("postgresql://etl@db/shop"), "orders") == ("postgres://db:5432", "shop.public.orders")
    duck = parse_url(f"duckdb:///{tmp_path}/wh.duckdb")
    assert db_dataset(duck, "orders") == (f"duckdb://{host()}{tmp_path}/wh.duckdb", "main.orders")
    assert api_dataset("https://user:pw@api.example.com:8443/v1/orders?api_key=abc") == \
        ("https://api.example.com:8443", "/v1/orders")


# -- column lineage of queries ------------------------------------------------------------------------------
def test_query_lineage_follows_ctes_subqueries_and_joins() -> None:
    q = query_lineage(
        """WITH paid AS (SELECT id, amount, currency FROM orders WHERE status = 'paid')
           SELECT p.id, p.amount * r.rate AS amount_eur, c.name AS customer
           FROM paid p JOIN rates r USING (currency) JOIN (SELECT id AS cid, name FROM customers) c ON c.cid = p.id""",
        "duckdb",
        {"orders": ["id", "amount", "currency", "status"], "rates": ["currency", "rate"], "customers": ["id", "name"]},
    )
    assert q.note is None
    assert set(q.tables) == {("orders",), ("rates",), ("customers",)}  # the CTE is not a table
    assert q.columns["id"] == (("orders", "id", "IDENTITY"),)
    assert set(q.columns["amount_eur"]) == {("orders", "amount", "TRANSFORMATION"), ("rates", "rate", "TRANSFORMATION")}
    assert q.columns["customer"] == (("customers", "name", "IDENTITY"),)


def test_a_query_sqlglot_cannot_parse_is_table_level_with_a_note() -> None:
    q = query_lineage("SELEC id FROMM orders", "duckdb", {"orders": ["id"]})
    assert q.columns == {} and q.tables == ()
    assert q.note is not None and "cannot parse" in q.note


def test_sql_lineage_from_csv_through_sql_to_parquet_across_tasks(tmp_path: Path) -> None:
    csv = _orders(tmp_path)
    out = tmp_path / "out.parquet"

    def extract() -> pa.Table:
        return bubbles.read_csv(csv)

    def transform(orders: pa.Table) -> pa.Table:
        return bubbles.sql(
            "WITH p AS (SELECT id, amount FROM orders WHERE status = 'paid') SELECT id, amount * 2 AS doubled FROM p",
            orders=orders)

    def load(table: pa.Table) -> None:
        bubbles.write_parquet(table, out)

    run_id = _run(extract, transform, load)
    with _store() as store:
        datasets = store.datasets(run_id)
        edges = store.lineage(run_id)
    ns = f"file://{host()}"
    # extract planned the read (its schema is known, its rows not yet); load ran it, fused with the query
    planned = next(d for d in datasets if d["direction"] == "read" and d["task"] == "extract")
    assert (planned["namespace"], planned["name"], planned["rows"], planned["format"]) == (ns, csv, None, "csv")
    assert json.loads(planned["schema"])[0] == ["id", "int64"]
    read = next(d for d in datasets if d["direction"] == "read" and d["task"] == "load")
    assert (read["namespace"], read["name"], read["rows"], read["format"]) == (ns, csv, 3, "csv")
    wrote = next(d for d in datasets if d["direction"] == "write")
    assert (wrote["task"], wrote["name"], wrote["rows"], wrote["kind"]) == ("load", str(out), 2, "file")
    assert wrote["content_hash"] == "xxh3:" + xxhash.xxh3_128_hexdigest(out.read_bytes())
    assert wrote["bytes"] == out.stat().st_size
    columns = {(e["field"], e["input_name"], e["input_field"], e["transformation"]) for e in edges if e["field"]}
    assert columns == {("id", csv, "id", "IDENTITY"), ("doubled", csv, "amount", "TRANSFORMATION")}
    assert [(e["name"], e["input_name"]) for e in edges if e["field"] is None] == [(str(out), csv)]


def test_unparsable_query_still_runs_and_its_lineage_is_table_level(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """sqlglot parses every DuckDB query we could find, so its parser is made to refuse this one,
    as it does for SQL it does not know: the query runs, and its lineage is table-level with a note."""
    import sqlglot

    from bubbles.data import sqllineage

    csv = _orders(tmp_path)
    out = tmp_path / "pivot.parquet"
    query = "PIVOT orders ON currency USING sum(amount) GROUP BY status"

    def refuse(sql: str, *args: Any, **kwargs: Any) -> Any:
        raise sqlglot.errors.ParseError(f"Invalid expression / Unexpected token: {sql[:10]}")

    monkeypatch.setattr(sqlglot, "parse_one", refuse)
    sqllineage._cached.cache_clear()

    def step() -> None:
        bubbles.write_parquet(bubbles.sql(query, orders=bubbles.read_csv(csv)), out)

    run_id = _run(step)
    assert pq.read_table(out).num_rows == 2
    with _store() as store:
        edges = store.lineage(run_id)
    assert [(e["input_name"], e["field"]) for e in edges] == [(csv, None)]
    assert "cannot parse" in edges[0]["note"]


def test_sql_over_a_path_records_the_file_read(tmp_path: Path) -> None:
    csv = _orders(tmp_path)
    out = tmp_path / "out.csv"

    def step() -> None:
        bubbles.write_csv(bubbles.sql("SELECT id, upper(currency) AS cur FROM orders", orders=csv), out,
                          columns={"id": "order_id", "cur": "currency"})

    run_id = _run(step)
    with _store() as store:
        datasets = store.datasets(run_id)
        edges = store.lineage(run_id)
    assert [(d["direction"], d["name"], d["format"]) for d in datasets] == [("read", csv, "csv"), ("write", str(out), "csv")]
    # the CSV writer renamed the columns: lineage names the output's columns
    assert {(e["field"], e["input_field"]) for e in edges if e["field"]} == {("order_id", "id"), ("currency", "currency")}


def test_partitioned_dataset_is_one_dataset_and_split_csv_files_are_each_one(tmp_path: Path) -> None:
    table = pa.table({"id": [1, 2, 3, 4], "country": ["DE", "DE", "FR", "NL"]})
    lake = tmp_path / "lake"

    def step() -> None:
        bubbles.write_parquet(table, lake, partition_by=["country"])
        bubbles.write_csv(table, tmp_path / "out" / "orders_{key}.csv", split_by="country")

    run_id = _run(step)
    with _store() as store:
        written = [d for d in store.datasets(run_id) if d["direction"] == "write"]
    parquet = [d for d in written if d["format"] == "parquet"]
    assert [(d["name"], d["rows"]) for d in parquet] == [(str(lake), 4)]
    files = sorted(p for p in lake.rglob("*.parquet"))
    assert len(files) == 3 and parquet[0]["bytes"] == sum(p.stat().st_size for p in files)
    assert parquet[0]["content_hash"].startswith("xxh3:")
    csvs = sorted((d["name"], d["rows"]) for d in written if d["format"] == "csv")
    assert csvs == [(str(tmp_path / "out" / f"orders_{k}.csv"), n) for k, n in (("DE", 2), ("FR", 1), ("NL", 1))]
    for name, _rows in csvs:
        d = next(d for d in written if d["name"] == name)
        assert d["content_hash"] == "xxh3:" + xxhash.xxh3_128_hexdigest(Path(name).read_bytes())


def test_database_reads_and_writes_name_tables_and_trace_columns(tmp_path: Path) -> None:
    db = tmp_path / "wh.duckdb"
    url = f"duckdb:///{db}"
    with bubbles.connect(url) as conn:
        bubbles.write_table(conn, "customers", pa.table({"id": [1, 2], "name": ["ann", "bo"]}))

    def step() -> None:
        with bubbles.connect(url) as conn:
            rows = bubbles.read_sql(conn, "SELECT c.id, upper(c.name) AS shout FROM customers c WHERE c.id > ?", [0])
            bubbles.write_table(conn, "shouts", rows, mode="replace")

    run_id = _run(step)
    ns = f"duckdb://{host()}{db}"
    with _store() as store:
        datasets = store.datasets(run_id)
        edges = store.lineage(run_id)
    assert [(d["direction"], d["namespace"], d["name"], d["kind"], d["rows"]) for d in datasets] == [
        ("read", ns, "main.customers", "table", 2), ("write", ns, "main.shouts", "table", 2)]
    assert {(e["field"], e["input_name"], e["input_field"], e["transformation"]) for e in edges if e["field"]} == {
        ("id", "main.customers", "id", "IDENTITY"), ("shout", "main.customers", "name", "TRANSFORMATION")}


def test_delivery_records_the_delivered_files_with_their_sha256(tmp_path: Path) -> None:
    table = pa.table({"id": [1, 2]})
    outbox = tmp_path / "outbox"

    def step() -> None:
        files = bubbles.write_csv(table, tmp_path / "report.csv")
        bubbles.deliver(files, to=outbox)

    run_id = _run(step)
    with _store() as store:
        delivered = [d for d in store.datasets(run_id) if d["kind"] == "delivery"]
        edges = store.lineage(run_id)
    assert len(delivered) == 1
    (target,) = list(outbox.glob("*/report.csv"))
    import hashlib

    assert delivered[0]["name"] == str(target)
    assert delivered[0]["content_hash"] == "sha256:" + hashlib.sha256(target.read_bytes()).hexdigest()
    assert (str(target), str(tmp_path / "report.csv")) in {(e["name"], e["input_name"]) for e in edges if e["field"] is None}


def test_api_reads_are_named_by_host_and_path(tmp_path: Path) -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps([{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/v1/users?token=abc"
    out = tmp_path / "users.parquet"
    try:
        from bubbles.data.http import read_api

        def step() -> None:
            bubbles.write_parquet(read_api(url), out)

        run_id = _run(step)
    finally:
        server.shutdown()
        server.server_close()
    with _store() as store:
        datasets = store.datasets(run_id)
        edges = store.lineage(run_id)
    api = next(d for d in datasets if d["kind"] == "api")
    assert (api["namespace"], api["name"], api["rows"]) == (f"http://127.0.0.1:{server.server_address[1]}", "/v1/users", 2)
    assert {(e["field"], e["input_name"]) for e in edges if e["field"]} == {("id", "/v1/users"), ("name", "/v1/users")}


def test_lineage_off_records_nothing(tmp_path: Path) -> None:
    csv = _orders(tmp_path)

    def step() -> None:
        bubbles.write_parquet(bubbles.read_csv(csv), tmp_path / "x.parquet")

    run_id = _run(step, settings={"lineage": "off"})
    with _store() as store:
        assert store.datasets(run_id) == [] and store.lineage(run_id) == []
    assert not (Path(os.environ["BUBBLES_HOME"]) / "lineage.jsonl").exists()


def test_data_crossing_a_process_falls_back_to_the_tasks_reads(tmp_path: Path) -> None:
    csv = _orders(tmp_path)
    out = tmp_path / "out.parquet"

    def step() -> None:
        table = bubbles.read_csv(csv)
        rebuilt = pa.table({"id": table.column("id")})  # made in Python: its origin is not tracked
        bubbles.write_parquet(rebuilt, out)

    run_id = _run(step)
    with _store() as store:
        edges = store.lineage(run_id)
    assert [(e["name"], e["input_name"], e["field"]) for e in edges] == [(str(out), csv, None)]
    assert "not tracked" in edges[0]["note"]


def test_origins_are_weak_and_outside_a_task_nothing_is_remembered() -> None:
    table = pa.table({"a": [1]})
    assert data_lineage.remember(table, data_lineage.dataset_origin("file://h", "/x")) is table
    assert data_lineage.origin_of(table) is None  # not in a task: nothing to remember it for


def test_import_bubbles_loads_no_lineage_library() -> None:
    code = "import sys, bubbles; print([m for m in ('sqlglot', 'openlineage', 'xxhash') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


@pytest.mark.parametrize("hash_name", ["xxh3", "sha256"])
def test_content_hash_of_a_file(tmp_path: Path, hash_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(os.urandom(9 << 20))  # more than one read chunk
    if hash_name == "sha256":
        monkeypatch.setitem(sys.modules, "xxhash", None)  # as without the lineage extra
        import hashlib

        assert data_lineage.content_hash(str(path)) == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    else:
        assert data_lineage.content_hash(str(path)) == "xxh3:" + xxhash.xxh3_128_hexdigest(path.read_bytes())

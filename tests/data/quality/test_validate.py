"""Validation: each rule on real data through DuckDB, the split, conform, actions and thresholds, bad input."""

from __future__ import annotations

import json
import logging
import pickle
from datetime import datetime, timedelta
from decimal import Decimal

import duckdb
import pyarrow as pa
import pytest

import bubbles
from bubbles import Check, Column, Contract, ContractError, DataError, Dedup, Freshness, QualityError, RowCount, validate


def orders() -> pa.Table:
    return pa.table({
        "order_id": ["1", "2", "3", "4", "4", "x"],
        "customer_id": [10, 11, 99, 10, 12, 10],
        "amount": ["5.00", "-1.00", "7.50", "8.00", "9.00", "1.00"],
        "status": ["paid", "paid", "lost", "paid", "shipped", "paid"],
        "email": ["ann@example.com", "bo@example.com", "cy@example.com", "di@x.org", "ed@x.org", "fi@x.org"],
        "code": ["ABC", "abc", "DEF", "GHI", "JKL", "MNO"],
    })


CUSTOMERS = pa.table({"customer_id": [10, 11, 12, None]})

CONTRACT = Contract(
    "orders",
    columns=[
        Column("order_id", "bigint", primary_key=True),
        Column("customer_id", foreign_key="customers.customer_id"),
        Column("amount", "decimal(12,2)", min=0),
        Column("status", accepted_values=["paid", "shipped"]),
        Column("email", pii=True, mask="email"),
        Column("code", regex="^[A-Z]{3}$"),
    ],
)


def test_each_rule_sends_the_rows_that_break_it_to_quarantine_with_reasons() -> None:
    v = validate(orders(), CONTRACT, references={"customers": CUSTOMERS}, quarantine=False, source="orders.csv")
    assert v.valid.column("order_id").to_pylist() == [1]
    assert v.valid.schema.field("amount").type == pa.decimal128(12, 2)  # conformed
    assert v.valid.column("amount").to_pylist() == [Decimal("5.00")]
    by_id = {r["order_id"]: r for r in v.quarantined.to_pylist()}
    assert by_id["2"]["_rules"] == "amount.range, code.regex"
    assert by_id["3"]["_rules"] == "customer_id.foreign_key, status.accepted_values"
    assert by_id["4"]["_rules"] == "order_id.primary_key"
    assert by_id["x"]["_rules"] == "order_id.type"
    assert by_id["2"]["amount"] == "-1.00"  # the source value, as it came
    assert json.loads(by_id["2"]["_values"]) == {"amount": "-1.00", "code": "abc"}
    assert "must be >= 0" in by_id["2"]["_reason"] and by_id["2"]["_column"] == "amount, code"
    assert by_id["3"]["_source"] == "orders.csv" and by_id["3"]["_contract"] == "orders" and by_id["3"]["_pii"] == "email"
    counts = {r.rule: (r.rows_checked, r.rows_failed, r.rows_quarantined, r.outcome) for r in v.results}
    assert counts["order_id.primary_key"] == (6, 2, 2, "quarantined")
    assert counts["customer_id.foreign_key"] == (6, 1, 1, "quarantined")
    assert counts["code.regex"] == (6, 1, 1, "quarantined")
    assert counts["status.accepted_values"][1] == 1 and counts["order_id.type"][1] == 1
    assert v.valid.num_rows + v.quarantined.num_rows == 6


def test_pii_values_are_masked_in_quarantine_samples_and_errors_but_kept_in_the_source_columns() -> None:
    c = Contract("people", columns=[Column("email", pii=True, mask="email", regex="@example[.]com$", action="fail")])
    data = pa.table({"email": ["ann@example.com", "bob@evil.org"]})
    with pytest.raises(QualityError) as info:
        validate(data, c, quarantine=False)
    err = info.value
    assert "bob@evil.org" not in str(err) and "b***@evil.org" in str(err)
    assert err.rule == "email.regex" and err.failed == 1 and err.checked == 2
    assert "fail_above" in str(err) and "quarantine" in str(err)  # says how to fix
    assert pickle.loads(pickle.dumps(err)).rule == "email.regex"
    quarantined = validate(data, Contract("people", columns=[Column("email", pii=True, regex="@example[.]com$")]),
                           quarantine=False)
    (row,) = quarantined.quarantined.to_pylist()
    assert row["email"] == "bob@evil.org" and json.loads(row["_values"]) == {"email": "***"}
    assert quarantined.results[0].examples == ['{"email":"***"}']


def test_conform_never_turns_a_bad_value_into_null_nor_fails_the_batch() -> None:
    c = Contract("t", columns=[Column("n", "integer"), Column("ts", "timestamp"), Column("d", "date")])
    data = pa.table({"n": ["1", "two", None], "ts": ["2024-01-01 10:00:00", "2024-01-01 10:00:00", "yesterday"],
                     "d": ["2024-02-29", "2023-02-29", "2024-03-01"]})
    v = validate(data, c, quarantine=False)
    assert v.valid.to_pylist() == [{"n": 1, "ts": datetime(2024, 1, 1, 10), "d": datetime(2024, 2, 29).date()}]
    rules = {r["n"]: r["_rules"] for r in v.quarantined.to_pylist()}
    assert rules == {"two": "n.type, d.type", None: "ts.type"}
    assert v.quarantined.schema.field("n").type == pa.string()


def test_warn_keeps_rows_and_logs_masked_examples(caplog: pytest.LogCaptureFixture) -> None:
    c = Contract("t", columns=[Column("v", min=0, action="warn"), Column("card", pii=True, mask="card", nullable=False,
                                                                             action="warn")])
    data = pa.table({"v": [1, -2], "card": ["4111 1111 1111 1234", None]})
    with caplog.at_level(logging.WARNING, logger="bubbles"):
        v = validate(data, c, quarantine=False)
    assert v.valid.num_rows == 2 and v.quarantined.num_rows == 0
    assert {r.rule: r.outcome for r in v.results} == {"v.range": "warned", "card.not_null": "warned"}
    assert any("v.range broke on 1 of 2 rows" in m for m in caplog.messages)
    assert not any("4111" in m for m in caplog.messages)


def test_thresholds_tolerate_some_and_fail_past_them() -> None:
    data = pa.table({"v": list(range(-3, 97))})  # 3 of 100 negative
    ok = validate(data, Contract("t", columns=[Column("v", min=0, action="fail", fail_above="5%")]), quarantine=False)
    assert ok.valid.num_rows == 100 and ok.results[0].outcome == "warned"
    with pytest.raises(QualityError, match="3 of 100 rows"):
        validate(data, Contract("t", columns=[Column("v", min=0, action="fail", fail_above=2)]), quarantine=False)
    with pytest.raises(QualityError, match="more than its limit of 1 % of the rows"):
        validate(data, Contract("t", columns=[Column("v", min=0)], fail_above="1%"), quarantine=False)
    kept = validate(data, Contract("t", columns=[Column("v", min=0)], fail_above="1%"), quarantine=False,
                    raise_on_fail=False)
    assert not kept.ok and kept.quarantined.num_rows == 3 and kept.result("table.quarantine_limit").outcome == "failed"


def test_table_rules_row_count_freshness_multi_column_unique_and_sql() -> None:
    now = datetime.now().replace(microsecond=0)
    data = pa.table({"a": [1, 1, 2, None], "b": ["x", "x", "y", "x"], "ts": [now - timedelta(days=5)] * 4,
                     "amount": [5, 0, 3, 1], "status": ["paid", "paid", "refunded", "paid"]})
    c = Contract("t", unique=[["a", "b"]], checks=[Check("paid_has_amount", "status <> 'paid' OR amount > 0",
                                                         columns=["amount"])],
                 row_count=RowCount(max=3, action="warn"), freshness=Freshness("ts", "1d", action="warn"))
    v = validate(data, c, quarantine=False)
    res = {r.rule: r for r in v.results}
    assert res["table.unique_a_b"].rows_failed == 2  # the rows with a null in the key are not compared
    assert res["table.paid_has_amount"].rows_failed == 1
    assert res["table.row_count"].outcome == "warned" and res["table.row_count"].observed == "rows 4"
    assert res["table.freshness"].outcome == "warned" and "latest" in (res["table.freshness"].observed or "")
    assert v.valid.column("a").to_pylist() == [2, None]
    fresh = validate(data, Contract("t", freshness=Freshness("ts", "7d")), quarantine=False)
    assert fresh.results[0].outcome == "passed"
    with pytest.raises(QualityError, match=r"table\.row_count"):
        validate(data, Contract("t", row_count=RowCount(min=10)), quarantine=False)
    stale = validate(data, Contract("t", freshness=Freshness("ts", "1d", action="quarantine")), quarantine=False)
    assert stale.valid.num_rows == 0 and stale.quarantined.num_rows == 4  # the batch as a whole is stale


def test_dedup_keeps_first_or_last_by_the_ordering_column_and_counts_the_rest() -> None:
    data = pa.table({"id": [1, 1, 2, 1], "ts": [1, 3, 1, 2], "v": ["a", "c", "d", "b"]})
    last = validate(data, Contract("t", dedup=Dedup("id", order_by="ts", keep="last")), quarantine=False)
    assert sorted(last.valid.column("v").to_pylist()) == ["c", "d"] and last.dropped == 2
    assert last.quarantined.num_rows == 0 and last.results[0].outcome == "dropped" and last.results[0].rows_failed == 2
    first = validate(data, Contract("t", dedup=Dedup(["id"], order_by="ts", keep="first", action="quarantine")),
                     quarantine=False)
    assert sorted(first.valid.column("v").to_pylist()) == ["a", "d"]
    assert sorted(first.quarantined.column("v").to_pylist()) == ["b", "c"]


@pytest.mark.parametrize("kind", ["empty", "all_null", "all_bad"])
def test_empty_all_null_and_all_bad_inputs_give_empty_valid_output_and_full_quarantine(kind: str) -> None:
    c = Contract("t", columns=[Column("id", "bigint", nullable=False), Column("v", min=0)])
    data = {
        "empty": pa.table({"id": pa.array([], pa.string()), "v": pa.array([], pa.int64())}),
        "all_null": pa.table({"id": pa.array([None, None], pa.string()), "v": pa.array([None, None], pa.int64())}),
        "all_bad": pa.table({"id": ["x", "y"], "v": [-1, -2]}),
    }[kind]
    v = validate(data, c, quarantine=False)
    assert v.valid.num_rows == 0 and v.quarantined.num_rows == data.num_rows
    assert v.valid.schema.field("id").type == pa.int64()
    assert all(r.rows_checked == data.num_rows for r in v.results)


def test_streams_and_relations_are_validated_in_one_pass() -> None:
    data = orders()
    stream = pa.RecordBatchReader.from_batches(data.schema, data.to_batches(max_chunksize=2))
    from_stream = validate(stream, CONTRACT, references={"customers": CUSTOMERS}, quarantine=False)
    con = duckdb.connect()
    con.register("o", data)
    relation = con.sql("SELECT * FROM o")
    from_relation = validate(relation, CONTRACT, references={"customers": CUSTOMERS}, quarantine=False)
    table = validate(data, CONTRACT, references={"customers": CUSTOMERS}, quarantine=False)
    for v in (from_stream, from_relation):
        assert v.valid.to_pylist() == table.valid.to_pylist()
        assert sorted(v.quarantined.column("_rules").to_pylist()) == sorted(table.quarantined.column("_rules").to_pylist())


def test_a_missing_foreign_key_reference_is_a_clear_error() -> None:
    with pytest.raises(ContractError) as info:
        validate(orders(), CONTRACT, quarantine=False)
    assert "table 'customers', which was not given" in str(info.value) and "references=" in str(info.value)
    with pytest.raises(ContractError, match="has no column 'customer_id'"):
        validate(orders(), CONTRACT, references={"customers": pa.table({"id": [1]})}, quarantine=False)


def test_a_missing_column_names_it_and_a_close_one() -> None:
    with pytest.raises(DataError) as info:
        validate(pa.table({"amt": [1]}), Contract("t", columns=[Column("amount", min=0)]), quarantine=False)
    assert "no column 'amount'" in str(info.value) and "Did you mean 'amt'" in str(info.value)
    ok = validate(pa.table({"a": [1]}), Contract("t", columns=[Column("b", min=0, required=False)]), quarantine=False)
    assert ok.valid.num_rows == 1


def test_extra_columns_keep_drop_or_error() -> None:
    data = pa.table({"a": [1], "b": [2]})
    assert validate(data, Contract("t", columns=[Column("a")]), quarantine=False).valid.column_names == ["a", "b"]
    dropped = validate(data, Contract("t", columns=[Column("a")], extra_columns="drop"), quarantine=False)
    assert dropped.valid.column_names == ["a"]
    with pytest.raises(DataError, match="does not declare: b"):
        validate(data, Contract("t", columns=[Column("a")], extra_columns="error"), quarantine=False)


def test_mask_output_masks_pii_in_the_valid_rows_only() -> None:
    c = Contract("t", columns=[Column("email", pii=True, mask="email", nullable=False)], mask_output=True)
    v = validate(pa.table({"email": ["ann@example.com", None]}), c, quarantine=False)
    assert v.valid.column("email").to_pylist() == ["a***@example.com"]


def test_check_makes_a_task_and_its_results_are_in_the_run(tmp_path) -> None:  # type: ignore[no-untyped-def]
    wf = bubbles.Workflow("checked")
    raw = wf.add_task(orders, name="extract")
    customers = wf.add_task(lambda: CUSTOMERS, name="customers")
    wf.add_task(bubbles.check(CONTRACT, quarantine=str(tmp_path / "q")), requires={"data": raw, "customers": customers})
    result = wf.run(executor="processes")
    run = result.tasks["check_orders"]
    assert run.result.num_rows == 1
    quality = [e for e in run.events if e.kind == "quality_result"]
    assert len(quality) == len(CONTRACT.rules()) and sum(e.rows_failed for e in quality) == 7
    (written,) = [e for e in run.events if e.kind == "quarantine_write"]
    assert written.rows == 5 and written.sink == str(tmp_path / "q")
    assert run.metrics["rows_quarantined"] == 5


def test_a_table_and_a_stream_give_the_same_split_in_the_input_order() -> None:
    # no cast and no output mask: for a table the query returns only the broken rows, by index
    c = Contract("t", columns=[Column("id", unique=True), Column("v", min=0), Column("s", regex="^[a-z]+$")],
                 dedup=Dedup(["k"], order_by="id", keep="first"))
    n = 2_000
    data = pa.table({"id": [i if i % 97 else 0 for i in range(n)], "v": [(-1 if i % 89 == 0 else i) for i in range(n)],
                     "s": ["abc" if i % 83 else "ABC" for i in range(n)], "k": [i if i % 7 else i - 1 for i in range(n)]})
    from_table = validate(data, c, quarantine=False)
    stream = pa.RecordBatchReader.from_batches(data.schema, data.to_batches(max_chunksize=300))
    from_stream = validate(stream, c, quarantine=False)
    ids = from_table.valid.column("id").to_pylist()
    assert ids == sorted(ids) and len(ids) == len(set(ids))  # the input's order, nothing twice
    assert sorted(ids) == sorted(from_stream.valid.column("id").to_pylist())
    assert [r.rows_failed for r in from_table.results] == [r.rows_failed for r in from_stream.results]
    assert sorted(from_table.quarantined.column("id").to_pylist()) == sorted(from_stream.quarantined.column("id").to_pylist())
    assert from_table.dropped == from_stream.dropped > 0
    assert from_table.valid.num_rows + from_table.quarantined.num_rows + from_table.dropped == n
    clean = pa.table({"id": [1, 2], "v": [1, 2], "s": ["a", "b"], "k": [1, 2]})
    assert validate(clean, c, quarantine=False).valid.equals(clean)


@pytest.mark.parametrize("typed", [False, True], ids=["narrow", "wide"])
def test_stream_output_gives_the_same_valid_rows(typed: bool) -> None:
    c = Contract("t", columns=[Column("id", "bigint" if typed else None, unique=True), Column("v", min=0)])
    data = pa.Table.from_batches(pa.table({"id": [1, 2, 2, 3, 4], "v": [1, 1, 1, -1, 5]}).to_batches(max_chunksize=2))
    table = validate(data, c, quarantine=False)
    streamed = validate(data, c, quarantine=False, stream=True)
    assert isinstance(streamed.valid, pa.RecordBatchReader)
    assert streamed.valid.read_all().to_pylist() == table.valid.to_pylist() == [{"id": 1, "v": 1}, {"id": 4, "v": 5}]
    assert streamed.quarantined.num_rows == 3


def test_an_empty_batch_fails_a_row_count_minimum_with_zero_rows_counted() -> None:
    empty = pa.table({"v": pa.array([], pa.int64())})
    with pytest.raises(QualityError) as info:
        validate(empty, Contract("t", row_count=RowCount(min=1)), quarantine=False)
    assert info.value.failed == 0 and "rows 0" in str(info.value)
    v = validate(empty, Contract("t", row_count=RowCount(min=1, action="warn")), quarantine=False)
    assert (v.results[0].outcome, v.results[0].rows_failed, v.results[0].observed) == ("warned", 0, "rows 0")

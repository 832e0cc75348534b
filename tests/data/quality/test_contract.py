"""Contracts in Python and YAML: what each rule becomes, and errors that name the file, line and key."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from bubbles import Check, Column, Contract, ContractError, Dedup, Freshness, RowCount, load_contract
from bubbles.data.quality import contract_from_yaml
from bubbles.data.quality.compile import check_contract

YAML = """\
contract: orders
action: quarantine
fail_above: 5%
columns:
  order_id: {type: bigint, primary_key: true}
  email: {type: varchar, pii: true, mask: email}
  amount:
    type: decimal(12,2)
    min: 0
    max: 10000
  status: {accepted_values: [paid, shipped], action: warn}
  customer_id: {type: int64, foreign_key: customers.customer_id}
  currency: {regex: "^[A-Z]{3}$"}
row_count: {min: 1}
freshness: {column: ordered_at, max_age: 2d, action: warn}
unique:
  - [customer_id, ordered_at]
checks:
  - {name: paid_has_amount, sql: "status <> 'paid' OR amount > 0", columns: [status, amount]}
dedup: {key: [order_id], order_by: ordered_at, keep: last}
"""


def test_yaml_and_python_give_the_same_rules(tmp_path: Path) -> None:
    path = tmp_path / "orders.yaml"
    path.write_text(YAML)
    c = load_contract(path)
    assert [r.name for r in c.rules()] == [
        "order_id.type", "order_id.primary_key", "email.type", "amount.type", "amount.range", "status.accepted_values",
        "customer_id.type", "customer_id.foreign_key", "currency.regex", "table.unique_customer_id_ordered_at",
        "table.paid_has_amount", "table.dedup", "table.row_count", "table.freshness",
    ]
    python = Contract(
        "orders",
        columns=[
            Column("order_id", "bigint", primary_key=True),
            Column("email", "varchar", pii=True, mask="email"),
            Column("amount", "decimal(12,2)", min=0, max=10000),
            Column("status", accepted_values=["paid", "shipped"], action="warn"),
            Column("customer_id", "int64", foreign_key="customers.customer_id"),
            Column("currency", regex="^[A-Z]{3}$"),
        ],
        row_count=RowCount(min=1),
        freshness=Freshness("ordered_at", "2d", action="warn"),
        unique=[["customer_id", "ordered_at"]],
        checks=[Check("paid_has_amount", "status <> 'paid' OR amount > 0", columns=["status", "amount"])],
        dedup=Dedup(["order_id"], order_by="ordered_at"),
        fail_above="5%",
        source=str(path),
    )
    assert c == python
    assert c.column("customer_id").type == "BIGINT"  # Arrow spellings become DuckDB's
    assert next(r for r in c.rules() if r.name == "status.accepted_values").action == "warn"
    assert c.pii_columns == ("email",)
    assert pickle.loads(pickle.dumps(c)) == c


@pytest.mark.parametrize(
    ("text", "line", "key", "words"),
    [
        ("contract: o\ncolumns:\n  status:\n    acepted_values: [a]\n", 4, "acepted_values", "Did you mean 'accepted_values'"),
        ("contract: o\nrow_cont: {min: 1}\n", 2, "row_cont", "Did you mean 'row_count'"),
        ("contract: o\ncolumns:\n  a: {type: bigint, action: explode}\n", 3, "action", "not one of warn, quarantine, fail"),
        ("contract: o\ncolumns:\n  a: {min: 5, max: 1}\n", 3, "min", "above max"),
        ("contract: o\nfreshness: {column: ts, max_age: soon}\n", 2, "max_age", "duration"),
        ("contract: o\ncolumns:\n  a: {type: \"int; drop table x\"}\n", 3, "type", "not a type name"),
        ("columns: {}\n", 1, "contract", "no name"),
    ],
)
def test_a_typo_names_file_line_and_key(tmp_path: Path, text: str, line: int, key: str, words: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ContractError) as info:
        load_contract(path)
    err = info.value
    assert (err.source, err.line, err.key) == (str(path), line, key), str(err)
    assert f"{path}, line {line}, key {key!r}" in str(err) and words in str(err)
    assert pickle.loads(pickle.dumps(err)).line == line


def test_bad_yaml_syntax_names_the_line() -> None:
    with pytest.raises(ContractError) as info:
        contract_from_yaml("contract: o\ncolumns:\n  a: {type: bigint\n", "c.yaml")
    assert info.value.line is not None and "not valid YAML" in str(info.value)


def test_a_missing_contract_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(ContractError, match="does not exist"):
        load_contract(tmp_path / "nope.yaml")


def test_duckdb_checks_types_regexes_and_sql_without_data() -> None:
    c = Contract("o", columns=[Column("a", "bigintt"), Column("b", regex="(unclosed"), Column("c", "decimal(12,2)")],
                 checks=[Check("broken", "a >>> AND")])
    problems = check_contract(c)
    assert len(problems) == 3
    assert "unknown type 'BIGINTT'" in problems[0] and "does not compile" in problems[1] and "does not parse" in problems[2]
    assert check_contract(Contract("ok", columns=[Column("a", "bigint", regex="^[0-9]+$")])) == []


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda: Column("a", fail_above="lots"), "fail_above"),
        (lambda: Column("a", accepted_values=[]), "empty"),
        (lambda: Column("a", foreign_key="customers"), "table.column"),
        (lambda: Column("a", mask="scramble"), "unknown mask"),
        (lambda: Column("a", actions={"regexp": "warn"}), "not a column check"),
        (lambda: RowCount(), "needs min or max"),
        (lambda: Check("x y", "a > 0"), "must be a word"),
        (lambda: Check("x", "a > 0; drop table t"), "must not contain ';'"),
        (lambda: Dedup(["id"], order_by="ts", keep="middle"), "first' or 'last"),
        (lambda: Contract("o", columns=[Column("a"), Column("a")]), "declared twice"),
        (lambda: Contract("o", columns=[Column("a", "bigint", action="warn")]).rules(), "cannot be 'warn'"),
    ],
)
def test_python_contract_errors(make, words: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ContractError, match=words):
        make()

"""Identifiers are always quoted and split in one place; queries are passed as queries; placeholders
inside PostgreSQL's E'...' strings and $tag$ bodies stay text."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

import bubbles.data.db as db
from bubbles._errors import ConfigError
from bubbles.data.db.base import bind_params, qualified, split_table
from bubbles.data.db.errors import QueryError


def rows() -> pa.Table:
    return pa.table({"id": [1, 2], "updated_at": [dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 2)]})


def test_a_table_string_is_never_run_as_sql(any_url: str) -> None:
    with db.connect(any_url) as conn:
        db.write_table(conn, "orders", rows())
        db.write_table(conn, "victim", rows())
        attack = "orders) AS s; DROP TABLE victim; SELECT * FROM (SELECT * FROM orders"
        with pytest.raises(QueryError, match="Not retried"):
            db.read_incremental(conn, attack, cursor="updated_at", commit=True)
        assert db.read_table(conn, "victim").num_rows == 2  # still there
        with pytest.raises(ConfigError, match="query="):
            db.read_incremental(conn, "SELECT * FROM orders", cursor="updated_at")


def test_odd_names_are_plain_tables_in_every_form(any_url: str) -> None:
    with db.connect(any_url) as conn:
        for table in ["my table", "select", 'quo"te']:
            db.write_table(conn, table, rows())
            got = db.read_incremental(conn, table, cursor="updated_at", commit=True)
            assert got.num_rows == 2, table
        # the tuple form split_table's docstring gives
        db.write_table(conn, (None, "odd.name"), rows())
        assert db.read_incremental(conn, (None, "odd.name"), cursor="updated_at", commit=True).num_rows == 2
        assert db.read_incremental(conn, ("odd.name",), cursor="updated_at", name="w2").num_rows == 2


def test_split_and_validate_in_one_place() -> None:
    assert split_table("s.t") == ("s", "t") and split_table((None, "a.b")) == (None, "a.b")
    assert qualified(("s", 'x"y')) == '"s"."x""y"'
    for bad in ["", ("a", "b", "c"), ("s", ""), "a\x00b", 42]:
        with pytest.raises(ConfigError):
            split_table(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("sql", "params", "expected"),
    [
        ("SELECT E'it\\'s ?', ?", [1], "SELECT E'it\\'s ?', $1"),
        ("SELECT $fn$ a ? :x $fn$, :x", {"x": 1}, "SELECT $fn$ a ? :x $fn$, $1"),
        ("SELECT $$ ? $$, ?, x::int", [1], "SELECT $$ ? $$, $1, x::int"),
        ("SELECT 'it''s ?', e'\\\\', ?", [1], "SELECT 'it''s ?', e'\\\\', $1"),
        ("SELECT a$b$ , ?", [1], "SELECT a$b$ , $1"),  # $ inside an identifier opens no body
    ],
)
def test_placeholder_tokenizer(sql: str, params, expected: str) -> None:  # type: ignore[no-untyped-def]
    assert bind_params(sql, params, "dollar")[0] == expected


def test_postgres_escape_and_dollar_strings_with_parameters(pg_url: str) -> None:
    with db.connect(pg_url) as conn:
        got = db.read_sql(conn, "SELECT E'it\\'s :x ?' AS a, $q$ ? :x $q$ AS b, :x::int AS c", {"x": 7})
        assert got.to_pylist() == [{"a": "it's :x ?", "b": " ? :x ", "c": 7}]

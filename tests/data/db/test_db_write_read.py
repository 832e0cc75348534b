"""read_sql / write_table against DuckDB, SQLite and a real PostgreSQL (the same tests for each)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa
import pytest

import bubbles.data.db as db
from bubbles._errors import ConfigError, DataError
from bubbles.data.db.errors import ConstraintViolation


def orders(ids: list[int], total: float = 1.5, *, day: int = 1) -> pa.Table:
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "customer": pa.array([f"c{i}" for i in ids]),
            "total": pa.array([total * i for i in ids], pa.float64()),
            "amount": pa.array([Decimal(f"{i}.25") for i in ids], pa.decimal128(12, 2)),
            "paid": pa.array([i % 2 == 0 for i in ids]),
            "day": pa.array([dt.date(2024, 1, day)] * len(ids)),
            "updated_at": pa.array([dt.datetime(2024, 1, day, 10, 0, i % 60) for i in ids], pa.timestamp("us")),
        }
    )


def rows_by_id(conn: db.Connection, table: str = "orders") -> dict[int, dict]:
    out = db.read_sql(conn, f'SELECT * FROM "{table}" ORDER BY id').to_pylist()
    return {r["id"]: r for r in out}


def test_round_trip_keeps_types(any_url: str) -> None:
    with db.connect(any_url) as conn:
        data = orders([1, 2, 3])
        assert db.write_table(conn, "orders", data) == 3
        back = db.read_sql(conn, "SELECT * FROM orders ORDER BY id")
        assert back.column_names == data.column_names
        for name in ("id", "customer", "total", "paid", "day", "updated_at"):
            assert back.column(name).to_pylist() == data.column(name).to_pylist(), name
        assert [Decimal(str(v)) for v in back.column("amount").to_pylist()] == data.column("amount").to_pylist()
        assert back.schema.field("updated_at").type == pa.timestamp("us")


def test_params_are_bound_not_pasted(any_url: str) -> None:
    with db.connect(any_url) as conn:
        db.write_table(conn, "orders", orders([1, 2, 3]))
        evil = "c1' OR '1'='1"
        assert db.read_sql(conn, "SELECT id FROM orders WHERE customer = ?", [evil]).num_rows == 0
        got = db.read_sql(conn, "SELECT id FROM orders WHERE customer = :c OR id = :n ORDER BY id", {"c": "c1", "n": 3})
        assert got.column("id").to_pylist() == [1, 3]
        # a '?' inside a string literal is not a placeholder
        got = db.read_sql(conn, "SELECT '?' AS q, id FROM orders WHERE id = ?", [2])
        assert got.to_pylist() == [{"q": "?", "id": 2}]


def test_identifiers_are_quoted(any_url: str) -> None:
    with db.connect(any_url) as conn:
        odd = pa.table({"Order ID": [1, 2], 'say "hi"': ["a", "b"], "select": [True, False]})
        db.write_table(conn, 'Weird "Table"', odd)
        back = db.read_table(conn, ('Weird "Table"',))
        assert back.column_names == ["Order ID", 'say "hi"', "select"]
        assert back.column("Order ID").to_pylist() == [1, 2]


def test_append_replace_merge(any_url: str) -> None:
    with db.connect(any_url) as conn:
        db.write_table(conn, "orders", orders([1, 2, 3]), mode="merge", key="id")
        db.write_table(conn, "orders", orders([3, 4], total=10.0), mode="merge", key="id")
        rows = rows_by_id(conn)
        assert sorted(rows) == [1, 2, 3, 4]
        assert rows[3]["total"] == 30.0 and rows[1]["total"] == 1.5
        # partial columns in a merge update only those columns
        db.write_table(
            conn, "orders", pa.table({"id": pa.array([1], pa.int64()), "customer": ["renamed"]}), mode="merge", key="id"
        )
        rows = rows_by_id(conn)
        assert rows[1]["customer"] == "renamed" and rows[1]["total"] == 1.5
        db.write_table(conn, "orders", orders([9]), mode="append")
        assert sorted(rows_by_id(conn)) == [1, 2, 3, 4, 9]
        db.write_table(conn, "orders", orders([7, 8]), mode="replace")
        assert sorted(rows_by_id(conn)) == [7, 8]


def test_merge_without_unique_constraint_uses_delete_insert(any_url: str) -> None:
    with db.connect(any_url) as conn:
        db.write_table(conn, "orders", orders([1, 2]))  # append: no primary key
        db.write_table(conn, "orders", orders([2, 3], total=5.0), mode="merge", key=["id"])
        rows = db.read_sql(conn, "SELECT id, total FROM orders ORDER BY id").to_pylist()
        assert rows == [{"id": 1, "total": 1.5}, {"id": 2, "total": 10.0}, {"id": 3, "total": 15.0}]


def test_schema_evolve_freeze_discard(any_url: str) -> None:
    with db.connect(any_url) as conn:
        db.write_table(conn, "orders", orders([1]))
        wider = orders([2]).append_column("channel", pa.array(["web"]))
        with pytest.raises(db.SchemaDriftError) as info:
            db.write_table(conn, "orders", wider, schema="freeze")
        assert "channel (string)" in str(info.value) and "'orders'" in str(info.value)
        assert info.value.columns == ["channel"]
        assert sorted(rows_by_id(conn)) == [1]  # nothing loaded
        db.write_table(conn, "orders", wider, schema="discard")
        assert "channel" not in db.read_table(conn, "orders").column_names
        db.write_table(conn, "orders", orders([3]).append_column("channel", pa.array(["shop"])), schema="evolve")
        rows = rows_by_id(conn)
        assert rows[3]["channel"] == "shop" and rows[1]["channel"] is None and rows[2]["channel"] is None


def test_type_change_is_never_silent(any_url: str) -> None:
    with db.connect(any_url) as conn:
        db.write_table(conn, "orders", orders([1]))
        bad = orders([2]).set_column(0, "id", pa.array(["two"]))
        with pytest.raises(db.SchemaDriftError, match=r"id: table has int64, data has string"):
            db.write_table(conn, "orders", bad, schema="evolve")
        # widening is fine: int32 ids into a BIGINT column
        ok = orders([3]).set_column(0, "id", pa.array([3], pa.int32()))
        db.write_table(conn, "orders", ok)
        assert sorted(rows_by_id(conn)) == [1, 3]


def test_constraint_violation_rolls_back_and_names_key(any_url: str) -> None:
    with db.connect(any_url) as conn:
        db.write_table(conn, "orders", orders([1, 2]), mode="merge", key="id")  # creates PRIMARY KEY (id)
        batches = [orders([10, 11]).to_batches()[0], orders([12, 1]).to_batches()[0]]  # id 1 exists
        with pytest.raises(db.ConstraintViolation) as info:
            db.write_table(conn, "orders", batches, mode="append", batch_size=2)
        assert "orders" in str(info.value)
        assert info.value.table == "orders"
        if conn.dialect == "postgresql":
            assert "Key (id)=(1) already exists" in str(info.value)
            assert info.value.key == "Key (id)=(1) already exists."
        assert sorted(rows_by_id(conn)) == [1, 2]  # the first batch was rolled back too


def test_null_key_in_merge_is_refused_with_row(any_url: str) -> None:
    with db.connect(any_url) as conn:
        data = pa.table({"id": pa.array([1, None, 3], pa.int64()), "v": ["a", "b", "c"]})
        with pytest.raises(DataError) as info:
            db.write_table(conn, "t", data, mode="merge", key="id")
        assert info.value.row == 1 and info.value.column == "id"


def test_query_error_quotes_database_and_query(any_url: str) -> None:
    with db.connect(any_url) as conn:
        with pytest.raises(db.QueryError) as info:
            db.read_sql(conn, "SELEC id FROM orders")
        text = str(info.value)
        assert "SELEC id FROM orders" in text and "syntax error" in text.lower()
        assert info.value.query == "SELEC id FROM orders"


def test_streaming_read_in_batches(any_url: str) -> None:
    with db.connect(any_url) as conn:
        n = 50_000
        db.write_table(conn, "big", pa.table({"id": pa.array(range(n), pa.int64()), "x": pa.array([i * 0.5 for i in range(n)])}))
        reader = db.read_batches(conn, "SELECT * FROM big", batch_size=10_000)
        sizes = [b.num_rows for b in reader]
        assert sum(sizes) == n
        if conn.dialect != "postgresql":  # ADBC picks its own batch size by bytes
            assert max(sizes) <= 10_000 and len(sizes) >= 5


def test_write_accepts_dataframes_and_readers(any_url: str) -> None:
    import pandas as pd
    import polars as pl

    with db.connect(any_url) as conn:
        db.write_table(conn, "t", pd.DataFrame({"id": [1, 2], "v": ["a", "b"]}))
        db.write_table(conn, "t", pl.DataFrame({"id": [3], "v": ["c"]}))
        db.write_table(conn, "t", pa.table({"id": [4], "v": ["d"]}).to_reader())
        assert db.read_sql(conn, "SELECT id FROM t ORDER BY id").column("id").to_pylist() == [1, 2, 3, 4]


def test_bad_arguments_are_config_errors(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with db.connect(f"duckdb:///{tmp_path}/x.duckdb") as conn:
        with pytest.raises(ConfigError, match="needs key"):
            db.write_table(conn, "t", pa.table({"a": [1]}), mode="merge")
        with pytest.raises(ConfigError, match="not in the data"):
            db.write_table(conn, "t", pa.table({"a": [1]}), mode="merge", key="id")
        with pytest.raises(ConfigError, match="mode must be"):
            db.write_table(conn, "t", pa.table({"a": [1]}), mode="upsert")  # type: ignore[arg-type]
        with pytest.raises(ConfigError, match="more values"):
            db.read_sql(conn, "SELECT ?", [1, 2])


def test_schema_qualified_tables(any_url: str) -> None:
    with db.connect(any_url) as conn:
        if conn.dialect == "sqlite":  # no schemas, only attached databases: a clear error
            with pytest.raises(db.QueryError, match='unknown database "sales"'):
                db.write_table(conn, "sales.orders", orders([1]))
            return
        db.write_table(conn, "sales.orders", orders([1, 2]), mode="merge", key="id")
        db.write_table(conn, "sales.orders", orders([2, 3]), mode="merge", key="id")
        assert sorted(db.read_table(conn, "sales.orders", columns=["id"]).column("id").to_pylist()) == [1, 2, 3]


def test_duplicate_keys_in_one_merge_are_refused(any_url: str) -> None:
    with db.connect(any_url) as conn:
        db.write_table(conn, "orders", orders([1]))  # no primary key: nothing else would notice
        # (PostgreSQL: staged merge, checked in the stage)
        with pytest.raises(DataError, match=r"Key \(id=2\) appears 2 times"):
            db.write_table(conn, "orders", orders([2, 2]), mode="merge", key="id")
        assert sorted(rows_by_id(conn)) == [1]


def test_merge_rereading_unchanged_rows_changes_nothing(any_url: str) -> None:
    with db.connect(any_url) as conn:
        db.write_table(conn, "orders", orders([1, 2, 3]), mode="merge", key="id")
        db.write_table(conn, "orders", orders([1, 2, 3]), mode="merge", key="id")
        db.write_table(conn, "orders", orders([2], total=7.0), mode="merge", key="id")
        assert db.read_sql(conn, "SELECT id, total FROM orders ORDER BY id").to_pylist() == [
            {"id": 1, "total": 1.5},
            {"id": 2, "total": 14.0},
            {"id": 3, "total": 4.5},
        ]


def test_lossy_cast_is_refused_with_column(any_url: str) -> None:
    with db.connect(any_url) as conn:
        db.write_table(conn, "t", pa.table({"small": pa.array([1], pa.int16())}))
        big = pa.table({"small": pa.array([1], pa.int16())}).cast(pa.schema([("small", pa.int64())]))
        if conn.dialect == "sqlite":  # every SQLite integer column holds 64 bits
            assert db.write_table(conn, "t", big) == 1
        else:
            with pytest.raises(db.SchemaDriftError, match="small: table has int16, data has int64"):
                db.write_table(conn, "t", big)
        if conn.dialect == "postgresql":  # nanoseconds do not fit PostgreSQL's microseconds
            db.write_table(conn, "ts", pa.table({"at": pa.array([0], pa.timestamp("us"))}))
            ns = pa.table({"at": pa.array([1], pa.timestamp("ns"))})
            with pytest.raises(db.SchemaDriftError, match=r"Column 'at' \(timestamp\[ns\]\)") as info:
                db.write_table(conn, "ts", ns)
            assert info.value.column == "at" and info.value.row == 0


def test_merge_mixes_new_keys_below_and_above_and_existing(any_url: str) -> None:
    with db.connect(any_url) as conn:
        db.write_table(conn, "orders", orders([10, 20, 30]), mode="merge", key="id")
        # 5 and 25 are new but below the largest key (looked up), 40 is above it (straight in),
        # 20 exists (updated)
        first = orders([5, 20, 25], total=2.0).to_batches()[0]
        later = orders([40], total=3.0).to_batches()[0]
        db.write_table(conn, "orders", [first, later], mode="merge", key="id")
        got = {r["id"]: r["total"] for r in db.read_sql(conn, "SELECT id, total FROM orders").to_pylist()}
        assert got == {5: 10.0, 10: 15.0, 20: 40.0, 25: 50.0, 30: 45.0, 40: 120.0}
        # a key twice in one load, even in different batches, is refused and nothing is loaded
        twice = [orders([7]).to_batches()[0], orders([7, 8]).to_batches()[0]]
        if conn.dialect == "postgresql":  # new keys go straight in: the primary key refuses the repeat
            with pytest.raises(db.ConstraintViolation, match=r"Key \(id\)=\(7\) already exists"):
                db.write_table(conn, "orders", twice, mode="merge", key="id")
        else:
            with pytest.raises(DataError, match=r"Key \(id=7\) appears 2 times"):
                db.write_table(conn, "orders", twice, mode="merge", key="id")
        assert 7 not in {r["id"] for r in db.read_sql(conn, "SELECT id FROM orders").to_pylist()}


def test_merge_on_text_and_composite_keys(any_url: str) -> None:
    with db.connect(any_url) as conn:
        data = pa.table({"region": ["eu", "eu", "us"], "sku": ["b", "a", "a"], "qty": [1, 2, 3]})
        db.write_table(conn, "stock", data, mode="merge", key=["region", "sku"])
        db.write_table(
            conn,
            "stock",
            pa.table({"region": ["eu", "asia"], "sku": ["a", "a"], "qty": [9, 4]}),
            mode="merge",
            key=["region", "sku"],
        )
        rows = db.read_sql(conn, "SELECT region, sku, qty FROM stock ORDER BY region, sku").to_pylist()
        assert [(r["region"], r["sku"], r["qty"]) for r in rows] == [
            ("asia", "a", 4),
            ("eu", "a", 9),
            ("eu", "b", 1),
            ("us", "a", 3),
        ]
        db.write_table(conn, "codes", pa.table({"code": ["x", "y"], "n": [1, 2]}), mode="merge", key="code")
        db.write_table(conn, "codes", pa.table({"code": ["a", "y", "z"], "n": [0, 20, 30]}), mode="merge", key="code")
        codes = db.read_sql(conn, "SELECT code, n FROM codes ORDER BY code").to_pylist()
        assert {r["code"]: r["n"] for r in codes} == {"a": 0, "x": 1, "y": 20, "z": 30}


def test_duplicate_existing_keys_in_a_merge_are_refused(any_url: str) -> None:
    with db.connect(any_url) as conn:
        db.write_table(conn, "orders", orders([1, 2, 3]), mode="merge", key="id")
        with pytest.raises(DataError, match=r"Key \(id=2\) appears 2 times"):
            db.write_table(conn, "orders", orders([2, 2], total=9.0), mode="merge", key="id")
        assert db.read_sql(conn, "SELECT total FROM orders WHERE id = 2").to_pylist() == [{"total": 3.0}]


def test_failed_replace_leaves_the_old_table(any_url: str) -> None:
    with db.connect(any_url) as conn:
        db.write_table(conn, "orders", orders([1, 2]))
        good = orders([5]).to_batches()[0]
        bad = pa.table({"id": pa.array([None], pa.int64())}).to_batches()[0]
        bad = pa.RecordBatch.from_arrays(
            [bad.column(0), *(pa.nulls(1, f.type) for f in good.schema if f.name != "id")], schema=good.schema
        )
        with pytest.raises(DataError, match="Key column 'id' is empty"):
            db.write_table(conn, "orders", [good, bad], mode="replace", key="id")
        assert sorted(rows_by_id(conn)) == [1, 2]
        tables = db.read_sql(conn, "SELECT count(*) AS n FROM orders").column("n").to_pylist()
        assert tables == [2]


def test_replace_keeps_indexes_views_and_constraints(any_url: str) -> None:
    with db.connect(any_url) as conn:
        db.write_table(conn, "orders", orders([1, 2, 3]), key="id")
        conn.execute("CREATE INDEX orders_customer ON orders (customer)")
        conn.execute("CREATE VIEW big_orders AS SELECT id FROM orders WHERE total > 2")
        # the same keys again: the old rows are gone before the new ones arrive, in one transaction
        db.write_table(conn, "orders", orders([2, 3, 4], total=5.0), mode="replace", key="id")
        assert sorted(rows_by_id(conn)) == [2, 3, 4]
        assert sorted(db.read_sql(conn, "SELECT id FROM big_orders").column("id").to_pylist()) == [2, 3, 4]
        with pytest.raises(ConstraintViolation):  # the primary key is still there
            db.write_table(conn, "orders", orders([4]))
        if conn.dialect == "sqlite":
            names = db.read_sql(conn, "SELECT name FROM sqlite_master WHERE type = 'index'").column("name").to_pylist()
        elif conn.dialect == "duckdb":
            names = db.read_sql(conn, "SELECT index_name AS name FROM duckdb_indexes()").column("name").to_pylist()
        else:
            names = db.read_sql(conn, "SELECT indexname AS name FROM pg_indexes WHERE tablename = 'orders'").column(
                "name").to_pylist()
        assert "orders_customer" in names
        with pytest.raises(db.SchemaDriftError, match="keeps the table's definition"):
            db.write_table(conn, "orders", pa.table({"id": ["not-a-number"]}), mode="replace")
        assert sorted(rows_by_id(conn)) == [2, 3, 4]


def test_replace_keeps_grants_and_foreign_keys_on_postgres(pg_url: str) -> None:
    with db.connect(pg_url) as conn:
        db.write_table(conn, "customers", pa.table({"id": pa.array([1, 2], pa.int64())}), key="id")
        conn.execute("CREATE ROLE bubbles_reader_test")
        conn.execute("GRANT SELECT ON customers TO bubbles_reader_test")
        conn.execute("CREATE TABLE visits (customer bigint REFERENCES customers (id))")
        db.write_table(conn, "customers", pa.table({"id": pa.array([2, 3], pa.int64())}), mode="replace")
        grants = db.read_sql(conn, "SELECT grantee FROM information_schema.role_table_grants "
                                   "WHERE table_name = 'customers' AND grantee = 'bubbles_reader_test'")
        assert grants.num_rows == 1
        # rows other tables reference cannot be replaced (the foreign key refuses, the load rolls back)
        conn.execute("INSERT INTO visits VALUES (2)")
        with pytest.raises(ConstraintViolation, match="still referenced"):
            db.write_table(conn, "customers", pa.table({"id": pa.array([2, 3], pa.int64())}), mode="replace")
        assert db.read_sql(conn, "SELECT id FROM customers ORDER BY id").column("id").to_pylist() == [2, 3]
        conn.execute("DROP TABLE visits")
        conn.execute("REVOKE ALL ON customers FROM bubbles_reader_test")
        conn.execute("DROP ROLE bubbles_reader_test")

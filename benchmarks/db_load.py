"""Database load/read benchmark: bubbles against the bulk paths of PostgreSQL and DuckDB, same run.

Starts a throwaway PostgreSQL (default durability: fsync on) on 127.0.0.1, generates cleaned
order rows, and times, each in a fresh child process (so peak RSS is per case):

  load into PostgreSQL   ADBC ingest (baseline) | psql \\copy from CSV | pandas.to_sql (sample,
                         extrapolated) | bubbles write_table append | merge | replace (kept table)
  read from PostgreSQL   psql \\copy to /dev/null (baseline) | pandas.read_sql | bubbles read_sql
                         (whole Arrow table) | bubbles read_batches (streamed)
  load into DuckDB       DuckDB INSERT from Arrow (baseline) | bubbles write_table

and prints the ratios the issue sets as targets. Usage:

    python benchmarks/db_load.py [--rows 1000000] [--repeat 2] [--to-sql-rows 20000]

Needs: PostgreSQL server binaries (scripts/install-services), psql, pandas, sqlalchemy (for
pandas.to_sql / read_sql on PostgreSQL; benchmark only).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
sys.path.insert(0, str(HERE.parent / "src"))


def make_orders(rows: int):  # type: ignore[no-untyped-def]
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(3)
    ids = np.arange(1, rows + 1, dtype=np.int64)
    start = np.datetime64("2024-01-01T00:00:00", "us")
    countries = pa.array(["DE", "FR", "US", "GB", "NL", "ES", "IT", "PL"])
    statuses = pa.array(["paid", "shipped", "delivered", "returned"])
    return pa.table(
        {
            "order_id": ids,
            "customer_id": rng.integers(1, 200_000, rows, dtype=np.int32),
            "order_date": pa.array((start + ids * 1_000_000).astype("datetime64[D]")),
            "updated_at": pa.array(start + ids * 1_000_000),
            "status": statuses.take(pa.array(rng.integers(0, 4, rows))),
            "country": countries.take(pa.array(rng.integers(0, 8, rows))),
            "quantity": rng.integers(1, 20, rows, dtype=np.int32),
            "unit_price": np.round(rng.uniform(1, 500, rows), 2),
            "total": np.round(rng.uniform(1, 5000, rows), 2),
            "email": pa.array([f"customer{i % 200_000}@example.com" for i in range(rows)]),
        }
    )


DDL = (
    "CREATE TABLE {t} (order_id bigint, customer_id integer, order_date date, updated_at timestamp, status text, "
    "country text, quantity integer, unit_price double precision, total double precision, email text)"
)


def _current_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mb() -> float:
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so a child would report the
    # peak of the benchmark process that started it.
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(case: str, url: str, rows: int, extra: str) -> dict:  # type: ignore[type-arg]
    """Run one case in this (fresh) process; return seconds and peak RSS."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    loads = ("load", "duck", "merge", "append", "replace")
    data = pq.read_table(DATA / f"orders-{rows}.parquet") if case.startswith(loads) else None
    # import what the case needs (only that: peak RSS is per process) before the clock starts
    if "bubbles" in case or case == "load-adbc":
        import adbc_driver_postgresql.dbapi  # noqa: F401

        import bubbles.data.db  # noqa: F401
    if case.startswith("duck"):
        import duckdb
    if case in ("load-tosql", "read-pandas"):
        import pandas  # noqa: F401
        import sqlalchemy
    base_mb = _current_mb()
    t0 = time.perf_counter()
    if case == "load-adbc":
        import adbc_driver_postgresql.dbapi as pgdb

        with pgdb.connect(url) as c, c.cursor() as cur:
            cur.execute("DROP TABLE IF EXISTS adbc_orders")
            cur.execute(DDL.format(t="adbc_orders"))
            cur.adbc_ingest("adbc_orders", data, mode="append")
            c.commit()
    elif case == "load-bubbles":
        import bubbles.data.db as db

        with db.connect(url) as conn:
            db.write_table(conn, "bubbles_orders", data)
    elif case in ("merge-bubbles", "append-bubbles-pk"):
        # Both into a non-empty table with a primary key (one earlier row, key 0), so the merge
        # really stages and runs INSERT ... ON CONFLICT; the append is a plain bulk insert.
        import bubbles.data.db as db

        table = f"{case.split('-')[0]}_orders_{os.getpid()}"
        with db.connect(url) as conn:
            db.write_table(conn, table, data.slice(0, 1).set_column(0, "order_id", pa.array([0], pa.int64())), key="order_id")
            t0 = time.perf_counter()
            if case == "merge-bubbles":
                db.write_table(conn, table, data, mode="merge", key="order_id")
            else:
                db.write_table(conn, table, data)
    elif case == "replace-bubbles":
        # A table with a primary key and a second index, full of the same rows: replace empties it
        # (TRUNCATE) and loads into the kept table, indexes maintained as the rows arrive.
        import bubbles.data.db as db

        table = f"repl_orders_{os.getpid()}"
        with db.connect(url) as conn:
            db.write_table(conn, table, data, key="order_id")
            conn.execute(f'CREATE INDEX "{table}_customer" ON "{table}" (customer_id)')
            t0 = time.perf_counter()
            db.write_table(conn, table, data, mode="replace")
    elif case == "merge-update-bubbles":
        # Every key exists already and half of the rows changed: the look-up + stage + UPDATE path.
        import pyarrow.compute as pc

        import bubbles.data.db as db

        table = f"upd_orders_{os.getpid()}"
        changed = data.set_column(
            8, "total", pc.add(data.column("total"), pa.array([0.0, 1.0] * (data.num_rows // 2) + [0.0] * (data.num_rows % 2)))
        )
        with db.connect(url) as conn:
            db.write_table(conn, table, data, mode="merge", key="order_id")
            t0 = time.perf_counter()
            db.write_table(conn, table, changed, mode="merge", key="order_id")
    elif case == "load-tosql":
        import pandas as pd
        import sqlalchemy

        frame = data.slice(0, int(extra)).to_pandas()
        t0 = time.perf_counter()
        engine = sqlalchemy.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
        frame.to_sql("tosql_orders", engine, index=False, chunksize=10_000)
        engine.dispose()
        del pd
    elif case == "read-psql":
        subprocess.run(["psql", url, "-qc", "\\copy adbc_orders TO '/dev/null'"], check=True)
    elif case == "read-pandas":
        import warnings

        import pandas as pd
        import sqlalchemy

        warnings.simplefilter("ignore")
        engine = sqlalchemy.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
        frame = pd.read_sql("SELECT * FROM adbc_orders", engine)
        assert len(frame) == rows
    elif case == "read-bubbles":
        import bubbles.data.db as db

        with db.connect(url) as conn:
            table = db.read_sql(conn, "SELECT * FROM adbc_orders")
            assert table.num_rows == rows
    elif case == "stream-bubbles":
        import bubbles.data.db as db

        with db.connect(url) as conn:
            n = sum(b.num_rows for b in db.read_batches(conn, "SELECT * FROM adbc_orders"))
            assert n == rows
    elif case == "duck-native":
        import duckdb

        con = duckdb.connect(str(DATA / f"native-{os.getpid()}.duckdb"))
        con.execute(DDL.format(t="orders"))
        con.register("src", data)
        con.execute("INSERT INTO orders SELECT * FROM src")
        con.close()
    elif case == "duck-bubbles":
        import bubbles.data.db as db

        with db.connect(f"duckdb:///{DATA}/bubbles-{os.getpid()}.duckdb") as conn:
            db.write_table(conn, "orders", data)
    else:
        raise SystemExit(f"unknown case {case}")
    seconds = time.perf_counter() - t0
    for f in DATA.glob(f"*-{os.getpid()}.duckdb*"):
        f.unlink()
    return {"case": case, "seconds": seconds, "peak_mb": _peak_mb(), "base_mb": base_mb}


def run_case(case: str, url: str, rows: int, extra: str = "") -> dict:  # type: ignore[type-arg]
    out = subprocess.run(
        [sys.executable, __file__, "--child", case, "--url", url, "--rows", str(rows), "--extra", extra],
        check=False,
        capture_output=True,
        text=True,
    )
    if out.returncode:
        raise SystemExit(f"case {case} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _growth(v: dict) -> float:  # type: ignore[type-arg]
    """Peak RSS above what the process held before the case began (interpreter and imports)."""
    return max(v["peak_mb"] - v["base_mb"], 1.0)


def _best(results: dict, new: dict) -> None:  # type: ignore[type-arg]
    old = results.get(new["case"])
    if old is None or new["seconds"] < old["seconds"]:
        results[new["case"]] = new


def _drop_tables(url: str) -> None:
    sql = (
        "DO $$ DECLARE t text; BEGIN FOR t IN SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
        "LOOP EXECUTE 'DROP TABLE ' || quote_ident(t); END LOOP; END $$"
    )
    subprocess.run(["psql", url, "-qc", sql], check=True, capture_output=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--to-sql-rows", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--child")
    ap.add_argument("--url", default="")
    ap.add_argument("--extra", default="")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.url, args.rows, args.extra)))
        return

    import pyarrow.parquet as pq

    from bubbles.data.db.testing import TempPostgres

    DATA.mkdir(exist_ok=True)
    path = DATA / f"orders-{args.rows}.parquet"
    if not path.exists():
        pq.write_table(make_orders(args.rows), path)
    print(f"{args.rows:,} order rows; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    with TempPostgres(settings={"fsync": "on", "shared_buffers": "256MB"}) as pg:
        # libpq (ADBC, psql, psycopg) reads the password from PGPASSWORD; none is in the URL
        os.environ["PGPASSWORD"] = pg.password
        url = pg.url("postgres", password=False)
        r: dict[str, dict] = {}  # type: ignore[type-arg]
        run_case("load-adbc", url, args.rows)  # warm-up: WAL segments and caches, not timed
        for _ in range(args.repeat):  # best of N, cases interleaved so that load spikes hit all of them
            for case in ("load-adbc", "load-bubbles", "merge-bubbles", "append-bubbles-pk", "merge-update-bubbles",
                         "replace-bubbles", "load-tosql"):
                if case == "load-tosql" and case in r:
                    continue
                _best(r, run_case(case, url, args.rows, str(args.to_sql_rows)))
                _drop_tables(url)
        run_case("load-adbc", url, args.rows)  # the table the reads read
        for _ in range(args.repeat):
            for case in ("read-psql", "read-pandas", "read-bubbles", "stream-bubbles"):
                _best(r, run_case(case, url, args.rows))
    for _ in range(args.repeat):
        for case in ("duck-native", "duck-bubbles"):
            _best(r, run_case(case, "", args.rows))

    rows = args.rows
    tosql_rate = args.to_sql_rows / r["load-tosql"]["seconds"]
    print(f"\n{'case':<22}{'seconds':>9}{'rows/s':>12}{'peak MB':>9}{'before MB':>11}")
    for case, v in r.items():
        n = args.to_sql_rows if case == "load-tosql" else rows
        print(f"{case:<22}{v['seconds']:>9.2f}{n / v['seconds']:>12,.0f}{v['peak_mb']:>9.0f}{v['base_mb']:>11.0f}")
    s = {k: v["seconds"] for k, v in r.items()}
    checks = [
        ("bubbles load / ADBC ingest", s["load-bubbles"] / s["load-adbc"], "<= 1.2"),
        ("bubbles load rows/s / to_sql rows/s", rows / s["load-bubbles"] / tosql_rate, ">= 15"),
        ("bubbles merge (stage + update/insert) / append", s["merge-bubbles"] / s["append-bubbles-pk"], "<= 1.5"),
        ("bubbles read_sql / psql \\copy >/dev/null", s["read-bubbles"] / s["read-psql"], "<= 1.4"),
        ("bubbles read_batches / psql \\copy", s["stream-bubbles"] / s["read-psql"], "<= 1.4"),
        ("bubbles read_sql peak RSS / pandas.read_sql", r["read-bubbles"]["peak_mb"] / r["read-pandas"]["peak_mb"], "<= 0.2"),
        ("bubbles read_batches peak RSS / pandas", r["stream-bubbles"]["peak_mb"] / r["read-pandas"]["peak_mb"], "<= 0.2"),
        ("read_sql RSS growth / pandas RSS growth", _growth(r["read-bubbles"]) / _growth(r["read-pandas"]), "<= 0.2"),
        ("read_batches RSS growth / pandas RSS growth", _growth(r["stream-bubbles"]) / _growth(r["read-pandas"]), "<= 0.2"),
        ("bubbles DuckDB load / DuckDB insert from Arrow", s["duck-bubbles"] / s["duck-native"], "<= 1.2"),
    ]
    print()
    for label, value, target in checks:
        op, bound = target.split()
        ok = value <= float(bound) if op == "<=" else value >= float(bound)
        print(f"{label:<48}{value:>8.2f}   target {target:<7} {'ok' if ok else 'MISSED'}")
    print(f"(to_sql: {tosql_rate:,.0f} rows/s on a {args.to_sql_rows:,}-row sample, extrapolated)")
    upd = s["merge-update-bubbles"] / s["append-bubbles-pk"]
    print(f"(merge where every key exists and half the rows changed: {upd:.2f}x an append; no target)")
    rep = s["replace-bubbles"] / s["append-bubbles-pk"]
    print(f"(replace of a full table with a primary key and a second index, kept: {rep:.2f}x an append; no target)")


if __name__ == "__main__":
    main()

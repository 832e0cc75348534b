"""PostgreSQL -> DuckDB transform -> Parquet, as separate tasks: does the query's result stream into the plan?

Usage:
    python benchmarks/lazy_db.py [--rows 2000000] [--rounds 3]

Starts a throwaway PostgreSQL on 127.0.0.1 (``TempPostgres``, as the tests do), loads ``--rows``
order rows (``db_load.py``'s data), and runs in alternated rounds, each in a child process of its
own (peak RSS is the job's: VmHWM):

* ``adbc_duckdb``: hand-written: ADBC's Arrow stream of the query handed to one DuckDB
  ``COPY (aggregate) TO`` statement (streams, no copy);
* ``bubbles``: the natural workflow — ``extract`` returns ``read_sql(...)``, ``transform`` returns
  ``bubbles.sql(...)``, ``load`` writes Parquet — run by plain ``wf.run()``;
* ``bubbles_eager``: the same with ``lazy = "off"`` (the query's result an Arrow table in memory).

Two jobs: ``agg`` (revenue by country and status: the whole table streams through an
aggregation) and ``filter`` (the shipped orders with a derived column, written whole).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(SRC))

import db_load  # noqa: E402  (its order rows and peak-memory reading)

QUERY = "SELECT * FROM orders WHERE order_date >= DATE '2020-01-01'"
SQL = {
    "agg": "SELECT country, status, count(*) AS orders, sum(total) AS revenue FROM o GROUP BY ALL ORDER BY ALL",
    "filter": "SELECT order_id, customer_id, order_date, country, total, total * 0.19 AS vat FROM o WHERE status = 'shipped'",
}
ENGINES = ("adbc_duckdb", "bubbles", "bubbles_eager")


def adbc_duckdb(url: str, job: str, out: str) -> None:
    import adbc_driver_postgresql.dbapi as pg
    import duckdb

    with pg.connect(url) as conn, conn.cursor() as cur:
        cur.execute(QUERY)
        reader = cur.fetch_record_batch()
        con = duckdb.connect()
        con.execute("SET enable_progress_bar = false")
        con.register("o", reader)
        con.execute(f"COPY ({SQL[job]}) TO '{out}' (FORMAT parquet, COMPRESSION zstd)")


def extract(url: str) -> Any:
    import bubbles

    with bubbles.connect(url) as conn:
        return bubbles.read_sql(conn, QUERY)


def transform(o: Any, job: str) -> Any:
    import bubbles

    return bubbles.sql(SQL[job], o=o)


def load(table: Any, out: str) -> int:
    import bubbles

    return sum(f.rows for f in bubbles.write_parquet(table, out))


def bubbles_job(url: str, job: str, out: str, lazy: str) -> None:
    from bubbles import Workflow

    wf = Workflow(f"db-{job}")
    e = wf.add_task(extract, kwargs={"url": url})
    t = wf.add_task(transform, requires=[e], kwargs={"job": job})
    wf.add_task(load, requires=[t], kwargs={"out": out})
    result = wf.run(settings={"lazy": lazy}) if lazy != "auto" else wf.run()
    assert result.ok, result.summary()


def child(engine: str, url: str, job: str, out: str) -> None:
    import adbc_driver_postgresql.dbapi  # noqa: F401  (libraries imported before the clock, for every engine)
    import duckdb  # noqa: F401
    import pyarrow.parquet  # noqa: F401

    if engine.startswith("bubbles"):
        import sqlglot.dialects.duckdb  # noqa: F401

        import bubbles
        import bubbles.data.lazy.engine
        import bubbles.observe.lineage  # noqa: F401
    t0 = time.perf_counter()
    if engine == "adbc_duckdb":
        adbc_duckdb(url, job, out)
    else:
        bubbles_job(url, job, out, "off" if engine == "bubbles_eager" else "auto")
    print(json.dumps({"seconds": time.perf_counter() - t0, "peak_mb": db_load._peak_mb()}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return

    import adbc_driver_postgresql.dbapi as pg

    from bubbles.data.db.testing import TempPostgres

    with TempPostgres() as server, tempfile.TemporaryDirectory(prefix="bubbles-lazy-db-") as tmp:
        os.environ["PGPASSWORD"] = server.password
        url = server.url("postgres", password=False)
        with pg.connect(url) as conn, conn.cursor() as cur:
            cur.adbc_ingest("orders", db_load.make_orders(args.rows), mode="create")
            conn.commit()
        print(f"{args.rows:,} rows in PostgreSQL; {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}; "
              f"{args.rounds} alternated rounds")
        env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
               "BUBBLES_HOME": os.path.join(tmp, "home"), "BUBBLES_PROGRESS": "0"}
        results: dict[tuple[str, str], list[dict[str, float]]] = {}
        for _ in range(args.rounds):
            for job in SQL:
                for engine in ENGINES:
                    out = os.path.join(tmp, f"{job}-{engine}.parquet")
                    proc = subprocess.run([sys.executable, __file__, "--child", engine, url, job, out], env=env,
                                          capture_output=True, text=True, check=False)
                    if proc.returncode:
                        raise SystemExit(f"{engine} {job} failed:\n{proc.stderr[-3000:]}")
                    line = next(x for x in proc.stdout.splitlines() if x.startswith("{"))
                    results.setdefault((job, engine), []).append(json.loads(line))
        import pyarrow.parquet as pq

        for job in SQL:
            counts = {e: pq.read_metadata(os.path.join(tmp, f"{job}-{e}.parquet")).num_rows for e in ENGINES}
            if len(set(counts.values())) != 1:
                raise SystemExit(f"{job}: the engines disagree on the rows written: {counts}")
    print(f"load average at end {os.getloadavg()[0]:.1f}")
    for job in SQL:
        print(f"\n{job}:")
        med = {e: (statistics.median(r["seconds"] for r in results[(job, e)]),
                   statistics.median(r["peak_mb"] for r in results[(job, e)])) for e in ENGINES}
        for engine, (secs, peak) in med.items():
            print(f"  {engine:14s} {secs:6.2f} s  peak {peak:6.0f} MB   ({secs / med['adbc_duckdb'][0]:.2f}x time, "
                  f"{peak / med['adbc_duckdb'][1]:.2f}x peak of adbc_duckdb)")


if __name__ == "__main__":
    main()

"""The pipeline as users write it — separate read, transform and write tasks — against hand-written engines.

Usage:
    python benchmarks/lazy_pipeline.py                          # 2,000,000 rows, 5 rounds, every job
    python benchmarks/lazy_pipeline.py --rows 5000000 --rounds 3
    python benchmarks/lazy_pipeline.py --jobs filter --only polars,bubbles

Three jobs over the orders CSV of ``files_pipeline.py`` (generated under benchmarks/data/):

* ``filter``: keep paid and shipped orders, derive columns, write Parquet (``files_pipeline.py``'s query);
* ``agg``: daily revenue (EUR) and order count by country and status, written as CSV;
* ``join``: orders joined to customers (a CSV of 99,991 e-mails), countries and exchange rates
  (two small Parquet files), written as Parquet.

Each engine runs each job in a child process of its own (peak RSS is that job's), in alternated
rounds (so load spikes hit every engine alike); the medians and ranges are printed, and each
bubbles variant's ratio to the fastest hand-written engine of the same job, round by round:

* ``polars``: polars lazy (``scan_csv`` ... ``sink_parquet``/``sink_csv``), written as its docs advise;
* ``duckdb``: one DuckDB ``COPY (query) TO`` statement over ``read_csv``/``read_parquet``;
* ``bubbles``: the natural workflow — ``extract`` returns ``read_csv(...)``, ``transform`` returns
  ``bubbles.sql(...)``, ``load`` calls a writer — as separate tasks of one ``Workflow``, run by plain
  ``wf.run()`` (threads executor, default observers, run store and lineage on);
* ``bubbles_eager``: the same workflow with ``lazy = "off"`` (every intermediate an Arrow table).

Libraries are imported before the clock starts, for every engine (bubbles: also what its default
observers import: sqlglot for column lineage, the OpenLineage client).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
SRC = HERE.parent / "src"
sys.path.insert(0, str(HERE))

import files_pipeline  # noqa: E402  (its data and its query)

FILTER_SQL = files_pipeline.BUBBLES_SQL
AGG_SQL = """
SELECT CAST(created_at AS DATE) AS day, country, status, count(*) AS orders,
       sum(amount * CASE currency WHEN 'USD' THEN 0.92 WHEN 'GBP' THEN 1.17 WHEN 'CHF' THEN 1.04 ELSE 1.0 END) AS revenue_eur
FROM orders GROUP BY ALL ORDER BY day, country, status
"""
JOIN_SQL = """
SELECT o.order_id, o.created_at, c.customer, c.segment, k.region, o.amount, o.amount * r.rate AS amount_eur,
       o.amount * r.rate * (1 + k.vat) AS gross_eur, o.status
FROM orders o JOIN customers c ON c.email = o.email JOIN countries k ON k.country = o.country
     JOIN rates r ON r.currency = o.currency
WHERE o.status <> 'cancelled'
"""
JOBS = ("filter", "agg", "join")
ENGINES = ("polars", "duckdb", "bubbles", "bubbles_eager")
BASELINES = ("polars", "duckdb")


def dimensions() -> dict[str, Path]:
    """customers.csv (99,991 rows), countries.parquet and rates.parquet, generated once."""
    import duckdb

    DATA.mkdir(exist_ok=True)
    paths = {"customers": DATA / "customers.csv", "countries": DATA / "countries.parquet", "rates": DATA / "rates.parquet"}
    if all(p.exists() for p in paths.values()):
        return paths
    con = duckdb.connect()
    con.execute(f"""COPY (SELECT 'User' || i || '@' || d AS email, 'Customer ' || i AS customer,
                         (['retail', 'business', 'public'])[i % 3 + 1] AS segment
                  FROM range(99991) t(i), (SELECT unnest(['example.com', 'mail.de', 'corp.co.uk']) AS d))
                  TO '{paths["customers"]}' (HEADER true)""")
    con.execute(f"""COPY (SELECT * FROM (VALUES ('DE', 'EU', 0.19), ('FR', 'EU', 0.20), ('NL', 'EU', 0.21), ('US', 'NA', 0.0),
                         ('GB', 'UK', 0.20), ('IT', 'EU', 0.22), ('ES', 'EU', 0.21), ('PL', 'EU', 0.23)) t(country, region, vat))
                  TO '{paths["countries"]}' (FORMAT parquet)""")
    con.execute(f"""COPY (SELECT * FROM (VALUES ('EUR', 1.0), ('USD', 0.92), ('GBP', 1.17), ('CHF', 1.04)) t(currency, rate))
                  TO '{paths["rates"]}' (FORMAT parquet)""")
    con.close()
    return paths


# -- hand-written engines ----------------------------------------------------------------------------------
def _polars_scan(csv: str) -> Any:
    import polars as pl

    return pl.scan_csv(csv, schema_overrides={"created_at": pl.String, "amount": pl.Decimal(12, 2)}).with_columns(
        pl.col("created_at").str.strptime(pl.Datetime("us"), "%Y-%m-%d %H:%M:%S"))


def _rate() -> Any:
    import polars as pl

    return (pl.when(pl.col("currency") == "USD").then(0.92).when(pl.col("currency") == "GBP").then(1.17)
            .when(pl.col("currency") == "CHF").then(1.04).otherwise(1.0))


def polars_job(job: str, csv: str, out: str, dims: dict[str, str]) -> None:
    import polars as pl

    if job == "filter":
        files_pipeline.job_polars(csv, out)
    elif job == "agg":
        (_polars_scan(csv)
         .group_by(pl.col("created_at").dt.date().alias("day"), "country", "status")
         .agg(pl.len().alias("orders"), (pl.col("amount").cast(pl.Float64) * _rate()).sum().alias("revenue_eur"))
         .sort("day", "country", "status")
         .sink_csv(out))
    else:
        customers = pl.scan_csv(dims["customers"])
        countries, rates = pl.scan_parquet(dims["countries"]), pl.scan_parquet(dims["rates"])
        amount = pl.col("amount").cast(pl.Float64)
        eur = amount * pl.col("rate")
        (_polars_scan(csv).filter(pl.col("status") != "cancelled")
         .join(customers, on="email").join(countries, on="country").join(rates, on="currency")
         .select("order_id", "created_at", "customer", "segment", "region", "amount",
                 eur.alias("amount_eur"), (eur * (1 + pl.col("vat"))).alias("gross_eur"), "status")
         .sink_parquet(out, compression="zstd"))


def duckdb_job(job: str, csv: str, out: str, dims: dict[str, str]) -> None:
    import duckdb

    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    orders = f"read_csv('{csv}', header=true, types={{'amount': 'DECIMAL(12,2)'}})"
    if job == "filter":
        files_pipeline.job_duckdb(csv, out)
        return
    if job == "agg":
        query = AGG_SQL.replace("FROM orders", f"FROM {orders}")
        con.execute(f"COPY ({query}) TO '{out}' (FORMAT csv, HEADER true)")
        return
    query = (JOIN_SQL.replace("FROM orders o", f"FROM {orders} o")
             .replace("JOIN customers c", f"JOIN read_csv('{dims['customers']}') c")
             .replace("JOIN countries k", f"JOIN '{dims['countries']}' k").replace("JOIN rates r", f"JOIN '{dims['rates']}' r"))
    con.execute(f"COPY ({query}) TO '{out}' (FORMAT parquet, COMPRESSION zstd)")


# -- bubbles: the workflow as a user writes it ----------------------------------------------------------------------------
def extract_orders(csv: str) -> Any:
    import bubbles

    return bubbles.read_csv(csv, schema={"amount": "decimal(12,2)"})


def extract_csv(path: str) -> Any:
    import bubbles

    return bubbles.read_csv(path)


def extract_parquet(path: str) -> Any:
    import bubbles

    return bubbles.read_parquet(path)


def filter_orders(orders: Any) -> Any:
    import bubbles

    return bubbles.sql(FILTER_SQL, orders=orders)


def daily_revenue(orders: Any) -> Any:
    import bubbles

    return bubbles.sql(AGG_SQL, orders=orders)


def enrich(orders: Any, customers: Any, countries: Any, rates: Any) -> Any:
    import bubbles

    return bubbles.sql(JOIN_SQL, orders=orders, customers=customers, countries=countries, rates=rates)


def load_parquet(table: Any, out: str) -> int:
    import bubbles

    return sum(f.rows for f in bubbles.write_parquet(table, out))


def load_csv(table: Any, out: str) -> int:
    import bubbles

    return sum(f.rows for f in bubbles.write_csv(table, out))


def bubbles_job(job: str, csv: str, out: str, dims: dict[str, str], lazy: str = "auto") -> None:
    from bubbles import Workflow

    wf = Workflow(f"bench-{job}")
    orders = wf.add_task(extract_orders, kwargs={"csv": csv})
    if job == "filter":
        t = wf.add_task(filter_orders, requires=[orders])
        wf.add_task(load_parquet, requires=[t], kwargs={"out": out})
    elif job == "agg":
        t = wf.add_task(daily_revenue, requires=[orders])
        wf.add_task(load_csv, requires=[t], kwargs={"out": out})
    else:
        customers = wf.add_task(extract_csv, name="extract_customers", kwargs={"path": dims["customers"]})
        countries = wf.add_task(extract_parquet, name="extract_countries", kwargs={"path": dims["countries"]})
        rates = wf.add_task(extract_parquet, name="extract_rates", kwargs={"path": dims["rates"]})
        t = wf.add_task(enrich, requires=[orders, customers, countries, rates])
        wf.add_task(load_parquet, requires=[t], kwargs={"out": out})
    wf.run(settings={"lazy": lazy}) if lazy != "auto" else wf.run()


_PREIMPORT = {
    "polars": ["polars"],
    "duckdb": ["duckdb"],
    "bubbles": ["bubbles", "pyarrow", "pyarrow.csv", "pyarrow.parquet", "pyarrow.dataset", "pyarrow.compute", "duckdb",
                "bubbles.data.files", "bubbles.data.transform", "bubbles.data.lazy.engine", "sqlglot", "sqlglot.dialects.duckdb",
                "openlineage.client",
                "bubbles.observe.lineage", "xxhash"],
}


def child(engine: str, job: str, csv: str, out: str, dims_json: str) -> None:
    import importlib

    for module in _PREIMPORT["bubbles" if engine.startswith("bubbles") else engine]:
        importlib.import_module(module)
    dims = json.loads(dims_json)
    c0 = time.process_time()  # (CPU of every thread of this process, from here on)
    t0 = time.perf_counter()
    if engine == "polars":
        polars_job(job, csv, out, dims)
    elif engine == "duckdb":
        duckdb_job(job, csv, out, dims)
    else:
        bubbles_job(job, csv, out, dims, lazy="off" if engine == "bubbles_eager" else "auto")
    seconds = time.perf_counter() - t0
    cpu = time.process_time() - c0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"seconds": seconds, "cpu": cpu, "peak_mb": usage.ru_maxrss / 1024}))


def run_child(engine: str, job: str, csv: Path, out: Path, dims: dict[str, Path], home: str) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "BUBBLES_HOME": home,
           "BUBBLES_PROGRESS": "0"}
    paths = json.dumps({k: str(v) for k, v in dims.items()})
    args = [sys.executable, __file__, "--child", engine, job, str(csv), str(out), paths]
    proc = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    if proc.returncode:
        raise SystemExit(f"{engine} {job} failed:\n{proc.stderr[-3000:]}")
    return json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("{")))


def check_outputs(job: str, outputs: dict[str, Path]) -> None:
    """Every engine wrote the same rows (a benchmark of wrong results measures nothing)."""
    import duckdb

    counts = {}
    for engine, path in outputs.items():
        reader = "read_csv" if path.suffix == ".csv" else "read_parquet"
        counts[engine] = duckdb.sql(f"SELECT count(*) FROM {reader}('{path}')").fetchall()[0][0]
    if len(set(counts.values())) != 1:
        raise SystemExit(f"{job}: the engines disagree on the rows written: {counts}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--jobs", default=",".join(JOBS))
    parser.add_argument("--only", default=",".join(ENGINES), help="engines to run, comma-separated")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    csv = files_pipeline.generate(args.rows)
    dims = dimensions()
    engines = [e for e in ENGINES if e in args.only.split(",")]
    jobs = [j for j in JOBS if j in args.jobs.split(",")]
    load = os.getloadavg()
    print(f"{args.rows:,} rows, {csv.stat().st_size / 1e6:.0f} MB CSV; {os.cpu_count()} cores; load average at start "
          f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}; {args.rounds} alternated rounds")
    results: dict[tuple[str, str], list[dict[str, float]]] = {(j, e): [] for j in jobs for e in engines}
    with tempfile.TemporaryDirectory(prefix="bubbles-bench-") as tmp:
        outputs: dict[str, dict[str, Path]] = {j: {} for j in jobs}
        for _ in range(args.rounds):
            for job in jobs:
                for engine in engines:
                    out = Path(tmp) / f"{job}-{engine}.{'csv' if job == 'agg' else 'parquet'}"
                    outputs[job][engine] = out
                    results[(job, engine)].append(run_child(engine, job, csv, out, dims, os.path.join(tmp, "home")))
        for job in jobs:
            check_outputs(job, outputs[job])
    print(f"load average at end {os.getloadavg()[0]:.1f}")
    for job in jobs:
        print(f"\n{job}:")
        for engine in engines:
            rs = results[(job, engine)]
            secs = sorted(r["seconds"] for r in rs)
            peaks = sorted(r["peak_mb"] for r in rs)
            print(f"  {engine:14s} {statistics.median(secs):6.2f} s [{secs[0]:.2f}-{secs[-1]:.2f}]  "
                  f"cpu {statistics.median(r['cpu'] for r in rs):5.2f} s  peak {statistics.median(peaks):5.0f} MB "
                  f"[{peaks[0]:.0f}-{peaks[-1]:.0f}]")
        base = [e for e in engines if e in BASELINES]
        if not base:
            continue
        fastest = min(base, key=lambda e: statistics.median(r["seconds"] for r in results[(job, e)]))
        # against the fastest engine (the target), and against DuckDB (the engine bubbles' plans run on)
        for reference in dict.fromkeys([fastest, *(["duckdb"] if "duckdb" in base else [])]):
            for engine in (e for e in engines if e.startswith("bubbles")):
                pairs = list(zip(results[(job, engine)], results[(job, reference)], strict=True))
                per_round = [b["seconds"] / f["seconds"] for b, f in pairs]
                mem = [b["peak_mb"] / f["peak_mb"] for b, f in pairs]
                t_ratio = statistics.median(r["seconds"] for r in results[(job, engine)]) / statistics.median(
                    r["seconds"] for r in results[(job, reference)])
                m_ratio = statistics.median(r["peak_mb"] for r in results[(job, engine)]) / statistics.median(
                    r["peak_mb"] for r in results[(job, reference)])
                print(f"  {engine} / {reference}: time {t_ratio:.2f}x (per round {min(per_round):.2f}-{max(per_round):.2f}), "
                      f"peak RSS {m_ratio:.2f}x (per round {min(mem):.2f}-{max(mem):.2f})")


if __name__ == "__main__":
    main()

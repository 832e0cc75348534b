"""The demo ETL job behind ``bubbles demo``: seed 003's pipeline on embedded defaults.

1. *generate* source data the first time: an orders CSV, a customers JSON file, FX rates;
2. *extract* the three sources in parallel (a ``ParallelTask``);
3. *transform* with DuckDB SQL: join, filter cancelled orders, convert amounts to EUR;
4. *load* the cleaned orders into a DuckDB warehouse and a per-country summary into SQLite,
   in parallel;
5. *export* a CSV for the downstream team, written atomically;
6. print each task's time, rows and attempts, gathered by a ``MetricsCollector``.

Everything lands under ``--workdir`` (default ``.bubbles/demo``); no server is needed.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

__all__ = ["build_workflow", "generate_sources", "run_demo"]

COUNTRIES = ["DE", "FR", "NL", "PL", "ES", "IT", "SE", "US", "GB", "CH"]
CURRENCIES = {
    "DE": "EUR",
    "FR": "EUR",
    "NL": "EUR",
    "PL": "PLN",
    "ES": "EUR",
    "IT": "EUR",
    "SE": "SEK",
    "US": "USD",
    "GB": "GBP",
    "CH": "CHF",
}
RATES = {"EUR": 1.0, "PLN": 0.23, "SEK": 0.088, "USD": 0.92, "GBP": 1.17, "CHF": 1.04}
STATUSES = ["paid", "paid", "paid", "shipped", "shipped", "cancelled", "refunded"]


def generate_sources(source: Path, rows: int, seed: int = 7) -> None:
    """Write the demo's source files (skipped when they exist with the same size)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    source.mkdir(parents=True, exist_ok=True)
    marker = source / "rows.txt"
    if marker.exists() and marker.read_text() == str(rows):
        return
    rng = random.Random(seed)
    customers = 1 + rows // 20
    start = datetime(2024, 1, 1)
    country_of = [rng.choice(COUNTRIES) for _ in range(customers)]
    customer_ids = [rng.randrange(customers) for _ in range(rows)]
    orders = pa.table(
        {
            "order_id": pa.array(range(1, rows + 1), pa.int64()),
            "customer_id": pa.array(customer_ids, pa.int64()),
            "ordered_at": pa.array(
                [start + timedelta(seconds=rng.randrange(365 * 86400)) for _ in range(rows)], pa.timestamp("s")
            ),
            "amount": pa.array([round(rng.uniform(3, 900), 2) for _ in range(rows)], pa.float64()),
            "currency": pa.array([CURRENCIES[country_of[c]] for c in customer_ids]),
            "status": pa.array([rng.choice(STATUSES) for _ in range(rows)]),
        }
    )
    pacsv.write_csv(orders, source / "orders.csv")
    with open(source / "customers.json", "w", encoding="utf-8") as fh:
        for cid in range(customers):
            fh.write(json.dumps({"customer_id": cid, "country": country_of[cid], "email": f"customer{cid}@example.com"}) + "\n")
    with open(source / "fx_rates.csv", "w", encoding="utf-8") as fh:
        fh.write("currency,rate_to_eur\n" + "".join(f"{c},{r}\n" for c, r in RATES.items()))
    marker.write_text(str(rows))


def extract_orders(source: str) -> Any:
    import pyarrow.csv as pacsv

    return pacsv.read_csv(Path(source) / "orders.csv")


def extract_customers(source: str) -> Any:
    import pyarrow.json as pajson

    return pajson.read_json(Path(source) / "customers.json")


def extract_rates(source: str) -> Any:
    import pyarrow.csv as pacsv

    return pacsv.read_csv(Path(source) / "fx_rates.csv")


def transform(sources: list[Any]) -> Any:
    import duckdb

    orders, customers, rates = sources
    con = duckdb.connect()
    con.register("orders", orders)
    con.register("customers", customers)
    con.register("rates", rates)
    return con.sql("""
        SELECT o.order_id, o.customer_id, c.country, o.ordered_at, o.status,
               o.amount, o.currency, round(o.amount * r.rate_to_eur, 2) AS amount_eur
        FROM orders o
        JOIN customers c USING (customer_id)
        JOIN rates r USING (currency)
        WHERE o.status <> 'cancelled'
        ORDER BY o.order_id
    """).to_arrow_table()


def load_warehouse(clean: Any, warehouse: str) -> int:
    import duckdb

    con = duckdb.connect(warehouse)
    con.register("clean", clean)
    con.execute("BEGIN")
    con.execute("CREATE OR REPLACE TABLE orders_clean AS SELECT * FROM clean")
    con.execute("COMMIT")
    (count,) = con.execute("SELECT count(*) FROM orders_clean").fetchone()  # type: ignore[misc]
    con.close()
    return int(count)


def load_reporting(clean: Any, database: str) -> int:
    import duckdb

    summary = duckdb.sql(  # type: ignore[union-attr]
        "SELECT country, count(*) AS orders, round(sum(amount_eur), 2) AS revenue_eur "
        "FROM clean GROUP BY country ORDER BY country"
    ).fetchall()
    with sqlite3.connect(database) as db:
        db.execute("CREATE TABLE IF NOT EXISTS revenue_by_country (country TEXT PRIMARY KEY, orders INTEGER, revenue_eur REAL)")
        db.execute("DELETE FROM revenue_by_country")
        db.executemany("INSERT INTO revenue_by_country VALUES (?, ?, ?)", summary)
    return len(summary)


def export_csv(clean: Any, outbox: str) -> str:
    import pyarrow.csv as pacsv

    out = Path(outbox)
    out.mkdir(parents=True, exist_ok=True)
    target = out / "orders_eur.csv"
    tmp = target.with_suffix(".csv.tmp")
    pacsv.write_csv(clean.select(["order_id", "country", "ordered_at", "status", "amount_eur"]), tmp)
    os.replace(tmp, target)  # readers never see half a file
    return str(target)


def build_workflow(workdir: Path) -> Any:
    """The demo workflow over the files in ``workdir/source``."""
    from .api.workflow import ParallelTask, Workflow

    source = str(workdir / "source")
    wf = Workflow("demo-orders")
    extract = wf.add_task(
        ParallelTask(
            [_bind(extract_orders, source), _bind(extract_customers, source), _bind(extract_rates, source)],
            max_concurrent_tasks=3,
        ),
        name="extract",
        retries=2,
        retry_delay=0.2,
    )
    clean = wf.add_task(transform, requires=[extract])
    wf.add_task(load_warehouse, requires=[clean], kwargs={"warehouse": str(workdir / "warehouse.duckdb")})
    wf.add_task(load_reporting, requires=[clean], kwargs={"database": str(workdir / "reporting.sqlite")})
    wf.add_task(export_csv, requires=[clean], kwargs={"outbox": str(workdir / "outbox")})
    return wf


def _bind(fn: Any, source: str) -> Any:
    import functools

    bound = functools.partial(fn, source)
    bound.__name__ = fn.__name__  # type: ignore[attr-defined]
    return bound


def run_demo(*, rows: int, workdir: str, executor: str) -> int:
    """Generate data if needed, run the demo workflow, print what happened. Returns an exit code."""
    from rich.console import Console
    from rich.table import Table

    from .observe.metrics import MetricsCollector

    console = Console()
    base = Path(workdir)
    with console.status(f"generating {rows:,} demo orders in {base / 'source'} ..."):
        generate_sources(base / "source", rows)
    wf = build_workflow(base)
    mc = MetricsCollector()
    wf.attach(mc)
    console.print(f"[bold]bubbles demo[/]: running workflow {wf.name!r} ({len(wf.tasks)} tasks) on the {executor} executor")
    result = wf.run(executor=executor, raise_on_error=False)
    table = Table(title=f"run {result.run_id}: {result.status} in {result.duration:.2f} s", title_justify="left")
    for column in ("task", "state", "attempts", "seconds", "rows in", "rows out"):
        table.add_column(column, justify="left" if column in ("task", "state") else "right")
    for name, run in result.tasks.items():
        m = run.metrics
        table.add_row(
            name,
            run.state,
            str(run.attempts),
            f"{run.duration:.3f}" if run.duration is not None else "",
            f"{int(m['rows_in']):,}" if "rows_in" in m else "",
            f"{int(m['rows_out']):,}" if "rows_out" in m else "",
        )
    console.print(table)
    if not result.ok:
        console.print(f"[red]{result.describe_failure()}[/]")
        return 1
    console.print(f"warehouse: {base / 'warehouse.duckdb'} (table orders_clean, {result.tasks['load_warehouse'].result:,} rows)")
    console.print(f"reporting: {base / 'reporting.sqlite'} (table revenue_by_country)")
    console.print(f"delivery:  {result.tasks['export_csv'].result}")
    return 0

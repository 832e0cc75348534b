"""The demo ETL job behind ``bubbles demo``: seed 003's pipeline on embedded defaults.

1. *generate* source data the first time: an orders CSV (with two malformed lines, as real
   deliveries have), a customers NDJSON file, FX rates;
2. *extract* the three sources in parallel (a ``ParallelTask``, retried on failure); bad CSV
   lines go to a quarantine sink with their line number and reason instead of stopping the run;
3. *check* the orders against a data contract (:data:`ORDERS`: a primary key, a range, accepted
   values, a pattern, a foreign key to the customers, a row count) in one DuckDB pass: the rows
   that break it go to the same kind of quarantine sink with the rules they broke;
4. *transform* with ``bubbles.sql`` (DuckDB): join, drop cancelled orders, convert to EUR;
5. *load*, side by side: merge into a DuckDB warehouse (re-runs do not duplicate), replace a
   per-country summary in SQLite, write a Parquet lake partitioned by month;
6. *deliver* per-country CSV files in the finance team's format (``CsvFormat``) to an outbox, with
   a manifest written last; the customers' e-mail addresses (personal data) are masked in them;
7. print each task's time, rows, memory and attempts; the run is in the history
   (``bubbles show RUN_ID``, ``bubbles report RUN_ID -o report.html``), with the lineage of
   every file and table it wrote (``bubbles lineage ...``).

Every task's output is kept (as with ``bubbles run``), so a failed run resumes where it stopped:
``bubbles demo --fail-at load_reporting`` makes the reporting database refuse the load, and
``bubbles demo --resume`` then runs only that task, reusing the eight that succeeded.

Everything lands under ``--workdir`` (default ``.bubbles/demo``); no server is needed.
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

__all__ = ["FAILABLE", "build_workflow", "generate_sources", "orders_contract", "run_demo"]

# the tasks `bubbles demo --fail-at` can make fail (the loads: what an outage hits)
FAILABLE = ("load_warehouse", "load_reporting", "write_lake", "deliver_finance")

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
    with open(source / "orders.csv", "a", encoding="utf-8") as fh:  # what real deliveries contain
        fh.write(f'{rows + 1},{customer_ids[0]},2024-13-45 25:00:00,12.50,"EUR",paid\n')
        fh.write(f"{rows + 2},{customer_ids[0]},2024-06-01 10:00:00\n")
        # rows that parse but break the contract: a negative amount, an unknown status, an unknown customer
        fh.write(f'{rows + 3},{customer_ids[1]},2024-06-02 09:30:00,-12.50,"EUR",paid\n')
        fh.write(f'{rows + 4},{customer_ids[2]},2024-06-03 11:00:00,40.00,"EUR",lost\n')
        fh.write(f'{rows + 5},{customers + 7},2024-06-04 15:45:00,99.90,"EUR",paid\n')
    with open(source / "customers.json", "w", encoding="utf-8") as fh:
        for cid in range(customers):
            fh.write(json.dumps({"customer_id": cid, "country": country_of[cid], "email": f"customer{cid}@example.com"}) + "\n")
    with open(source / "fx_rates.csv", "w", encoding="utf-8") as fh:
        fh.write("currency,rate_to_eur\n" + "".join(f"{c},{r}\n" for c, r in RATES.items()))
    marker.write_text(str(rows))


def extract_orders(source: str) -> Any:
    from .data.files import read_csv

    return read_csv(Path(source) / "orders.csv", on_bad_lines="quarantine",
                    schema={"ordered_at": "timestamp[s]", "amount": "decimal(12,2)"},
                    quarantine=str(Path(source).parent / "quarantine" / "orders.csv"))


def orders_contract() -> Any:
    """The demo's data contract for orders (the same could be a YAML file: see docs/quality.md)."""
    from .data.quality import Column, Contract, RowCount

    return Contract(
        "orders",
        columns=[
            Column("order_id", "bigint", primary_key=True),
            Column("customer_id", "bigint", nullable=False, foreign_key="customers.customer_id"),
            Column("ordered_at", "timestamp", nullable=False),
            Column("amount", "decimal(12,2)", min=0, max=100_000),
            Column("currency", regex="^[A-Z]{3}$"),
            Column("status", accepted_values=sorted(set(STATUSES))),
        ],
        row_count=RowCount(min=1),
        fail_above="5%",
    )


def check_orders(sources: list[Any], quarantine: str) -> list[Any]:
    """Validate the orders against the contract; pass the valid ones on with the other sources."""
    from .data.quality import validate

    orders, customers, rates = sources
    checked = validate(orders, orders_contract(), references={"customers": customers}, quarantine=quarantine,
                       source="orders.csv")
    return [checked.valid, customers, rates]


def extract_customers(source: str) -> Any:
    from .data.files import read_json

    return read_json(Path(source) / "customers.json")


def extract_rates(source: str) -> Any:
    from .data.files import read_csv

    return read_csv(Path(source) / "fx_rates.csv")


def transform(sources: list[Any]) -> Any:
    from .data.transform import sql

    orders, customers, rates = sources
    return sql(
        """
        SELECT o.order_id, o.customer_id, c.country, c.email, o.ordered_at,
               strftime(o.ordered_at, '%Y-%m') AS order_month, o.status,
               o.amount, o.currency, round(o.amount * r.rate_to_eur, 2) AS amount_eur
        FROM orders o
        JOIN customers c USING (customer_id)
        JOIN rates r USING (currency)
        WHERE o.status <> 'cancelled'
        ORDER BY o.order_id
        """,
        orders=orders, customers=customers, rates=rates,
    )


def load_warehouse(clean: Any, warehouse: str) -> int:
    from .data.db import connect, write_table

    with connect(f"duckdb:///{warehouse}") as conn:
        return write_table(conn, "orders_clean", clean, mode="merge", key=["order_id"])


def load_reporting(clean: Any, database: str) -> int:
    from .data.db import connect, write_table
    from .data.transform import sql

    summary = sql(
        "SELECT country, count(*) AS orders, round(sum(amount_eur), 2) AS revenue_eur "
        "FROM clean GROUP BY country ORDER BY country",
        clean=clean,
    )
    with connect(f"sqlite:///{database}") as conn:
        return write_table(conn, "revenue_by_country", summary, mode="replace")


def write_lake(clean: Any, lake: str) -> int:
    from .data.files import write_parquet

    files = write_parquet(clean, lake, partition_by=["order_month"])
    return sum(f.rows for f in files)


FINANCE_CSV = {
    "delimiter": ";", "decimal_separator": ",", "timestamp_format": "%d.%m.%Y %H:%M",
    "columns": {"order_id": "Auftrag", "country": "Land", "email": "E-Mail", "ordered_at": "Datum", "status": "Status",
                "amount_eur": "Betrag_EUR"},
}


def deliver_finance(clean: Any, workdir: str) -> str:
    from .data.deliver import deliver
    from .data.files import CsvFormat, write_csv
    from .data.quality import mask

    staging = Path(workdir) / "staging"
    clean = mask(clean, {"email": "email"})  # personal data leaves masked: j***@example.com
    files = write_csv(clean, staging / "orders_{key}.csv", CsvFormat(**FINANCE_CSV), split_by="country")  # type: ignore[arg-type]
    receipt = deliver(files, to=Path(workdir) / "outbox")
    again = ", already delivered: nothing sent" if receipt.already_delivered else ""
    return f"{receipt.destination} (batch {receipt.batch}, {len(receipt.files)} files{again})"


def build_workflow(workdir: Path, *, fail_at: str | None = None) -> Any:
    """The demo workflow over the files in ``workdir/source`` (``fail_at``: a load that fails, as in an outage)."""
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
    checked = wf.add_task(check_orders, requires=[extract], kwargs={"quarantine": str(workdir / "quarantine" / "orders")})
    clean = wf.add_task(transform, requires=[checked])
    loads = {
        load_warehouse: {"warehouse": str(workdir / "warehouse.duckdb")},
        load_reporting: {"database": str(workdir / "reporting.sqlite")},
        write_lake: {"lake": str(workdir / "lake" / "orders")},
        deliver_finance: {"workdir": str(workdir)},
    }
    for fn, kwargs in loads.items():
        wf.add_task(_outage if fn.__name__ == fail_at else fn, requires=[clean], kwargs=kwargs, name=fn.__name__)
    return wf


def _outage(clean: Any, **target: str) -> Any:
    """What a load does when its target is down (``bubbles demo --fail-at TASK``)."""
    raise ConnectionError(f"{next(iter(target.values()))} refused the connection (bubbles demo --fail-at)")


def _bind(fn: Any, source: str) -> Any:
    import functools

    bound = functools.partial(fn, source)
    bound.__name__ = fn.__name__  # type: ignore[attr-defined]
    return bound


def run_demo(*, rows: int, workdir: str, executor: str, fail_at: str | None = None, resume: bool = False) -> int:
    """Generate data if needed, run the demo workflow, print what happened. Returns an exit code.

    ``fail_at`` makes that load fail; ``resume`` continues the last demo run (reusing what it finished).
    """
    from rich.console import Console
    from rich.table import Table

    from .observe.metrics import MetricsCollector

    console = Console()
    base = Path(workdir)
    with console.status(f"generating {rows:,} demo orders in {base / 'source'} ..."):
        generate_sources(base / "source", rows)
    wf = build_workflow(base, fail_at=fail_at)
    mc = MetricsCollector()
    wf.attach(mc)
    how = "resuming the last run of" if resume else "running"
    console.print(f"[bold]bubbles demo[/]: {how} workflow {wf.name!r} ({len(wf.tasks)} tasks) on the {executor} executor")
    result = wf.run(executor=executor, raise_on_error=False, settings={"persist": True},
                    resume="last" if resume else None)
    table = Table(title=f"run {result.run_id}: {result.status} in {result.duration:.2f} s", title_justify="left")
    for column in ("task", "state", "attempts", "seconds", "rows in", "rows out", "peak MB"):
        table.add_column(column, justify="left" if column in ("task", "state") else "right")
    for name, run in result.tasks.items():
        m = run.metrics
        table.add_row(
            name, "reused" if run.reused_from else run.state, str(run.attempts),
            f"{run.duration:.3f}" if run.duration is not None else "",
            f"{int(m['rows_in']):,}" if "rows_in" in m else "", f"{int(m['rows_out']):,}" if "rows_out" in m else "",
            f"{m['peak_memory'] / 2**20:,.0f}" if "peak_memory" in m else "",
        )
    console.print(table)
    reused = [name for name, run in result.tasks.items() if run.reused_from]
    if reused:
        console.print(f"resume:     {len(reused)} task(s) reused from run {result.tasks[reused[0]].reused_from}, "
                      f"{sum(1 for r in result.tasks.values() if r.record is not None and r.record.ran)} ran "
                      f"(why, per task: bubbles show {result.run_id})")
    if not result.ok:
        console.print(f"[red]{result.describe_failure()}[/]")
        if fail_at:
            console.print(f"resume:     the other tasks' outputs are kept: `bubbles demo --resume` runs {fail_at} "
                          "again and reuses the rest")
        return 1
    for event in (e for run in result.tasks.values() for e in run.events):
        if event.kind == "quarantine_write":
            what = f"rows that broke contract {event.contract!r}" if event.contract else "malformed order lines"
            console.print(f"quarantine: {event.rows} {what} kept with their reasons in {event.sink}")
    broken = [e for e in result.tasks["check_orders"].events if e.kind == "quality_result" and e.rows_failed]
    if broken:
        rules = ", ".join(f"{e.rule} {e.rows_failed}" for e in broken)
        console.print(f"quality:    contract 'orders' checked {broken[0].rows_checked:,} rows; broken: {rules} "
                      "(`bubbles quarantine show orders` lists them)")
    console.print(f"warehouse:  {base / 'warehouse.duckdb'} (table orders_clean, merged "
                  f"{result.tasks['load_warehouse'].result:,} rows)")
    console.print(f"reporting:  {base / 'reporting.sqlite'} (table revenue_by_country)")
    console.print(f"lake:       {base / 'lake' / 'orders'} (Parquet, partitioned by order_month)")
    console.print(f"delivery:   {result.tasks['deliver_finance'].result}")
    console.print(f"lineage:    bubbles lineage {base / 'lake' / 'orders'} --column amount_eur")
    console.print(f"history:    bubbles show {result.run_id}   ·   bubbles report {result.run_id} -o report.html")
    return 0

"""Ten contract rules over 5,000,000 rows: bubbles against one hand-written DuckDB query, pandera and
Great Expectations, in the same run.

Usage:
    python benchmarks/quality.py                    # 5,000,000 rows, 1 % of them breaking a rule
    python benchmarks/quality.py --rows 1000000 --repeat 3
    python benchmarks/quality.py --pandera-python /path/to/venv/bin/python   # pandera/GX in another venv

The rules (the issue's ten): not-null, unique, range, regex, accepted values, foreign key (to
100,000 customers), row count, freshness, and two custom SQL predicates. The data is generated
by DuckDB into benchmarks/data/ (git-ignored) as Parquet; every job runs in its own child process
(so its peak RSS is its own) and loads the same file into an Arrow table (or a pandas frame)
before the clock starts.

Jobs:
    duckdb_flags   one hand-written DuckDB query: every row with its ten predicates, as Arrow
    duckdb_counts  one hand-written DuckDB query: the ten failure counts only (no rows out)
    bubbles_warn   bubbles.validate, every rule ``warn``: counts, no row set aside ("validating only")
    bubbles        bubbles.validate, rules ``quarantine``: valid and quarantined rows, sink written
    bubbles_stream the same with stream=True: the valid rows read once as a stream of batches
    pandera        pandera DataFrameSchema(drop_invalid_rows=True).validate(lazy=True) on pandas
    gx             Great Expectations 1.x, pandas data source, the same expectations (if installed)

pandera and Great Expectations are not dependencies of bubbles: install them into the project's
venv (``pip install 'pandera[pandas]' great-expectations``) or into another venv given with
``--pandera-python``.
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
SRC = HERE.parent / "src"

STATUSES = ["paid", "shipped", "cancelled", "refunded"]
EMAIL = r"^[a-z0-9._]+@[a-z0-9.-]+\.[a-z]{2,}$"
CUSTOMERS = 100_000
MAX_AGE_DAYS = 400


def generate(rows: int) -> tuple[Path, Path]:
    """Orders with 1 % of rows breaking one of the row rules (spread over them), and the customers."""
    import duckdb

    DATA.mkdir(exist_ok=True)
    orders, customers = DATA / f"quality-orders-{rows}.parquet", DATA / f"quality-customers-{CUSTOMERS}.parquet"
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    if not customers.exists():
        con.execute(f"COPY (SELECT i AS customer_id FROM range({CUSTOMERS}) t(i)) TO '{customers}' (FORMAT parquet)")
    if not orders.exists():
        # b = i % 100 picks the 1 %: every 100th row breaks one rule, in turn: not-null, unique, range, regex,
        # accepted values, foreign key, custom 1, custom 2
        con.execute(f"""
        COPY (
          SELECT
            CASE WHEN i % 100 = 0 AND (i // 100) % 8 = 1 THEN i - 100 ELSE i END AS order_id,
            CASE WHEN i % 100 = 0 AND (i // 100) % 8 = 0 THEN NULL
                 WHEN i % 100 = 0 AND (i // 100) % 8 = 5 THEN {CUSTOMERS} + i
                 ELSE (i * 7919) % {CUSTOMERS} END AS customer_id,
            CASE WHEN i % 100 = 0 AND (i // 100) % 8 = 2 THEN -5.0
                 WHEN i % 100 = 0 AND (i // 100) % 8 = 6 THEN 0.0
                 ELSE round(((i * 7919) % 1000000) / 100.0, 2) + 0.01 END AS amount,
            CASE WHEN i % 100 = 0 AND (i // 100) % 8 = 4 THEN 'lost'
                 WHEN i % 100 = 0 AND (i // 100) % 8 = 6 THEN 'refunded'
                 ELSE (['paid','shipped','cancelled','paid'])[i % 4 + 1] END AS status,
            CASE WHEN i % 100 = 0 AND (i // 100) % 8 = 3 THEN 'user' || i || '-at-example'
                 ELSE 'user' || (i % 99991) || '@' || (['example.com','mail.de','corp.co.uk'])[i % 3 + 1] END AS email,
            now()::TIMESTAMP - to_seconds((i * 7919) % 31536000) AS ordered_at,
            CASE WHEN i % 3 = 0 THEN NULL
                 WHEN i % 100 = 0 AND (i // 100) % 8 = 7 THEN now()::TIMESTAMP - INTERVAL 800 DAY
                 ELSE now()::TIMESTAMP - to_seconds((i * 7919) % 31536000) + INTERVAL 2 DAY END AS shipped_at
          FROM range({rows}) t(i)
        ) TO '{orders}' (FORMAT parquet, ROW_GROUP_SIZE 122880)
        """)
    con.close()
    return orders, customers


def contract(action: str):
    from bubbles import Check, Column, Contract, Freshness, RowCount

    return Contract(
        "orders",
        columns=[
            Column("order_id", unique=True, action=action),
            Column("customer_id", nullable=False, foreign_key="customers.customer_id", action=action),
            Column("amount", min=0, max=10_000, action=action),
            Column("email", regex=EMAIL, action=action),
            Column("status", accepted_values=STATUSES, action=action),
        ],
        row_count=RowCount(min=1, action="fail"),
        freshness=Freshness("ordered_at", f"{MAX_AGE_DAYS}d", action="fail"),
        checks=[
            Check("refund_has_amount", "status <> 'refunded' OR amount > 0", action=action, columns=["status", "amount"]),
            Check("shipped_after_order", "shipped_at IS NULL OR shipped_at >= ordered_at", action=action,
                  columns=["shipped_at"]),
        ],
    )


PREDICATES = f"""
  customer_id IS NULL AS f_not_null,
  coalesce(order_id IN (SELECT order_id FROM o WHERE order_id IS NOT NULL GROUP BY ALL HAVING count(*) > 1), false) AS f_unique,
  coalesce(amount < 0 OR amount > 10000, false) AS f_range,
  coalesce(NOT regexp_matches(email, '{EMAIL}'), false) AS f_regex,
  coalesce(status NOT IN ('paid', 'shipped', 'cancelled', 'refunded'), false) AS f_accepted,
  coalesce(customer_id NOT IN (SELECT customer_id FROM c WHERE customer_id IS NOT NULL), false) AS f_fk,
  (SELECT count(*) FROM o) < 1 AS f_row_count,
  (SELECT max(ordered_at) FROM o) < now()::TIMESTAMP - INTERVAL {MAX_AGE_DAYS} DAY AS f_fresh,
  NOT coalesce(status <> 'refunded' OR amount > 0, true) AS f_custom1,
  NOT coalesce(shipped_at IS NULL OR shipped_at >= ordered_at, true) AS f_custom2
"""


def _rss() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def _reset_peak() -> None:
    """Reset the process's peak RSS (Linux: VmHWM), so the job's own peak is measured."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass


def _peak() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def run_job(job: str, orders: str, customers: str) -> dict[str, object]:
    """One job, in this (child) process; returns seconds, rows, peak RSS and the input's size."""
    import pyarrow.parquet as pq

    base = _rss()
    frame = None
    if job in ("pandera", "gx"):
        table = pq.read_table(orders)
        frame = table.to_pandas()
        ref = pq.read_table(customers).column("customer_id").to_pandas()
        nbytes = table.nbytes
        del table
    else:
        table = pq.read_table(orders)  # chunked by row group, as a reader hands it on
        ref_table = pq.read_table(customers)
        nbytes = table.nbytes
    imported = time.perf_counter()
    if job in ("pandera", "gx"):
        import pandera.pandas  # noqa: F401

        if job == "gx":
            import great_expectations  # noqa: F401
    else:
        import duckdb

        sys.path.insert(0, str(SRC))
        import bubbles
    imported = time.perf_counter() - imported
    loaded = _rss()
    _reset_peak()  # the peak of the job itself, not of reading the file
    t0 = time.perf_counter()
    out: dict[str, object] = {"import_seconds": imported}
    if job.startswith("duckdb"):
        con = duckdb.connect()
        con.execute("SET enable_progress_bar = false")
        con.register("o", table)
        con.register("c", ref_table)
        if job == "duckdb_flags":
            result = con.sql(f"SELECT *, {PREDICATES} FROM o").to_arrow_table()
            out["rows_out"] = result.num_rows
        else:
            sums = ", ".join(f"count_if({p.split(' AS ')[0].strip()})" for p in PREDICATES.strip().split(",\n"))
            out["counts"] = list(con.sql(f"SELECT {sums} FROM o").fetchall()[0])
        con.close()
    elif job.startswith("bubbles"):
        q = DATA / "quality-sink"
        v = bubbles.validate(table, contract("warn" if job == "bubbles_warn" else "quarantine"),
                             references={"customers": ref_table}, quarantine=False if job == "bubbles_warn" else str(q),
                             stream=job == "bubbles_stream")
        out["valid"] = sum(b.num_rows for b in v.valid) if job == "bubbles_stream" else v.valid.num_rows
        out["quarantined"] = v.quarantined.num_rows
        out["failed"] = {r.rule: r.rows_failed for r in v.results if r.rows_failed}
    elif job == "pandera":
        out.update(_pandera(frame, ref))
    elif job == "gx":
        out.update(_gx(frame, ref))
    seconds = time.perf_counter() - t0
    peak = _peak() or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"job": job, "seconds": seconds, "input_bytes": nbytes, "rss_before_input": base, "rss_loaded": loaded,
            "peak_rss": peak, **out}


def _pandera(frame, ref) -> dict[str, object]:
    import pandas as pd
    import pandera.pandas as pa

    cutoff = pd.Timestamp.now() - pd.Timedelta(days=MAX_AGE_DAYS)
    customers = set(ref.tolist())
    schema = pa.DataFrameSchema(
        {
            "order_id": pa.Column("int64", unique=True),
            "customer_id": pa.Column("Int64", pa.Check.isin(customers), nullable=False, coerce=True),
            "amount": pa.Column("float64", pa.Check.in_range(0, 10_000)),
            "email": pa.Column(str, pa.Check.str_matches(EMAIL)),
            "status": pa.Column(str, pa.Check.isin(STATUSES)),
        },
        checks=[
            pa.Check(lambda df: len(df) >= 1, element_wise=False),
            pa.Check(lambda df: df["ordered_at"].max() >= cutoff, element_wise=False),
            pa.Check(lambda df: (df["status"] != "refunded") | (df["amount"] > 0)),
            pa.Check(lambda df: df["shipped_at"].isna() | (df["shipped_at"] >= df["ordered_at"])),
        ],
        drop_invalid_rows=True,
    )
    valid = schema.validate(frame, lazy=True)
    return {"valid": len(valid)}


def _gx(frame, ref) -> dict[str, object]:
    import great_expectations as gx
    import pandas as pd

    ctx = gx.get_context(mode="ephemeral")
    batch = ctx.data_sources.add_pandas("p").add_dataframe_asset("orders").add_batch_definition_whole_dataframe("all")
    cutoff = (pd.Timestamp.now() - pd.Timedelta(days=MAX_AGE_DAYS)).isoformat()
    E = gx.expectations
    suite = gx.ExpectationSuite("orders")
    for e in (
        E.ExpectColumnValuesToNotBeNull(column="customer_id"),
        E.ExpectColumnValuesToBeUnique(column="order_id"),
        E.ExpectColumnValuesToBeBetween(column="amount", min_value=0, max_value=10_000),
        E.ExpectColumnValuesToMatchRegex(column="email", regex=EMAIL),
        E.ExpectColumnValuesToBeInSet(column="status", value_set=STATUSES),
        E.ExpectColumnValuesToBeInSet(column="customer_id", value_set=ref.dropna().tolist()),
        E.ExpectTableRowCountToBeBetween(min_value=1),
        E.ExpectColumnMaxToBeBetween(column="ordered_at", min_value=cutoff),
        E.ExpectColumnPairValuesAToBeGreaterThanB(column_A="shipped_at", column_B="ordered_at", or_equal=True,
                                                  ignore_row_if="either_value_is_missing"),
        E.ExpectColumnValuesToBeBetween(column="amount", min_value=0.0, strict_min=True,
                                        row_condition='status=="refunded"', condition_parser="pandas"),
    ):
        suite.add_expectation(e)
    result = batch.get_batch(batch_parameters={"dataframe": frame}).validate(suite)
    return {"success": bool(result.success)}


def child(job: str, orders: Path, customers: Path, python: str) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(SRC), "BUBBLES_HISTORY": "0"}
    proc = subprocess.run([python, __file__, "--job", job, "--orders", str(orders), "--customers", str(customers)],
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        return {"job": job, "error": (proc.stderr.strip().splitlines() or ["?"])[-1]}
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="rounds (jobs alternate; the best of each is kept)")
    parser.add_argument("--pandera-python", default=sys.executable, help="the python with pandera / great_expectations")
    parser.add_argument("--skip", default="", help="comma-separated jobs to skip (e.g. gx)")
    parser.add_argument("--job")
    parser.add_argument("--orders")
    parser.add_argument("--customers")
    args = parser.parse_args()
    if args.job:
        print(json.dumps(run_job(args.job, args.orders, args.customers)))
        return
    import shutil

    orders, customers = generate(args.rows)
    jobs = [j for j in ("duckdb_flags", "duckdb_counts", "bubbles_warn", "bubbles", "bubbles_stream", "pandera", "gx")
            if j not in args.skip.split(",")]
    best: dict[str, dict[str, object]] = {}
    for round_ in range(args.repeat):
        for job in jobs:
            if job in ("pandera", "gx") and round_ > 0:
                continue  # slow: once is enough for a ratio of ten or more
            shutil.rmtree(DATA / "quality-sink", ignore_errors=True)
            r = child(job, orders, customers, args.pandera_python if job in ("pandera", "gx") else sys.executable)
            if "error" in r:
                best.setdefault(job, r)
                continue
            if job not in best or "error" in best[job] or float(r["seconds"]) < float(best[job]["seconds"]):  # type: ignore[arg-type]
                best[job] = r
    print(f"{args.rows:,} rows, ten rules, best of {args.repeat} (pandera/GX once); load average "
          f"{os.getloadavg()[0]:.2f}, {os.cpu_count()} cores")
    ref = float(best["duckdb_flags"]["seconds"])  # type: ignore[arg-type]
    for job in jobs:
        r = best.get(job)
        if r is None:
            continue
        if "error" in r:
            print(f"  {job:14} not run: {r['error']}")
            continue
        s = float(r["seconds"])  # type: ignore[arg-type]
        size = int(r["input_bytes"])  # type: ignore[call-overload]
        peak, before, loaded = int(r["peak_rss"]), int(r["rss_before_input"]), int(r["rss_loaded"])  # type: ignore[call-overload]
        extra = {k: r[k] for k in ("valid", "quarantined", "rows_out", "success") if k in r}
        print(f"  {job:14} {s:7.2f} s  {s / ref:5.2f}x hand-written  peak RSS {peak / 2**20:5.0f} MB = {peak / size:4.2f}x input "
              f"(interpreter {before / 2**20:.0f}, input loaded {loaded / 2**20:.0f}): "
              f"{(peak - before) / size:4.2f}x input over the interpreter, {(peak - loaded) / size:4.2f}x over the "
              f"loaded input  {extra}")
    if "bubbles" in best and "bubbles_warn" in best and "error" not in best["bubbles"]:
        q, w = float(best["bubbles"]["seconds"]), float(best["bubbles_warn"]["seconds"])  # type: ignore[arg-type]
        print(f"quarantining {best['bubbles'].get('quarantined'):,} rows costs {q / w - 1:+.1%} over validating only")
        if "bubbles_stream" in best and "error" not in best["bubbles_stream"]:
            st = float(best["bubbles_stream"]["seconds"])  # type: ignore[arg-type]
            print(f"  with the valid rows streamed (read once, batch by batch): {st / w - 1:+.1%}")
        print(f"input: {int(best['bubbles']['input_bytes']) / 2**20:.0f} MB of Arrow")  # type: ignore[call-overload]
        for other in ("pandera", "gx"):
            if other in best and "error" not in best[other]:
                print(f"bubbles is {float(best[other]['seconds']) / q:.1f}x faster than {other}")  # type: ignore[arg-type]
        print(f"failures per rule: {best['bubbles'].get('failed')}")


if __name__ == "__main__":
    main()

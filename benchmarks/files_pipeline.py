"""Orders CSV -> filter -> derive -> Parquet, bubbles against hand-written engines, in the same run.

Usage:
    python benchmarks/files_pipeline.py                 # 1,000,000 rows (~90 MB CSV)
    python benchmarks/files_pipeline.py --rows 5000000  # the issue's scale (448 MB)
    python benchmarks/files_pipeline.py --flat          # also stream 4x the rows to check flat memory

Every job runs in its own child process (so peak RSS is that job's own), on the same file, one
after the other; figures are printed as seconds, peak RSS and the ratio to the fastest baseline.
The data is generated under benchmarks/data/ (git-ignored) by DuckDB.
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

CURRENCIES = ["EUR", "USD", "GBP", "CHF"]
RATES = {"EUR": 1.0, "USD": 0.92, "GBP": 1.17, "CHF": 1.04}

# the transform every engine implements: keep paid and shipped orders (half of them), derive columns
BUBBLES_SQL = """
SELECT order_id, created_at, CAST(created_at AS DATE) AS order_day, amount, currency,
       amount * CASE currency WHEN 'USD' THEN 0.92 WHEN 'GBP' THEN 1.17 WHEN 'CHF' THEN 1.04 ELSE 1.0 END AS amount_eur,
       status, country, lower(email) AS email, split_part(email, '@', 2) AS email_domain, note
FROM orders
WHERE status IN ('paid', 'shipped')
"""


def generate(rows: int) -> Path:
    import duckdb

    DATA.mkdir(exist_ok=True)
    path = DATA / f"orders-{rows}.csv"
    if path.exists():
        return path
    tmp = path.with_suffix(".tmp")
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    con.execute(f"""
        COPY (
          SELECT i AS order_id,
                 TIMESTAMP '2025-01-01' + to_seconds((i * 7919) % 31536000) AS created_at,
                 round(((i * 7919) % 100000) / 100.0, 2)::DECIMAL(12,2) AS amount,
                 (['EUR','USD','GBP','CHF'])[i % 4 + 1] AS currency,
                 (['paid','shipped','cancelled','refunded'])[(i // 3) % 4 + 1] AS status,
                 (['DE','FR','NL','US','GB','IT','ES','PL'])[(i // 7) % 8 + 1] AS country,
                 'User' || (i % 99991) || '@' || (['example.com','mail.de','corp.co.uk'])[i % 3 + 1] AS email,
                 'note ' || (i % 1000) || ', "rush"' AS note
          FROM range({int(rows)}) t(i)
        ) TO '{tmp}' (FORMAT csv, HEADER true)
    """)
    con.close()
    os.replace(tmp, path)
    return path


# -- jobs, each run in a child process -------------------------------------------------------------------
def job_bubbles(csv: str, out: str) -> None:
    import bubbles.data.files as files
    from bubbles.data.transform import sql

    orders = files.read_csv(csv, schema={"amount": "decimal(12,2)"})
    files.write_parquet(sql(BUBBLES_SQL, orders=orders), out)


def job_bubbles_stream(csv: str, out: str) -> None:
    import bubbles.data.files as files
    from bubbles.data.transform import sql

    orders = files.read_csv(csv, schema={"amount": "decimal(12,2)"}, batch_size=131_072)
    files.write_parquet(sql(BUBBLES_SQL, orders=orders, stream=True, threads=2), out)


def job_bubbles_pushdown(csv: str, out: str) -> None:
    """The same pipeline with the CSV handed to sql() by path: DuckDB parses it inside the query."""
    import bubbles.data.files as files
    from bubbles.data.transform import sql

    files.write_parquet(sql(BUBBLES_SQL, orders=csv, stream=True), out)


def job_duckdb(csv: str, out: str) -> None:
    import duckdb

    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    query = BUBBLES_SQL.replace("FROM orders", f"FROM read_csv('{csv}', header=true, types={{'amount': 'DECIMAL(12,2)'}})")
    con.execute(f"COPY ({query}) TO '{out}' (FORMAT parquet, COMPRESSION zstd)")


def _polars_lazy(csv: str) -> object:
    import polars as pl

    rate = (
        pl.when(pl.col("currency") == "USD")
        .then(0.92)
        .when(pl.col("currency") == "GBP")
        .then(1.17)
        .when(pl.col("currency") == "CHF")
        .then(1.04)
        .otherwise(1.0)
    )
    return (
        pl.scan_csv(csv, schema_overrides={"created_at": pl.String, "amount": pl.Decimal(12, 2)})
        .with_columns(pl.col("created_at").str.strptime(pl.Datetime("us"), "%Y-%m-%d %H:%M:%S"))
        .filter(pl.col("status").is_in(["paid", "shipped"]))
        .with_columns(
            order_day=pl.col("created_at").dt.date(),
            amount_eur=pl.col("amount").cast(pl.Float64) * rate,
            email=pl.col("email").str.to_lowercase(),
            email_domain=pl.col("email").str.split("@").list.get(1),
        )
    )


def job_polars(csv: str, out: str) -> None:
    _polars_lazy(csv).sink_parquet(out, compression="zstd")  # type: ignore[attr-defined]


def _arrow_transform(batch: object) -> object:
    import pyarrow as pa
    import pyarrow.compute as pc

    t = batch
    t = t.filter(pc.is_in(t["status"], value_set=pa.array(["paid", "shipped"])))  # type: ignore[index,attr-defined]
    rate = pc.case_when(
        pc.make_struct(pc.equal(t["currency"], "USD"), pc.equal(t["currency"], "GBP"), pc.equal(t["currency"], "CHF")),
        0.92,
        1.17,
        1.04,
    )
    rate = pc.fill_null(rate, 1.0)
    email = pc.utf8_lower(t["email"])
    return (
        t.append_column("order_day", pc.cast(t["created_at"], pa.date32()))
        .append_column("amount_eur", pc.multiply(pc.cast(t["amount"], pa.float64()), rate))
        .set_column(t.schema.get_field_index("email"), "email", email)
        .append_column("email_domain", pc.list_element(pc.split_pattern(t["email"], "@"), 1))
    )


def job_pyarrow(csv: str, out: str) -> None:
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    t = pacsv.read_csv(csv, convert_options=pacsv.ConvertOptions(column_types={"amount": pa.decimal128(12, 2)}))
    pq.write_table(_arrow_transform(t), out, compression="zstd")


def job_pyarrow_stream(csv: str, out: str) -> None:
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    reader = pacsv.open_csv(
        csv,
        convert_options=pacsv.ConvertOptions(column_types={"amount": pa.decimal128(12, 2)}),
        read_options=pacsv.ReadOptions(block_size=4 << 20),
    )
    writer = None
    for batch in reader:
        t = _arrow_transform(pa.Table.from_batches([batch]))
        if writer is None:
            writer = pq.ParquetWriter(out, t.schema, compression="zstd")  # type: ignore[attr-defined]
        writer.write_table(t)
    if writer is not None:
        writer.close()


def job_pandas(csv: str, out: str) -> None:
    import pandas as pd

    df = pd.read_csv(csv, parse_dates=["created_at"], date_format="%Y-%m-%d %H:%M:%S")
    df = df[df["status"].isin(["paid", "shipped"])].copy()
    df["order_day"] = df["created_at"].dt.date
    df["amount_eur"] = df["amount"] * df["currency"].map(RATES)
    df["email"] = df["email"].str.lower()
    df["email_domain"] = df["email"].str.split("@").str[1]
    df.to_parquet(out, compression="zstd", index=False)


def job_export_duckdb(parquet: str, out: str, fsync: bool = False) -> None:
    import duckdb
    import pyarrow.parquet as pq

    table = pq.read_table(parquet)
    t0 = time.perf_counter()  # connecting is part of the job, as it is inside write_csv
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    con.register("t", table)
    con.execute(f"COPY t TO '{out}' (FORMAT csv, HEADER true)")
    if fsync:  # what an atomic write adds: the data reaches the disk before the rename
        fd = os.open(out, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
    print(json.dumps({"inner": time.perf_counter() - t0}))


def job_export_duckdb_fsync(parquet: str, out: str) -> None:
    job_export_duckdb(parquet, out, fsync=True)


def job_export_bubbles(parquet: str, out: str) -> None:
    import pyarrow.parquet as pq

    import bubbles.data.files as files

    table = pq.read_table(parquet)
    t0 = time.perf_counter()
    files.write_csv(table, out)
    print(json.dumps({"inner": time.perf_counter() - t0}))


JOBS = {name[4:]: fn for name, fn in globals().items() if name.startswith("job_")}
_ARROW = ["pyarrow", "pyarrow.csv", "pyarrow.compute", "pyarrow.parquet"]
_BUBBLES = ["bubbles.data.files", "bubbles.data.transform", "pyarrow.dataset", "pyarrow.fs", "duckdb", *_ARROW]
IMPORTS = {
    "polars": ["polars"],
    "duckdb": ["duckdb"],
    "pyarrow": _ARROW,
    "pyarrow_stream": _ARROW,
    "pandas": ["pandas", "pyarrow.parquet"],
    "bubbles": _BUBBLES,
    "bubbles_stream": _BUBBLES,
    "bubbles_pushdown": _BUBBLES,
    "export_duckdb": ["duckdb", *_ARROW],
    "export_duckdb_fsync": ["duckdb", *_ARROW],
    "export_bubbles": _BUBBLES,
}


def child(name: str, src: str, out: str) -> None:
    import importlib

    for module in IMPORTS.get(name, []):  # libraries are imported before the clock starts, for every engine
        importlib.import_module(module)
    before = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    JOBS[name](src, out)
    seconds = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    print(json.dumps({"seconds": seconds, "cpu": cpu, "peak_mb": after.ru_maxrss / 1024}))


def rows_of(parquet: Path) -> int:
    import pyarrow.parquet as pq

    return int(pq.ParquetFile(parquet).metadata.num_rows)


def run(name: str, src: Path, out: Path) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.run(
        [sys.executable, __file__, "--child", name, str(src), str(out)], env=env, capture_output=True, text=True, check=False
    )
    if proc.returncode:
        raise SystemExit(f"{name} failed:\n{proc.stderr[-3000:]}")
    result: dict[str, float] = {}
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            result.update(json.loads(line))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs per job; the best time is reported")
    parser.add_argument("--flat", action="store_true", help="also stream 4x the rows and compare peak memory")
    parser.add_argument("--skip", default="", help="comma-separated jobs to leave out, e.g. pandas")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    skip = set(filter(None, args.skip.split(",")))
    csv = generate(args.rows)
    size = csv.stat().st_size / 1e6
    load = os.getloadavg()[0]
    print(f"{args.rows:,} rows, {size:.0f} MB CSV; load average {load:.1f} on {os.cpu_count()} cores")
    order = [
        n
        for n in ("polars", "duckdb", "pyarrow", "pyarrow_stream", "pandas", "bubbles", "bubbles_stream", "bubbles_pushdown")
        if n not in skip
    ]
    runs: dict[str, list[dict[str, float]]] = {n: [] for n in order}
    for _ in range(args.repeat):  # round-robin, so load spikes hit every engine alike
        for name in order:
            runs[name].append(run(name, csv, DATA / f"out-{name}.parquet"))
    results = {
        n: {"seconds": min(r["seconds"] for r in rs), "cpu": min(r["cpu"] for r in rs), "peak_mb": max(r["peak_mb"] for r in rs)}
        for n, rs in runs.items()
    }
    for name, r in results.items():
        print(
            f"  {name:16s} {r['seconds']:6.2f} s  (cpu {r['cpu']:5.2f} s)  peak {r['peak_mb']:6.0f} MB   (best of {args.repeat})",
            flush=True,
        )
    baselines = [r["seconds"] for n, r in results.items() if not n.startswith("bubbles")]
    fastest = min(baselines)
    fastest_name = next(n for n, r in results.items() if r["seconds"] == fastest)
    for name in ("bubbles", "bubbles_stream", "bubbles_pushdown"):
        if name in results:
            print(f"  {name}: {results[name]['seconds'] / fastest:.2f}x the fastest hand-written engine ({fastest_name})")
    cleaned = DATA / "out-bubbles.parquet"
    if cleaned.exists():
        export = {"export_duckdb": [], "export_duckdb_fsync": [], "export_bubbles": []}
        for _ in range(args.repeat):
            for name, times in export.items():
                times.append(run(name, cleaned, DATA / f"{name}.csv")["inner"])
        duck, synced, ours = (min(export[n]) for n in export)
        print(
            f"  export CSV ({rows_of(cleaned):,} rows): duckdb COPY {duck:.2f} s, COPY + fsync {synced:.2f} s, "
            f"bubbles write_csv {ours:.2f} s -> {ours / duck:.2f}x COPY, {ours / synced:.2f}x COPY + fsync"
        )
    if args.flat:
        big = generate(args.rows * 4)
        big_run = run("bubbles_stream", big, DATA / "out-stream-4x.parquet")
        small = results.get("bubbles_stream") or run("bubbles_stream", csv, DATA / "out-bubbles_stream.parquet")
        growth = big_run["peak_mb"] / small["peak_mb"] - 1
        print(
            f"  streaming peak RSS: {small['peak_mb']:.0f} MB at {args.rows:,} rows, {big_run['peak_mb']:.0f} MB at "
            f"{args.rows * 4:,} rows ({growth:+.0%}); time {big_run['seconds']:.2f} s"
        )


if __name__ == "__main__":
    main()

"""The run store at scale: ``bubbles runs`` over a big store, and concurrent runs losing nothing.

    python benchmarks/store_scale.py [--runs 10000] [--attempts 1000000] [--concurrent 20]

1. Fills a SQLite store with ``--runs`` runs and ``--attempts`` attempts (spread over the runs,
   some failed), then times ``bubbles runs`` as a user types it (a fresh process: interpreter,
   imports and query), median of 5. Target: under 0.5 s. The in-process query time is shown too.
2. Starts ``--concurrent`` processes, each running a 50-task workflow against one store at the
   same time, and counts what reached the store. Target: every run and attempt, nothing lost.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from bubbles.store import open_store
from bubbles.store.schema import TABLE_COLUMNS


def fill(path: Path, runs: int, attempts: int) -> None:
    per_run = max(1, attempts // runs)
    now = time.time() - runs * 60
    with open_store(path) as store:
        run_rows, attempt_rows = [], []
        for i in range(runs):
            run_id = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now + i * 60)) + f"-{i:06x}"
            failed = random.random() < 0.05
            row = dict.fromkeys(TABLE_COLUMNS["runs"])
            row.update(run_id=run_id, workflow=f"wf{i % 20}", status="failed" if failed else "succeeded")
            row.update(started_at=now + i * 60, ended_at=now + i * 60 + 30, duration=30.0, executor="threads")
            row.update(tasks_total=per_run, host="bench", pid=1)
            run_rows.append(tuple(row[c] for c in TABLE_COLUMNS["runs"]))
            for j in range(per_run):
                state = "failed" if failed and j == per_run - 1 else "succeeded"
                attempt_rows.append(
                    (run_id, f"t{j}", 1, None, state, now + i * 60 + j * 0.01, now + i * 60 + j * 0.01 + 0.005, 0.005)
                    + (None,) * 4
                    + (j, j, None, None, 30_000_000, 0.004)
                )
            if len(attempt_rows) >= 100_000:
                store.write({"runs": run_rows, "attempts": attempt_rows})
                run_rows, attempt_rows = [], []
        store.write({"runs": run_rows, "attempts": attempt_rows})


def time_runs_command(home: Path, rounds: int = 5) -> tuple[float, float]:
    env = {**os.environ, "BUBBLES_HOME": str(home), "COLUMNS": "200"}
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "bubbles", "runs"], capture_output=True, text=True, env=env)
        times.append(time.perf_counter() - started)
        if done.returncode != 0:
            raise SystemExit(done.stderr)
    with open_store(home / "history.db") as store:
        started = time.perf_counter()
        runs = store.runs(limit=20)
        ids = [r["run_id"] for r in runs]
        store.failed_counts(ids)
        store.task_counts(ids)
        store.reap()
        query = time.perf_counter() - started
    return statistics.median(times), query


CONCURRENT = """
import sys
from bubbles import Workflow
wf = Workflow("concurrent")
for j in range(50):
    wf.add_task(lambda j=j: [j] * 10, name=f"t{j}")
print(wf.run(executor="threads").run_id)
"""


def concurrent_runs(home: Path, n: int) -> tuple[int, int, int, int]:
    env = {**os.environ, "BUBBLES_HOME": str(home)}
    procs = [
        subprocess.Popen([sys.executable, "-c", textwrap.dedent(CONCURRENT)], stdout=subprocess.PIPE, text=True, env=env)
        for _ in range(n)
    ]
    ids = [p.communicate(timeout=300)[0].strip() for p in procs]
    with open_store(home / "history.db") as store:
        recorded = [
            r for r in store.runs(limit=n * 2, workflow="concurrent") if r["run_id"] in ids and r["status"] == "succeeded"
        ]
        attempts = sum(len(store.attempts(run_id)) for run_id in ids)
    return n, len(recorded), n * 50, attempts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--attempts", type=int, default=1_000_000)
    parser.add_argument("--concurrent", type=int, default=20)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="bubbles-store-"))
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; stores under {base}")
    big = base / "big"
    started = time.perf_counter()
    fill(big / "history.db", args.runs, args.attempts)
    size = (big / "history.db").stat().st_size
    print(
        f"filled {args.runs:,} runs and {args.attempts:,} attempts "
        f"in {time.perf_counter() - started:.1f} s ({size / 2**20:.0f} MB)"
    )
    cli, query = time_runs_command(big)
    print(
        f"`bubbles runs` over it: {cli:.3f} s as a command (median of 5; target < 0.5 s: {'ok' if cli < 0.5 else 'MISSED'}); "
        f"the queries themselves {query * 1000:.1f} ms"
    )
    n, runs_ok, expected, attempts = concurrent_runs(base / "concurrent", args.concurrent)
    lost = (n - runs_ok) + (expected - attempts)
    print(
        f"{n} concurrent runs of 50 tasks on one store: {runs_ok}/{n} runs and {attempts:,}/{expected:,} attempts recorded "
        f"({'nothing lost' if not lost else f'{lost} LOST'})"
    )


if __name__ == "__main__":
    main()

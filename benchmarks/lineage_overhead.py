"""What lineage costs a run: ``lineage = "file"`` (the default) against ``lineage = "off"``, in the same run.

    python benchmarks/lineage_overhead.py [--rows 5000000] [--rounds 3] [--tasks 10000] [--task-rounds 7]

Two shapes, each alternating the two settings round by round (paired ratios compare like with like;
the median is reported):

* **file pipeline**: ``read_csv -> sql -> write_parquet`` of ``benchmarks/files_pipeline.py``'s
  orders CSV as three tasks of one workflow (threads executor), each round in a fresh child
  process. With lineage on, the connectors record the datasets, ``sql`` derives column lineage
  with sqlglot, the Parquet file is hashed (xxh3) and OpenLineage events go to ``lineage.jsonl``.
  The libraries (pyarrow, duckdb, sqlglot, openlineage, xxhash) are imported before the clock, as
  ``files_pipeline.py`` does for every engine; their import time is printed separately.
  Target: at most +2 %.
* **no-op tasks**: ``--tasks`` no-op tasks (threads executor, default observers), lineage off vs
  on, in this process. Target: at most +5 µs per task.
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

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from files_pipeline import BUBBLES_SQL, DATA, generate  # noqa: E402


def child(csv: str, out: str, lineage: str, home: str) -> None:
    t0 = time.perf_counter()
    import duckdb  # noqa: F401
    import pyarrow.csv
    import pyarrow.parquet  # noqa: F401

    import bubbles
    from bubbles import Workflow

    libraries = time.perf_counter() - t0
    t0 = time.perf_counter()
    import openlineage.client.event_v2  # noqa: F401
    import sqlglot.lineage  # noqa: F401
    import xxhash  # noqa: F401

    lineage_imports = time.perf_counter() - t0

    wf = Workflow("files-pipeline")
    extract = wf.add_task(lambda: bubbles.read_csv(csv, schema={"amount": "decimal(12,2)"}), name="extract")
    transform = wf.add_task(lambda orders: bubbles.sql(BUBBLES_SQL, orders=orders), name="transform", requires=[extract])
    wf.add_task(lambda t: bubbles.write_parquet(t, out), name="load", requires=[transform])
    t0 = time.perf_counter()
    wf.run(settings={"lineage": lineage, "home": home, "resources": False})
    seconds = time.perf_counter() - t0
    print(json.dumps({"seconds": seconds, "libraries": libraries, "lineage_imports": lineage_imports}))


def run_child(csv: Path, lineage: str, home: str) -> dict[str, float]:
    out = DATA / f"lineage-{lineage}.parquet"
    proc = subprocess.run([sys.executable, __file__, "--child", str(csv), str(out), lineage, home],
                          capture_output=True, text=True, check=False)
    if proc.returncode:
        raise SystemExit(f"child failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def pipeline(rows: int, rounds: int) -> None:
    csv = generate(rows)
    print(f"file pipeline: {rows:,} rows ({csv.stat().st_size / 1e6:.0f} MB CSV), load average {os.getloadavg()[0]:.1f}, "
          f"{os.cpu_count()} cores")
    home = tempfile.mkdtemp(prefix="bubbles-bench-")
    off, on, ratios, imports = [], [], [], []
    for i in range(rounds):
        order = ("off", "file") if i % 2 == 0 else ("file", "off")
        got = {name: run_child(csv, name, home) for name in order}
        off.append(got["off"]["seconds"])
        on.append(got["file"]["seconds"])
        imports.append(got["file"]["lineage_imports"])
        ratios.append(got["file"]["seconds"] / got["off"]["seconds"])
        print(f"  round {i + 1}: off {off[-1]:.2f} s, on {on[-1]:.2f} s ({ratios[-1] - 1:+.1%})", flush=True)
    print(f"  median: off {statistics.median(off):.2f} s, on {statistics.median(on):.2f} s, "
          f"paired median {statistics.median(ratios) - 1:+.1%}; best vs best {min(on) / min(off) - 1:+.1%}")
    print(f"  once per process, not per run: importing sqlglot + openlineage + xxhash takes "
          f"{statistics.median(imports) * 1000:.0f} ms")


def noop() -> None:
    return None


def tasks(n: int, rounds: int) -> None:
    from bubbles import Workflow

    wf = Workflow("lineage-noop")
    for i in range(n):
        wf.add_task(noop, name=f"t{i}")
    home = tempfile.mkdtemp(prefix="bubbles-bench-")
    diffs, off_all, on_all = [], [], []
    wf.run(settings={"home": home})  # warm up
    for i in range(rounds):
        times = {}
        for name in (("off", "file") if i % 2 == 0 else ("file", "off")):
            t0 = time.perf_counter()
            wf.run(settings={"lineage": name, "home": home})
            times[name] = time.perf_counter() - t0
        off_all.append(times["off"])
        on_all.append(times["file"])
        diffs.append((times["file"] - times["off"]) / n * 1e6)
        print(f"  round {i + 1}: off {times['off'] / n * 1e6:.1f} µs/task, on {times['file'] / n * 1e6:.1f} µs/task "
              f"({diffs[-1]:+.1f} µs)", flush=True)
    print(f"no-op tasks ({n:,}): median {statistics.median(off_all) / n * 1e6:.1f} µs/task off, "
          f"{statistics.median(on_all) / n * 1e6:.1f} on; paired median {statistics.median(diffs):+.2f} µs per task")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--task-rounds", type=int, default=7)
    parser.add_argument("--skip", default="", help="pipeline or tasks")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    if "pipeline" not in args.skip:
        pipeline(args.rows, args.rounds)
    if "tasks" not in args.skip:
        tasks(args.tasks, args.task_rounds)


if __name__ == "__main__":
    main()

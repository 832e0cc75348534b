"""Resume and the cache (issue 15), against baselines measured in the same run.

Usage:
    python benchmarks/resume.py                       # the issue's scale: 5M rows, a ~1 GB table
    python benchmarks/resume.py --rows 1000000 --gb 0.25 --rounds 2   # a quick look

Three figures, each a ratio of two jobs timed in this run (every job in its own child process,
alternated over ``--rounds``, medians compared):

1. **persist**: the 5M-row file pipeline (CSV -> SQL filter/derive -> Parquet, three tasks) with
   ``persist`` on (every output fingerprinted and kept: a table as Arrow IPC, a lazy one as its
   plan) over the same workflow with it off. Target: at most +10 %.
2. **resume**: a 100-task workflow whose last task failed, resumed: how many tasks reran, the
   time from ``run(resume=...)`` to the rerun task starting, and the whole resumed run; also
   ``bubbles run --resume`` end to end (interpreter start included). Target: one task reran, it
   started in under 1 s.
3. **cache hit**: a run whose cached task returns a ~1 GB Arrow table, reused from the cache and
   summed by a downstream task, over a run that parses the 5M-row CSV and sums the same column.
   Target: at most 0.2x.
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

from files_pipeline import BUBBLES_SQL, generate  # noqa: E402  (the same data and transform)


# -- jobs (each in a child process) --------------------------------------------------------------------------
def job_pipeline(csv: str, out: str, persist: str, home: str) -> dict[str, float]:
    os.environ["BUBBLES_HOME"] = home
    import bubbles
    from bubbles import Workflow

    def extract() -> object:
        return bubbles.read_csv(csv, schema={"amount": "decimal(12,2)"})

    def transform(orders: object) -> object:
        return bubbles.sql(BUBBLES_SQL, orders=orders)

    def load(table: object) -> int:
        bubbles.write_parquet(table, out)
        return int(table.num_rows)  # type: ignore[attr-defined]

    wf = Workflow("pipeline-5m")
    e = wf.add_task(extract)
    t = wf.add_task(transform, requires=[e])
    wf.add_task(load, requires=[t])
    start = time.perf_counter()
    result = wf.run(executor="threads", settings={"persist": persist == "on", "resources": False})
    took = time.perf_counter() - start
    assert result.ok
    kept = [*Path(home, "checkpoints").rglob("*.arrow"), *Path(home, "checkpoints").rglob("*.plan")]
    assert len(kept) == (2 if persist == "on" else 0), kept  # the two outputs kept (their plans: the count is inline)
    return {"seconds": took}


def _hundred(fail: str) -> object:
    from bubbles import Workflow

    def step(i: int) -> int:
        return i

    def last(*values: int) -> int:
        if os.path.exists(fail):
            raise RuntimeError("the last task fails")
        Path(fail + ".started").write_text(str(time.time()))
        return sum(values)

    wf = Workflow("hundred")
    handles = [wf.add_task(step, name=f"step{i:02d}", kwargs={"i": i}) for i in range(99)]
    wf.add_task(last, requires=handles[-10:], after=handles[:-10])
    return wf


def job_resume(workdir: str, home: str) -> dict[str, float]:
    os.environ["BUBBLES_HOME"] = home
    fail = os.path.join(workdir, "fail")
    Path(fail).touch()
    first = _hundred(fail).run(settings={"persist": True, "resources": False}, raise_on_error=False)  # type: ignore[attr-defined]
    assert not first.ok
    os.unlink(fail)
    start_wall = time.time()
    start = time.perf_counter()
    second = _hundred(fail).run(settings={"persist": True, "resources": False}, resume="last")  # type: ignore[attr-defined]
    took = time.perf_counter() - start
    started = float(Path(fail + ".started").read_text()) - start_wall
    reran = sum(1 for t in second.tasks.values() if t.reused_from is None)
    return {"reran": reran, "to_rerun_start": started, "seconds": took}


RESUME_FILE = '''
import os, time
from pathlib import Path
from bubbles import Workflow
FAIL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fail")
wf = Workflow("hundred-cli")
def step(i):
    return i
def last(*values):
    if os.path.exists(FAIL):
        raise RuntimeError("the last task fails")
    Path(FAIL + ".started").write_text(str(time.time()))
    return sum(values)
handles = [wf.add_task(step, name=f"step{i:02d}", kwargs={"i": i}) for i in range(99)]
wf.add_task(last, requires=handles[-10:], after=handles[:-10])
'''


def job_resume_cli(workdir: str, home: str) -> dict[str, float]:
    env = {**os.environ, "BUBBLES_HOME": home, "BUBBLES_RESOURCES": "0", "BUBBLES_PROGRESS": "0"}
    path = Path(workdir) / "hundred.py"
    path.write_text(RESUME_FILE)
    fail = Path(workdir) / "fail"
    fail.touch()
    cmd = [sys.executable, "-m", "bubbles", "run", str(path), "--no-progress"]
    subprocess.run(cmd, env=env, capture_output=True, check=False)
    fail.unlink()
    start_wall = time.time()
    start = time.perf_counter()
    proc = subprocess.run([*cmd, "--resume"], env=env, capture_output=True, text=True, check=False)
    took = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr
    started = float(Path(str(fail) + ".started").read_text()) - start_wall
    return {"to_rerun_start": started, "seconds": took}


def _big_table(gb: float) -> object:
    import numpy as np
    import pyarrow as pa

    rows = int(gb * 1e9 / 32)  # four 8-byte columns
    rng = np.random.default_rng(7)
    return pa.table({
        "id": np.arange(rows, dtype=np.int64),
        "amount": rng.random(rows),
        "quantity": rng.integers(0, 100, rows),
        "price": rng.random(rows) * 100,
    })


def job_cache_hit(gb: str, home: str) -> dict[str, float]:
    os.environ["BUBBLES_HOME"] = home
    import pyarrow.compute as pc

    from bubbles import Workflow

    def big() -> object:
        return _big_table(float(gb))

    def total(table: object) -> float:
        return float(pc.sum(table["amount"]).as_py())  # type: ignore[index]

    def workflow() -> Workflow:
        wf = Workflow("cache-hit")
        b = wf.add_task(big, cache=True)
        wf.add_task(total, requires=[b])
        return wf

    first = workflow().run(settings={"persist": False, "resources": False})  # computes and caches
    start = time.perf_counter()
    second = workflow().run(settings={"persist": False, "resources": False})
    took = time.perf_counter() - start
    assert second.tasks["big"].reused_from == first.run_id, "not a cache hit"
    assert abs(second.tasks["total"].result - first.tasks["total"].result) < 1e-6
    return {"seconds": took}


def job_parse(csv: str, home: str) -> dict[str, float]:
    os.environ["BUBBLES_HOME"] = home
    import pyarrow.compute as pc

    import bubbles
    from bubbles import Workflow

    def extract() -> object:
        return bubbles.read_csv(csv, schema={"amount": "decimal(12,2)"})

    def total(table: object) -> float:
        return float(pc.sum(table["amount"]).as_py())  # type: ignore[index]

    wf = Workflow("parse")
    e = wf.add_task(extract)
    wf.add_task(total, requires=[e])
    start = time.perf_counter()
    result = wf.run(settings={"persist": False, "resources": False})
    took = time.perf_counter() - start
    assert result.ok
    return {"seconds": took}


JOBS = {"pipeline": job_pipeline, "resume": job_resume, "resume_cli": job_resume_cli, "cache_hit": job_cache_hit,
        "parse": job_parse}


def child(name: str, *args: str) -> dict[str, float]:
    proc = subprocess.run(
        [sys.executable, __file__, "--job", name, *args], capture_output=True, text=True, check=False,
        env={**os.environ, "PYTHONPATH": str(HERE.parent / "src")},
    )
    if proc.returncode != 0:
        raise SystemExit(f"job {name} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--gb", type=float, default=1.0, help="size of the cached Arrow table")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", choices=["persist", "resume", "cache"], default=None)
    parser.add_argument("--job", default=None, help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    if args.job:
        print(json.dumps(JOBS[args.job](*rest)))
        return
    import bubbles

    print(f"bubbles {bubbles.__version__}, python {sys.version.split()[0]}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.2f}")
    csv = str(generate(args.rows))
    with tempfile.TemporaryDirectory(prefix="bubbles-resume-bench-") as tmp:
        if args.only in (None, "persist"):
            times: dict[str, list[float]] = {"off": [], "on": []}
            for r in range(args.rounds):
                for mode in (("off", "on") if r % 2 == 0 else ("on", "off")):
                    home = os.path.join(tmp, f"home-{mode}-{r}")
                    times[mode].append(child("pipeline", csv, os.path.join(tmp, f"out-{mode}.parquet"), mode, home)["seconds"])
            off, on = statistics.median(times["off"]), statistics.median(times["on"])
            print(f"\n1. persist: {args.rows:,}-row pipeline (CSV -> SQL -> Parquet), median of {args.rounds}")
            print(f"   persist off  {off:6.2f} s   {' '.join(f'{t:.2f}' for t in times['off'])}")
            print(f"   persist on   {on:6.2f} s   {' '.join(f'{t:.2f}' for t in times['on'])}")
            print(f"   overhead     {100 * (on / off - 1):+.1f} %   (target <= +10 %)")
        if args.only in (None, "resume"):
            api = [child("resume", tempfile.mkdtemp(dir=tmp), os.path.join(tmp, f"home-resume-{r}")) for r in range(args.rounds)]
            cli = [child("resume_cli", tempfile.mkdtemp(dir=tmp), os.path.join(tmp, f"home-cli-{r}"))
                   for r in range(args.rounds)]
            print("\n2. resume: 100 tasks, the last one failed, resumed")
            print(f"   tasks rerun                    {sorted({int(a['reran']) for a in api})}   (target: [1])")
            print(f"   run(resume=) -> rerun starts   {statistics.median(a['to_rerun_start'] for a in api) * 1000:6.0f} ms"
                  f"   whole run {statistics.median(a['seconds'] for a in api) * 1000:.0f} ms")
            print(f"   bubbles run --resume -> starts {statistics.median(c['to_rerun_start'] for c in cli) * 1000:6.0f} ms"
                  f"   whole command {statistics.median(c['seconds'] for c in cli) * 1000:.0f} ms   (target < 1 s)")
        if args.only in (None, "cache"):
            hits, parses = [], []
            for r in range(args.rounds):
                hits.append(child("cache_hit", str(args.gb), os.path.join(tmp, f"home-cache-{r}"))["seconds"])
                parses.append(child("parse", csv, os.path.join(tmp, f"home-parse-{r}"))["seconds"])
            hit, parse = statistics.median(hits), statistics.median(parses)
            print(f"\n3. cache hit on a {args.gb:g} GB Arrow table vs parsing the {args.rows:,}-row CSV (each then summed)")
            print(f"   cache hit    {hit:6.3f} s   {' '.join(f'{t:.3f}' for t in hits)}")
            print(f"   CSV parse    {parse:6.3f} s   {' '.join(f'{t:.3f}' for t in parses)}")
            print(f"   ratio        {hit / parse:.3f}x   (target <= 0.2x)")


if __name__ == "__main__":
    main()

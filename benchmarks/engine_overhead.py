"""Scheduler overhead of the engine against bare pools, dask.delayed and a plain loop, in one run.

    python benchmarks/engine_overhead.py [--tasks 10000] [--chain 1000] [--repeat 3] [--cpu]

Prints µs per task for each contender and the ratios the engine issue targets:
threads ≤ 1.5× a bare ThreadPoolExecutor, processes ≤ 1.5× a bare ProcessPoolExecutor (same
no-op functions submitted the same way), and with --cpu the speedup of 8 × 0.5 s pure-Python
tasks on the processes executor ≥ 0.9× that of a bare ProcessPoolExecutor. The best of
``--repeat`` runs is kept (the machine is shared; the best run is the least disturbed one).
Peak RSS for the 10,000-task fan-out is measured in a fresh subprocess.

The engine is measured with the default observers off (run history, peak-memory and log-capture
probes, resource sampler: see ``benchmarks/monitor_overhead.py`` for their cost); the rows
"(default observers)" show what a run costs with them on, as a user gets it out of the box.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable

import bubbles
from bubbles import Workflow
from bubbles.engine.executors.processes import ProcessExecutor


def noop() -> None:
    return None


def noop_x(x: object) -> object:
    return x


def burn(seconds: float = 0.5) -> int:
    """Pure-Python CPU work for about ``seconds`` (calibrated once)."""
    n = 0
    for i in range(int(seconds * LOOPS_PER_SECOND)):
        n += i % 7
    return n


LOOPS_PER_SECOND = 20_000_000


def best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def fanout_workflow(n: int) -> Workflow:
    wf = Workflow("fanout")
    for i in range(n):
        wf.add_task(noop, name=f"t{i}")
    return wf


def chain_workflow(n: int) -> Workflow:
    wf = Workflow("chain")
    prev = wf.add_task(noop_x, kwargs={"x": 0}, name="t0")
    for i in range(1, n):
        prev = wf.add_task(noop_x, requires=[prev], name=f"t{i}")
    return wf


def bare_fanout(pool: cf.Executor, n: int) -> None:
    futures = [pool.submit(noop) for _ in range(n)]
    for f in futures:
        f.result()


def bare_chain(pool: cf.Executor, n: int) -> None:
    value: object = 0
    for _ in range(n):
        value = pool.submit(noop_x, value).result()


def dask_fanout(n: int) -> None:
    import dask

    parts = [dask.delayed(noop)(dask_key_name=f"t{i}") for i in range(n)]
    dask.compute(*parts, scheduler="threads")


def dask_chain(n: int) -> None:
    import dask

    value = dask.delayed(noop_x)(0)
    for _ in range(n - 1):
        value = dask.delayed(noop_x)(value)
    value.compute(scheduler="threads")


OBSERVERS_OFF = {
    "BUBBLES_HISTORY": "0",
    "BUBBLES_MEMORY": "0",
    "BUBBLES_CAPTURE_LOGS": "0",
    "BUBBLES_RESOURCES": "0",
    "BUBBLES_PROGRESS": "0",
}


def with_default_observers(fn: Callable[[], object]) -> Callable[[], object]:
    def run() -> object:
        saved = {k: os.environ.pop(k) for k in OBSERVERS_OFF if k in os.environ}
        try:
            return fn()
        finally:
            os.environ.update(saved)

    return run


def measure_overhead(tasks: int, chain: int, repeat: int) -> dict[str, dict[str, float]]:
    workers = min(32, (os.cpu_count() or 1) + 4)
    out: dict[str, dict[str, float]] = {"fanout": {}, "chain": {}}
    wf_fan, wf_chain = fanout_workflow(tasks), chain_workflow(chain)

    out["fanout"]["plain loop"] = best(lambda: [noop() for _ in range(tasks)], repeat) / tasks
    out["chain"]["plain loop"] = best(lambda: [noop_x(0) for _ in range(chain)], repeat) / chain

    with cf.ThreadPoolExecutor(workers) as pool:
        out["fanout"]["bare ThreadPoolExecutor"] = best(lambda: bare_fanout(pool, tasks), repeat) / tasks
        out["chain"]["bare ThreadPoolExecutor"] = best(lambda: bare_chain(pool, chain), repeat) / chain
    for executor in ("serial", "threads"):
        out["fanout"][f"bubbles {executor}"] = best(lambda ex=executor: wf_fan.run(executor=ex), repeat) / tasks
        out["chain"][f"bubbles {executor}"] = best(lambda ex=executor: wf_chain.run(executor=ex), repeat) / chain
    out["fanout"]["bubbles threads (default observers)"] = (
        best(with_default_observers(lambda: wf_fan.run(executor="threads")), repeat) / tasks
    )

    procs = os.cpu_count() or 1
    # warm: both pools already started (a service running many workflows)
    with cf.ProcessPoolExecutor(procs) as pool:
        pool.submit(noop).result()
        out["fanout"]["bare ProcessPoolExecutor"] = best(lambda: bare_fanout(pool, tasks), repeat) / tasks
        out["chain"]["bare ProcessPoolExecutor"] = best(lambda: bare_chain(pool, chain), repeat) / chain
    with ProcessExecutor(procs) as ours:
        wf_chain.run(executor=ours)
        out["fanout"]["bubbles processes"] = best(lambda: wf_fan.run(executor=ours), repeat) / tasks
        out["chain"]["bubbles processes"] = best(lambda: wf_chain.run(executor=ours), repeat) / chain

    # cold: each run starts its pool (a script or `bubbles run`); bubbles spawns fresh interpreters
    def bare_cold(body: Callable[[cf.Executor], None]) -> None:
        with cf.ProcessPoolExecutor(procs) as pool:
            body(pool)

    out["fanout"]["bare ProcessPoolExecutor (cold)"] = best(lambda: bare_cold(lambda p: bare_fanout(p, tasks)), repeat) / tasks
    out["chain"]["bare ProcessPoolExecutor (cold)"] = best(lambda: bare_cold(lambda p: bare_chain(p, chain)), repeat) / chain
    out["fanout"]["bubbles processes (cold)"] = best(lambda: wf_fan.run(executor="processes"), repeat) / tasks
    out["chain"]["bubbles processes (cold)"] = best(lambda: wf_chain.run(executor="processes"), repeat) / chain

    try:
        out["fanout"]["dask.delayed threads"] = best(lambda: dask_fanout(tasks), max(1, repeat - 1)) / tasks
        out["chain"]["dask.delayed threads"] = best(lambda: dask_chain(chain), max(1, repeat - 1)) / chain
    except ImportError:
        pass
    return out


def chain_interleaved(chain: int, rounds: int = 9) -> dict[str, float]:
    """Threads chain vs a bare thread pool, alternating runs; medians and minimums.

    A chain's cost is mostly two thread wake-ups per task, whose latency on a shared VM jumps
    between runs; alternating the two contenders and taking medians compares like with like.
    """
    wf = chain_workflow(chain)
    bare: list[float] = []
    ours: list[float] = []
    with cf.ThreadPoolExecutor(min(32, (os.cpu_count() or 1) + 4)) as pool:
        for _ in range(rounds):
            started = time.perf_counter()
            bare_chain(pool, chain)
            bare.append((time.perf_counter() - started) / chain)
            started = time.perf_counter()
            wf.run(executor="threads")
            ours.append((time.perf_counter() - started) / chain)
    bare.sort()
    ours.sort()
    return {"bare median": bare[rounds // 2], "bubbles median": ours[rounds // 2], "bare min": bare[0], "bubbles min": ours[0]}


def measure_cpu(repeat: int) -> dict[str, float]:
    global LOOPS_PER_SECOND
    started = time.perf_counter()
    burn(0.05)
    LOOPS_PER_SECOND = int(LOOPS_PER_SECOND * 0.05 / (time.perf_counter() - started))
    serial = best(lambda: [burn() for _ in range(8)], 1)
    procs = os.cpu_count() or 1

    def bare() -> None:
        with cf.ProcessPoolExecutor(procs) as pool:
            list(pool.map(burn, [0.5] * 8))

    def ours() -> None:
        wf = Workflow("cpu")
        wf.map(burn, [0.5] * 8, name="burn")
        wf.run(executor="processes", max_workers=procs)

    bare_t, ours_t = best(bare, repeat), best(ours, repeat)
    return {
        "serial s": serial,
        "bare pool s": bare_t,
        "bubbles s": ours_t,
        "bare speedup": serial / bare_t,
        "bubbles speedup": serial / ours_t,
    }


RSS_SCRIPT = """
import os, resource, sys
os.environ.update({off!r})
sys.path.insert(0, {path!r})
from engine_overhead import fanout_workflow
fanout_workflow({n}).run(executor="threads")
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def measure_rss(tasks: int) -> float:
    here = os.path.dirname(os.path.abspath(__file__))
    out = subprocess.run(
        [sys.executable, "-c", RSS_SCRIPT.format(path=here, n=tasks, off=OBSERVERS_OFF)],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout.strip()) / 2**20


def measure_import(repeat: int = 7) -> float:
    times = []
    for _ in range(repeat):
        out = subprocess.run(
            [sys.executable, "-c", "import time; t=time.perf_counter(); import bubbles; print(time.perf_counter()-t)"],
            capture_output=True,
            text=True,
            check=True,
        )
        times.append(float(out.stdout))
    return sorted(times)[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--chain", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cpu", action="store_true", help="also run the CPU-bound fan-out (about 15 s)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    os.environ.update(OBSERVERS_OFF)
    os.environ.setdefault("BUBBLES_HOME", os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "home"))

    print(
        f"bubbles {bubbles.__version__}, python {sys.version.split()[0]}, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    results: dict[str, object] = {"overhead_us": measure_overhead(args.tasks, args.chain, args.repeat)}
    for shape, rows in results["overhead_us"].items():  # type: ignore[union-attr]
        n = args.tasks if shape == "fanout" else args.chain
        print(f"\n{shape} of {n:,} no-op tasks: µs per task (best of {args.repeat})")
        for name, seconds in sorted(rows.items(), key=lambda kv: kv[1]):
            print(f"  {name:28s} {seconds * 1e6:10.1f}")
    o = results["overhead_us"]
    ratios = {
        "threads / bare thread pool (fan-out)": o["fanout"]["bubbles threads"] / o["fanout"]["bare ThreadPoolExecutor"],
        "threads / bare thread pool (chain)": o["chain"]["bubbles threads"] / o["chain"]["bare ThreadPoolExecutor"],
        "processes / bare process pool (fan-out)": o["fanout"]["bubbles processes"] / o["fanout"]["bare ProcessPoolExecutor"],
        "processes / bare process pool (chain)": o["chain"]["bubbles processes"] / o["chain"]["bare ProcessPoolExecutor"],
        "processes / bare process pool (fan-out, cold)": o["fanout"]["bubbles processes (cold)"]
        / o["fanout"]["bare ProcessPoolExecutor (cold)"],
        "processes / bare process pool (chain, cold)": o["chain"]["bubbles processes (cold)"]
        / o["chain"]["bare ProcessPoolExecutor (cold)"],
    }
    print("\nratios (target ≤ 1.5):")
    for name, ratio in ratios.items():
        print(f"  {name:48s} {ratio:6.2f}  {'ok' if ratio <= 1.5 else 'MISSED'}")
    inter = chain_interleaved(args.chain)
    ratio = inter["bubbles median"] / inter["bare median"]
    print(
        f"\nchain of {args.chain:,}, threads vs bare pool, 9 alternating rounds: median {inter['bubbles median'] * 1e6:.1f} "
        f"vs {inter['bare median'] * 1e6:.1f} µs/task → {ratio:.2f} {'ok' if ratio <= 1.5 else 'MISSED'} "
        f"(minimums {inter['bubbles min'] * 1e6:.1f} vs {inter['bare min'] * 1e6:.1f})"
    )
    results["chain_interleaved"] = inter
    rss = measure_rss(args.tasks)
    print(f"\npeak RSS running {args.tasks:,} tasks (threads): {rss:.0f} MB (target < 200 MB)")
    imp = measure_import()
    print(f"python -c 'import bubbles': {imp * 1000:.0f} ms of import (median of 7; target < 150 ms)")
    results.update(ratios=ratios, rss_mb=rss, import_ms=imp * 1000)
    if args.cpu:
        cpu = measure_cpu(1)
        ratio = cpu["bubbles speedup"] / cpu["bare speedup"]
        print(
            f"\nCPU-bound 8 × 0.5 s: serial {cpu['serial s']:.2f} s; bare ProcessPoolExecutor {cpu['bare pool s']:.2f} s "
            f"(speedup {cpu['bare speedup']:.2f}×); bubbles processes {cpu['bubbles s']:.2f} s "
            f"(speedup {cpu['bubbles speedup']:.2f}×) → {ratio:.2f} of the bare speedup (target ≥ 0.9)"
        )
        results["cpu"] = cpu
    if args.json:
        print(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()

"""Cost of the memory and resource samplers on a CPU-bound task.

Run: PYTHONPATH=src python benchmarks/monitor_sampler.py [--seconds 2] [--repeat 3]

A pure-Python CPU-bound task runs (threads executor, one worker) with every sampler off, with
the per-process peak-memory sampler (BUBBLES_MEMORY_INTERVAL, default 10 ms), and with it plus
the process-tree resource sampler (BUBBLES_RESOURCE_INTERVAL, default 0.5 s) and the history;
alternating, in the same process (the memory sampler sleeps while no attempt runs). Prints the
task's execution time and the process CPU time of each, relative to "all off".
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time

from bubbles import MetricsCollector, Workflow


def spin(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def calibrate(seconds: float) -> int:
    t0 = time.perf_counter()
    spin(1_000_000)
    return int(1_000_000 * seconds / (time.perf_counter() - t0))


VARIANTS = {
    "all off": {"BUBBLES_MEMORY": "0", "BUBBLES_RESOURCES": "0", "BUBBLES_HISTORY": "0"},
    "memory sampler": {"BUBBLES_MEMORY": "1", "BUBBLES_RESOURCES": "0", "BUBBLES_HISTORY": "0"},
    "memory + resources + history": {"BUBBLES_MEMORY": "1", "BUBBLES_RESOURCES": "1", "BUBBLES_HISTORY": "1"},
}


def sampler_cpu() -> float:
    """CPU seconds used so far by this process's bubbles sampler threads (memory and resources)."""
    total = 0.0
    for thread in threading.enumerate():
        if thread.name in ("bubbles-memory", "bubbles-resources") and thread.ident:
            try:
                total += time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
            except OSError:  # the thread ended
                pass
    return total


def run_once(n: int, env: dict[str, str]) -> tuple[float, float, float]:
    os.environ.update(env, BUBBLES_CAPTURE_LOGS="0", BUBBLES_PROGRESS="0")
    wf = Workflow("cpu")
    mc = MetricsCollector()
    wf.add_task(lambda: spin(n), name="spin").attach(mc)
    c0, s0 = time.process_time(), sampler_cpu()
    wf.run("threads", max_workers=1)
    return mc.get_metric("execution_time"), time.process_time() - c0, sampler_cpu() - s0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    os.environ["BUBBLES_HOME"] = tempfile.mkdtemp(prefix="bubbles-bench-")
    n = calibrate(args.seconds)
    run_once(n // 20, VARIANTS["memory + resources + history"])  # warm up imports and the database
    results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in VARIANTS}
    for _ in range(args.repeat):
        for name, env in VARIANTS.items():
            results[name].append(run_once(n, env))
    print(f"CPU-bound task of ~{args.seconds:g}s, threads executor, median of {args.repeat} (load {os.getloadavg()[0]:.2f})")
    base_wall = statistics.median(r[0] for r in results["all off"])
    base_cpu = statistics.median(r[1] for r in results["all off"])
    for name, rows in results.items():
        wall, cpu = statistics.median(r[0] for r in rows), statistics.median(r[1] for r in rows)
        own = statistics.median(r[2] / r[0] for r in rows)
        print(
            f"  {name:<30} task {wall:.3f} s ({100 * (wall / base_wall - 1):+.2f} %)   "
            f"process CPU {cpu:.3f} s ({100 * (cpu / base_cpu - 1):+.2f} %)   sampler threads' own CPU "
            f"{100 * own:.2f} % of the task's time"
        )
    print("  target: the memory sampler adds < 2 % CPU (the last column is its direct cost, the one immune to load)")


if __name__ == "__main__":
    main()

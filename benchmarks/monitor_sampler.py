"""Cost of the memory and resource samplers on a CPU-bound task.

Run: PYTHONPATH=src python benchmarks/monitor_sampler.py [--seconds 2] [--repeat 3]

A pure-Python CPU-bound task runs (threads executor, one worker) with every sampler off, then
with the per-process peak-memory sampler (BUBBLES_MEMORY_INTERVAL, default 10 ms) and the
process-tree resource sampler (BUBBLES_RESOURCE_INTERVAL, default 0.5 s) on; alternating, in
the same process. Prints the task's execution time and the process CPU time for each, and the
overhead (target: < 2 % CPU).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
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


def run_once(n: int, sampled: bool) -> tuple[float, float]:
    env = {"BUBBLES_MEMORY": "1" if sampled else "0", "BUBBLES_RESOURCES": "1" if sampled else "0",
           "BUBBLES_HISTORY": "1" if sampled else "0", "BUBBLES_CAPTURE_LOGS": "0", "BUBBLES_PROGRESS": "0"}
    os.environ.update(env)
    wf = Workflow("cpu")
    mc = MetricsCollector()
    wf.add_task(lambda: spin(n), name="spin").attach(mc)
    c0 = time.process_time()
    wf.run("threads", max_workers=1)
    return mc.get_metric("execution_time"), time.process_time() - c0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    os.environ["BUBBLES_HOME"] = tempfile.mkdtemp(prefix="bubbles-bench-")
    n = calibrate(args.seconds)
    run_once(n // 20, True)  # warm up: starts the memory sampler thread of this process
    bare, sampled = [], []
    for _ in range(args.repeat):
        bare.append(run_once(n, False))
        sampled.append(run_once(n, True))
    bw, bc = statistics.median(b[0] for b in bare), statistics.median(b[1] for b in bare)
    sw, sc = statistics.median(s[0] for s in sampled), statistics.median(s[1] for s in sampled)
    print(f"CPU-bound task of ~{args.seconds:g}s, median of {args.repeat} (load {os.getloadavg()[0]:.2f})")
    print(f"  samplers off   task {bw:.3f} s   process CPU {bc:.3f} s")
    print(f"  samplers on    task {sw:.3f} s   process CPU {sc:.3f} s")
    print(f"  overhead       task {100 * (sw / bw - 1):+.2f} %   CPU {100 * (sc / bc - 1):+.2f} %  (target < 2 %)")


if __name__ == "__main__":
    main()

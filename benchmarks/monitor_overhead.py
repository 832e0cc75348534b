"""Cost of monitoring on a 10,000 no-op task fan-out: bare runner vs collector + history + progress.

Run: PYTHONPATH=src python benchmarks/monitor_overhead.py [--tasks 10000] [--repeat 5] [--executor threads]

"bare" turns every default observer off (BUBBLES_HISTORY=0, BUBBLES_MEMORY=0,
BUBBLES_CAPTURE_LOGS=0, no progress); "monitored" attaches a MetricsCollector to the workflow and
runs with the defaults (history + resource sampler + peak-memory and log-capture probes) plus a
ProgressDisplay drawing to a (non-terminal) rich console. Both alternate in the same process;
the script prints the median of each and the ratio.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time

from bubbles import MetricsCollector, Workflow
from bubbles.observe.progress import ProgressDisplay

OFF = {"BUBBLES_HISTORY": "0", "BUBBLES_MEMORY": "0", "BUBBLES_CAPTURE_LOGS": "0", "BUBBLES_PROGRESS": "0"}


def noop() -> None:
    return None


def build(n: int) -> Workflow:
    wf = Workflow("fanout")
    for i in range(n):
        wf.add_task(noop, name=f"t{i}")
    return wf


def run_once(n: int, executor: str, monitored: bool) -> float:
    wf = build(n)
    hooks: list[object] = []
    if monitored:
        from rich.console import Console

        for key in OFF:
            os.environ.pop(key, None)
        os.environ["BUBBLES_PROGRESS"] = "0"  # the display is attached explicitly below
        wf.attach(MetricsCollector())
        hooks.append(ProgressDisplay(console=Console(file=io.StringIO(), force_terminal=True)))
    else:
        os.environ.update(OFF)
    t0 = time.perf_counter()
    wf.run(executor, hooks=hooks)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--executor", default="threads")
    args = parser.parse_args()
    os.environ["BUBBLES_HOME"] = tempfile.mkdtemp(prefix="bubbles-bench-")
    run_once(200, args.executor, True)  # warm up imports, sampler thread, database
    bare, full = [], []
    for _ in range(args.repeat):
        bare.append(run_once(args.tasks, args.executor, False))
        full.append(run_once(args.tasks, args.executor, True))
    b, f = statistics.median(bare), statistics.median(full)
    print(f"{args.tasks} no-op tasks, executor={args.executor}, median of {args.repeat} (load {os.getloadavg()[0]:.2f})")
    print(f"  bare runner          {b:.3f} s")
    print(f"  monitored            {f:.3f} s")
    print(f"  overhead             {100 * (f / b - 1):+.1f} %  (target <= +15 %)")
    sys.exit(0)


if __name__ == "__main__":
    main()

"""What a run costs as a user gets it: the default observers on, against a bare thread pool.

    python benchmarks/run_overhead.py [--tasks 10000] [--sleepers 600] [--rounds 7]

Two shapes, each alternating the contenders round by round (the machine is shared: paired
per-round ratios compare like with like; the median is reported, with the best against the best):

* **fan-out**: ``--tasks`` no-op tasks on the threads executor with the default observers (run
  store, peak-memory probe, log capture, resource sampler) against the same no-op functions
  submitted to a bare ``concurrent.futures.ThreadPoolExecutor`` of the same size.
  Target: at most 2×.
* **10 ms tasks**: ``--sleepers`` tasks that each wait 10 ms (an I/O-bound step), same
  comparison. Target: at most +2 %.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable

import bubbles
from bubbles import Workflow
from bubbles.engine.executors.local import default_threads


def noop() -> None:
    return None


def ten_ms() -> None:
    time.sleep(0.01)


def workflow(fn: Callable[[], None], n: int) -> Workflow:
    wf = Workflow(f"overhead-{fn.__name__}")
    for i in range(n):
        wf.add_task(fn, name=f"t{i}")
    return wf


def bare(pool: cf.Executor, fn: Callable[[], None], n: int) -> None:
    for future in [pool.submit(fn) for _ in range(n)]:
        future.result()


def timed(body: Callable[[], object]) -> float:
    started = time.perf_counter()
    body()
    return time.perf_counter() - started


def paired(fn: Callable[[], None], n: int, rounds: int, home: str) -> dict[str, float]:
    wf = workflow(fn, n)
    workers = default_threads()
    ours: list[float] = []
    theirs: list[float] = []
    ratios: list[float] = []
    with cf.ThreadPoolExecutor(workers) as pool:
        bare(pool, fn, min(n, 100))  # warm both
        wf.run(executor="threads", settings={"home": home})
        for i in range(rounds):
            order = [0, 1] if i % 2 == 0 else [1, 0]
            times = [0.0, 0.0]
            for which in order:
                if which == 0:
                    times[0] = timed(lambda: wf.run(executor="threads", max_workers=workers, settings={"home": home}))
                else:
                    times[1] = timed(lambda: bare(pool, fn, n))
            ours.append(times[0])
            theirs.append(times[1])
            ratios.append(times[0] / times[1])
    return {
        "bubbles median s": statistics.median(ours),
        "bare median s": statistics.median(theirs),
        "median ratio": statistics.median(ratios),
        "best vs best": min(ours) / min(theirs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--sleepers", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="bubbles-overhead-")
    print(
        f"bubbles {bubbles.__version__}, python {sys.version.split()[0]}, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.2f}; default observers on, store in {home}"
    )
    fan = paired(noop, args.tasks, args.rounds, home)
    print(
        f"fan-out of {args.tasks:,} no-op tasks: bubbles {fan['bubbles median s'] / args.tasks * 1e6:.1f} µs/task, "
        f"bare ThreadPoolExecutor {fan['bare median s'] / args.tasks * 1e6:.1f} µs/task → median ratio "
        f"{fan['median ratio']:.2f} (best vs best {fan['best vs best']:.2f}); target ≤ 2: "
        f"{'ok' if fan['median ratio'] <= 2 else 'MISSED'}"
    )
    slow = paired(ten_ms, args.sleepers, args.rounds, home)
    extra = (slow["median ratio"] - 1) * 100
    print(
        f"{args.sleepers:,} tasks of 10 ms: bubbles {slow['bubbles median s']:.3f} s, bare {slow['bare median s']:.3f} s → "
        f"{extra:+.1f} % (best vs best {(slow['best vs best'] - 1) * 100:+.1f} %); target ≤ +2 %: "
        f"{'ok' if extra <= 2 else 'MISSED'}"
    )


if __name__ == "__main__":
    main()

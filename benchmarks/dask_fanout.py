"""Fan-out of 1,000 no-op tasks: bubbles on Dask vs raw Dask futures, on the same cluster.

Target: bubbles at most 1.3x the time of raw Dask futures (``client.map`` + ``gather``).
Both connect a fresh client per repetition, so both pay the same connection cost; we report the
median of ``--repeat`` runs, interleaved to share the machine's noise.

    PYTHONPATH=src python benchmarks/dask_fanout.py [--tasks 1000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from _dask_cluster import local_dask


def noop(i: int) -> int:
    return i


def raw_dask(address: str, n: int) -> float:
    from distributed import Client

    t0 = time.perf_counter()
    with Client(address, set_as_default=False) as client:
        futures = client.map(noop, range(n), pure=False)
        out = client.gather(futures)
    assert out == list(range(n))
    return time.perf_counter() - t0


def bubbles_dask(address: str, n: int, **options: object) -> float:
    from bubbles import Workflow

    t0 = time.perf_counter()
    wf = Workflow("fanout")
    wf.map(noop, list(range(n)), name="noop")
    result = wf.run(executor="dask", address=address, **options)
    assert result.tasks["noop"].result == list(range(n))
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with local_dask(workers=2, nthreads=1) as address:
        raw_dask(address, 50)  # warm up both paths (imports, worker caches)
        bubbles_dask(address, 50)
        raw, ours = [], []
        for _ in range(args.repeat):
            raw.append(raw_dask(address, args.tasks))
            ours.append(bubbles_dask(address, args.tasks))
    r, b = statistics.median(raw), statistics.median(ours)
    print(f"load average: {os.getloadavg()}")
    print(f"{args.tasks} no-op tasks on 2 workers x 1 thread, median of {args.repeat}:")
    print(f"  raw Dask futures : {r:.3f} s  ({args.tasks / r:,.0f} tasks/s)")
    print(f"  bubbles on Dask  : {b:.3f} s  ({args.tasks / b:,.0f} tasks/s)")
    print(f"  ratio bubbles/raw: {b / r:.2f}x  (target <= 1.30x)")


if __name__ == "__main__":
    main()

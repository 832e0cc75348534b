"""A partitioned CPU-bound job (16 partitions) on 2 single-threaded Dask workers vs the serial executor.

Target: bubbles on Dask at least 1.7x faster than ``executor="serial"`` (2 workers, so 2.0x is the
ceiling; the machine is shared, so runs are interleaved and the median is reported).

    PYTHONPATH=src python benchmarks/dask_partitions.py [--partitions 16] [--work 1500000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from _dask_cluster import local_dask


def crunch(partition: int, work: int) -> int:
    """Pure-Python arithmetic (holds the GIL): the kind of work threads cannot parallelise."""
    total = 0
    for i in range(partition, partition + work):
        total = (total + i * i) % 1_000_003
    return total


def build(partitions: int, work: int) -> object:
    from bubbles import Workflow

    wf = Workflow("partitions")
    parts = wf.map(crunch, list(range(partitions)), name="crunch", kwargs={"work": work})
    wf.add_task(sum, requires=[parts], name="combine")
    return wf


def timed(partitions: int, work: int, **run: object) -> tuple[float, int]:
    t0 = time.perf_counter()
    result = build(partitions, work).run(**run)  # type: ignore[attr-defined]
    return time.perf_counter() - t0, result.tasks["combine"].result


def raw_dask(address: str, partitions: int, work: int) -> tuple[float, int]:
    """The same job as plain Dask futures: what the cluster can do, for reference."""
    from distributed import Client

    t0 = time.perf_counter()
    with Client(address, set_as_default=False) as client:
        parts = client.map(crunch, range(partitions), work=work, pure=False)
        total = client.submit(sum, parts).result()
    return time.perf_counter() - t0, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--partitions", type=int, default=16)
    parser.add_argument("--work", type=int, default=1_500_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with local_dask(workers=2, nthreads=1) as address:
        timed(2, 1000, executor="dask", address=address)  # warm up the workers
        serial, dask, raw = [], [], []
        for _ in range(args.repeat):
            t_serial, expected = timed(args.partitions, args.work, executor="serial")
            t_dask, got = timed(args.partitions, args.work, executor="dask", address=address)
            t_raw, total = raw_dask(address, args.partitions, args.work)
            assert got == expected == total
            serial.append(t_serial)
            dask.append(t_dask)
            raw.append(t_raw)
    s, d, r = statistics.median(serial), statistics.median(dask), statistics.median(raw)
    print(f"load average: {os.getloadavg()}")
    print(f"{args.partitions} CPU-bound partitions ({args.work:,} iterations each), median of {args.repeat}:")
    print(f"  serial executor             : {s:.2f} s")
    print(f"  bubbles on Dask (2 x 1 thr.) : {d:.2f} s")
    print(f"  raw Dask futures (reference) : {r:.2f} s  ({s / r:.2f}x serial)")
    print(f"  speed-up                    : {s / d:.2f}x  (target >= 1.70x)")


if __name__ == "__main__":
    main()

"""HTTP reader: concurrent page fetching vs sequential, and the rate limiter's accuracy.

Against the test suite's local API server (tests/data/http/fault_server.py), run in its own
process on 127.0.0.1 (so it does not share the client's interpreter lock), with 20 ms of latency
per request and 200 pages of 25 records:

1. baseline: a plain httpx loop over the 200 pages (no bubbles), sequential;
2. bubbles ``read_api`` sequential (concurrency=1);
3. bubbles with concurrency=8, the page count known from the first page (``total_pages_path``);
4. bubbles with concurrency=8, page count unknown (speculative window, stops at the short page);
5. the rate limiter at 20/s sequential, and at 50/s and 100/s with 8 threads: the achieved rate
   measured from the request arrival times at the server.

Targets (issue 6): (3) >= 6x (2); achieved rate within 5% of the setting.

Run: PYTHONPATH=src python benchmarks/http_throughput.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

from bubbles.data.http import PageNumber, RateLimit, read_api

ROOT = Path(__file__).resolve().parent.parent
PAGES, SIZE, LATENCY = 200, 25, 0.020  # 200 pages: enough for the 150-request rate case too


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def start_server() -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.data.http.fault_server", "--records", str(PAGES * SIZE), "--latency", str(LATENCY)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    import httpx

    proc, base = start_server()
    try:
        url = base + "/pages"
        known = PageNumber(size=SIZE, size_param="per_page", total_pages_path="meta.pages")
        unknown = PageNumber(size=SIZE, size_param="per_page")

        def baseline() -> None:
            rows = 0
            with httpx.Client() as client:
                for page in range(1, PAGES + 1):
                    rows += len(client.get(url, params={"page": page, "per_page": SIZE}).json()["data"])
            assert rows == PAGES * SIZE

        def bubbles(concurrency: int, paginate: PageNumber):
            def run() -> None:
                table = read_api(url, paginate=paginate, records_path="data", concurrency=concurrency, breaker=None)
                assert table.num_rows == PAGES * SIZE

            return run

        cases = {
            "baseline: httpx loop, sequential": baseline,
            "bubbles read_api, concurrency=1": bubbles(1, known),
            "bubbles read_api, concurrency=8, page count known": bubbles(8, known),
            "bubbles read_api, concurrency=8, page count unknown": bubbles(8, unknown),
        }
        times: dict[str, float] = {}
        for name, fn in cases.items():
            fn()  # warm up: imports, connections
            times[name] = statistics.median(timed(fn) for _ in range(args.repeat))

        print(f"load average: {os.getloadavg()[0]:.2f} (2 cores, shared)")
        print(f"{PAGES} pages x {SIZE} records, {LATENCY * 1000:.0f} ms latency per request, median of {args.repeat}\n")
        seq = times["bubbles read_api, concurrency=1"]
        print(f"{'case':55} {'seconds':>8} {'pages/s':>8} {'vs seq':>7}")
        for name, seconds in times.items():
            print(f"{name:55} {seconds:8.3f} {PAGES / seconds:8.1f} {seq / seconds:6.2f}x")

        print("\nrate limiter: achieved rate from request arrival times at the server (no added latency)")
        print(f"{'setting':>10} {'concurrency':>12} {'requests':>9} {'achieved':>9} {'error':>7}")
        for rate, concurrency, requests in ((20.0, 1, 60), (50.0, 8, 100), (100.0, 8, 150)):
            httpx.get(base + "/_reset", params={"latency": 0})
            limit = RateLimit(rate, key=uuid.uuid4().hex)
            read_api(
                url,
                paginate=known,
                records_path="data",
                concurrency=concurrency,
                rate_limit=limit,
                max_pages=requests,
                breaker=None,
            )
            arrivals = sorted(at for at, *_ in httpx.get(base + "/_hits").json())
            achieved = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])
            print(f"{rate:8.0f}/s {concurrency:12d} {len(arrivals):9d} {achieved:7.2f}/s {100 * (achieved - rate) / rate:+6.2f}%")
        # For context: how fast this client goes with no limit, one request at a time. A limit
        # above it cannot bind, and the achieved rate is the client's own.
        httpx.get(base + "/_reset", params={"latency": 0})
        free = timed(lambda: read_api(url, paginate=known, records_path="data", max_pages=100, breaker=None))
        print(f"{'no limit':>10} {1:12d} {100:9d} {99 / free:7.2f}/s")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    main()

"""Task functions shared by the engine tests (module-level, so worker processes can import them)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import bubbles


def one() -> int:
    return 1


def two() -> int:
    return 2


def add(a: int, b: int) -> int:
    return a + b


def double(x: int) -> int:
    return 2 * x


def square(x: int) -> int:
    return x * x


def total(xs: list[int]) -> int:
    return sum(xs)


def noop() -> None:
    return None


def boom() -> None:
    raise ValueError("boom: bad row 17")


def sleepy(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def spans(seconds: float = 0.2) -> tuple[float, float]:
    """Sleep and return (start, end) wall times, to measure overlap."""
    start = time.time()
    time.sleep(seconds)
    return start, time.time()


def flaky(counter: str, fail_times: int) -> int:
    """Fail the first ``fail_times`` calls (counted in a file, so it works across processes)."""
    path = Path(counter)
    n = int(path.read_text()) if path.exists() else 0
    path.write_text(str(n + 1))
    if n < fail_times:
        raise ConnectionError(f"transient failure {n + 1}")
    return n + 1


def not_transient(counter: str) -> None:
    path = Path(counter)
    n = int(path.read_text()) if path.exists() else 0
    path.write_text(str(n + 1))
    raise bubbles.DataError("malformed input", transient=False)


def crash_once(counter: str) -> str:
    """Kill the worker process on the first call; succeed after."""
    path = Path(counter)
    n = int(path.read_text()) if path.exists() else 0
    path.write_text(str(n + 1))
    if n == 0:
        os._exit(9)
    return "survived"


def with_metric(x: int) -> int:
    bubbles.log_metric("seen", x)
    bubbles.log_metric("calls", 1, add=True)
    bubbles.log_metric("calls", 1, add=True)
    return x


def append_line(path: str, text: str) -> str:
    with open(path, "a") as fh:
        fh.write(text + "\n")
    return text


def read_lines(path: str) -> list[str]:
    with open(path) as fh:
        return fh.read().split()


def pid() -> int:
    return os.getpid()


def arrow_table(rows: int):  # type: ignore[no-untyped-def]
    import pyarrow as pa

    return pa.table({"id": list(range(rows)), "amount": [float(i) / 2 for i in range(rows)]})


def arrow_sum(table) -> float:  # type: ignore[no-untyped-def]
    import pyarrow.compute as pc

    return pc.sum(table["amount"]).as_py()


def list_items() -> list[int]:
    return [1, 2, 3, 4]


def hang(release: str, limit: float = 60.0) -> str:
    """Block until the file ``release`` exists (the test creates it when done), at most ``limit`` s."""
    deadline = time.monotonic() + limit
    while not os.path.exists(release) and time.monotonic() < deadline:
        time.sleep(0.02)
    return "released"


def raises_base(kind: str) -> None:
    """Raise a BaseException that is not an Exception."""
    import sys

    if kind == "SystemExit":
        sys.exit(3)
    if kind == "KeyboardInterrupt":
        raise KeyboardInterrupt
    if kind == "GeneratorExit":
        raise GeneratorExit
    raise AssertionError(kind)


def timestamp() -> object:
    """A value whose size cannot be measured (pandas scalars have no len())."""
    import pandas as pd

    return pd.Timestamp("2024-01-31")


def kill_own_process_once(counter: str) -> str:
    """SIGKILL the worker process running this on the first call; succeed after."""
    import signal

    path = Path(counter)
    n = int(path.read_text()) if path.exists() else 0
    path.write_text(str(n + 1))
    if n == 0:
        os.kill(os.getpid(), signal.SIGKILL)
    return "survived"


def tagged(n: int, tag: str) -> list[str]:
    """A run's own output: its tag on every item, so mixed-up outcomes show."""
    time.sleep(0.001 * (n % 3))
    return [f"{tag}-{n}"]


def mark_then_hang(marker: str, release: str, limit: float = 60.0) -> str:
    """Create ``marker`` (the test waits for it: the task is running), then hang until released."""
    Path(marker).write_text(str(os.getpid()))
    return hang(release, limit)

"""Start a real ``dask scheduler`` and N ``dask worker`` processes on 127.0.0.1 (benchmarks)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DASK = str(Path(sys.executable).with_name("dask"))


@contextmanager
def local_dask(workers: int = 2, nthreads: int = 1) -> Iterator[str]:
    """Yield the scheduler address of a fresh cluster; stop it afterwards."""
    src = str(Path(__file__).resolve().parents[1] / "src")
    here = str(Path(__file__).resolve().parent)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([src, here, os.environ.get("PYTHONPATH", "")]))
    with tempfile.TemporaryDirectory() as tmp:
        info = os.path.join(tmp, "scheduler.json")
        procs = [
            subprocess.Popen(
                [DASK, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file", info],
                env=env,
                stderr=subprocess.DEVNULL,
            )
        ]
        try:
            deadline = time.monotonic() + 30
            while not os.path.exists(info):
                if time.monotonic() > deadline:
                    raise RuntimeError("dask scheduler did not start")
                time.sleep(0.05)
            time.sleep(0.1)
            address = json.loads(Path(info).read_text())["address"]
            for _ in range(workers):
                procs.append(
                    subprocess.Popen(
                        [
                            DASK,
                            "worker",
                            address,
                            "--nthreads",
                            str(nthreads),
                            "--no-dashboard",
                            "--no-nanny",
                            "--host",
                            "127.0.0.1",
                        ],
                        env=env,
                        stderr=subprocess.DEVNULL,
                    )
                )
            from distributed import Client

            with Client(address) as client:
                client.wait_for_workers(workers, timeout=60)
            yield address
        finally:
            for proc in reversed(procs):
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()

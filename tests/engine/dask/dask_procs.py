"""Real Dask clusters for the tests: a ``dask scheduler`` and ``dask worker`` processes on 127.0.0.1.

A module with its own name (not ``conftest``) so test modules can import it whatever other
conftest files the test run has loaded.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[3] / "src")
DASK = str(Path(sys.executable).with_name("dask"))


class DaskCluster:
    """Processes of one local Dask cluster; ``address`` is the scheduler's."""

    def __init__(
        self,
        tmp: Path,
        workers: int = 2,
        *,
        threads: int = 1,
        nanny: bool = True,
        protocol: str = "tcp",
        tls: dict[str, str] | None = None,
    ) -> None:
        self.tmp = tmp
        self.env = dict(os.environ, PYTHONPATH=os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")]))
        for name in ("BUBBLES_DASK_ADDRESS", "DASK_SCHEDULER_ADDRESS"):
            self.env.pop(name, None)
        self.tls_args: list[str] = []
        if tls:
            self.tls_args = ["--tls-ca-file", tls["ca"], "--tls-cert", tls["cert"], "--tls-key", tls["key"]]
        info = tmp / "scheduler.json"
        self.scheduler = self._spawn(
            [
                DASK,
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--protocol",
                protocol,
                "--scheduler-file",
                str(info),
                *self.tls_args,
            ],
            "scheduler",
        )
        deadline = time.monotonic() + 60
        while not info.exists() or not info.read_text().strip():
            if self.scheduler.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dask scheduler did not start; see {tmp / 'scheduler.log'}")
            time.sleep(0.05)
        time.sleep(0.1)
        self.address: str = json.loads(info.read_text())["address"]
        self.workers = [
            self._spawn(
                [
                    DASK,
                    "worker",
                    self.address,
                    "--nthreads",
                    str(threads),
                    "--no-dashboard",
                    "--host",
                    "127.0.0.1",
                    "--nanny" if nanny else "--no-nanny",
                    "--memory-limit",
                    "0",
                    *self.tls_args,
                ],
                f"worker{i}",
            )
            for i in range(workers)
        ]

    def _spawn(self, argv: list[str], name: str) -> subprocess.Popen[bytes]:
        log = open(self.tmp / f"{name}.log", "wb")  # closed once the child has it
        proc = subprocess.Popen(argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        return proc

    def client(self, **kwargs: object) -> object:
        from distributed import Client

        return Client(self.address, set_as_default=False, **kwargs)

    def wait_for_workers(self, n: int, **client_kwargs: object) -> None:
        with self.client(**client_kwargs) as client:  # type: ignore[attr-defined]
            client.wait_for_workers(n, timeout=60)

    def stop(self) -> None:
        for proc in [*self.workers, self.scheduler]:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in [*self.workers, self.scheduler]:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

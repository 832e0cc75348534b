"""A throwaway PostgreSQL cluster on 127.0.0.1, for tests and benchmarks.

:class:`TempPostgres` runs ``initdb`` into a fresh directory and ``pg_ctl start`` on a free
loopback port, with password (SCRAM) authentication for one superuser. PostgreSQL refuses to run
as root, so when the current user is root the server runs as the ``postgres`` OS user (through
``runuser``), which the Debian package creates.

Example:
    >>> with TempPostgres() as pg:  # doctest: +SKIP
    ...     url = pg.url("postgres")   # postgresql://bubbles@127.0.0.1:PORT/postgres
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from ..._errors import ConfigError

__all__ = ["TempPostgres", "find_pg_bin"]


def find_pg_bin() -> Path:
    """The directory holding ``initdb`` and ``pg_ctl`` (``$PG_BIN``, PATH, or the newest Debian one)."""
    explicit = os.environ.get("PG_BIN")
    if explicit:
        return Path(explicit)
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0
    )
    if not candidates:
        raise ConfigError(
            "PostgreSQL server binaries (initdb, pg_ctl) were not found. Install them "
            "(Debian: apt-get install postgresql, or run scripts/install-services) or set PG_BIN."
        )
    return Path(candidates[-1]).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TempPostgres:
    """Start a private PostgreSQL server; ``stop()`` (or leaving the ``with``) deletes it."""

    def __init__(
        self, *, user: str = "bubbles", password: str = "bubbles-test-pw", settings: dict[str, str] | None = None
    ) -> None:
        self.user = user
        self.password = password
        self.port = _free_port()
        self.host = "127.0.0.1"
        self.bin = find_pg_bin()
        self.settings = {"fsync": "off", "shared_buffers": "128MB", **(settings or {})}
        self.dir = Path(tempfile.mkdtemp(prefix="bubbles-pg-"))
        self._as_postgres = os.geteuid() == 0
        self._started = False

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = list(args)
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120, cwd=str(self.dir))

    def start(self) -> TempPostgres:
        data = self.dir / "data"
        pwfile = self.dir / "pw"
        pwfile.write_text(self.password + "\n")
        if self._as_postgres:
            shutil.chown(self.dir, "postgres", "postgres")
            shutil.chown(pwfile, "postgres", "postgres")
        out = self._run(
            str(self.bin / "initdb"),
            "-D",
            str(data),
            "-U",
            self.user,
            f"--pwfile={pwfile}",
            "--auth-host=scram-sha-256",
            "--auth-local=trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )
        if out.returncode != 0:
            raise ConfigError(f"initdb failed in {data}: {out.stderr.strip() or out.stdout.strip()}")
        conf = [f"listen_addresses = '{self.host}'", f"port = {self.port}", f"unix_socket_directories = '{self.dir}'"]
        conf += [f"{k} = {v}" for k, v in self.settings.items()]
        with open(data / "postgresql.conf", "a", encoding="utf-8") as fh:
            fh.write("\n".join(conf) + "\n")
        out = self._run(str(self.bin / "pg_ctl"), "-D", str(data), "-l", str(self.dir / "server.log"), "-w", "-t", "60", "start")
        if out.returncode != 0:
            log = (self.dir / "server.log").read_text(errors="replace")[-2000:] if (self.dir / "server.log").exists() else ""
            raise ConfigError(f"pg_ctl start failed on port {self.port}: {out.stderr.strip()} {log}")
        self._started = True
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((self.host, self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise ConfigError(f"PostgreSQL on {self.host}:{self.port} did not accept connections within 30 s.")

    def url(self, database: str = "postgres", *, password: bool = True) -> str:
        """A connection URL; with ``password`` the literal password is included (tests only)."""
        auth = f"{self.user}:{self.password}" if password else self.user
        return f"postgresql://{auth}@{self.host}:{self.port}/{database}"

    def stop(self) -> None:
        if self._started:
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "immediate", "-w", "stop")
            self._started = False
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> TempPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

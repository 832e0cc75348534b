"""Fixtures for the observe tests: a real Prometheus Pushgateway and a local webhook receiver."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def _home(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets its own local store and no console/progress/Prometheus defaults."""
    monkeypatch.setenv("BUBBLES_HOME", str(tmp_path / ".bubbles"))
    for name in (
        "BUBBLES_LOG_FORMAT",
        "BUBBLES_PROGRESS",
        "BUBBLES_METRICS_PORT",
        "BUBBLES_PUSHGATEWAY",
        "BUBBLES_PROFILE",
        "BUBBLES_HISTORY",
        "BUBBLES_MEMORY",
        "BUBBLES_CAPTURE_LOGS",
        "BUBBLES_RESOURCES",
    ):
        monkeypatch.delenv(name, raising=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.fixture(scope="session")
def pushgateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real prometheus-pushgateway (Debian package) on 127.0.0.1; its base URL."""
    binary = shutil.which("prometheus-pushgateway")
    if binary is None:
        pytest.fail("prometheus-pushgateway is not installed: apt-get install -y prometheus-pushgateway")
    port = free_port()
    data = tmp_path_factory.mktemp("pushgateway") / "pushgateway.data"
    proc = subprocess.Popen(
        [binary, f"--web.listen-address=127.0.0.1:{port}", f"--persistence.file={data}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/-/ready")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


class Received:
    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.event = threading.Event()


@pytest.fixture(scope="session")
def webhook_server() -> Iterator[tuple[str, Received]]:
    """A local HTTP server recording JSON POSTs: (url, received)."""
    received = Received()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received.posts.append({"path": self.path, "headers": dict(self.headers), "json": json.loads(body)})
            received.event.set()
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()

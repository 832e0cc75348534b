"""The fault-injecting API server, started once per test session on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .fault_server import FaultServer


@pytest.fixture(scope="session")
def _server() -> Iterator[FaultServer]:
    server = FaultServer().start()
    yield server
    server.stop()


@pytest.fixture
def api(_server: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FaultServer:
    """The server with no faults queued and an empty request log; BUBBLES_HOME in a temp dir."""
    _server.reset()
    monkeypatch.setenv("BUBBLES_HOME", str(tmp_path))
    return _server

"""Fixtures of the Dask executor tests: one real ``dask scheduler`` and two ``dask worker``
processes (one thread each, with nannies, so a killed worker comes back) on 127.0.0.1, started
once per test session. Tests that need a cluster of their own (scheduler loss, TLS) use
:class:`dask_procs.DaskCluster` directly.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .dask_procs import DaskCluster


@pytest.fixture(scope="session")
def dask_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaskCluster]:
    cluster = DaskCluster(tmp_path_factory.mktemp("dask"), workers=2)
    try:
        cluster.wait_for_workers(2)
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def address(dask_cluster: DaskCluster, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """The shared cluster's address, with a clean environment and a private BUBBLES_HOME."""
    monkeypatch.delenv("BUBBLES_DASK_ADDRESS", raising=False)
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    monkeypatch.setenv("BUBBLES_HOME", str(tmp_path / "home"))
    dask_cluster.wait_for_workers(2)  # a test may have killed one; its nanny brings it back
    return dask_cluster.address

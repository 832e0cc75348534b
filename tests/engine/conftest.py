"""Fixtures of the engine tests: the executors of the conformance suite, Dask included."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .dask.dask_procs import DaskCluster

ALL_EXECUTORS = ["serial", "threads", "processes", "dask"]


@pytest.fixture(scope="session")
def conformance_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaskCluster]:
    """A real ``dask scheduler`` with two ``dask worker`` processes of 4 threads each, on 127.0.0.1."""
    cluster = DaskCluster(tmp_path_factory.mktemp("dask-conformance"), workers=2, threads=4)
    try:
        cluster.wait_for_workers(2)
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(params=ALL_EXECUTORS)
def executor(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """An executor name; for ``dask`` the conformance cluster's address is the run's setting."""
    name: str = request.param
    if name == "dask":
        cluster: DaskCluster = request.getfixturevalue("conformance_cluster")
        monkeypatch.setenv("BUBBLES_DASK_ADDRESS", cluster.address)
    return name

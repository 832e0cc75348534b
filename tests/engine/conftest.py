"""Fixtures of the engine tests: the executors of the conformance suite, Dask included."""

from __future__ import annotations

import pytest

from .dask.dask_procs import DaskCluster

# conformance_cluster (a real Dask cluster for the whole test run) is in tests/conftest.py

ALL_EXECUTORS = ["serial", "threads", "processes", "dask"]


@pytest.fixture(params=ALL_EXECUTORS)
def executor(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """An executor name; for ``dask`` the conformance cluster's address is the run's setting."""
    name: str = request.param
    if name == "dask":
        cluster: DaskCluster = request.getfixturevalue("conformance_cluster")
        monkeypatch.setenv("BUBBLES_DASK_ADDRESS", cluster.address)
    return name

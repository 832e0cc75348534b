"""Shared fixtures: every test gets its own BUBBLES_HOME so runs never touch the user's store; one
throwaway PostgreSQL server per test run (``initdb`` + ``pg_ctl`` on 127.0.0.1, see
:class:`bubbles.data.db.testing.TempPostgres`), one database per test that asks for ``pg_url``."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest

from bubbles.data.db.testing import TempPostgres

from .engine.dask.dask_procs import DaskCluster

_counter = itertools.count()


@pytest.fixture(autouse=True)
def _bubbles_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path_factory.mktemp("bubbles-home")
    monkeypatch.setenv("BUBBLES_HOME", str(home))
    monkeypatch.setenv("BUBBLES_PROGRESS", "0")


LOCAL_EXECUTORS = ["serial", "threads", "processes"]


@pytest.fixture(scope="session")
def pg_server() -> Iterator[TempPostgres]:
    with TempPostgres() as server:
        yield server


@pytest.fixture()
def pg_url(pg_server: TempPostgres, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh database for this test; the URL references the password as ${BUBBLES_TEST_PGPASSWORD}."""
    import psycopg

    name = f"t{os.getpid()}_{next(_counter)}"
    admin = pg_server.url("postgres")
    with psycopg.connect(admin, autocommit=True) as db:
        db.execute(f'CREATE DATABASE "{name}"')
    monkeypatch.setenv("BUBBLES_TEST_PGPASSWORD", pg_server.password)
    yield f"postgresql://{pg_server.user}:${{BUBBLES_TEST_PGPASSWORD}}@{pg_server.host}:{pg_server.port}/{name}"
    with psycopg.connect(admin, autocommit=True) as db:
        db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def conformance_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaskCluster]:
    """A real ``dask scheduler`` with two ``dask worker`` processes of 4 threads each, on 127.0.0.1."""
    cluster = DaskCluster(tmp_path_factory.mktemp("dask-conformance"), workers=2, threads=4)
    try:
        cluster.wait_for_workers(2)
        yield cluster
    finally:
        cluster.stop()

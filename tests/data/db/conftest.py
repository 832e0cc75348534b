"""Fixtures for the database tests: one throwaway PostgreSQL server per test run, one database per test.

The server is started with :class:`bubbles.data.db.testing.TempPostgres` (``initdb`` into a temp
directory, ``pg_ctl start`` on 127.0.0.1 on a free port, password authentication). As root it
runs as the ``postgres`` OS user. Missing binaries fail the tests (``scripts/install-services``
installs them); they are never skipped.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest

from bubbles.data.db.testing import TempPostgres

_counter = itertools.count()


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


@pytest.fixture()
def home(tmp_path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """A private BUBBLES_HOME (state store, secrets) and working directory for the test."""
    home = tmp_path / "home"
    monkeypatch.setenv("BUBBLES_HOME", str(home))
    monkeypatch.chdir(tmp_path)
    for var in [v for v in os.environ if v.startswith("BUBBLES_CONN_")]:
        monkeypatch.delenv(var)
    monkeypatch.delenv("BUBBLES_CONFIG", raising=False)
    return home


@pytest.fixture(params=["duckdb", "sqlite", "postgresql"])
def any_url(request: pytest.FixtureRequest, tmp_path, home) -> str:  # type: ignore[no-untyped-def]
    """The same test against each of the three databases."""
    if request.param == "duckdb":
        return f"duckdb:///{tmp_path}/w.duckdb"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/w.sqlite"
    return request.getfixturevalue("pg_url")  # type: ignore[no-any-return]

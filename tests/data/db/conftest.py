"""Fixtures for the database tests. The PostgreSQL server (``pg_server``, ``pg_url``: one database
per test) is shared with the run-store tests: see ``tests/conftest.py``. As root it runs as the
``postgres`` OS user. Missing binaries fail the tests (``scripts/install-services`` installs
them); they are never skipped.
"""

from __future__ import annotations

import os

import pytest


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

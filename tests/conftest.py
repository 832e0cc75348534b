"""Shared fixtures: every test gets its own BUBBLES_HOME so runs never touch the user's store."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _bubbles_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path_factory.mktemp("bubbles-home")
    monkeypatch.setenv("BUBBLES_HOME", str(home))
    monkeypatch.setenv("BUBBLES_PROGRESS", "0")


LOCAL_EXECUTORS = ["serial", "threads", "processes"]

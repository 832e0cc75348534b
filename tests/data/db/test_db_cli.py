"""`bubbles check` and `bubbles state`."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from click.testing import CliRunner

from bubbles.cli.db import check, commands, state
from bubbles.data.db.testing import TempPostgres
from bubbles.data.state import StateStore


class _Health(BaseHTTPRequestHandler):
    def do_HEAD(self) -> None:
        self.send_response(405 if self.path == "/get-only" else 200)
        self.end_headers()

    def do_GET(self) -> None:
        self.send_response(200 if self.path in ("/get-only", "/health") else 503)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def http_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_commands_are_listed() -> None:
    assert [c.name for c in commands] == ["check", "state"]


def test_check_reports_every_connection_and_source(
    home, tmp_path, pg_url: str, pg_server: TempPostgres, http_url: str, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "bubbles.toml").write_text(
        f'[connections]\nlocal = "duckdb:///{tmp_path}/w.duckdb"\nwarehouse = "{pg_url}"\n'
        f'bad_pw = "{pg_url.replace("${BUBBLES_TEST_PGPASSWORD}", "${WRONG_PW}")}"\n\n'
        f'[sources.api]\nurl = "{http_url}/health"\n\n[sources.legacy]\nurl = "{http_url}/get-only"\n'
    )
    monkeypatch.setenv("WRONG_PW", "not-the-password-42")
    monkeypatch.setenv("COLUMNS", "400")  # rich wraps long cells at the terminal width
    result = CliRunner().invoke(check, [], terminal_width=250)
    out = result.output
    assert result.exit_code == 1, out
    assert "1 of 5 failed" in out
    assert "password authentication failed" in out
    assert "not-the-password-42" not in out and pg_server.password not in out
    for name in ("local", "warehouse", "bad_pw", "api", "legacy"):
        assert name in out
    monkeypatch.setenv("WRONG_PW", pg_server.password)
    result = CliRunner().invoke(check, [], terminal_width=250)
    assert result.exit_code == 0, result.output
    assert "All 5 healthy" in result.output


def test_check_with_nothing_configured(home) -> None:  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(check, [])
    assert result.exit_code == 0 and "Nothing to check" in result.output


def test_state_shows_sets_and_resets(home, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("COLUMNS", "300")
    store = StateStore()
    store.set("src:orders:updated_at", "2024-01-02T00:00:00")
    store.propose("src:items:id", 41, "run-1")
    runner = CliRunner()
    out = runner.invoke(state, [], terminal_width=200).output
    assert "src:orders:updated_at" in out and "2024-01-02" in out
    assert "src:items:id" in out and "pending" in out  # proposed, waiting for its run to commit
    assert runner.invoke(state, ["--set", "src:items:id", "7"]).exit_code == 0
    assert store.get("src:items:id") == 7
    result = runner.invoke(state, ["--reset", "src:orders:updated_at"])
    assert result.exit_code == 0 and store.get("src:orders:updated_at") is None
    result = runner.invoke(state, ["--reset", "nope"])
    assert result.exit_code == 1 and "No watermark named 'nope' (known: src:items:id)" in result.output
    assert runner.invoke(state, ["--reset-all"]).exit_code == 0
    assert store.list() == []

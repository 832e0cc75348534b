"""``bubbles api`` against the local fault server."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from bubbles.cli.http import api as api_command
from tests.data.http.fault_server import FaultServer


@pytest.fixture(scope="module")
def server() -> Iterator[FaultServer]:
    server = FaultServer().start()
    yield server
    server.stop()


def test_api_command_reads_a_sample_and_writes_it(server: FaultServer, tmp_path) -> None:
    out = tmp_path / "sample.parquet"
    result = CliRunner().invoke(
        api_command,
        [
            server.url + "/pages",
            "-r",
            "data",
            "-p",
            "page",
            "--page-size",
            "25",
            "--size-param",
            "per_page",
            "--max-pages",
            "2",
            "--flatten",
            "-o",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith("50 records, 5 columns")
    assert "owner__login: string" in result.output and "'id': 0" in result.output
    assert pq.read_table(out).num_rows == 50


def test_api_command_bad_pagination_style(server: FaultServer) -> None:
    result = CliRunner().invoke(api_command, [server.url + "/pages", "-p", "pages"])
    assert result.exit_code == 2 and "cursor:PATH" in result.output


def test_api_command_says_what_failed_without_a_traceback(server: FaultServer) -> None:
    result = CliRunner().invoke(api_command, [server.url + "/no_such_route", "-r", "data"])
    assert result.exit_code == 1
    assert "error: " in result.output and "404" in result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)

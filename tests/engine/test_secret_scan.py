"""Nothing secret leaves a worker: the secret scan of ``benchmarks/secret_scan.py`` finds nothing.

The scan runs a workflow whose tasks fail with secrets in HTTP 401 echoes, in URL query strings
(URL-encoded), in Basic-auth headers (base64), in exception messages, causes and log records —
on every executor, Dask included — and looks for every secret in every form in the store file,
the console (text and JSON), ``bubbles show`` (and ``--json``, ``--logs``), the HTML report and
the errors a Python caller receives (also pickled).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import secret_scan


def test_the_secret_scan_finds_nothing(tmp_path: Path, conformance_cluster: object, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUBBLES_DASK_ADDRESS", conformance_cluster.address)  # type: ignore[attr-defined]
    found = secret_scan.scan(["threads", "processes", "serial", "dask"], tmp_path)
    assert len(found) > 20  # every place was looked at
    assert {place: n for place, n in found.items() if n} == {}


def test_the_scan_sees_a_leak_when_there_is_one() -> None:
    """The scanner itself: each form of a secret counts."""
    value = secret_scan.SECRETS["SCAN_KEY"]
    leaked = f"GET /x?key={secret_scan.quote_plus(value)} failed"
    assert sum(leaked.count(f) for f in secret_scan.forms(value)) >= 1

"""Spilled Arrow data never outlives a failed send (the receiver that would unlink it never sees it)."""

from __future__ import annotations

import multiprocessing.connection as mpc
import threading
from pathlib import Path

import pytest

from bubbles.engine.serialize import SPILL_BYTES, send


def test_pickling_failure_after_a_spill_removes_the_spill_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pyarrow as pa

    table = pa.table({"x": pa.array(range(SPILL_BYTES // 4), pa.int64())})
    a, _b = mpc.Pipe()
    # the table is spilled first (dict order), then the lock fails to pickle
    with pytest.raises(TypeError):
        send(a, {"t": table, "lock": threading.Lock()}, spill=str(tmp_path))
    assert list(tmp_path.rglob("*.arrow*")) == []


def test_a_closed_connection_removes_the_spill_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pyarrow as pa

    table = pa.table({"x": pa.array(range(SPILL_BYTES // 4), pa.int64())})
    a, b = mpc.Pipe()
    b.close()
    with pytest.raises(OSError):
        send(a, table, spill=str(tmp_path))
    assert list(tmp_path.rglob("*.arrow*")) == []

from __future__ import annotations

import pyarrow as pa
from click.testing import CliRunner

from bubbles.cli.files import compact
from bubbles.data.files import read_parquet, write_parquet


def test_compact_command(tmp_path) -> None:
    for _ in range(3):
        write_parquet(pa.table({"k": ["a", "b"], "v": [1, 2]}), tmp_path / "ds", partition_by=["k"], mode="append")
    result = CliRunner().invoke(compact, [str(tmp_path / "ds"), "--target-size", "1MB"])
    assert result.exit_code == 0, result.output
    assert "6 files -> 2" in result.output
    assert read_parquet(tmp_path / "ds").num_rows == 6

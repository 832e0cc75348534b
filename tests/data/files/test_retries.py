"""What the runner retries: a file that is not there yet (it may appear), never a malformed one."""

from __future__ import annotations

import pytest

import bubbles
from bubbles._errors import RunFailed
from bubbles.data.files import read_csv, read_json, read_parquet, write_parquet
from bubbles.data.files._common import MissingFileError


def test_a_file_that_appears_later_is_read_on_the_retry(tmp_path) -> None:
    path = tmp_path / "incoming" / "orders.csv"
    attempts: list[int] = []

    def extract():  # type: ignore[no-untyped-def]
        attempts.append(1)
        if len(attempts) == 2:  # the producer delivers between the first and the second attempt
            path.parent.mkdir()
            path.write_text("id\n1\n2\n")
        return read_csv(path)

    wf = bubbles.Workflow("late")
    wf.add_task(extract, retries=2, retry_delay=0.01)
    result = wf.run(executor="serial")
    assert result.tasks["extract"].result.num_rows == 2 and len(attempts) == 2


@pytest.mark.parametrize("reader", [read_csv, read_json, read_parquet])
def test_missing_file_error_says_it_is_retried(tmp_path, reader) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(MissingFileError) as info:
        reader(tmp_path / "nope")
    assert info.value.transient is True and "retried while the task has retries left" in str(info.value)


def test_a_malformed_file_is_not_retried_and_the_error_says_so(tmp_path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text('id,name\n1,"open\n2,b\n')
    broken = tmp_path / "broken.parquet"
    write_parquet(bubbles_table(), broken)
    broken.write_bytes(broken.read_bytes()[:20])
    attempts: list[str] = []

    def read_bad():  # type: ignore[no-untyped-def]
        attempts.append("csv")
        return read_csv(bad)

    def read_broken():  # type: ignore[no-untyped-def]
        attempts.append("parquet")
        return read_parquet(broken)

    wf = bubbles.Workflow("malformed")
    wf.add_task(read_bad, retries=3, retry_delay=0.01)
    wf.add_task(read_broken, retries=3, retry_delay=0.01)
    with pytest.raises(RunFailed) as info:
        wf.run(executor="serial", fail_fast=False)
    assert sorted(attempts) == ["csv", "parquet"]  # one attempt each
    text = str(info.value)
    assert "line 2" in text and text.count("Not retried") == 2


def bubbles_table():  # type: ignore[no-untyped-def]
    import pyarrow as pa

    return pa.table({"id": list(range(100))})

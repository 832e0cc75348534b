"""``bubbles run``'s result table: rows out only for data, what writers and loaders wrote, human times."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ETL = '''
import pyarrow as pa
from bubbles import Workflow, write_csv, write_table

wf = Workflow("outputs")
make = wf.add_task(lambda: pa.table({"a": list(range(1000))}), name="make")


def to_csv(table):
    return write_csv(table, "out/a.csv")  # a writer: returns the files it wrote


def to_db(table):
    # a loader: returns a count, and reports the table it loaded (the run store's `datasets`)
    return write_table("duckdb:///out/w.duckdb", "orders", table)


wf.add_task(to_csv, requires=[make])
wf.add_task(to_db, requires=[make], after=["to_csv"])
'''


def run_table(tmp_path: Path, source: str) -> str:
    (tmp_path / "etl.py").write_text(source)
    proc = subprocess.run(
        [sys.executable, "-m", "bubbles", "run", "etl.py", "--no-progress"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        env={**os.environ, "COLUMNS": "160"},
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stderr


def row(out: str, task: str) -> list[str]:
    line = next(line for line in out.splitlines() if re.match(rf"│ {task}\s", line))
    return [cell.strip() for cell in line.strip("│").split("│")]


def test_rows_out_is_data_only_and_written_comes_from_the_datasets(tmp_path: Path) -> None:
    out = run_table(tmp_path, ETL)
    assert re.search(r"run \S+ · outputs · succeeded in [\d.]+ (ms|s)\n", out), out
    header = row(out.replace("┃", "│"), "task")
    assert header == ["task", "state", "tries", "time", "rows out", "written"]
    make, to_csv, to_db = row(out, "make"), row(out, "to_csv"), row(out, "to_db")
    assert make[1:3] == ["succeeded", "1"] and make[4] == "1,000"  # rows of data it returned
    assert re.fullmatch(r"[\d.]+ (µs|ms|s)", make[3]), make  # a human duration, with its unit
    assert to_csv[4] == ""  # a list of written files is not rows of data
    assert to_db[4] == ""  # nor is a loader's count
    assert to_db[5] == "orders: 1,000 rows"
    assert re.fullmatch(r"1 file, 1,000 rows, [\d.]+ KB", to_csv[5]), to_csv  # the file it wrote
    assert make[5] == ""  # a task that wrote nothing


def test_no_written_column_when_no_task_reported_writing(tmp_path: Path) -> None:
    out = run_table(tmp_path, "from bubbles import Workflow\nwf = Workflow('plain')\nwf.add_task(lambda: [1, 2], name='two')\n")
    assert row(out.replace("┃", "│"), "task") == ["task", "state", "tries", "time", "rows out"]
    assert row(out, "two")[4] == "2"

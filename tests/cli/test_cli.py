"""The `bubbles` command, run as a user would (a real subprocess)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import bubbles


def bubbles_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bubbles", *args], capture_output=True, text=True, cwd=cwd, timeout=120)


ETL = """
from bubbles import Workflow, task

def extract(day: str = "2024-01-01"):
    return [{"day": day, "n": i} for i in range(3)]

def transform(rows):
    return [r | {"double": 2 * r["n"]} for r in rows]

def create_table():
    return "created"

def load(rows):
    return len(rows)

etl = Workflow("etl")
e = etl.add_task(extract)
t = etl.add_task(transform, requires=[e])
c = etl.add_task(create_table)
etl.add_task(load, requires=[t], after=[c])

if __name__ == "__main__":
    raise SystemExit("the CLI must not run this block")
"""


@pytest.fixture
def etl_file(tmp_path: Path) -> Path:
    path = tmp_path / "etl.py"
    path.write_text(ETL)
    return path


def test_version() -> None:
    out = bubbles_cli("--version")
    assert out.returncode == 0 and bubbles.__version__ in out.stdout


@pytest.mark.parametrize("executor", ["serial", "threads", "processes"])
def test_run_a_workflow_file(etl_file: Path, executor: str) -> None:
    out = bubbles_cli("run", str(etl_file), "--executor", executor, "--param", "day=2024-02-29", "--no-progress")
    assert out.returncode == 0, out.stderr
    assert "succeeded" in out.stderr and "load" in out.stderr


def test_run_failure_exit_code_and_message(tmp_path: Path) -> None:
    path = tmp_path / "bad.py"
    path.write_text(
        textwrap.dedent("""
            from bubbles import Workflow
            def parse():
                raise ValueError('line 3: not a number')
            wf = Workflow('bad')
            wf.add_task(parse)
        """)
    )
    out = bubbles_cli("run", str(path), "--no-progress")
    assert out.returncode == 1
    assert "'parse'" in out.stderr and "ValueError: line 3: not a number" in out.stderr


def test_run_picks_by_name_and_explains_ambiguity(tmp_path: Path) -> None:
    path = tmp_path / "two.py"
    path.write_text("from bubbles import Workflow\na = Workflow('a')\na.add_task(int)\nb = Workflow('b')\nb.add_task(float)\n")
    out = bubbles_cli("run", str(path))
    assert out.returncode == 2 and "several runnable objects (a, b)" in out.stderr
    assert bubbles_cli("run", f"{path}:b", "--no-progress").returncode == 0


def test_run_a_flow_with_params(tmp_path: Path) -> None:
    path = tmp_path / "flow.py"
    path.write_text(
        textwrap.dedent("""
        from bubbles import bubbles, task

        @task
        def square(x):
            return x * x

        @bubbles
        def main(n: int):
            total = sum(f.result() for f in [square(i) for i in range(n)])
            print("TOTAL", total)
            return total
    """)
    )
    out = bubbles_cli("run", str(path), "--param", "n=4", "--no-progress")
    assert out.returncode == 0, out.stderr
    assert "TOTAL 14" in out.stdout


def test_validate_ok_and_cycle(tmp_path: Path, etl_file: Path) -> None:
    out = bubbles_cli("validate", str(etl_file))
    assert out.returncode == 0 and "4 tasks, 3 dependencies" in out.stdout
    cyclic = tmp_path / "cyclic.py"
    cyclic.write_text(
        "from bubbles import Workflow\nwf = Workflow('c')\nwf.add_task(int, requires=['b'], name='a')\n"
        "wf.add_task(int, requires=['a'], name='b')\n"
    )
    out = bubbles_cli("validate", str(cyclic))
    assert out.returncode == 1 and "cycle" in out.stderr and ("a -> b -> a" in out.stderr or "b -> a -> b" in out.stderr)


def test_validate_checks_picklability_for_processes(tmp_path: Path) -> None:
    path = tmp_path / "lock.py"
    path.write_text(
        "import threading\nfrom bubbles import Workflow\nlock = threading.Lock()\nwf = Workflow('l')\n"
        "wf.add_task(lambda: lock.locked(), name='locked')\n"
    )
    assert bubbles_cli("validate", str(path)).returncode == 0
    out = bubbles_cli("validate", str(path), "--executor", "processes")
    assert out.returncode == 1 and "'locked'" in out.stderr and "threads" in out.stderr


def test_graph_mermaid_and_dot(etl_file: Path) -> None:
    out = bubbles_cli("graph", str(etl_file))
    assert out.returncode == 0
    assert out.stdout.startswith("flowchart LR")
    assert "n_extract --> n_transform" in out.stdout
    assert "n_create_table -.-> n_load" in out.stdout  # ordering-only edge is dashed
    dot = bubbles_cli("graph", str(etl_file), "--format", "dot").stdout
    assert "n_transform -> n_load;" in dot and "n_create_table -> n_load [style=dashed];" in dot


def test_missing_file_is_a_clear_usage_error() -> None:
    out = bubbles_cli("run", "no_such_file.py")
    assert out.returncode == 2 and "No such file" in out.stderr


def test_graph_png_with_graphviz(etl_file: Path, tmp_path: Path) -> None:
    out = bubbles_cli("graph", str(etl_file), "--format", "png", "-o", str(tmp_path / "g.png"))
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "g.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_validate_checks_every_workflow_in_a_file(tmp_path: Path) -> None:
    path = tmp_path / "many.py"
    path.write_text(
        "from bubbles import Workflow\n"
        "good = Workflow('good')\ngood.add_task(int)\n"
        "bad = Workflow('bad')\nbad.add_task(int, requires=['nope'], name='x')\n"
    )
    out = bubbles_cli("validate", str(path))
    assert out.returncode == 1
    assert "ok: good" in out.stdout and "bad:" in out.stderr and "'nope'" in out.stderr
    graph = bubbles_cli("graph", str(path))
    assert graph.returncode == 2 and f"bubbles graph {path}:NAME" in graph.stderr


def test_a_file_that_fails_to_load_is_a_usage_error_naming_its_line(tmp_path: Path) -> None:
    (tmp_path / "etl.py").write_text("from bubbles import Workflow\n\nimport not_installed_anywhere_xyz\nwf = Workflow('x')\n")
    proc = subprocess.run([sys.executable, "-m", "bubbles", "run", "etl.py"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2
    assert "etl.py, line 3: running the file failed: ModuleNotFoundError" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_gc_rejects_an_age_it_cannot_read(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "bubbles", "gc", "--older-than", "banana"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "'banana' is not an age" in proc.stderr and "Traceback" not in proc.stderr

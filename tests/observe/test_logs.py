"""Task logs captured per task and attempt; console output as text or JSON lines; progress; profiles."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import sys
import textwrap
import time
from datetime import datetime
from pathlib import Path

import pytest
from rich.console import Console

import bubbles
from bubbles import Workflow
from bubbles.observe.logs import ConsoleLog
from bubbles.observe.progress import ProgressDisplay
from bubbles.store import open_store

SRC = str(Path(bubbles.__file__).parent.parent)
ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def assert_iso_times(record: dict[str, object]) -> None:
    """Every time of a JSON line is ISO 8601 in UTC, and is now (give or take a minute), not an epoch float."""
    for key in ("time", "started_at", "ended_at", "attempt_started_at"):
        if key in record:
            value = record[key]
            assert isinstance(value, str) and ISO_UTC.fullmatch(value), (key, value)
            moment = datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
            assert abs(moment - time.time()) < 60, (key, value)


def python(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``python ARGS`` in ``tmp_path`` with this bubbles on the path (a fresh interpreter: clean logging)."""
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        env={**os.environ, "PYTHONPATH": SRC, **env},
    )


log = logging.getLogger("etl.test")


def noisy(n: int) -> int:
    log.info("task %d says hello", n)
    log.debug("not kept at INFO")
    try:
        raise KeyError("k")
    except KeyError:
        log.exception("handled")
    return n


class Keep:
    def __init__(self) -> None:
        self.logs: dict[tuple[str, int], list[dict]] = {}

    def on_task_end(self, *, task: str, attempt: int, logs: list[dict] | None = None, **future_kwargs: object) -> None:
        self.logs[(task, attempt)] = [e for e in logs or [] if e["kind"] == "log"]


@pytest.mark.parametrize("executor", ["serial", "threads", "processes"])
def test_logging_in_tasks_is_captured_per_task(executor: str) -> None:
    wf = Workflow("logs")
    for i in range(3):
        wf.add_task(lambda i=i: noisy(i), name=f"n{i}")
    keep = Keep()
    wf.run(executor, max_workers=3, hooks=[keep])
    for i in range(3):
        entries = keep.logs[(f"n{i}", 1)]
        assert [e["message"] for e in entries] == [f"task {i} says hello", "handled"]
        assert entries[0]["level"] == "INFO" and entries[0]["logger"] == "etl.test"
        assert "KeyError: 'k'" in entries[1]["exc"]


def test_logs_outside_tasks_are_not_captured_and_limit_applies(monkeypatch: pytest.MonkeyPatch) -> None:
    def chatty() -> None:
        for i in range(1500):
            log.warning("line %d", i)

    wf = Workflow("limit")
    wf.add_task(chatty)
    keep = Keep()
    log.warning("outside any task")
    wf.run(hooks=[keep])
    entries = keep.logs[("chatty", 1)]
    assert len(entries) == 1001
    assert entries[-1]["message"].startswith("... 500 more records dropped")


def test_json_console_lines_have_run_task_attempt_event_fields() -> None:
    out = io.StringIO()
    wf = Workflow("json")
    a = wf.add_task(lambda: noisy(7), name="speak")
    wf.add_task(lambda x: x + 1, name="after", requires=[a])
    result = wf.run(hooks=[ConsoleLog("json", out)])
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    events = [(r["event"], r.get("task")) for r in lines]
    assert events[0] == ("run_start", None) and events[-1] == ("run_end", None)
    assert ("task_start", "speak") in events and ("task_end", "after") in events
    log_line = next(r for r in lines if r["event"] == "task_log")
    assert log_line["run_id"] == result.run_id and log_line["task"] == "speak" and log_line["attempt"] == 1
    assert log_line["message"] == "task 7 says hello"
    end = next(r for r in lines if r["event"] == "task_end" and r["task"] == "speak")
    assert end["status"] == "succeeded" and end["metrics"]["execution_time"] >= 0 and end["workflow"] == "json"
    assert lines[-1]["tasks"] == {"succeeded": 2}
    for record in lines:
        assert_iso_times(record)
    assert {"time", "started_at", "ended_at", "attempt_started_at"} <= set(end)
    assert isinstance(end["duration"], float)  # a duration stays seconds
    assert "mask" not in lines[0]  # the run's mask function is not data


def test_bubbles_run_log_format_json_from_the_cli(tmp_path: Path) -> None:
    script = tmp_path / "flow.py"
    script.write_text(
        "import logging\nfrom bubbles import Workflow\nwf = Workflow('cli')\n"
        "def hello():\n    logging.getLogger('x').warning('hi from task')\n    return [1]\n"
        "wf.add_task(hello)\n"
        "logging.getLogger('app').warning('outside the tasks')\n"
    )
    proc = python(tmp_path, "-m", "bubbles.cli.main", "run", str(script), "--log-format", "json")
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in proc.stderr.splitlines() if line.strip()]  # every line is JSON
    assert next(r for r in records if r["event"] == "log")["message"] == "outside the tasks"
    events = [r["event"] for r in records]
    assert {"run_start", "task_start", "task_end", "task_log", "run_end"} <= set(events)
    assert next(r for r in records if r["event"] == "task_log")["message"] == "hi from task"
    assert events.index("task_log") < events.index("task_end")  # a task's records come before its end
    assert proc.stdout.split()[-1] == "succeeded"
    for record in records:
        assert_iso_times(record)


def test_text_console_shows_retries_failures_and_task_logs() -> None:
    out = io.StringIO()

    def broken() -> None:
        log.warning("about to break")
        raise RuntimeError("nope")

    wf = Workflow("text")
    wf.add_task(broken, retries=1, retry_delay=0.01)
    wf.run(hooks=[ConsoleLog("text", out)], raise_on_error=False)
    text = out.getvalue()
    assert "retry   broken attempt 1 failed (RuntimeError: nope)" in text
    assert "FAILED  broken after 2 attempt(s): RuntimeError: nope" in text
    assert "WARNING broken#2 etl.test: about to break" in text  # the final attempt's
    assert "in broken" in text  # the failing frame


def test_text_console_prints_a_failure_while_the_run_goes_and_is_not_called_per_task() -> None:
    import threading

    from bubbles.engine.hooks import HookSet

    out = io.StringIO()
    printed = threading.Event()

    def broken() -> None:
        raise RuntimeError("early")

    def slow() -> None:
        for _ in range(100):  # until the failure is on the console, at most 10 s
            if "FAILED  broken" in out.getvalue():
                printed.set()
                return
            threading.Event().wait(0.1)

    console = ConsoleLog("text", out, follow_every=0.05)
    assert not any(HookSet([console]).wants(event) for event in ("on_task_start", "on_task_retry", "on_task_end"))
    wf = Workflow("follow")
    wf.add_task(broken)
    wf.add_task(slow)
    wf.run(executor="threads", hooks=[console], raise_on_error=False, fail_fast=False)
    assert printed.is_set(), "the failure was printed only after the run"
    assert out.getvalue().count("FAILED  broken") == 1


def test_progress_display_counts_tasks_and_rows() -> None:
    buffer = io.StringIO()
    progress = ProgressDisplay(console=Console(file=buffer, force_terminal=True, width=160), delay=0)
    wf = Workflow("progress")
    for i in range(20):
        wf.add_task(lambda i=i: list(range(i)), name=f"t{i}")
    wf.run(hooks=[progress])
    assert (progress.done, progress.total, progress.failed, progress.running) == (20, 20, 0, 0)
    assert progress.rows == sum(range(20))
    assert "20/20 tasks" in buffer.getvalue()


def test_progress_display_appears_only_for_runs_that_last() -> None:
    import time

    quick, slow = io.StringIO(), io.StringIO()
    short = Workflow("short")
    short.add_task(lambda: 1, name="one")
    short.run(hooks=[ProgressDisplay(console=Console(file=quick, force_terminal=True, width=160), delay=0.3)])
    assert quick.getvalue() == ""  # over before the display was due: nothing flashed by
    long = Workflow("long")
    long.add_task(lambda: time.sleep(0.8), name="nap")
    long.run(hooks=[ProgressDisplay(console=Console(file=slow, force_terminal=True, width=160), delay=0.3)])
    assert "1/1 tasks" in slow.getvalue()


def test_profile_flag_stores_a_profile_per_task(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUBBLES_PROFILE", "1")

    def slow_sort() -> list[str]:
        return sorted((str(i) for i in range(50_000)), key=len)

    wf = Workflow("prof")
    wf.add_task(slow_sort)
    run_id = wf.run("processes", max_workers=1).run_id
    with open_store() as store:
        profiles = store.profiles(run_id)
    assert [p["task"] for p in profiles] == ["slow_sort"]
    assert "cumulative" in profiles[0]["data"] and "slow_sort" in profiles[0]["data"]
    from bubbles.observe.report import build_report

    with open_store() as store:
        page = build_report(store, run_id)
    assert "Profiles (1)" in page and "slow_sort attempt 1" in page


def test_capture_leaves_the_programs_own_logging_alone(tmp_path: Path) -> None:
    """After a run, warnings outside tasks still print, and basicConfig still configures logging."""
    script = textwrap.dedent("""
        import logging
        from bubbles import Workflow

        def task():
            logging.getLogger("etl").warning("inside the task")

        kept = []
        class Keep:
            def on_task_end(self, *, logs, **future_kwargs):
                kept.extend(entry["message"] for entry in logs or [])

        wf = Workflow("w")
        wf.add_task(task)
        wf.run(executor="threads", hooks=[Keep()])
        assert kept == ["inside the task"], kept
        logging.getLogger("app").warning("a warning of the program")
        logging.basicConfig(level=logging.INFO, format="configured %(message)s")
        logging.getLogger("app").info("info after basicConfig")
    """)
    proc = python(tmp_path, "-c", script)
    assert proc.returncode == 0, proc.stderr
    assert "a warning of the program" in proc.stderr
    assert "configured info after basicConfig" in proc.stderr


def test_a_task_record_is_printed_once_by_the_text_console(tmp_path: Path) -> None:
    script = tmp_path / "flow.py"
    script.write_text(
        "import logging\nfrom bubbles import Workflow\nwf = Workflow('once')\n"
        "def hello():\n    logging.getLogger('x').warning('only once')\n\n"
        "wf.add_task(hello)\n"
        "def after():\n    logging.getLogger('app').warning('outside any task')\n"
    )
    code = f"import runpy; ns = runpy.run_path({str(script)!r}); ns['wf'].run(); ns['after']()"
    proc = python(tmp_path, "-c", code, BUBBLES_LOG_FORMAT="text")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("only once") == 1, proc.stderr  # the console's line, not also Python's last resort
    assert "WARNING hello#1 x: only once" in proc.stderr
    assert "outside any task" in proc.stderr  # the program's own warnings still print


def test_a_worker_process_leaves_its_tasks_records_to_the_run(tmp_path: Path) -> None:
    proc = python(
        tmp_path,
        "-c",
        textwrap.dedent("""
        import logging
        from bubbles import Workflow
        def hello():
            logging.getLogger("x").warning("from a worker")
        wf = Workflow("procs")
        wf.add_task(hello)
        wf.run(executor="processes")
        """),
        BUBBLES_LOG_FORMAT="text",
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("from a worker") == 1, proc.stderr
    assert "WARNING hello#1 x: from a worker" in proc.stderr


def test_without_a_console_task_warnings_print_as_python_prints_them(tmp_path: Path) -> None:
    """The console's claim on tasks' records ends with its run: a later run without one prints them."""
    proc = python(
        tmp_path,
        "-c",
        textwrap.dedent("""
        import io, logging
        from bubbles import Workflow
        from bubbles.observe.logs import ConsoleLog
        def hello():
            logging.getLogger("x").warning("task warning %d", n[0])
        n = [1]
        wf = Workflow("w")
        wf.add_task(hello)
        wf.run(hooks=[ConsoleLog("text", io.StringIO())])
        n[0] = 2
        wf.run()
        """),
    )
    assert proc.returncode == 0, proc.stderr
    assert "task warning 1" not in proc.stderr  # the console printed it (to its own stream)
    assert "task warning 2" in proc.stderr  # Python's last resort, as without bubbles


def test_json_console_leaves_the_programs_logging_setup_alone(tmp_path: Path) -> None:
    (tmp_path / "flow.py").write_text(
        "import logging\nfrom bubbles import Workflow\n"
        "logging.basicConfig(filename='app.log', level=logging.INFO)\n"
        "wf = Workflow('json')\n"
        "def hello():\n    logging.getLogger('x').warning('in the task')\n"
        "wf.add_task(hello)\n"
    )
    proc = python(tmp_path, "-m", "bubbles.cli.main", "run", "flow.py", "--log-format", "json")
    assert proc.returncode == 0, proc.stderr
    assert "in the task" in (tmp_path / "app.log").read_text()  # the program's own handler works
    assert all(line.startswith("{") for line in proc.stderr.splitlines() if line.strip())

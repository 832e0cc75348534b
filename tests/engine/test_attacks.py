"""What an attack on the run contract found, kept as tests: each of these hung, leaked or misled before.

Moments that matter are chosen by events (a task's marker file, a barrier), never by guessed sleeps.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import pytest

import bubbles
from bubbles import PoolClosedError, RunCancelled, TaskTimeout, Workflow
from bubbles._secrets import resolve
from bubbles.engine.executors.local import ThreadExecutor
from bubbles.engine.executors.processes import ProcessExecutor
from bubbles.store import open_store

ROOT = Path(__file__).resolve().parents[2]
SECRET = "atk-Zq+9/s3cr3t-6631"


def _wait_for(path: Path, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} did not appear"
        time.sleep(0.005)


@pytest.mark.parametrize("kind", ["threads", "processes"])
def test_a_pool_shut_down_under_a_running_run_ends_that_run(kind: str, tmp_path: Path) -> None:
    marker, release = tmp_path / "running", tmp_path / "release"
    pool = ThreadExecutor(2) if kind == "threads" else ProcessExecutor(2)
    from . import tasks as t

    wf = Workflow("victim")
    slow = wf.add_task(t.mark_then_hang, kwargs={"marker": str(marker), "release": str(release)}, name="slow")
    wf.add_task(t.double, requires=[slow], name="after")
    out: dict[str, Any] = {}

    def go() -> None:
        out["result"] = wf.run(executor=pool, raise_on_error=False)

    try:
        with pool:
            runner = threading.Thread(target=go)
            runner.start()
            _wait_for(marker)
        runner.join(20)
    finally:
        release.touch()
    assert not runner.is_alive(), "the run waited forever for a call its pool dropped"
    result = out["result"]
    assert result.status == "failed" and isinstance(result.tasks["slow"].error, PoolClosedError)
    assert result.tasks["after"].state == "upstream_failed"


def test_a_timed_out_thread_is_replaced_at_once_and_a_queued_task_runs_once(tmp_path: Path) -> None:
    from . import tasks as t

    log = tmp_path / "load.log"
    wf = Workflow("starve")
    wf.add_task(t.hang, kwargs={"release": str(tmp_path / "release")}, timeout=0.5, name="hang")
    wf.add_task(t.append_line, kwargs={"path": str(log), "text": "loaded"}, retries=1, retry_delay=0, name="load")
    try:
        result = wf.run(executor=ThreadExecutor(1), fail_fast=False, raise_on_error=False)
    finally:
        (tmp_path / "release").touch()
    assert isinstance(result.tasks["hang"].error, TaskTimeout)
    assert result.tasks["load"].state == "succeeded" and result.tasks["load"].attempts == 1
    assert log.read_text().split() == ["loaded"]  # it ran once: not declared lost, not retried


def _swallows_everything() -> None:
    while True:  # "retry until it works"
        try:
            time.sleep(0.2)
        except Exception:
            pass


def test_a_serial_timeout_cannot_be_swallowed_by_the_task() -> None:
    wf = Workflow("swallow")
    wf.add_task(_swallows_everything, timeout=0.5, name="poll")
    started = time.monotonic()
    result = wf.run(executor="serial", raise_on_error=False)
    assert time.monotonic() - started < 5
    assert isinstance(result.tasks["poll"].error, TaskTimeout)


def test_a_ctrl_c_of_the_main_run_is_not_taken_by_a_run_finishing_in_another_thread(tmp_path: Path) -> None:
    marker = tmp_path / "main-running"
    script = tmp_path / "two.py"
    script.write_text(
        textwrap.dedent(f"""
        import pathlib, sys, threading, time
        sys.path.insert(0, {str(ROOT)!r})
        from bubbles import RunCancelled, Workflow
        finishing = threading.Event()
        class SlowEnd:
            def on_run_end(self, **kw):
                finishing.set(); time.sleep(2)  # an alert or an upload at the end of the background run
        background = Workflow("background", hooks=[SlowEnd()])
        background.add_task(lambda: 1, name="b")
        out = {{}}
        thread = threading.Thread(target=lambda: out.update(status=background.run().status))
        thread.start()
        finishing.wait(30)
        def main_task():
            pathlib.Path({str(marker)!r}).touch()
            time.sleep(30)
        main = Workflow("main")
        main.add_task(main_task, name="a")
        try:
            main.run()
            print("MAIN not cancelled")
        except RunCancelled:
            print("MAIN cancelled")
        thread.join(30)
        print("BACKGROUND", out.get("status"))
    """)
    )
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(marker)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert "MAIN cancelled" in out and "BACKGROUND succeeded" in out, (out, err)


def test_sigterm_cancels_the_run_and_records_it(tmp_path: Path) -> None:
    marker = tmp_path / "running"
    script = tmp_path / "etl.py"
    script.write_text(
        textwrap.dedent(f"""
        import pathlib, time
        from bubbles import Workflow
        def long():
            pathlib.Path({str(marker)!r}).touch()
            time.sleep(60)
        wf = Workflow("terminated")
        wf.add_task(long)
    """)
    )
    env = {**os.environ, "BUBBLES_HOME": str(tmp_path / "home"), "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen([sys.executable, "-m", "bubbles", "run", str(script)], env=env, stderr=subprocess.PIPE, text=True)
    _wait_for(marker)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    with open_store(tmp_path / "home" / "history.db") as store:
        assert store.runs(1)[0]["status"] == "cancelled"


def _leaky(name: str) -> int:
    key = resolve("${" + name + "}")
    bubbles.log_metric(f"calls_{key}", 1)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:  # parallel page fetches: not the task's own thread
        pool.submit(logging.getLogger("etl").warning, "retrying page 2 with key=%s", key).result()
    warnings.warn(f"endpoint deprecated: /v1?key={key}", stacklevel=1)
    error = ValueError(f"refused {key}")
    error.add_note(f"the key was {key}")
    error.details = {"key": key, "raw": key.encode()}  # type: ignore[attr-defined]
    raise ExceptionGroup("pages failed", [error, KeyError(key)])


def test_secrets_in_metric_names_notes_attributes_groups_threads_and_warnings_are_masked(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("ATK_KEY", SECRET)
    wf = Workflow("leaky")
    wf.add_task(_leaky, kwargs={"name": "ATK_KEY"}, name="leaky")
    with caplog.at_level(logging.WARNING), warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        result = wf.run(raise_on_error=False)
    task = result.tasks["leaky"]
    error = task.error
    assert isinstance(error, ExceptionGroup)
    text = json.dumps(
        {
            "error": [str(e) for e in error.exceptions],
            "notes": [getattr(e, "__notes__", []) for e in error.exceptions],
            "details": repr(getattr(error.exceptions[0], "details", None)),
            "metrics": list(task.metrics),
            "traceback": task.traceback,
            "warnings": [str(w.message) for w in seen],
            "log": caplog.text,
        }
    )
    assert SECRET not in text and "***" in text
    with open_store() as store:
        stored = json.dumps([store.attempts(result.run_id), store.logs(result.run_id)], default=str)
    assert SECRET not in stored and "calls_***" in stored


def test_a_flow_body_error_copied_into_skipped_tasks_is_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATK_BODY", SECRET)

    @bubbles.task
    def one() -> int:
        return 1

    @bubbles.flow
    def body() -> int:
        one()
        raise RuntimeError(f"body failed with {resolve('${ATK_BODY}')}")

    with pytest.raises(bubbles.RunFailed) as info:
        body()
    result = info.value.result
    assert SECRET not in str(info.value) and SECRET not in str(result.error)
    with open_store() as store:
        assert SECRET not in json.dumps([store.run(result.run_id), store.attempts(result.run_id)], default=str)


def test_two_runs_keep_their_own_capture_level_and_limit() -> None:
    started = threading.Event()
    barrier = threading.Barrier(2)

    def quiet() -> int:
        started.set()
        barrier.wait(10)
        logging.getLogger("etl").info("quiet info")
        logging.getLogger("etl").warning("quiet warning")
        return 1

    def chatty() -> int:
        barrier.wait(10)
        for i in range(5):
            logging.getLogger("etl").debug("debug %d", i)
        return 1

    results: dict[str, Any] = {}
    a = Workflow("A")
    a.add_task(quiet, name="t")
    thread = threading.Thread(target=lambda: results.update(A=a.run(settings={"capture_level": "warning"})))
    thread.start()
    started.wait(10)
    b = Workflow("B")
    b.add_task(chatty, name="t")
    results["B"] = b.run(settings={"capture_level": "debug", "log_limit": 3})
    thread.join(30)
    a_logs = [e["message"] for e in results["A"].tasks["t"].record.logs]
    b_logs = [e["message"] for e in results["B"].tasks["t"].record.logs]
    assert a_logs == ["quiet warning"]  # its own level: no INFO
    assert b_logs[:3] == ["debug 0", "debug 1", "debug 2"] and "more records dropped" in b_logs[3]  # its own limit
    assert logging.getLogger().level == logging.WARNING  # put back when the last run ended


def test_bad_settings_a_typo_in_a_variable_and_a_toml_table_are_said(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from bubbles import ConfigError
    from bubbles._settings import resolve_settings
    from bubbles.config import load_config

    with pytest.raises(ConfigError, match="expected a finite number"):
        resolve_settings({"cancel_grace": float("nan")}, env={}, config=None)
    with caplog.at_level(logging.WARNING, logger="bubbles"):
        resolve_settings(env={"BUBBLES_HISTROY": "0"}, config=None)
    assert "BUBBLES_HISTROY is not a bubbles setting" in caplog.text and "BUBBLES_HISTORY" in caplog.text
    (tmp_path / "bubbles.toml").write_text('[setting]\nexecutor = "serial"\n')
    with pytest.raises(ConfigError, match=r"unknown table\(s\) 'setting' \(did you mean 'settings'\?\)"):
        load_config(tmp_path / "bubbles.toml")
    with pytest.raises(ConfigError, match="is a class"):
        Workflow("w").add_task(lambda: 1).workflow.run(executor=ThreadExecutor)


def test_a_cancel_with_a_run_in_flight_on_dask_ends_the_script_once(tmp_path: Path) -> None:
    """A task that kills its Dask worker makes the nanny start another: the script must not run again."""
    counter = tmp_path / "script_ran.txt"
    script = tmp_path / "etl.py"
    script.write_text(
        textwrap.dedent(f"""
        import os
        from bubbles import Workflow
        with open({str(counter)!r}, "a") as fh:
            fh.write("ran\\n")
        def exits():
            os._exit(3)
        wf = Workflow("dask-reexec")
        wf.add_task(exits)
        wf.run(executor="dask", cluster_options={{"n_workers": 1}}, raise_on_error=False)
    """)
    )
    env = {k: v for k, v in os.environ.items() if k not in ("BUBBLES_DASK_ADDRESS", "DASK_SCHEDULER_ADDRESS")}
    env.update(PYTHONPATH=str(ROOT / "src"), BUBBLES_HOME=str(tmp_path / "home"))
    subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, timeout=180)
    assert counter.read_text().split() == ["ran"]


def test_an_interrupted_run_is_cancelled_not_raised_elsewhere() -> None:
    """(RunCancelled is what a caller of a cancelled run gets; the runner's own cancel from a thread.)"""
    from bubbles.session.run import RunOptions, start_run

    wf = Workflow("cancel-me")
    wf.add_task(lambda: time.sleep(5), name="long")
    graph, _ = wf.graph()
    with pytest.raises(RunCancelled):
        start_run(graph, RunOptions("threads"), on_runner=lambda r: threading.Timer(0.2, r.cancel).start())

"""Settings are resolved once per run, from code > CLI > environment > bubbles.toml > defaults."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from bubbles import ConfigError, Workflow
from bubbles._settings import SPECS, Settings, cli_settings, current_settings, resolve_settings
from bubbles.config import load_config


def _toml(tmp_path: Path, text: str) -> Any:
    (tmp_path / "bubbles.toml").write_text(text)
    return load_config(tmp_path / "bubbles.toml")


def test_each_layer_wins_over_the_ones_below_and_says_so(tmp_path: Path) -> None:
    config = _toml(tmp_path, '[settings]\nexecutor = "serial"\nhistory = false\nlog_limit = 7\nprofile = true\n')
    env = {"BUBBLES_EXECUTOR": "processes", "BUBBLES_HISTORY": "1", "BUBBLES_LOG_LIMIT": "9"}
    s = resolve_settings({"executor": "threads"}, cli={"history": False, "executor": "dask"}, env=env, config=config)
    assert (s.executor, s.source("executor")) == ("threads", "code")
    assert (s.history, s.source("history")) == (False, "cli --history")
    assert (s.log_limit, s.source("log_limit")) == (9, "env BUBBLES_LOG_LIMIT")
    assert s.profile is True and s.source("profile").endswith("bubbles.toml [settings] profile")
    assert (s.memory, s.source("memory")) == (True, "default")


def test_paths_in_bubbles_toml_are_relative_to_the_file(tmp_path: Path) -> None:
    config = _toml(tmp_path, '[settings]\nhome = "state"\nsecrets_file = "conf/secrets.toml"\n')
    s = resolve_settings(env={}, config=config)
    assert s.home_path() == tmp_path / "state"
    assert s.secrets_path() == tmp_path / "conf" / "secrets.toml"


def test_a_typo_in_a_setting_name_is_caught_with_a_suggestion(tmp_path: Path) -> None:
    config = _toml(tmp_path, '[settings]\nexecutr = "serial"\n')
    expected = r"Unknown setting 'executr' \(from .*bubbles.toml \[settings\]\)\. Did you mean 'executor'"
    with pytest.raises(ConfigError, match=expected):
        resolve_settings(env={}, config=config)
    with pytest.raises(ConfigError, match=r"Unknown setting 'histroy' .*from code.*Did you mean 'history'"):
        Workflow("w").add_task(lambda: 1).workflow.run(settings={"histroy": False})


def test_a_bad_value_names_the_setting_and_where_it_came_from() -> None:
    with pytest.raises(ConfigError, match=r"'history' = 'maybe' \(from env BUBBLES_HISTORY\) is not valid: expected one of 1/0"):
        resolve_settings(env={"BUBBLES_HISTORY": "maybe"}, config=None)
    with pytest.raises(ConfigError, match=r"'max_workers' = 0 \(from code\).*whole number >= 1"):
        resolve_settings({"max_workers": 0}, env={}, config=None)


def test_every_setting_is_documented_and_typed() -> None:
    names = {f for f in Settings.__dataclass_fields__ if f != "sources"}
    assert names == {s.name for s in SPECS}
    assert all(s.doc for s in SPECS)
    defaults = resolve_settings(env={}, config=None)
    assert all(defaults.source(s.name) == "default" for s in SPECS)


def test_a_run_carries_its_settings_to_its_tasks() -> None:
    def seen() -> tuple[bool, str]:
        s = current_settings()
        return s.history, s.source("history")

    wf = Workflow("carried")
    wf.add_task(seen, name="seen")
    for executor in ("threads", "processes"):
        result = wf.run(executor=executor, settings={"history": False})
        assert result.tasks["seen"].result == (False, "code")


def test_the_cli_passes_its_flags_as_a_layer_without_touching_the_environment(tmp_path: Path) -> None:
    from bubbles.cli.main import cli

    script = tmp_path / "etl.py"
    script.write_text(
        "from bubbles import Workflow\n"
        "from bubbles._settings import current_settings\n"
        "def where():\n"
        "    s = current_settings()\n"
        "    return f'{s.log_format}/{s.source(\"log_format\")}/{s.executor}'\n"
        "wf = Workflow('cli-layer')\n"
        "wf.add_task(where, name='where')\n"
        "wf.add_task(lambda w: print('RESULT', w), requires=['where'], name='show')\n"
    )
    before = dict(os.environ)
    root_level = logging.getLogger().level
    result = CliRunner().invoke(cli, ["run", str(script), "--log-format", "json", "-e", "serial"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "RESULT json/cli --log-format/serial" in result.output
    assert dict(os.environ) == before  # nothing written to the environment
    assert logging.getLogger().level == root_level  # nothing left changed in logging
    with cli_settings({"executor": "serial"}):
        assert resolve_settings(env={}, config=None).source("executor") == "cli --executor"
    assert resolve_settings(env={}, config=None).source("executor") == "default"


def test_distributed_and_another_executor_on_the_command_line_is_refused(tmp_path: Path) -> None:
    from bubbles.cli.main import cli

    script = tmp_path / "etl.py"
    script.write_text("from bubbles import Workflow\nwf = Workflow('w')\nwf.add_task(lambda: 1)\n")
    result = CliRunner().invoke(cli, ["run", str(script), "--distributed", "-e", "processes"])
    assert result.exit_code == 2 and "cannot be combined with --executor processes" in result.output


def test_two_runs_in_two_threads_do_not_see_each_others_settings_or_logs(tmp_path: Path) -> None:
    barrier = threading.Barrier(2)

    def task(name: str) -> str:
        barrier.wait(10)  # both runs are inside a task now
        logging.getLogger("etl").warning("from %s", name)
        s = current_settings()
        return f"{s.home}|{s.log_limit}"

    results: dict[str, Any] = {}

    def run(name: str, limit: int) -> None:
        wf = Workflow(f"iso-{name}")
        wf.add_task(task, kwargs={"name": name}, name="t")
        results[name] = wf.run(executor="threads", settings={"home": str(tmp_path / name), "log_limit": limit})

    threads = [threading.Thread(target=run, args=a) for a in (("a", 11), ("b", 22))]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    for name, limit in (("a", 11), ("b", 22)):
        task_run = results[name].tasks["t"]
        assert task_run.result == f"{tmp_path / name}|{limit}"
        assert [e["message"] for e in task_run.record.logs] == [f"from {name}"]
        assert (tmp_path / name / "history.db").exists()  # each run recorded in its own home
    assert logging.getLogRecordFactory() is logging.LogRecord  # capture was undone when the last run ended

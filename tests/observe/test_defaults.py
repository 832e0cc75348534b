"""The default observers of a run, chosen from BUBBLES_* variables; probes survive pickling (processes, Dask)."""

from __future__ import annotations

import pickle

import pytest

from bubbles.observe.defaults import capture_logs, hooks_for_run, probes_for_run
from bubbles.observe.history import RunRecorder
from bubbles.observe.logs import ConsoleLog
from bubbles.observe.memory import MemoryProbe
from bubbles.observe.profile import ProfileProbe
from bubbles.observe.prometheus import PrometheusExporter
from bubbles.observe.resources import ResourceSampler


def kinds(items: object) -> list[str]:
    return [type(x).__name__ for x in items]  # type: ignore[attr-defined]


def test_defaults_off_a_terminal() -> None:
    assert kinds(hooks_for_run(run_id="r", workflow="w", options=None)) == ["ResourceSampler", "RunRecorder"]
    assert kinds(probes_for_run(options=None)) == ["MemoryProbe"]
    assert capture_logs()


def test_environment_switches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUBBLES_HISTORY", "0")
    monkeypatch.setenv("BUBBLES_LOG_FORMAT", "json")
    monkeypatch.setenv("BUBBLES_PROGRESS", "1")
    monkeypatch.setenv("BUBBLES_PUSHGATEWAY", "http://127.0.0.1:1")
    monkeypatch.setenv("BUBBLES_PROFILE", "1")
    monkeypatch.setenv("BUBBLES_MEMORY", "off")
    hooks = hooks_for_run(run_id="r", workflow="w", options=None)
    assert kinds(hooks) == ["ProgressDisplay", "ConsoleLog", "PrometheusExporter"]
    assert isinstance(hooks[1], ConsoleLog) and hooks[1].fmt == "json"
    assert isinstance(hooks[2], PrometheusExporter) and hooks[2].port is None
    assert kinds(probes_for_run(options=None)) == ["ProfileProbe"]
    monkeypatch.setenv("BUBBLES_CAPTURE_LOGS", "0")
    assert not capture_logs()


def test_bad_metrics_port_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from bubbles import ConfigError

    monkeypatch.setenv("BUBBLES_METRICS_PORT", "ninety")
    with pytest.raises(ConfigError, match="not a port number"):
        hooks_for_run(run_id="r", workflow="w", options=None)


def test_bad_log_format_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from bubbles import ConfigError

    monkeypatch.setenv("BUBBLES_LOG_FORMAT", "xml")
    with pytest.raises(ConfigError, match="Unknown log format 'xml'"):
        hooks_for_run(run_id="r", workflow="w", options=None)


@pytest.mark.parametrize("probe", [MemoryProbe(), ProfileProbe(lines=5)])
def test_probes_pickle(probe: object) -> None:
    again = pickle.loads(pickle.dumps(probe))
    assert type(again) is type(probe)


def test_recorder_and_sampler_are_fresh_per_run() -> None:
    first = hooks_for_run(run_id="a", workflow="w", options=None)
    second = hooks_for_run(run_id="b", workflow="w", options=None)
    assert isinstance(first[1], RunRecorder) and isinstance(first[0], ResourceSampler)
    assert first[0] is not second[0] and first[1] is not second[1]

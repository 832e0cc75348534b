"""The default observers of a run, chosen from its settings; probes survive pickling (processes, Dask)."""

from __future__ import annotations

import pickle

import pytest

from bubbles import ConfigError
from bubbles._settings import resolve_settings
from bubbles.observe.defaults import hooks_for_run, probes_for_run
from bubbles.observe.history import RunRecorder
from bubbles.observe.logs import ConsoleLog
from bubbles.observe.memory import MemoryProbe
from bubbles.observe.profile import ProfileProbe
from bubbles.observe.prometheus import PrometheusExporter
from bubbles.observe.resources import ResourceSampler


def kinds(items: object) -> list[str]:
    return [type(x).__name__ for x in items]  # type: ignore[attr-defined]


def test_defaults_off_a_terminal() -> None:
    settings = resolve_settings(env={}, config=None)
    assert kinds(hooks_for_run(settings)) == ["ResourceSampler", "RunRecorder", "LineageEmitter"]
    assert kinds(probes_for_run(settings)) == ["MemoryProbe"]
    assert settings.capture_logs


def test_environment_switches() -> None:
    env = {
        "BUBBLES_HISTORY": "0",
        "BUBBLES_LOG_FORMAT": "json",
        "BUBBLES_PROGRESS": "1",
        "BUBBLES_PUSHGATEWAY": "http://127.0.0.1:1",
        "BUBBLES_PROFILE": "1",
        "BUBBLES_MEMORY": "off",
        "BUBBLES_CAPTURE_LOGS": "0",
    }
    settings = resolve_settings(env=env, config=None)
    hooks = hooks_for_run(settings)
    assert kinds(hooks) == ["ProgressDisplay", "ConsoleLog", "PrometheusExporter", "LineageEmitter"]
    assert isinstance(hooks[1], ConsoleLog) and hooks[1].fmt == "json"
    assert isinstance(hooks[2], PrometheusExporter) and hooks[2].port is None
    assert kinds(probes_for_run(settings)) == ["ProfileProbe"]
    assert not settings.capture_logs


def test_lineage_off_means_no_lineage_observer() -> None:
    settings = resolve_settings(env={"BUBBLES_LINEAGE": "off", "BUBBLES_LINEAGE_URL": "http://127.0.0.1:1"}, config=None)
    assert "LineageEmitter" not in kinds(hooks_for_run(settings))


def test_bad_metrics_port_is_a_config_error_naming_its_source() -> None:
    with pytest.raises(ConfigError, match=r"'metrics_port' = 'ninety' \(from env BUBBLES_METRICS_PORT\) is not valid"):
        resolve_settings(env={"BUBBLES_METRICS_PORT": "ninety"}, config=None)


def test_bad_log_format_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"'log_format' = 'xml'.*choose one of: text, json"):
        resolve_settings(code={"log_format": "xml"}, env={}, config=None)


@pytest.mark.parametrize("probe", [MemoryProbe(0.02), ProfileProbe(lines=5)])
def test_probes_pickle(probe: object) -> None:
    again = pickle.loads(pickle.dumps(probe))
    assert type(again) is type(probe) and vars(again) == vars(probe)


def test_recorder_and_sampler_are_fresh_per_run() -> None:
    settings = resolve_settings(env={}, config=None)
    first = hooks_for_run(settings)
    second = hooks_for_run(settings)
    assert isinstance(first[1], RunRecorder) and isinstance(first[0], ResourceSampler)
    assert first[0] is not second[0] and first[1] is not second[1]

"""Settings: resolved once per run, each value knowing where it came from.

Every knob bubbles has is one row of :data:`SPECS`. A run resolves them all into one frozen
:class:`Settings` object, from these layers, the first that gives a value winning:

1. **code** — ``wf.run(executor=..., settings={"history": False})``;
2. **cli** — the flags of ``bubbles run`` (the command passes them as a layer, for the run it
   starts; it never writes ``os.environ``);
3. **env** — ``BUBBLES_<NAME>`` environment variables, read here and nowhere else;
4. **bubbles.toml** — its ``[settings]`` table (paths relative to the file);
5. **defaults**.

``settings.source("executor")`` says which layer gave a value (``"code"``, ``"cli --executor"``,
``"env BUBBLES_EXECUTOR"``, ``"bubbles.toml [settings] executor"``, ``"default"``), and every
error about a bad value names the setting and that source. The run carries its settings to its
tasks (``current_task().settings``, also in worker processes); library code reads them from
there (:func:`current_settings`), never from the environment.

Example:
    >>> s = resolve_settings(code={"executor": "serial"}, env={"BUBBLES_HISTORY": "0"}, config=None)
    >>> s.executor, s.source("executor"), s.history, s.source("history")
    ('serial', 'code', False, 'env BUBBLES_HISTORY')
"""

from __future__ import annotations

import contextvars
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ._errors import ConfigError

__all__ = ["EXECUTORS", "SPECS", "Settings", "cli_settings", "current_settings", "from_command_line", "resolve_settings"]

EXECUTORS = ("serial", "threads", "processes", "dask")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError("expected one of 1/0, true/false, yes/no, on/off")


def _auto_bool(value: Any) -> bool | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "auto")):
        return None
    return _bool(value)


def _number(kind: type) -> Callable[[Any], Any]:
    def parse(value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("expected a number")
        number = kind(value)
        if number != number or number in (float("inf"), float("-inf")):
            raise ValueError("expected a finite number")
        if number < 0:
            raise ValueError("expected a number >= 0")
        return number

    return parse


def _optional(parse: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def optional(value: Any) -> Any:
        if value is None or (isinstance(value, str) and value.strip() == ""):
            return None
        return parse(value)

    return optional


def _choice(*choices: str, optional: bool = False) -> Callable[[Any], Any]:
    def choose(value: Any) -> Any:
        if optional and (value is None or value == ""):
            return None
        text = str(value).strip().lower()
        if text not in choices:
            raise ValueError(f"choose one of: {', '.join(choices)}")
        return text

    return choose


def _port(value: Any) -> int | None:
    if value is None or value == "":
        return None
    number = int(value)
    if not 0 < number < 65536:
        raise ValueError("expected a port number between 1 and 65535")
    return number


def _workers(value: Any) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or int(value) != float(value) or int(value) < 1:
        raise ValueError("expected a whole number >= 1")
    return int(value)


def _text(value: Any) -> str:
    return str(value)


@dataclass(frozen=True)
class Spec:
    """One setting: its name, how its text is parsed, its default and what it does."""

    name: str
    parse: Callable[[Any], Any]
    default: Any
    doc: str
    path: bool = False  # relative paths in bubbles.toml are relative to that file

    @property
    def env(self) -> str:
        return "BUBBLES_" + self.name.upper()


SPECS: tuple[Spec, ...] = (
    Spec("executor", _choice(*EXECUTORS), "threads", "where tasks run"),
    Spec("max_workers", _workers, None, "tasks running at once (default: per executor)"),
    Spec("home", _optional(_text), None, "where the run store and secrets live (default ~/.local/share/bubbles)", path=True),
    Spec("store", _optional(_text), None, "the run store: a SQLite file or a postgresql:// URL (default history.db in the home)"),
    Spec("history", _bool, True, "record runs in the run store (and sample resources)"),
    Spec("lease_seconds", _number(float), 60.0, "how old a run's heartbeat may get before readers mark it crashed"),
    Spec("history_timeout", _number(float), 30.0, "seconds to wait for a run-history database locked by another writer"),
    Spec("resources", _bool, True, "sample CPU and memory of the run's process tree"),
    Spec("resource_interval", _number(float), 0.5, "seconds between resource samples"),
    Spec("log_format", _choice("text", "json", optional=True), None, "console events: text or json (default: text on a TTY)"),
    Spec("progress", _auto_bool, None, "live progress display (default: on a TTY)"),
    Spec("metrics_port", _port, None, "serve Prometheus /metrics on this port during the run"),
    Spec("metrics_addr", _text, "0.0.0.0", "bind address for the /metrics server"),
    Spec("pushgateway", _optional(_text), None, "push metrics to this Prometheus Pushgateway URL at the end"),
    Spec("memory", _bool, True, "measure each attempt's peak memory"),
    Spec("memory_interval", _number(float), 0.05, "seconds between peak-memory readings"),
    Spec("capture_logs", _bool, True, "keep tasks' logging records with their attempts"),
    Spec("capture_level", _choice("debug", "info", "warning", "error", "critical"), "info", "lowest level captured"),
    Spec("log_limit", _workers, 1000, "log records kept per attempt"),
    Spec("profile", _bool, False, "profile every attempt with cProfile"),
    Spec("profile_lines", _workers, 40, "lines kept of each profile"),
    Spec("spill_dir", _optional(_text), None, "where Arrow data crossing processes is spilled (default /dev/shm)", path=True),
    Spec("secrets_file", _optional(_text), None, "the secrets file (default ./.bubbles/secrets.toml or the home)", path=True),
    Spec("dask_address", _optional(_text), None, "the Dask scheduler to run on"),
    Spec("dask_tls_ca_file", _optional(_text), None, "CA file for a tls:// Dask scheduler", path=True),
    Spec("dask_tls_cert", _optional(_text), None, "client certificate for a tls:// Dask scheduler", path=True),
    Spec("dask_tls_key", _optional(_text), None, "client key for a tls:// Dask scheduler", path=True),
    Spec("cancel_grace", _number(float), 5.0, "seconds a cancelled run waits for its running tasks to stop"),
    Spec("persist", _auto_bool, None, "keep every task's output for resume (default: on for `bubbles run`)"),
    Spec("checkpoint_dir", _optional(_text), None, "where kept outputs go (default: checkpoints in the home)", path=True),
    Spec("lineage", _choice("file", "console", "off"), "file",
         "lineage: datasets and column lineage in the run store, OpenLineage events to a file in the home, the console, "
         "or off (nothing recorded)"),
    Spec("lineage_url", _optional(_text), None, "also send OpenLineage events to this backend (Marquez...), e.g. http://host:5000"),
    Spec("lineage_api_key", _optional(_text), None, "API key for lineage_url, normally a ${NAME} secret reference"),
    Spec("lineage_namespace", _text, "bubbles", "the OpenLineage job namespace of this scheduler"),
    Spec("lineage_timeout", _number(float), 5.0, "seconds to wait for the lineage backend per request"),
    Spec("lineage_tasks", _choice("data", "all"), "data",
         "OpenLineage events for the tasks that touched data or failed (data), or for every task (all)"),
    Spec("quarantine_dir", _optional(_text), None, "where quarantine sinks go by default (default quarantine/ in the home)",
         path=True),
    Spec("mask_key_secret", _text, "BUBBLES_MASK_KEY", "the secret holding the key of hash masks (HMAC-SHA256)"),
    Spec("lazy", _choice("auto", "on", "off"), "auto",
         "readers and sql() hand on plans, run where used: inside tasks (auto), everywhere (on), never (off)"),
    Spec("engine_threads", _workers, None, "DuckDB threads for plans and sql() (default: all cores)"),
    Spec("engine_memory_limit", _optional(_text), None,
         "DuckDB memory limit for plans and sql(), e.g. 4GB; beyond it sorts and joins spill (default: half the RAM)"),
    Spec("engine_preserve_order", _bool, True,
         "keep rows in input order through plans and sql() (off: faster, a query without ORDER BY has no order)"),
)
_BY_NAME = {s.name: s for s in SPECS}


@dataclass(frozen=True, slots=True)
class Settings:
    """The resolved settings of one run (see the module docstring). Immutable; pickles."""

    executor: str = "threads"
    max_workers: int | None = None
    home: str | None = None
    store: str | None = None
    history: bool = True
    lease_seconds: float = 60.0
    history_timeout: float = 30.0
    resources: bool = True
    resource_interval: float = 0.5
    log_format: str | None = None
    progress: bool | None = None
    metrics_port: int | None = None
    metrics_addr: str = "0.0.0.0"
    pushgateway: str | None = None
    memory: bool = True
    memory_interval: float = 0.05
    capture_logs: bool = True
    capture_level: str = "info"
    log_limit: int = 1000
    profile: bool = False
    profile_lines: int = 40
    spill_dir: str | None = None
    secrets_file: str | None = None
    dask_address: str | None = None
    dask_tls_ca_file: str | None = None
    dask_tls_cert: str | None = None
    dask_tls_key: str | None = None
    cancel_grace: float = 5.0
    persist: bool | None = None
    checkpoint_dir: str | None = None
    lineage: str = "file"
    lineage_url: str | None = None
    lineage_api_key: str | None = None
    lineage_namespace: str = "bubbles"
    lineage_timeout: float = 5.0
    lineage_tasks: str = "data"
    quarantine_dir: str | None = None
    mask_key_secret: str = "BUBBLES_MASK_KEY"
    lazy: str = "auto"
    engine_threads: int | None = None
    engine_memory_limit: str | None = None
    engine_preserve_order: bool = True
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    def source(self, name: str) -> str:
        """Where the value of setting ``name`` came from."""
        if name not in _BY_NAME:
            raise ConfigError(f"Unknown setting {name!r}. Known settings: {', '.join(_BY_NAME)}.")
        return self.sources.get(name, "default")

    def home_path(self) -> Path:
        """The bubbles home (the run store, secrets): the ``home`` setting, else the user's data folder.

        That is ``$XDG_DATA_HOME/bubbles``, by default ``~/.local/share/bubbles``: one history for
        every folder a user runs from. A project that wants its own sets ``home = ".bubbles"``
        under ``[settings]`` in its ``bubbles.toml`` (relative to that file).
        """
        if self.home:
            return Path(self.home)
        data = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
        return Path(data) / "bubbles"

    def secrets_path(self) -> Path:
        """The secrets file: the ``secrets_file`` setting; else ``.bubbles/secrets.toml`` in the current
        folder if there is one (a project's own, kept out of version control); else ``secrets.toml``
        in the home."""
        if self.secrets_file:
            return Path(self.secrets_file)
        local = Path.cwd() / ".bubbles" / "secrets.toml"
        if not self.home and local.exists():
            return local
        return self.home_path() / "secrets.toml"

    def describe(self) -> list[tuple[str, Any, str]]:
        """``(name, value, source)`` for every setting, for ``bubbles settings``-style output."""
        return [(s.name, getattr(self, s.name), self.source(s.name)) for s in SPECS]


assert {f.name for f in fields(Settings)} - {"sources"} == set(_BY_NAME), "SPECS and Settings disagree"


def _parse(spec: Spec, value: Any, source: str) -> Any:
    try:
        parsed = spec.parse(value)
    except (TypeError, ValueError) as exc:
        fix = "Fix it there"
        if source != "code" and not source.startswith("cli"):
            fix += f", or override it ({spec.env}=...)"
        raise ConfigError(
            f"Setting {spec.name!r} = {value!r} (from {source}) is not valid: {exc}. {fix}.",
            setting=spec.name,
            source=source,
        ) from None
    if spec.path and isinstance(parsed, str) and parsed.startswith("~"):
        parsed = os.path.expanduser(parsed)
    return parsed


_NOT_SETTINGS = ("BUBBLES_CONN_", "BUBBLES_CONFIG", "BUBBLES_TEST_")
_warned_env: set[str] = set()


def _check_env_names(env: Mapping[str, str]) -> None:
    """A ``BUBBLES_*`` variable that is no setting is most likely a typo: say so, once per name."""
    import difflib
    import logging

    known = {s.env for s in SPECS}
    for name in env:
        if name.startswith("BUBBLES_") and name not in known and not name.startswith(_NOT_SETTINGS) and name not in _warned_env:
            _warned_env.add(name)
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f" Did you mean {close[0]}?" if close else ""
            logging.getLogger("bubbles").warning("bubbles: %s is not a bubbles setting; it is ignored.%s", name, hint)


def _check_names(values: Mapping[str, Any], source: str) -> None:
    for name in values:
        if name not in _BY_NAME:
            import difflib

            close = difflib.get_close_matches(name, list(_BY_NAME), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"Unknown setting {name!r} (from {source}).{hint} Known settings: {', '.join(_BY_NAME)}.",
                setting=name,
                source=source,
            )


def _toml_settings(config: Any) -> tuple[dict[str, Any], Path | None]:
    if config is None:
        return {}, None
    return dict(getattr(config, "settings", {}) or {}), getattr(config, "path", None)


def resolve_settings(
    code: Mapping[str, Any] | None = None,
    *,
    cli: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    config: Any = "find",
) -> Settings:
    """Resolve every setting from code, CLI flags, environment, ``bubbles.toml`` and defaults.

    ``None`` values in ``code`` and ``cli`` mean "not given". ``config`` is a loaded
    ``ProjectConfig``, ``None`` for none, or ``"find"`` to look for ``bubbles.toml``.
    """
    env = os.environ if env is None else env
    if config == "find":
        from .config import load_config

        config = load_config()
    toml, toml_path = _toml_settings(config)
    layers: list[tuple[str, Mapping[str, Any], Callable[[str], str]]] = []
    code_values = {k: v for k, v in (code or {}).items() if v is not None}
    cli_values = {k: v for k, v in (cli if cli is not None else _cli_layer.get() or {}).items() if v is not None}
    _check_names(code_values, "code")
    _check_names(cli_values, "the command line")
    _check_names(toml, f"{toml_path} [settings]")
    layers.append(("code", code_values, lambda name: "code"))
    layers.append(("cli", cli_values, lambda name: f"cli --{name.replace('_', '-')}"))
    from_env = {s.name: env[s.env] for s in SPECS if env.get(s.env, "") != ""}
    _check_env_names(env)
    layers.append(("env", from_env, lambda name: f"env BUBBLES_{name.upper()}"))
    layers.append(("toml", toml, lambda name: f"{toml_path} [settings] {name}"))
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for spec in SPECS:
        for layer, given, where in layers:
            if spec.name in given:
                value = _parse(spec, given[spec.name], where(spec.name))
                if layer == "toml" and spec.path and isinstance(value, str) and toml_path is not None:
                    value = str((Path(toml_path).parent / os.path.expanduser(value)).resolve())
                values[spec.name] = value
                sources[spec.name] = where(spec.name)
                break
        else:
            values[spec.name] = spec.default
    return Settings(**values, sources=sources)


# -- the CLI layer and the settings that apply here -----------------------------------------------
_cli_layer: contextvars.ContextVar[Mapping[str, Any] | None] = contextvars.ContextVar("bubbles_cli_settings", default=None)
_run_settings: contextvars.ContextVar[Settings | None] = contextvars.ContextVar("bubbles_run_settings", default=None)


@contextmanager
def cli_settings(values: Mapping[str, Any]) -> Iterator[None]:
    """Give the runs started inside this block the command line's flags as the ``cli`` layer."""
    token = _cli_layer.set({k: v for k, v in values.items() if v is not None})
    try:
        yield
    finally:
        _cli_layer.reset(token)


def from_command_line() -> bool:
    """Whether the run being set up was started by ``bubbles run`` (inside :func:`cli_settings`)."""
    return _cli_layer.get() is not None


@contextmanager
def run_settings(settings: Settings) -> Iterator[None]:
    """The settings that apply on this thread while a run is set up and driven (the session's)."""
    token = _run_settings.set(settings)
    try:
        yield
    finally:
        _run_settings.reset(token)


def current_settings() -> Settings:
    """The settings that apply here: the running task's run's, else the run being driven, else fresh.

    Outside any run (a CLI command, a test calling a connector) the settings are resolved
    from the environment and ``bubbles.toml`` on each call.
    """
    from ._context import _current

    ctx = _current.get()
    if ctx is not None and ctx.settings is not None:
        return ctx.settings
    return _run_settings.get() or resolve_settings()

"""Project configuration: named connections and sources in ``bubbles.toml``.

Code says ``connect("warehouse")``; which database that is depends on where it runs. The
lookup order for a name ``NAME``:

1. environment variable ``BUBBLES_CONN_<NAME>`` (upper case, ``-`` and ``.`` as ``_``): a full
   URL. This is the production override, and the one place a literal password is accepted
   (it comes from the environment, not from code).
2. ``[connections.NAME]`` in ``bubbles.toml``, found in ``$BUBBLES_CONFIG`` or the current
   directory or its nearest parent that has one.

``bubbles.toml``::

    [connections]
    local = "duckdb:///warehouse.duckdb"                # short form; a relative file is relative
                                                        # to this bubbles.toml, not to the cwd

    [connections.warehouse]
    url = "postgresql://etl:${PGPASSWORD}@db.internal:5432/analytics"
    sslmode = "verify-full"                              # any other key: a libpq parameter
    sslrootcert = "/etc/ssl/db-ca.pem"
    pool_size = 4                                        # bubbles options: pool_size, batch_size

    [settings]                                           # run settings (see bubbles._settings)
    executor = "processes"
    home = ".bubbles"                                    # relative to this file

    [sources.orders_api]                                 # HTTP sources; `bubbles check` pings them
    url = "https://api.example.com/v1/health"
    method = "GET"                                       # default HEAD (falls back to GET)
    headers = { Authorization = "Bearer ${ORDERS_TOKEN}" }
    timeout = 10

Secrets appear only as ``${NAME}`` references, resolved when the connection opens (see
:mod:`bubbles._secrets`). Reading the file has no side effects and happens only when asked.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from ._errors import ConfigError

__all__ = ["ProjectConfig", "connection_url", "env_var_for", "find_config", "load_config"]

CONFIG_NAME = "bubbles.toml"
_ENV_PREFIX = "BUBBLES_CONN_"


def env_var_for(name: str) -> str:
    """The environment variable that overrides connection ``name``: ``BUBBLES_CONN_WAREHOUSE``."""
    return _ENV_PREFIX + re.sub(r"[^A-Za-z0-9]", "_", name).upper()


def find_config(start: str | Path | None = None) -> Path | None:
    """``$BUBBLES_CONFIG``, else the nearest ``bubbles.toml`` in ``start`` (default cwd) or a parent."""
    explicit = os.environ.get("BUBBLES_CONFIG")
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"BUBBLES_CONFIG points to {path}, which is not a file. Fix the variable or create the file.")
        return path
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / CONFIG_NAME
        if candidate.is_file():
            return candidate
    return None


@dataclass
class ProjectConfig:
    """Named connections (name -> URL with options folded in) and HTTP sources (name -> settings)."""

    path: Path | None = None
    connections: dict[str, str] = field(default_factory=dict)
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)  # the [settings] table (see bubbles._settings)

    def connection_names(self) -> list[str]:
        """Every connection name, from the file and from ``BUBBLES_CONN_*`` variables."""
        names = set(self.connections)
        known = {env_var_for(n): n for n in names}
        for var in os.environ:
            if var.startswith(_ENV_PREFIX) and var not in known:
                names.add(var[len(_ENV_PREFIX) :].lower())
        return sorted(names)


def load_config(path: str | Path | None = None) -> ProjectConfig:
    """Read ``bubbles.toml`` (``path``, or :func:`find_config`); an empty config if there is none.

    Example:
        >>> cfg = load_config()  # doctest: +SKIP
        >>> cfg.connections["warehouse"]  # doctest: +SKIP
        'postgresql://etl:${PGPASSWORD}@db.internal:5432/analytics?sslmode=verify-full'
    """
    import tomllib

    found = Path(path) if path else find_config()
    if found is None:
        return ProjectConfig()
    try:
        data = tomllib.loads(found.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{found} cannot be read: {exc}.", source=str(found)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{found} is not valid TOML: {exc}. Fix the syntax.", source=str(found)) from None
    config = ProjectConfig(path=found)
    unknown = sorted(set(data) - {"settings", "connections", "sources"})
    if unknown:
        import difflib

        hints = [
            f"{u!r}"
            + (
                f" (did you mean {c[0]!r}?)"
                if (c := difflib.get_close_matches(u, ["settings", "connections", "sources"], n=1))
                else ""
            )
            for u in unknown
        ]
        raise ConfigError(
            f"{found}: unknown table(s) {', '.join(hints)}. bubbles.toml has [settings], [connections.NAME] and [sources.NAME].",
            source=str(found),
        )
    settings = data.get("settings") or {}
    if not isinstance(settings, dict):
        raise ConfigError(f"{found}: [settings] must be a table of setting = value lines.", source=str(found))
    config.settings = dict(settings)
    for name, entry in (data.get("connections") or {}).items():
        config.connections[name] = _connection_entry(found, name, entry)
    for name, entry in (data.get("sources") or {}).items():
        if isinstance(entry, str):
            entry = {"url": entry}
        if not isinstance(entry, dict) or not isinstance(entry.get("url"), str):
            raise ConfigError(f'{found}: [sources.{name}] needs url = "https://...".', source=str(found))
        config.sources[name] = dict(entry)
    return config


def _anchor(path: Path, url: str) -> str:
    """A relative DuckDB/SQLite file is relative to the ``bubbles.toml`` that names it, not to the cwd."""
    for scheme in ("duckdb:///", "sqlite:///"):
        if url.startswith(scheme):
            file = url[len(scheme) :]
            if file and not file.startswith(("/", "~", ":memory:", "$")):
                return scheme + str(path.parent.resolve() / file)
    return url


def _connection_entry(path: Path, name: str, entry: Any) -> str:
    if isinstance(entry, str):
        return _anchor(path, entry)
    if not isinstance(entry, dict) or not isinstance(entry.get("url"), str):
        raise ConfigError(
            f'{path}: [connections.{name}] needs url = "duckdb:///..." or "postgresql://..." '
            f'(or write it short: {name} = "duckdb:///warehouse.duckdb").',
            source=str(path),
        )
    url = _anchor(path, entry["url"])
    extra = {k: str(v) for k, v in entry.items() if k != "url"}
    if extra:
        url += ("&" if "?" in url else "?") + urlencode(extra, safe="${}")
    return url


def connection_url(name: str, config: ProjectConfig | None = None) -> tuple[str, bool]:
    """The URL of named connection ``name`` and whether it came from the environment.

    Raises:
        ConfigError: no such name; the message lists the known names and where they were looked for.
    """
    var = env_var_for(name)
    if os.environ.get(var):
        return os.environ[var], True
    config = config if config is not None else load_config()
    if name in config.connections:
        return config.connections[name], False
    known = ", ".join(config.connection_names()) or "none"
    where = str(config.path) if config.path else f"no {CONFIG_NAME} found from {Path.cwd()}"
    raise ConfigError(
        f'No connection named {name!r} (known: {known}). Add [connections.{name}] url = "..." to '
        f"{config.path or CONFIG_NAME} ({where}), or set {var} to a URL.",
        source=name,
    )

"""Secrets: read from the environment or a secrets file, never from code; masked when shown.

A configuration value may reference a secret as ``${NAME}``. :func:`resolve` replaces each
reference by the value of environment variable ``NAME``, else of key ``NAME`` in the secrets
file (``BUBBLES_SECRETS_FILE``, default ``.bubbles/secrets.toml``; a TOML table of strings).
A missing secret is a :class:`ConfigError` that names it and says where it was looked for.

Every resolved secret is remembered by :func:`mask`, which replaces it by ``***`` in any text
(logs, reprs, errors stored in the run history). :class:`Secret` wraps one value and never shows it.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from pathlib import Path

from ._errors import ConfigError

__all__ = ["MaskSecrets", "Secret", "get_secret", "mask", "mask_loggers", "register_secret", "resolve"]

_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_known: set[str] = set()
_lock = threading.Lock()


class Secret:
    """A secret value that shows as ``***`` in reprs and f-strings; ``.get()`` returns it."""

    __slots__ = ("_value", "name")

    def __init__(self, value: str, name: str = "secret") -> None:
        self._value = value
        self.name = name
        register_secret(value)

    def get(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self.name!r}, '***')"

    __str__ = __repr__

    def __reduce__(self) -> tuple[object, ...]:
        return (Secret, (self._value, self.name))


def register_secret(value: str) -> None:
    """Remember ``value`` so that :func:`mask` hides it everywhere."""
    if value and len(value) >= 3:
        with _lock:
            _known.add(value)


def mask(text: str) -> str:
    """``text`` with every known secret replaced by ``***``."""
    if not _known or not text:
        return text
    for value in sorted(_known, key=len, reverse=True):
        if value in text:
            text = text.replace(value, "***")
    return text


def _secrets_file() -> Path:
    explicit = os.environ.get("BUBBLES_SECRETS_FILE")
    if explicit:
        return Path(explicit)
    home = os.environ.get("BUBBLES_HOME")
    return (Path(home) if home else Path.cwd() / ".bubbles") / "secrets.toml"


def _from_file(name: str) -> str | None:
    path = _secrets_file()
    if not path.exists():
        return None
    import tomllib

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"Secrets file {path} cannot be read: {exc}. Fix its TOML syntax.", source=str(path)) from None
    value = data.get(name)
    return None if value is None else str(value)


def get_secret(name: str, *, purpose: str = "") -> str:
    """The value of secret ``name`` from the environment, else the secrets file."""
    value = os.environ.get(name)
    if value is None:
        value = _from_file(name)
    if value is None:
        where = f" (needed for {purpose})" if purpose else ""
        raise ConfigError(
            f"Secret {name!r} is not set{where}. Set the environment variable {name}, or add "
            f'`{name} = "..."` to {_secrets_file()} (BUBBLES_SECRETS_FILE moves it).',
            secret=name,
        )
    register_secret(value)
    return value


def resolve(text: str, *, purpose: str = "") -> str:
    """``text`` with each ``${NAME}`` replaced by that secret's value."""
    return _REF.sub(lambda m: get_secret(m.group(1), purpose=purpose), text)


class MaskSecrets(logging.Filter):
    """A logging filter that replaces every known secret in a record's message by ``***``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _known:
            message = record.getMessage()
            masked = mask(message)
            if masked != message:
                record.msg, record.args = masked, None
        return True


_masked_loggers: set[str] = set()


def mask_loggers(*names: str) -> None:
    """Mask secrets in what the named third-party loggers emit (e.g. ``httpx`` logs URLs)."""
    for name in names:
        if name not in _masked_loggers:
            _masked_loggers.add(name)
            logging.getLogger(name).addFilter(MaskSecrets())

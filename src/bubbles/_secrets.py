"""Secrets: read from the environment or a secrets file, never from code; masked wherever text goes.

A configuration value may reference a secret as ``${NAME}``. :func:`resolve` replaces each
reference by the value of environment variable ``NAME``, else of key ``NAME`` in the secrets
file (the ``secrets_file`` setting, ``BUBBLES_SECRETS_FILE``; default ``secrets.toml`` in the
bubbles home; a TOML table of strings). A missing secret is a :class:`ConfigError` that names
it and says where it was looked for.

Who knows which secrets
-----------------------
Every resolved secret is remembered by a :class:`SecretRegistry`, and :func:`mask` replaces it
by ``***`` in any text, **in every form it takes in text**: as it is, URL-encoded (``%2B``,
``+`` for spaces), JSON- and ``repr``-escaped, HTML-escaped and base64 (a ``user:password``
pair registered by Basic auth shows up base64-encoded in an ``Authorization`` header).

* Each run has its registry (the run context's ``secrets``); a secret resolved while a task of
  that run runs — in a thread, a worker process or a Dask worker — is remembered by that run, so
  two runs in one process never share masks.
* Worker processes never receive the run's secrets: a registry pickles as an empty one. Secrets
  a task resolves there are masked in everything the attempt sends back (error, traceback,
  logs, events) and their values travel back with it, so the run masks them too from then on.
* A secret resolved outside any run (a connection opened at import time, a CLI command) is
  remembered by the process registry, which every run's registry also applies.

:func:`mask_error` returns an exception safe to show: its text (and its causes') masked, its
class kept when possible.
"""

from __future__ import annotations

import base64
import contextvars
import html
import json
import logging
import os
import re
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

from ._errors import BubblesError, ConfigError, describe_error

__all__ = [
    "MaskSecrets",
    "Secret",
    "SecretRegistry",
    "current_registry",
    "get_secret",
    "mask",
    "mask_error",
    "mask_loggers",
    "process_registry",
    "register_secret",
    "resolve",
    "secret_forms",
]

_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_MIN_LENGTH = 3  # shorter values would mask ordinary text; no real secret is that short
MASK = "***"


def secret_forms(value: str) -> set[str]:
    """Every form ``value`` may take in text: itself, URL-encoded, JSON/repr/HTML-escaped, base64.

    Example:
        >>> sorted(secret_forms("a+b/c"))[:3]
        ['YStiL2M', 'YStiL2M=', 'a%2Bb%2Fc']
    """
    forms = {value, quote(value, safe=""), quote(value), quote_plus(value), html.escape(value)}
    forms.add(json.dumps(value)[1:-1])
    forms.add(json.dumps(value, ensure_ascii=False)[1:-1])
    forms.add(repr(value)[1:-1])
    raw = value.encode("utf-8", "surrogatepass")
    for encoded in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
        text = encoded.decode("ascii")
        forms.add(text)
        forms.add(text.rstrip("="))
    return {f for f in forms if len(f) >= _MIN_LENGTH}


class SecretRegistry:
    """The secrets one run (or one attempt in a worker) resolved, and how to mask them.

    Thread-safe. ``parent`` is consulted too (a run's registry has the process registry as its
    parent). A registry never travels: pickled, it arrives as an empty registry whose parent is
    the receiving process's, marked ``remote`` so the worker reports what it resolves.

    Example:
        >>> reg = SecretRegistry()
        >>> reg.add("s3cr3t+key")
        >>> reg.mask("url?k=s3cr3t%2Bkey and s3cr3t+key")
        'url?k=*** and ***'
    """

    __slots__ = ("_forms", "_lock", "_own", "_pattern", "parent", "remote")

    def __init__(self, parent: SecretRegistry | None = None, *, remote: bool = False) -> None:
        self.parent = parent
        self.remote = remote
        self._own: list[str] = []  # values, in the order resolved
        self._forms: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()

    def __reduce__(self) -> tuple[Any, ...]:
        return (_arrived_registry, ())

    def __repr__(self) -> str:
        return f"<SecretRegistry: {len(self._own)} secrets>"

    def add(self, value: str) -> None:
        """Remember ``value`` (and its encoded forms) so that :meth:`mask` hides it."""
        if not isinstance(value, str) or len(value) < _MIN_LENGTH:
            return
        with self._lock:
            if value in self._own:
                return
            self._own.append(value)
            self._forms |= secret_forms(value)
            self._pattern = None
        if self.remote and self.parent is not None:  # later attempts in this worker mask it too
            self.parent.add(value)

    def update(self, values: Iterable[str]) -> None:
        for value in values:
            self.add(value)

    def values(self) -> list[str]:
        """The values this registry resolved itself (not its parent's)."""
        with self._lock:
            return list(self._own)

    def __bool__(self) -> bool:
        return bool(self._own) or bool(self.parent)

    def _compiled(self) -> re.Pattern[str] | None:
        pattern = self._pattern
        if pattern is None and self._forms:
            with self._lock:
                forms = sorted(self._forms, key=len, reverse=True)  # longest first: no partial masks
                pattern = self._pattern = re.compile("|".join(map(re.escape, forms)))
        return pattern

    def mask(self, text: str) -> str:
        """``text`` with every known secret, in any of its forms, replaced by ``***``."""
        if not text or not isinstance(text, str):
            return text
        pattern = self._compiled()
        if pattern is not None:
            text = pattern.sub(MASK, text)
        parent = self.parent
        return parent.mask(text) if parent is not None and parent._own else text

    def contains_secret(self, text: str) -> bool:
        return bool(text) and self.mask(text) != text


_PROCESS = SecretRegistry()


def process_registry() -> SecretRegistry:
    """Secrets resolved in this process outside any run (applied by every run's registry too)."""
    return _PROCESS


def _arrived_registry() -> SecretRegistry:
    return SecretRegistry(_PROCESS, remote=True)


# The registry of the run being set up or driven on this thread (the session sets it); inside a
# task the attempt's TaskContext says which registry applies.
_run_registry: contextvars.ContextVar[SecretRegistry | None] = contextvars.ContextVar("bubbles_secrets", default=None)


def current_registry() -> SecretRegistry:
    """The registry that applies here: the running task's, else the run's, else the process's."""
    from ._context import _current

    ctx = _current.get()
    if ctx is not None and ctx.secrets is not None:
        return ctx.secrets
    run = _run_registry.get()
    return run if run is not None else _PROCESS


def register_secret(value: str) -> None:
    """Remember ``value`` as a secret of the current run (or process) so that it is masked."""
    current_registry().add(value)


def mask(text: str) -> str:
    """``text`` with every secret known here replaced by ``***`` (see :class:`SecretRegistry`)."""
    return current_registry().mask(text)


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


# -- resolving ------------------------------------------------------------------------------------
def _secrets_file() -> Path:
    from ._settings import current_settings

    return current_settings().secrets_path()


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


# -- exceptions -----------------------------------------------------------------------------------
class MaskedError(BubblesError):
    """Stands in for an exception whose text held a secret and could not be masked in place.

    ``error_type`` is the original class name; the message is the original's, masked.
    """


def mask_error(error: BaseException, registry: SecretRegistry | None = None, _depth: int = 0) -> BaseException:
    """``error``, safe to show and store: every secret in its text (and its causes') masked.

    The exception is changed in place when its text comes from its arguments (the usual case),
    so its class — and ``retry_on`` or ``except`` clauses on it — still work; one whose text
    cannot be changed is replaced by a :class:`MaskedError` that keeps its class name.
    """
    reg = registry if registry is not None else current_registry()
    if not reg or _depth > 8:
        return error
    for link in ("__cause__", "__context__"):
        inner = getattr(error, link, None)
        if inner is not None:
            try:
                setattr(error, link, mask_error(inner, reg, _depth + 1))
            except (AttributeError, TypeError):
                pass
    text = describe_error(error)
    if reg.mask(text) == text and not _attributes_leak(error, reg):
        return error
    try:
        if isinstance(error, BubblesError):
            error.message = reg.mask(error.message)
            error.args = (error.message, *error.args[1:])
        else:
            error.args = tuple(reg.mask(a) if isinstance(a, str) else a for a in error.args)
        for key, value in list(vars(error).items()):
            if isinstance(value, str):
                setattr(error, key, reg.mask(value))
            elif key in _HEAVY_ATTRIBUTES:  # e.g. httpx's request/response: headers carry credentials
                setattr(error, key, None)
        if isinstance(error, BubblesError):
            error._fields = {k: reg.mask(v) if isinstance(v, str) else v for k, v in error._fields.items()}
    except (AttributeError, TypeError):
        pass
    if reg.mask(describe_error(error)) == describe_error(error):
        return error
    stand_in = MaskedError(reg.mask(describe_error(error)), error_type=type(error).__name__)
    stand_in.transient = getattr(error, "transient", None)
    return stand_in


_HEAVY_ATTRIBUTES = frozenset({"request", "response", "_request", "_response", "headers"})


def _attributes_leak(error: BaseException, reg: SecretRegistry) -> bool:
    try:
        attributes = vars(error)
    except TypeError:
        return False
    return any(
        (isinstance(v, str) and reg.contains_secret(v)) or (k in _HEAVY_ATTRIBUTES and v is not None)
        for k, v in attributes.items()
    )


# -- logging --------------------------------------------------------------------------------------
class MaskSecrets(logging.Filter):
    """A logging filter that replaces every known secret in a record's message by ``***``."""

    def filter(self, record: logging.LogRecord) -> bool:
        reg = current_registry()
        if reg:
            try:
                message = record.getMessage()
            except Exception:
                return True
            masked = reg.mask(message)
            if masked != message:
                record.msg, record.args = masked, None
        return True


_masked_loggers: set[str] = set()
_masked_lock = threading.Lock()


def mask_loggers(*names: str) -> None:
    """Mask secrets in what the named third-party loggers emit (e.g. ``httpx`` logs URLs)."""
    with _masked_lock:
        for name in names:
            if name not in _masked_loggers:
                _masked_loggers.add(name)
                logging.getLogger(name).addFilter(MaskSecrets())

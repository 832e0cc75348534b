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
import weakref
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

from ._errors import BubblesError, ConfigError, describe_error

__all__ = [
    "MaskSecrets",
    "anything_to_mask",
    "begin_run",
    "end_run",
    "mask_anywhere",
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
    urls = {quote(value, safe=""), quote(value), quote_plus(value)}
    forms = {value, html.escape(value), *urls}
    forms |= {quote(u, safe="") for u in urls}  # twice encoded: a URL inside a URL (``next=...``)
    for text in (json.dumps(value), json.dumps(value, ensure_ascii=False)):
        inner = text[1:-1]
        forms.add(inner)
        forms.add(inner.replace("/", "\\/"))  # JSON that escapes slashes (PHP)
        forms.add(inner.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e"))  # (Go)
    body = repr(value)[1:-1]
    forms |= {body, body.replace("'", "\\'"), body.replace('"', '\\"')}  # as a larger string's repr quotes it
    raw = value.encode("utf-8", "surrogatepass")
    forms.add(repr(raw)[2:-1])  # repr of bytes (non-ASCII as \\x..)
    forms.add(raw.hex())
    forms.add(raw.hex().upper())
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

    __slots__ = ("__weakref__", "_forms", "_lock", "_own", "_pattern", "parent", "remote")

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


_live: weakref.WeakSet[SecretRegistry] = weakref.WeakSet()  # the registries of the runs going on in this process
_live_lock = threading.Lock()


def mask_anywhere(text: str) -> str:
    """Mask ``text`` that belongs to no run (a thread a task started, a warning): with every live run's secrets.

    Text a run owns is masked with that run's secrets only; text that no run owns — a log record
    from a thread pool inside a task, ``warnings.warn``, an exception in a thread — could hold any
    of them, so it is masked with all of them (masking too much is safe; too little is a leak).
    """
    if not text:
        return text
    with _live_lock:
        registries = list(_live)
    for reg in registries:
        text = reg.mask(text)
    return _PROCESS.mask(text)


def anything_to_mask() -> bool:
    return bool(_PROCESS._own) or any(bool(r._own) for r in list(_live))


class _Guards:
    """What the runs of this process install to mask text that no run owns (counted; undone by the last run)."""

    def __init__(self) -> None:
        self.users = 0
        self.showwarning: Any = None
        self.excepthook: Any = None


_guards = _Guards()


def begin_run(registry: SecretRegistry) -> None:
    """A run starts: its secrets join the live ones; the first run wraps ``warnings`` and thread hooks."""
    import warnings

    with _live_lock:
        _live.add(registry)
        _guards.users += 1
        if _guards.users > 1:
            return
        _guards.showwarning = warnings.showwarning
        _guards.excepthook = threading.excepthook
        original_show, original_hook = warnings.showwarning, threading.excepthook

        def showwarning(message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
            if anything_to_mask():
                message = mask_anywhere(str(message))
                line = mask_anywhere(line) if isinstance(line, str) else line
            original_show(message, category, filename, lineno, file, line)

        def excepthook(args: Any) -> None:
            if anything_to_mask() and args.exc_value is not None:
                value = args.exc_value
                for reg in list(_live):
                    value = mask_error(value, reg)
                args = threading.ExceptHookArgs((args.exc_type, value, args.exc_traceback, args.thread))  # type: ignore[call-arg]
            original_hook(args)

        warnings.showwarning = showwarning
        threading.excepthook = excepthook


def end_run(registry: SecretRegistry) -> None:
    """A run ended: the last one puts ``warnings.showwarning`` and ``threading.excepthook`` back."""
    import warnings

    with _live_lock:
        _live.discard(registry)
        _guards.users -= 1
        if _guards.users > 0:
            return
        _guards.users = 0
        if _guards.showwarning is not None:
            warnings.showwarning = _guards.showwarning
        if _guards.excepthook is not None:
            threading.excepthook = _guards.excepthook
        _guards.showwarning = _guards.excepthook = None


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
    """Stands in for an exception whose text held a secret and could not be masked on a copy.

    ``error_type`` is the original class name and ``original`` the class itself (so ``retry_on``
    still matches it); the message is the original's, masked.
    """


_HEAVY_ATTRIBUTES = frozenset({"request", "response", "_request", "_response", "headers"})
_MAX_CHAIN = 64


def mask_error(error: BaseException, registry: SecretRegistry | None = None) -> BaseException:
    """``error``, safe to show and store: every secret in its text masked, in a copy.

    The copy keeps the class (so ``retry_on`` and ``except`` clauses still match), the traceback,
    the arguments, attributes, notes, causes and, for an ``ExceptionGroup``, its members — each
    with the secrets masked, in every form; an attribute that is a request or response object
    holding a secret (an HTTP client's error) is dropped. The original exception is left as it
    is. An error whose text cannot be changed on a copy (its ``__str__`` builds it) is replaced by
    a :class:`MaskedError` naming its class. Returns ``error`` itself when nothing leaks.
    """
    reg = registry if registry is not None else current_registry()
    if not reg:
        return error
    return _masked(error, reg, 0, {})


def _leaks(value: Any, reg: SecretRegistry, depth: int = 0) -> bool:
    """Whether ``value`` (text, bytes, a container, an object's attributes) holds a secret."""
    if depth > 6:
        return False
    if isinstance(value, str):
        return reg.contains_secret(value)
    if isinstance(value, bytes | bytearray):
        return reg.contains_secret(bytes(value).decode("latin-1"))
    if isinstance(value, list | tuple | set | frozenset):
        return any(_leaks(v, reg, depth + 1) for v in value)
    if isinstance(value, dict):
        return any(_leaks(k, reg, depth + 1) or _leaks(v, reg, depth + 1) for k, v in value.items())
    try:
        return reg.contains_secret(repr(value)) or reg.contains_secret(str(value))
    except Exception:
        return False


def _mask_value(value: Any, reg: SecretRegistry, depth: int = 0) -> Any:
    if depth > 6:
        return value
    if isinstance(value, str):
        return reg.mask(value)
    if isinstance(value, bytes):
        text = value.decode("latin-1")
        return reg.mask(text).encode("latin-1") if reg.contains_secret(text) else value
    if isinstance(value, list | tuple):
        items = [_mask_value(v, reg, depth + 1) for v in value]
        return type(value)(items) if type(value) in (list, tuple) else value
    if isinstance(value, dict) and type(value) is dict:
        return {_mask_value(k, reg, depth + 1): _mask_value(v, reg, depth + 1) for k, v in value.items()}
    return value


def _error_leaks(error: BaseException, reg: SecretRegistry) -> bool:
    if reg.contains_secret(describe_error(error)) or _leaks(list(error.args), reg):
        return True
    if _leaks(getattr(error, "__notes__", None) or [], reg):
        return True
    try:
        attributes = vars(error)
    except TypeError:
        return False
    return any(k != "__notes__" and _leaks(v, reg) for k, v in attributes.items())


def _masked(error: BaseException, reg: SecretRegistry, depth: int, seen: dict[int, BaseException]) -> BaseException:
    if id(error) in seen:
        return seen[id(error)]
    if depth > _MAX_CHAIN:  # a cause chain this deep is cut here: what is kept is masked
        return MaskedError("(further causes left out)", error_type=type(error).__name__)
    seen[id(error)] = error
    cause = error.__cause__
    context = error.__context__
    new_cause = _masked(cause, reg, depth + 1, seen) if cause is not None else None
    new_context = _masked(context, reg, depth + 1, seen) if context is not None else None
    members = getattr(error, "exceptions", None) if isinstance(error, BaseExceptionGroup) else None
    new_members = [_masked(m, reg, depth + 1, seen) for m in members] if members else None
    changed_members = bool(members) and any(a is not b for a, b in zip(members or (), new_members or (), strict=True))
    if not _error_leaks(error, reg) and new_cause is cause and new_context is context and not changed_members:
        return error
    try:
        if new_members is not None:
            copy_ = error.derive(new_members)  # type: ignore[attr-defined]
        else:
            import copy

            copy_ = copy.copy(error)
        if new_members is None:  # (a group's arguments are its message and its members, set by derive)
            copy_.args = tuple(_mask_value(a, reg) for a in error.args)
        for key, value in list(vars(error).items()):
            if key in _HEAVY_ATTRIBUTES and value is not None and _leaks(value, reg):
                setattr(copy_, key, None)  # e.g. an HTTP client's request/response: their headers carry credentials
            else:
                setattr(copy_, key, _mask_value(value, reg))
        if isinstance(copy_, BubblesError):
            copy_.message = reg.mask(copy_.message)
            copy_._fields = {k: _mask_value(v, reg) for k, v in copy_._fields.items()}
        copy_.__cause__ = new_cause
        copy_.__context__ = new_context
        copy_.__suppress_context__ = error.__suppress_context__
        copy_.__traceback__ = error.__traceback__
    except Exception:  # a class that cannot be copied or changed
        copy_ = None
    if copy_ is None or _error_leaks(copy_, reg):
        copy_ = MaskedError(reg.mask(describe_error(error)), error_type=type(error).__name__, original=type(error))
        copy_.transient = getattr(error, "transient", None)
        copy_.__cause__ = new_cause
    seen[id(error)] = copy_
    return copy_


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

"""Where a file lives: a local path or an fsspec URL (``s3://``, ``gs://``, ``memory://`` ...).

:func:`locate` returns a :class:`Location` carrying a pyarrow filesystem (fsspec ones are
wrapped with ``FSSpecHandler``) so every reader and writer handles both kinds the same way.
``storage_options`` go to fsspec (e.g. ``{"endpoint_url": "http://127.0.0.1:9000"}`` for S3).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..._errors import ConfigError, MissingDependencyError

if TYPE_CHECKING:
    import pyarrow.fs as pafs

__all__ = ["Location", "is_url", "locate"]

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+://")


def is_url(path: str | os.PathLike[str]) -> bool:
    return isinstance(path, str) and bool(_URL.match(path)) and not path.startswith("file://")


@dataclass(slots=True)
class Location:
    """A path on a filesystem. ``fsspec`` is set for remote locations, ``None`` for local ones."""

    path: str
    fs: pafs.FileSystem
    fsspec: Any = None
    url: str = ""

    @property
    def is_local(self) -> bool:
        return self.fsspec is None

    @property
    def name(self) -> str:
        return self.path.rstrip("/").rsplit("/", 1)[-1]

    def __str__(self) -> str:
        return self.url or self.path

    def exists(self) -> bool:
        if self.is_local:
            return os.path.exists(self.path)
        return bool(self.fsspec.exists(self.path))

    def isdir(self) -> bool:
        if self.is_local:
            return os.path.isdir(self.path)
        return bool(self.fsspec.isdir(self.path))

    def join(self, name: str) -> Location:
        sep = os.sep if self.is_local else "/"
        path = self.path.rstrip("/") + sep + name
        url = (self.url.rstrip("/") + "/" + name) if self.url else ""
        return Location(path, self.fs, self.fsspec, url)


def locate(path: str | os.PathLike[str], storage_options: dict[str, Any] | None = None) -> Location:
    """Resolve ``path`` (local or fsspec URL) to a :class:`Location`."""
    import pyarrow.fs as pafs

    if isinstance(path, Location):
        return path
    text = os.fspath(path)
    if text.startswith("file://"):
        text = text[len("file://"):]
    if not is_url(text):
        return Location(os.path.abspath(os.path.expanduser(text)), pafs.LocalFileSystem())
    try:
        import fsspec
    except ImportError as exc:  # pragma: no cover - fsspec ships with the s3 extra
        raise MissingDependencyError(f"reading {text}", "fsspec", "s3") from exc
    try:
        fs, inner = fsspec.core.url_to_fs(text, **(storage_options or {}))
    except ImportError as exc:
        scheme = text.split("://", 1)[0]
        raise MissingDependencyError(f"the {scheme}:// filesystem", f"the fsspec driver for {scheme}", "s3") from exc
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"Cannot open {text}: {exc}. Check the URL and storage_options.", source=text) from exc
    return Location(inner, pafs.PyFileSystem(pafs.FSSpecHandler(fs)), fs, text)

"""Atomic writes: a reader never sees half a file, and a crash leaves the previous version.

Local files are written under a hidden temporary name in the target directory (dot-prefixed,
so dataset discovery ignores it), flushed with ``fsync`` and renamed over the target with
``os.replace``, then the directory entry is synced. Remote (fsspec) targets are written to a
local temporary file and uploaded in one ``put``: object stores publish an object only when its
upload completes.

A directory (a partitioned dataset) is built the same way under a temporary name; replacing an
existing directory takes two renames (old aside, new in place), so a crash between them leaves
the previous version under ``.<name>.old-*`` beside it, never a half-written dataset.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator

from ._fs import Location

__all__ = ["atomic_dir", "atomic_file", "fsync_dir", "publish_file"]


def fsync_dir(path: str) -> None:
    """Persist a directory entry (a rename) on POSIX; a no-op where directories cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_file(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _temp_name(target: str, kind: str = "tmp") -> str:
    head, tail = os.path.split(target)
    return os.path.join(head, f".{tail}.{kind}-{secrets.token_hex(4)}")


@contextlib.contextmanager
def atomic_file(loc: Location) -> Iterator[str]:
    """Yield a local path to write; on success it becomes ``loc`` atomically, on error it vanishes."""
    if loc.is_local:
        os.makedirs(os.path.dirname(loc.path) or ".", exist_ok=True)
        tmp = _temp_name(loc.path)
        try:
            yield tmp
            publish_file(tmp, loc.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return
    tmpdir = tempfile.mkdtemp(prefix="bubbles-")
    tmp = os.path.join(tmpdir, "part.tmp")  # no suffix: writers must not infer a compression from it
    try:
        yield tmp
        parent = loc.path.rsplit("/", 1)[0]
        if parent:
            with contextlib.suppress(OSError, NotImplementedError):
                loc.fsspec.makedirs(parent, exist_ok=True)
        loc.fsspec.put_file(tmp, loc.path)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def publish_file(tmp: str, target: str) -> None:
    """fsync ``tmp`` and rename it over ``target`` (same directory), then sync the directory."""
    _fsync_file(tmp)
    os.replace(tmp, target)
    fsync_dir(os.path.dirname(target) or ".")


@contextlib.contextmanager
def atomic_dir(loc: Location, *, replace: bool = True) -> Iterator[str]:
    """Yield a local directory to fill; on success it becomes (or, with ``replace=False``, is merged into) ``loc``."""
    if loc.is_local:
        os.makedirs(os.path.dirname(loc.path) or ".", exist_ok=True)
        tmp = _temp_name(loc.path)
        os.makedirs(tmp)
        try:
            yield tmp
            for root, _dirs, files in os.walk(tmp):
                for name in files:
                    _fsync_file(os.path.join(root, name))
            if replace or not os.path.exists(loc.path):
                _swap_dir(tmp, loc.path)
            else:
                _merge_dir(tmp, loc.path)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return
    tmpdir = tempfile.mkdtemp(prefix="bubbles-")
    try:
        yield tmpdir
        if replace and loc.fsspec.exists(loc.path):
            loc.fsspec.rm(loc.path, recursive=True)
        for root, _dirs, files in os.walk(tmpdir):
            for name in files:
                local = os.path.join(root, name)
                rel = os.path.relpath(local, tmpdir).replace(os.sep, "/")
                loc.fsspec.put_file(local, loc.path.rstrip("/") + "/" + rel)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def _swap_dir(new: str, target: str) -> None:
    old = None
    if os.path.exists(target):
        old = _temp_name(target, "old")
        os.replace(target, old)
    os.replace(new, target)
    fsync_dir(os.path.dirname(target) or ".")
    if old:
        shutil.rmtree(old, ignore_errors=True)


def _merge_dir(new: str, target: str) -> None:
    """Move each file of ``new`` into ``target`` (each move is atomic; names are unique per write)."""
    for root, _dirs, files in os.walk(new):
        rel = os.path.relpath(root, new)
        dest_dir = os.path.normpath(os.path.join(target, rel))
        os.makedirs(dest_dir, exist_ok=True)
        for name in files:
            os.replace(os.path.join(root, name), os.path.join(dest_dir, name))
        fsync_dir(dest_dir)

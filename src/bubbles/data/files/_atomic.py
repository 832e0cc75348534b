"""Atomic writes: a reader sees the old version or the new one, never half of one, and a kill leaves
nothing a glob reader picks up.

**A file** (local) is written under a temporary name beside the target,
``.<name>.tmp-<pid>-<hex>`` (hidden, and it does not end in the target's suffix, so ``*.parquet``
or ``*.csv`` never match it), fsynced and renamed over the target with ``os.replace``; then the
directory entry is synced. On object storage (fsspec) it is written to a local temporary file and
uploaded in one ``put``: a store publishes an object only when its upload completes.

**A directory** (a partitioned Parquet dataset) is built in a staging folder outside the
dataset's parent when the filesystem allows (the system temp directory, if a rename from there to
the target works), else beside it (``.bubbles-stage-<pid>-<hex>``), and published with one
``renameat2(RENAME_EXCHANGE)`` that swaps the new tree and the old one; the old one, now in the
staging folder, is then removed. Where the exchange is not supported, two renames (old aside, new
in) leave the target missing for an instant, never mixed.

**Leftovers** of a killed write (temporary files, staging folders) carry the writer's process id:
the next write to the same target removes those whose writer is gone, and ``bubbles clean`` lists
and removes them (:mod:`._leftovers`). File *sets* that share a folder with other files (split
CSV, appends to a dataset) are published through a journal: :mod:`._fileset`.

Writers announce the steps of a write to :func:`write_steps` callbacks; the kill tests use them
to stop a writer at a chosen point.
"""

from __future__ import annotations

import contextlib
import contextvars
import ctypes
import ctypes.util
import errno
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator

from ._fs import Location
from ._leftovers import STAGE_PREFIX, remove_stale_siblings

__all__ = ["atomic_dir", "atomic_file", "fsync_dir", "publish_file", "step", "temp_name", "write_steps"]

_steps: contextvars.ContextVar[tuple[Callable[[str, str], None], ...]] = contextvars.ContextVar("bubbles_write_steps",
                                                                                                 default=())


@contextlib.contextmanager
def write_steps(callback: Callable[[str, str], None]) -> Iterator[None]:
    """Call ``callback(step, path)`` at each step of the writes in this block (in this context only).

    Steps: ``file:written`` (temporary file complete), ``file:published``; ``dir:staged``,
    ``dir:swapped`` (new tree in place, old one not yet removed), ``dir:published``;
    ``set:staged``, ``set:journaled``, ``set:moved`` (after each file), ``set:published``;
    ``deliver:files`` (before the manifest), ``deliver:manifest``.

    Example:
        >>> steps = []
        >>> with write_steps(lambda step, path: steps.append(step)):  # doctest: +SKIP
        ...     bubbles.write_parquet(table, "x.parquet")
        >>> steps  # doctest: +SKIP
        ['file:written', 'file:published']
    """
    token = _steps.set((*_steps.get(), callback))
    try:
        yield
    finally:
        _steps.reset(token)


def step(name: str, path: str) -> None:
    """Announce a step of a write to the :func:`write_steps` callbacks."""
    for callback in _steps.get():
        callback(name, path)


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


def temp_name(target: str, kind: str = "tmp") -> str:
    """``.<name>.<kind>-<pid>-<hex>`` beside ``target``: hidden, suffix-less, and owned by this process."""
    head, tail = os.path.split(target)
    return os.path.join(head, f".{tail}.{kind}-{os.getpid()}-{secrets.token_hex(4)}")


@contextlib.contextmanager
def atomic_file(loc: Location) -> Iterator[str]:
    """Yield a local path to write; on success it becomes ``loc`` atomically, on error it vanishes."""
    if loc.is_local:
        os.makedirs(os.path.dirname(loc.path) or ".", exist_ok=True)
        remove_stale_siblings(loc.path)
        tmp = temp_name(loc.path)
        try:
            yield tmp
            step("file:written", loc.path)
            publish_file(tmp, loc.path)
        except BaseException:
            for leftover in (tmp, tmp + ".utf8"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(leftover)
            raise
        step("file:published", loc.path)
        return
    tmpdir = tempfile.mkdtemp(prefix=f"{STAGE_PREFIX}{os.getpid()}-")
    tmp = os.path.join(tmpdir, "part.tmp")  # no suffix: writers must not infer a compression from it
    try:
        yield tmp
        step("file:written", str(loc))
        parent = loc.path.rsplit("/", 1)[0]
        if parent:
            with contextlib.suppress(OSError, NotImplementedError):
                loc.fsspec.makedirs(parent, exist_ok=True)
        loc.fsspec.put_file(tmp, loc.path)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    step("file:published", str(loc))


def publish_file(tmp: str, target: str) -> None:
    """fsync ``tmp`` and rename it over ``target`` (same directory), then sync the directory."""
    _fsync_file(tmp)
    os.replace(tmp, target)
    fsync_dir(os.path.dirname(target) or ".")


# -- directories --------------------------------------------------------------------------------------
def staging_root(parent: str) -> str:
    """Where to stage a new tree for ``parent``: the system temp directory if a rename from there into
    ``parent`` works (same filesystem, same mount), else ``parent`` itself."""
    tmp = tempfile.gettempdir()
    try:
        if os.stat(tmp).st_dev != os.stat(parent).st_dev:
            return parent
        probe = tempfile.mkdtemp(prefix=f"{STAGE_PREFIX}{os.getpid()}-", dir=tmp)
    except OSError:
        return parent
    moved = os.path.join(parent, "." + os.path.basename(probe))
    try:
        os.rename(probe, moved)
    except OSError:
        shutil.rmtree(probe, ignore_errors=True)
        return parent
    os.rmdir(moved)
    return tmp


def new_stage(target: str) -> str:
    """A fresh staging folder for ``target`` holding ``data/`` (the tree to fill) and ``target`` (its owner)."""
    parent = os.path.dirname(target) or "."
    root = staging_root(parent)
    prefix = STAGE_PREFIX if root != parent else "." + STAGE_PREFIX
    stage = tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=root)
    with open(os.path.join(stage, "target"), "w", encoding="utf-8") as f:
        f.write(os.path.abspath(target))
    os.mkdir(os.path.join(stage, "data"))
    return stage


@contextlib.contextmanager
def atomic_dir(loc: Location, *, replace: bool = True) -> Iterator[str]:
    """Yield a local directory to fill; on success it becomes (or, with ``replace=False``, is merged into) ``loc``."""
    if not loc.is_local:
        from ._fileset import remote_dir

        with remote_dir(loc, replace=replace) as tmpdir:
            yield tmpdir
        return
    from ._fileset import merge_dir

    os.makedirs(os.path.dirname(loc.path) or ".", exist_ok=True)
    remove_stale_siblings(loc.path)
    stage = new_stage(loc.path)
    data = os.path.join(stage, "data")
    try:
        yield data
        for root, _dirs, files in os.walk(data):
            for name in files:
                _fsync_file(os.path.join(root, name))
        step("dir:staged", loc.path)
        if replace or not os.path.exists(loc.path):
            swap_dir(data, loc.path)
            step("dir:swapped", loc.path)
        else:
            merge_dir(data, loc.path)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    step("dir:published", loc.path)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: str, b: str) -> bool:
    """Swap two paths atomically (Linux ``renameat2``); False where the system or filesystem cannot."""
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return False
    libc = ctypes.CDLL(libc_name, use_errno=True)
    fn = getattr(libc, "renameat2", None)
    if fn is None:
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), b)


def swap_dir(new: str, target: str) -> None:
    """Put the tree ``new`` at ``target``; the old tree, if any, ends up at ``new`` (to be removed)."""
    if os.path.exists(target):
        if not _exchange(new, target):
            old = new + ".old"
            os.replace(target, old)
            os.replace(new, target)
            os.replace(old, new)
    else:
        os.replace(new, target)
    fsync_dir(os.path.dirname(target) or ".")

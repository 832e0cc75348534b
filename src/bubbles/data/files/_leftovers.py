"""Leftovers of interrupted writes: temporary files and staging folders whose writer is gone.

Every temporary name bubbles makes carries the writing process's id (``.<name>.tmp-<pid>-<hex>``,
``bubbles-stage-<pid>-<hex>``, ``bubbles-deliver-<pid>-<hex>``), so a leftover is told from a write
in progress by asking whether that process still runs on this machine. Names of older versions
(``.<name>.tmp-<hex>``, ``.<name>.old-<hex>``) carry no process id: they count as stale once an
hour old. The next write to the same target removes its own stale leftovers; ``bubbles clean``
lists and removes them under a folder.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from dataclasses import dataclass

__all__ = ["STAGE_PREFIX", "Leftover", "clean", "clean_all", "find", "is_stale", "owner_pid", "pid_alive", "remove_quietly",
           "remove_stale_siblings", "remove_stale_temp_dirs"]

LEGACY_AGE_SECONDS = 3600.0
STAGE_PREFIX = "bubbles-stage-"
JOURNAL = "bubbles-journal"
_PID = re.compile(r"(?:\.tmp|\.old|bubbles-stage|bubbles-deliver|bubbles-journal)-(\d+)-")
_LEGACY = re.compile(r"^\.(?P<name>.+)\.(?:tmp|old)-[0-9a-f]{8}$")
_OURS = re.compile(r"^\.(?P<name>.+)\.(?:tmp|old)-\d+-[0-9a-f]{8}(?:\.utf8)?$")
_JOURNAL = re.compile(r"^\.(?P<name>.+)\.bubbles-journal-\d+-[0-9a-f]{8}\.json$")


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (a zombie counts as gone)."""
    import psutil

    if pid == os.getpid():
        return True
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:  # someone else's process: it exists
        return True


def owner_pid(name: str) -> int | None:
    """The writer's process id in a temporary name, or None for names without one."""
    m = _PID.search(name)
    return int(m.group(1)) if m else None


def is_stale(path: str, *, now: float | None = None) -> bool:
    """A leftover nobody writes any more: its writer is gone (or, without a process id, it is an hour old)."""
    pid = owner_pid(os.path.basename(path))
    if pid is not None:
        return not pid_alive(pid)
    try:
        age = (now or time.time()) - os.lstat(path).st_mtime
    except OSError:
        return False
    return age > LEGACY_AGE_SECONDS


def remove_quietly(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            os.unlink(path)
        except OSError:
            pass


def remove_stale_temp_dirs(directory: str, prefix: str) -> list[str]:
    """Remove the stale ``<prefix><pid>-...`` entries of ``directory``; returns what was removed."""
    removed: list[str] = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        if name.startswith(prefix) and owner_pid(name) is not None:
            path = os.path.join(directory, name)
            if is_stale(path):
                remove_quietly(path)
                removed.append(path)
    return removed


def _stage_target(stage: str) -> str | None:
    try:
        with open(os.path.join(stage, "target"), encoding="utf-8") as f:
            return f.read().strip()
    except OSError:
        return None


def remove_stale_siblings(target: str) -> list[str]:
    """Before writing ``target``: finish its interrupted set publications, then remove its stale leftovers."""
    from ._fileset import recover_journals

    parent, name = os.path.split(os.path.abspath(target))
    recover_journals(parent, name)
    removed = []
    for leftover in find(parent, recursive=False):
        if leftover.target == os.path.join(parent, name) and leftover.stale and leftover.kind != "journal":
            remove_quietly(leftover.path)
            removed.append(leftover.path)
    return removed


@dataclass(frozen=True)
class Leftover:
    """A temporary file or staging folder: ``target`` is what it was written for, ``stale`` whether its writer is gone."""

    path: str
    target: str | None
    stale: bool
    bytes: int
    kind: str = "temporary"  # or "staging" (a folder), "journal" (an interrupted set publication: rolled forward)


def _size(path: str) -> int:
    if not os.path.isdir(path):
        try:
            return os.lstat(path).st_size
        except OSError:
            return 0
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


def find(folder: str, *, recursive: bool = True, temp_dir: str | None = None) -> list[Leftover]:
    """Leftovers of bubbles writes in ``folder`` (and below), and staging folders in the temp directory
    whose target is there."""
    import tempfile

    folder = os.path.abspath(folder)
    out: list[Leftover] = []
    walker = os.walk(folder) if recursive else [(folder, [], _listdir(folder))]
    for root, dirs, files in walker:
        for name in [*dirs, *files]:
            path = os.path.join(root, name)
            target, kind = None, "temporary"
            if name.startswith("." + STAGE_PREFIX):
                target, kind = _stage_target(path), "staging"
            elif m := _JOURNAL.match(name):
                target, kind = os.path.join(root, m.group("name")), "journal"
            elif m := (_OURS.match(name) or _LEGACY.match(name)):
                target = os.path.join(root, m.group("name"))
            else:
                continue
            out.append(Leftover(path, target, is_stale(path), _size(path), kind))
        if recursive:
            dirs[:] = [d for d in dirs if not d.startswith("." + STAGE_PREFIX) and not _OURS.match(d)
                       and not _LEGACY.match(d)]
    tmp = temp_dir or tempfile.gettempdir()
    if os.path.abspath(tmp) != folder:
        for name in _listdir(tmp):
            if name.startswith(STAGE_PREFIX):
                path = os.path.join(tmp, name)
                target = _stage_target(path)
                if target and (target == folder or target.startswith(folder + os.sep)):
                    out.append(Leftover(path, target, is_stale(path), _size(path), "staging"))
    return out


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []


def clean(leftover: Leftover) -> None:
    """Remove a stale leftover; a journal is finished instead (its set becomes the new one whole)."""
    if leftover.kind == "journal":
        from ._fileset import recover_journals

        folder, name = os.path.split(leftover.path)
        m = _JOURNAL.match(name)
        if m:
            recover_journals(folder, m.group("name"))
        return
    remove_quietly(leftover.path)


def clean_all(folder: str) -> list[Leftover]:
    """Finish the interrupted set publications under ``folder`` first (their temporary files are the
    new set), then remove the stale leftovers that remain; returns what was cleaned."""
    journals = [f for f in find(folder) if f.stale and f.kind == "journal"]
    for journal in journals:
        clean(journal)
    rest = [f for f in find(folder) if f.stale and f.kind != "journal"]
    for leftover in rest:
        clean(leftover)
    return journals + rest

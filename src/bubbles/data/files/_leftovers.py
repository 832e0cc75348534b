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

__all__ = ["is_stale", "owner_pid", "pid_alive", "remove_stale_temp_dirs", "remove_quietly"]

LEGACY_AGE_SECONDS = 3600.0
_PID = re.compile(r"(?:\.tmp|\.old|\.stage|bubbles-stage|bubbles-deliver)-(\d+)-")


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

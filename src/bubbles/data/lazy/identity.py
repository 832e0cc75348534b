"""What a planned read of a file relies on: the file's identity when it was planned.

A lazy read (:mod:`bubbles.data.lazy`) is planned in one task and may run in another, later.
It records the file's identity when planned — size, modification time (ns), inode and device —
and checks it before and after it reads the file: a file that changed or disappeared in
between is a :class:`SourceChangedError` naming the task that planned the read, the task that
ran it, and the file. The content hash (xxh3-128 of the bytes) is computed only when something
asks for a fingerprint (resume and the cache), once per plan.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from ..._context import current_task
from ..._errors import DataError

__all__ = ["FileIdentity", "SourceChangedError", "where"]

_CHUNK = 4 << 20


class SourceChangedError(DataError):
    """A file a planned read relies on changed or disappeared between planning and reading.

    Fields: ``source`` (the file), ``planned_by`` (the task that planned the read), ``task``
    (the task that ran it), ``reason``. Not transient: running the same plan again reads the
    same stale plan; run the workflow again so that the read is planned anew.
    """

    transient = False


def where(task: str | None) -> str:
    return f"task {task!r}" if task else "code outside a task"


@dataclass(frozen=True, slots=True)
class FileIdentity:
    """A file as it was when a read of it was planned."""

    path: str
    size: int
    mtime_ns: int
    inode: int
    device: int

    @classmethod
    def of(cls, path: str) -> FileIdentity:
        """The identity of ``path`` now (``FileNotFoundError`` if it is not there)."""
        st = os.stat(path)
        return cls(path, st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev)

    def changed(self) -> str | None:
        """What changed since (``None`` if nothing did)."""
        try:
            now = FileIdentity.of(self.path)
        except FileNotFoundError:
            return "the file is gone"
        except OSError as exc:
            return f"the file cannot be read now ({exc.strerror or exc})"
        if now == self:
            return None
        parts = []
        if now.size != self.size:
            parts.append(f"size {self.size:,} -> {now.size:,} bytes")
        if now.mtime_ns != self.mtime_ns:
            parts.append(f"modified {_clock(self.mtime_ns)} -> {_clock(now.mtime_ns)}")
        if (now.inode, now.device) != (self.inode, self.device):
            parts.append("replaced by another file")
        return "the file changed (" + ", ".join(parts) + ")"

    def check(self, planned_by: str | None) -> None:
        """Raise :class:`SourceChangedError` if the file is not as it was planned."""
        reason = self.changed()
        if reason is None:
            return
        ctx = current_task()
        running = ctx.task if ctx is not None else None
        same = running == planned_by
        ran = "it" if same else f"{where(running)} runs it"
        raise SourceChangedError(
            f"{where(planned_by).capitalize()} planned a read of {self.path}, and {ran} now, but {reason} since it was "
            "planned. A planned read reads the file as it was, or not at all: run the workflow again (the read is then "
            "planned on the new file), or make the task that rewrites the file run before the task that reads it.",
            source=self.path, planned_by=planned_by, task=running, reason=reason,
        )

    def content_hash(self) -> str:
        """``xxh3:<hex>`` of the file's bytes (checked against this identity before and after)."""
        import xxhash

        self.check(None)
        h: Any = xxhash.xxh3_128()
        with open(self.path, "rb") as f:
            buffer = bytearray(_CHUNK)
            view = memoryview(buffer)
            while n := f.readinto(buffer):
                h.update(view[:n])
        self.check(None)
        return f"xxh3:{h.hexdigest()}"


def _clock(ns: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ns / 1e9)) + f".{ns % 1_000_000_000 // 1_000_000:03d}"

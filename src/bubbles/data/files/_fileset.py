"""File sets that share a folder with other files: split CSV deliverables, appends to a dataset,
datasets on object storage.

A local set is published through a **journal** (``.<set>.bubbles-journal-<pid>-<hex>.json`` in
the set's folder), the commit point:

1. every new file is written whole under a temporary name beside its final one (hidden and
   suffix-less, so no glob matches it); a kill here leaves only those, which the next write removes;
2. the journal is written and synced: the moves to do, and the files of the previous set that
   the new one does not have (from the set record ``.<set>.bubbles-set.json``);
3. the moves are done (one rename each), the old files removed, the set record written, the
   journal removed.

A kill after step 2 is rolled forward by the next write to the same target (or ``bubbles
clean``): the journal is finished, so the set becomes the new one whole. While the renames run
(microseconds per file), a reader listing the folder can see some new files beside old ones; a
folder that holds only the set (``out/orders/{key}.csv``) does not change that, POSIX has no
rename of several files at once. :func:`bubbles.deliver` hands such a set over with its manifest
as the commit point.

On **object storage** a dataset is replaced by uploading the new files under new names beside
the old ones, then one object ``_bubbles_set.json`` listing the current files (the commit
point: a single PUT), then deleting the old files. :func:`~bubbles.read_parquet` reads the files
that object lists, so it sees the old set or the new one; a reader that lists the prefix itself
sees both sets between the upload and the deletion.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

from ._atomic import fsync_dir, publish_file, step, temp_name
from ._fs import Location
from ._leftovers import JOURNAL, STAGE_PREFIX, is_stale, owner_pid, remove_stale_siblings

__all__ = ["REMOTE_SET", "FileSet", "merge_dir", "publish_swap", "recover_journals", "remote_dir", "remote_members"]

REMOTE_SET = "_bubbles_set.json"


def _journal_name(folder: str, set_name: str) -> str:
    return os.path.join(folder, f".{set_name}.{JOURNAL}-{os.getpid()}-{secrets.token_hex(4)}.json")


def _record(folder: str, set_name: str) -> str:
    return os.path.join(folder, f".{set_name}.bubbles-set.json")


def _write_json(path: str, value: Any) -> None:
    tmp = temp_name(path)
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(value, f)
    publish_file(tmp, path)


def _run(journal: str, doc: dict[str, Any]) -> None:
    """Do (or finish) what a journal says; idempotent, so a rerun after a kill completes it."""
    dirs = set()
    for src, dst in doc["moves"]:
        if os.path.exists(src):
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            os.replace(src, dst)
            dirs.add(os.path.dirname(dst))
            step("set:moved", dst)
    for path in doc["remove"]:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    for d in dirs:
        fsync_dir(d)
    if doc.get("record"):
        _write_json(doc["record"], {"members": doc["members"]})
    os.unlink(journal)
    fsync_dir(os.path.dirname(journal))


def recover_journals(folder: str, set_name: str) -> list[str]:
    """Roll forward the journals of ``set_name`` in ``folder`` whose writer is gone; returns them."""
    done: list[str] = []
    prefix = f".{set_name}.{JOURNAL}-"
    try:
        names = os.listdir(folder)
    except OSError:
        return done
    for name in names:
        path = os.path.join(folder, name)
        if name.startswith(prefix) and name.endswith(".json") and owner_pid(name) is not None and is_stale(path):
            try:
                with open(path, encoding="utf-8") as f:
                    doc = json.load(f)
            except (OSError, ValueError):
                os.unlink(path)  # written by publish_file: a damaged one was never the commit point
                continue
            _run(path, doc)
            done.append(path)
    return done


class FileSet:
    """A set of files in one folder, replacing the previous set of the same name as a unit.

    Example:
        >>> fs = FileSet("/out", "orders_{key}.csv")  # doctest: +SKIP
        >>> tmp = fs.add("/out/orders_DE.csv")  # write the file at tmp  # doctest: +SKIP
        >>> fs.commit()  # doctest: +SKIP
    """

    def __init__(self, folder: str, set_name: str) -> None:
        self.folder, self.set_name = os.path.abspath(folder), set_name
        os.makedirs(self.folder, exist_ok=True)
        recover_journals(self.folder, set_name)
        for member in self.previous():
            remove_stale_siblings(member)
        self.moves: list[tuple[str, str]] = []

    def add(self, final: str) -> str:
        """A temporary path to write ``final`` at (hidden, beside it)."""
        os.makedirs(os.path.dirname(final), exist_ok=True)
        remove_stale_siblings(final)
        tmp = temp_name(final)
        self.moves.append((tmp, os.path.abspath(final)))
        return tmp

    def previous(self) -> list[str]:
        try:
            with open(_record(self.folder, self.set_name), encoding="utf-8") as f:
                return [os.path.join(self.folder, m) for m in json.load(f)["members"]]
        except (OSError, ValueError, KeyError):
            return []

    def commit(self) -> None:
        for tmp, _final in self.moves:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        step("set:staged", self.folder)
        finals = [final for _tmp, final in self.moves]
        members = [os.path.relpath(f, self.folder) for f in finals]
        remove = [p for p in self.previous() if os.path.abspath(p) not in finals]
        journal = _journal_name(self.folder, self.set_name)
        doc = {"moves": self.moves, "remove": remove, "record": _record(self.folder, self.set_name), "members": members}
        _write_json(journal, doc)
        step("set:journaled", self.folder)
        _run(journal, doc)
        step("set:published", self.folder)

    def discard(self) -> None:
        for tmp, _final in self.moves:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)


def merge_dir(new: str, target: str) -> None:
    """Move the files of the tree ``new`` into ``target`` as one journaled set (each name is new)."""
    moves = []
    for root, _dirs, files in os.walk(new):
        rel = os.path.relpath(root, new)
        for name in files:
            moves.append((os.path.join(root, name), os.path.normpath(os.path.join(target, rel, name))))
    parent, set_name = os.path.split(os.path.abspath(target))
    journal = _journal_name(parent, set_name)
    doc = {"moves": moves, "remove": [], "record": None, "members": []}
    _write_json(journal, doc)
    step("set:journaled", target)
    _run(journal, doc)
    step("set:published", target)


def publish_swap(dataset: str, moves: list[tuple[str, str]], remove: list[str]) -> None:
    """Move finished temporary files in and remove others, as one journaled step of ``dataset``
    (the journal lives beside the dataset, so the next write to it finishes a killed swap)."""
    for tmp, _final in moves:
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    parent, set_name = os.path.split(os.path.abspath(dataset))
    journal = _journal_name(parent, set_name)
    doc = {"moves": moves, "remove": remove, "record": None, "members": []}
    _write_json(journal, doc)
    step("set:journaled", dataset)
    _run(journal, doc)
    step("set:published", dataset)


# -- object storage -----------------------------------------------------------------------------------
def remote_members(loc: Location) -> list[str] | None:
    """The files of a dataset on object storage as its ``_bubbles_set.json`` lists them (None: no such object)."""
    record = loc.path.rstrip("/") + "/" + REMOTE_SET
    try:
        if not loc.fsspec.exists(record):
            return None
        doc = json.loads(loc.fsspec.cat_file(record))
    except (OSError, ValueError):
        return None
    return [loc.path.rstrip("/") + "/" + m for m in doc.get("members", [])]


@contextlib.contextmanager
def remote_dir(loc: Location, *, replace: bool) -> Iterator[str]:
    """Fill a local folder; its files are uploaded beside the dataset's, then the set object commits them."""
    tmpdir = tempfile.mkdtemp(prefix=f"{STAGE_PREFIX}{os.getpid()}-")
    try:
        yield tmpdir
        base = loc.path.rstrip("/")
        before = remote_members(loc)
        if before is None and not replace and loc.fsspec.exists(base):
            before = [p for p in loc.fsspec.find(base) if not p.endswith("/" + REMOTE_SET)]
        new = []
        for root, _dirs, files in os.walk(tmpdir):
            for name in files:
                local = os.path.join(root, name)
                rel = os.path.relpath(local, tmpdir).replace(os.sep, "/")
                loc.fsspec.put_file(local, base + "/" + rel)  # names are new (a token per write): no clash
                new.append(rel)
        step("dir:staged", str(loc))
        kept = [] if replace else [os.path.relpath(p, base) for p in (before or [])]
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump({"members": sorted({*kept, *new})}, f)
        try:
            loc.fsspec.put_file(f.name, base + "/" + REMOTE_SET)  # the commit point
        finally:
            os.unlink(f.name)
        step("dir:swapped", str(loc))
        if replace:  # the previous set, and files of killed writes that never made it into a set
            keep = {*new, REMOTE_SET}
            old = [p for p in loc.fsspec.find(base) if os.path.relpath(p, base).replace(os.sep, "/") not in keep]
            if old:
                loc.fsspec.rm(old)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)

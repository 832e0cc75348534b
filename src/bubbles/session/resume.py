"""Resume and the cache: before a task runs, decide whether a kept output makes running it unnecessary.

The runner asks the :class:`Planner` just before it would start each task (so ``map`` items and
``@bubbles`` calls are decided like any other task). The planner computes the task's **key** —
one fingerprint of its code, its constant arguments (run parameters included) and the
fingerprints of its inputs' outputs (:mod:`bubbles.session.fingerprint`) — and answers:

* **reuse** a kept output with that key: the task does not run; its output is a
  :class:`~bubbles.session.checkpoints.CheckpointRef`, loaded where it is needed;
* or **run**, with where to keep the output (a
  :class:`~bubbles.session.checkpoints.CheckpointTarget`) when the run persists outputs or the task
  is cached.

Either way the task's record carries a :class:`~bubbles._events.Reuse` event saying why:
"reused from run X", "upstream 'extract_orders' changed", "code changed", "failed in run X",
"cache hit from run X (kept 12 min ago)". A key is never partial: an input that cannot be
fingerprinted makes the task run (for a cached task, with a warning naming the input).

**Resume** (``run(resume="last")``, ``bubbles run --resume``) takes the outputs kept by one earlier
run of the same workflow: a task reruns if it failed, was cancelled or never started there, if it
kept no output, or if its key changed. A crashed run resumes like a failed one. **Cache**
(``add_task(..., cache=True)`` or ``cache="1h"``) takes any earlier run's output with the same key,
while it has not expired.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import _naming
from .._errors import ConfigError
from .._events import Checkpoint, Reuse, Watermark
from .._settings import Settings
from ..engine.graph import Graph, Node, Ref
from ..engine.task import parse_ttl
from .checkpoints import CheckpointError, CheckpointRef, CheckpointTarget
from .fingerprint import combine, fingerprint_code, fingerprint_value

__all__ = ["Decision", "Planner", "parse_ttl"]

log = logging.getLogger("bubbles")
_DONE = frozenset({"succeeded", "reused"})


@dataclass
class Decision:
    """What to do with a task about to run."""

    reuse: CheckpointRef | None = None
    fingerprint: str | None = None  # of the reused output
    target: CheckpointTarget | None = None
    event: Reuse | None = None
    kept: Checkpoint | None = None  # a reused output is kept by this run too (a later resume finds it here)
    carried: tuple[Watermark, ...] = ()  # watermarks the reused task proposed, proposed again by this run


class Planner:
    """Decides reuse and keeping for one run (see the module docstring)."""

    def __init__(
        self,
        *,
        run_id: str,
        workflow: str,
        settings: Settings,
        store: Any,
        persist: bool,
        resume: str | None,
        graph: Graph,
    ) -> None:
        self.run_id = run_id
        self.settings = settings
        self.store = store
        self.persist = persist
        self.directory = str(Path(settings.checkpoint_dir) if settings.checkpoint_dir else settings.home_path() / "checkpoints")
        self._code: dict[int, str | None] = {}
        self._constants: dict[str, str | None] = {}
        self.from_run: str | None = None
        self.previous: dict[str, dict[str, Any]] = {}  # task -> its checkpoint row in the resumed run
        self.states: dict[str, str] = {}  # task -> its final state in the resumed run
        self.crashed = False  # the resumed run crashed: tasks it has no record of had not finished
        self.started_at = 0.0  # when the resumed run started
        self.watermarks: dict[str, list[Watermark]] = {}  # task -> the watermarks it proposed in the resumed run
        self.sync: Callable[[], None] | None = None  # waits until the run's finished tasks are in the store
        if resume is not None:
            self._load_resumed(resume, workflow, graph)

    # -- the run to resume ----------------------------------------------------------------------
    def _load_resumed(self, resume: str, workflow: str, graph: Graph) -> None:
        if self.store is None:
            raise ConfigError("Resume needs the run store, and the history setting is off for this run. Turn it on.")
        self.store.reap()  # a run killed meanwhile is crashed, not running
        if resume in ("last", "latest"):
            runs = [r for r in self.store.runs(limit=5, workflow=workflow) if r["run_id"] != self.run_id]
            if not runs:
                raise ConfigError(f"Nothing to resume: the run store {self.store.describe()} has no run of {workflow!r}.")
            run = runs[0]
        else:
            run = self.store.run(resume)
            if run["workflow"] != workflow:
                raise ConfigError(
                    f"Run {run['run_id']} is of workflow {run['workflow']!r}, not {workflow!r}: it cannot be resumed by this "
                    f"one. `bubbles runs --workflow {workflow}` lists the runs that can."
                )
        if run["status"] == "running":  # (after the reap: its process is alive, or its lease has not run out)
            beat = time.strftime("%H:%M:%S", time.localtime(run["heartbeat_at"] or run["started_at"] or 0))
            raise ConfigError(
                f"Run {run['run_id']} is still running (pid {run['pid']} on {run['host']}, last heartbeat at {beat}): "
                "resuming it now would do its work twice. Wait for it to end, or stop it; a run that was killed is "
                "marked crashed at once on this host, after its lease from another, and can then be resumed."
            )
        other = self.store.claim_resume(run["run_id"], self.run_id, lease=self.settings.lease_seconds)
        if other is not None:
            raise ConfigError(
                f"Run {run['run_id']} is being resumed by run {other}, which is still going: a second resume would do "
                f"the same work twice. Wait for it (`bubbles show {other}`), or resume run {other} if it fails."
            )
        self.from_run = run["run_id"]
        self.started_at = float(run["started_at"] or 0.0)
        self.states = {t["task"]: t["state"] for t in self.store.tasks(self.from_run)}
        self.watermarks = _watermarks_by_task(self.store.events(self.from_run, "watermark"))
        self.previous = {c["task"]: c for c in self.store.checkpoints(self.from_run)}
        self.crashed = run["status"] in ("crashed", "running")  # (running: another host's run, lease not yet out)
        now = {key for key, node in graph.nodes.items() if node.kind == "task"}
        then = {task for task in self.states if "[" not in task}  # (map items appear as the run goes)
        added, gone = sorted(now - then), sorted(then - now)
        failed = sorted(t for t, s in self.states.items() if s not in _DONE)
        what = [f"resuming run {self.from_run} ({run['status']})"]
        if self.crashed:  # a crashed run recorded what finished; the rest had not, or never started
            done = len(then) - len(failed)
            what.append(f"{done} task(s) had finished there; {len(now) - done} run again")
        elif failed:
            what.append(f"{len(failed)} task(s) to run again: {', '.join(failed[:8])}{' ...' if len(failed) > 8 else ''}")
        if added and not self.crashed:
            what.append(f"new since then: {', '.join(added[:8])}")
        if gone:
            what.append(f"no longer in the workflow: {', '.join(gone[:8])}")
        log.warning("bubbles: %s", "; ".join(what))

    # -- keys -----------------------------------------------------------------------------------
    def _code_of(self, node: Node) -> str | None:
        spec = node.spec
        if spec is None:
            return None
        if id(spec) not in self._code:
            self._code[id(spec)] = fingerprint_code(spec.fn)
        return self._code[id(spec)]

    def _constants_of(self, node: Node) -> str | None:
        if node.key not in self._constants:
            args = [a for a in node.args if not isinstance(a, Ref)]
            kwargs = {k: v for k, v in node.kwargs.items() if not isinstance(v, Ref)}
            self._constants[node.key] = fingerprint_value([args, kwargs])
        return self._constants[node.key]

    # -- deciding ---------------------------------------------------------------------------------
    def decide(self, node: Node, inputs: dict[str, str | None]) -> Decision:
        """Reuse or run ``node``, whose inputs' outputs have the fingerprints ``inputs`` (task -> fp)."""
        spec = node.spec
        cache = getattr(spec, "cache", None) if spec is not None else None
        persist = getattr(spec, "persist", None)
        keep = self.persist if persist is None else persist
        if inputs and self.sync is not None and (self.persist or cache not in (None, False)):
            # the tasks this one needs are on record before it starts: a crash from here on
            # leaves a run whose resume reuses them (the record is written in the background)
            self.sync()
        code, params = self._code_of(node), self._constants_of(node)
        partial = any(fp is None for fp in inputs.values())  # a key is never partial
        key = None if partial else combine(code, params, *(f"{name}={fp}" for name, fp in sorted(inputs.items())))
        if self.from_run is not None:
            decision = self._resumed(node.key, key, code, params, inputs)
            if decision.reuse is not None:
                return decision
        else:
            decision = Decision()
        if cache is not None and cache is not False:
            if key is None:
                unknowns = [name for name, fp in inputs.items() if fp is None] or ["its constant arguments"]
                log.warning(
                    "bubbles: task %r is cached, but %s cannot be fingerprinted (a stream, a connection, an object of "
                    "unknown kind): it runs, and its output is not cached.",
                    node.key,
                    ", ".join(map(repr, unknowns)),
                )
            else:
                hit = self._cache_hit(key, parse_ttl(cache))
                if hit is not None:
                    return hit
                decision.event = decision.event or Reuse(action="ran", reason="cache miss")
        cached = cache not in (None, False)
        ttl = parse_ttl(cache) if cached else None
        decision.target = CheckpointTarget(  # (not kept: its fingerprint is still noted, for downstream keys)
            self.directory,
            key or "",
            code=code,
            params=params,
            inputs={name: fp for name, fp in inputs.items() if fp is not None},
            expires_at=(time.time() + ttl) if ttl is not None else None,
            keep=key is not None and (keep or cached),
        )
        return decision

    def _resumed(
        self, task: str, key: str | None, code: str | None, params: str | None, inputs: dict[str, str | None]
    ) -> Decision:
        run = self.from_run
        state = self.states.get(task)
        row = self.previous.get(task)
        if state is None:
            why = f"did not finish in run {run} (it crashed)" if self.crashed else f"did not run in run {run}"
            return Decision(event=Reuse(action="ran", reason=why, from_run=run))
        if state not in _DONE:
            return Decision(event=Reuse(action="ran", reason=f"{state} in run {run}", from_run=run))
        unknown = [name for name, fp in sorted(inputs.items()) if fp is None]
        if unknown:
            return Decision(event=Reuse(action="ran", reason=_unknown(unknown), from_run=run))
        if row is None or row["format"] == "unkept" or not row["key"]:
            return Decision(event=Reuse(action="ran", reason=f"its output was not kept in run {run}", from_run=run))
        if key is None or row["key"] != key:
            return Decision(event=Reuse(action="ran", reason=self._what_changed(row, code, params, inputs, key), from_run=run))
        changed = self._files_changed(task, row["run_id"])
        if changed is not None:
            return Decision(event=Reuse(action="ran", reason=changed, from_run=run))
        ref = self._ref(row)
        if ref is None:
            return Decision(event=Reuse(action="ran", reason=f"its checkpoint from run {run} cannot be read", from_run=run))
        event = Reuse(action="reused", reason=f"reused from run {run}", from_run=row["run_id"])
        carried = self._propose_again(task)
        return Decision(reuse=ref, fingerprint=row["fingerprint"], event=event, kept=_kept_again(row), carried=carried)

    def _propose_again(self, task: str) -> tuple[Watermark, ...]:
        """The reused task read incrementally: its watermarks settle with this run, as if it had run here.

        Not when another run committed the watermark after the resumed run started: that run read
        past it, and going back would read its rows again.
        """
        carried = []
        for mark in self.watermarks.get(task, ()):
            now = self.store.watermark_record(mark.name)
            if now is not None and (now["updated_at"] or 0) > self.started_at and now["run_id"] != self.from_run:
                log.warning(
                    "bubbles: watermark %r was advanced by run %s after run %s started; task %r is reused, but its "
                    "watermark is not proposed again",
                    mark.name,
                    now["run_id"],
                    self.from_run,
                    task,
                )
                continue
            self.store.propose_watermark(mark.name, mark.value, self.run_id)
            carried.append(mark)
        return tuple(carried)

    def _what_changed(
        self, row: dict[str, Any], code: str | None, params: str | None, inputs: dict[str, str | None], key: str | None
    ) -> str:
        if code is None or row["code"] != code:
            return "its code changed" if code is not None else "its code cannot be fingerprinted"
        before = json.loads(row["inputs"] or "{}")
        changed = [name for name in sorted(set(before) | set(inputs)) if before.get(name) != inputs.get(name)]
        if changed:
            return f"upstream {', '.join(map(repr, changed))} changed"
        if row["params"] != params:
            return "its arguments or parameters changed"
        return "its inputs cannot be compared" if key is None else "its key changed"

    def _cache_hit(self, key: str, ttl: float | None) -> Decision | None:
        """An output kept by any earlier run under ``key``, younger than ``ttl`` seconds (any age: ``None``)."""
        if self.store is None:
            return None
        for row in self.store.cached(key, since=time.time() - ttl if ttl is not None else 0.0):
            ref = None if self._files_changed(row["task"], row["run_id"]) else self._ref(row)
            if ref is not None:
                age = time.time() - (row["at"] or time.time())
                reason = f"cache hit from run {row['run_id']} (kept {_ago(age)} ago)"
                event = Reuse(action="reused", reason=reason, from_run=row["run_id"])
                return Decision(reuse=ref, fingerprint=row["fingerprint"], event=event, kept=_kept_again(row))
        return None

    def _files_changed(self, task: str, run: str) -> str | None:
        """Why ``task``'s output from ``run`` is stale because a local file it read changed size or is gone, else ``None``.

        A task's key covers its code, arguments and inputs' outputs, not the files it reads
        itself; their size (as its reader recorded it) is the cheap check. A file edited to the
        same size is not noticed: a cache time-to-live, or a run without --resume, reads it again.
        """
        local = f"file://{_naming.host()}"
        for d in self._reads(task, run):
            if d["namespace"] != local or d["bytes"] is None or (d["kind"] or "file") != "file":
                continue
            path = d["name"]
            try:
                size = os.stat(path).st_size if not os.path.isdir(path) else None
            except OSError:
                return f"its input {path} is gone since run {run}"
            if size is not None and size != d["bytes"]:
                return f"its input {path} changed since run {run} ({d['bytes']:,} -> {size:,} bytes)"
        return None

    def _reads(self, task: str, run: str) -> list[dict[str, Any]]:
        """What ``task`` read in ``run``, or in the run its output there was reused from (a resume of a resume)."""
        for _ in range(20):
            rows = [d for d in self.store.datasets(run) if d["task"] == task and d["direction"] == "read"]
            if rows:
                last = max(d["attempt"] for d in rows)
                return [d for d in rows if d["attempt"] == last]
            reuse = [e for e in self.store.events(run, "reuse") if e["task"] == task]
            earlier = reuse[-1]["payload"].get("from_run") if reuse and reuse[-1]["payload"].get("action") == "reused" else None
            if not earlier or earlier == run:
                return []
            run = earlier
        return []

    def _ref(self, row: dict[str, Any]) -> CheckpointRef | None:
        ref = CheckpointRef(
            row["run_id"], row["task"], row["format"], row["location"], row["value"], row["fingerprint"], row["bytes"],
            row.get("content_hash"),
        )
        try:
            ref.check()
        except CheckpointError as exc:
            log.warning("bubbles: %s It runs again.", exc)
            return None
        return ref


def _watermarks_by_task(rows: list[dict[str, Any]]) -> dict[str, list[Watermark]]:
    """The watermark events of each task's last attempt (``task_events`` rows)."""
    last: dict[str, int] = {}
    for row in rows:
        last[row["task"]] = max(last.get(row["task"], 0), row["attempt"])
    out: dict[str, list[Watermark]] = {}
    for row in rows:
        if row["attempt"] == last[row["task"]]:
            payload = row["payload"] or {}
            out.setdefault(row["task"], []).append(Watermark(name=payload.get("name", ""), value=payload.get("value", "")))
    return out


def _kept_again(row: dict[str, Any]) -> Checkpoint:
    """The earlier run's checkpoint row, as this run's (same file): resuming this run reuses it too."""
    return Checkpoint(
        key=row["key"],
        code=row["code"],
        params=row["params"],
        inputs=row["inputs"],
        fingerprint=row["fingerprint"],
        format=row["format"],
        location=row["location"],
        value=row["value"],
        bytes=row["bytes"],
        expires_at=row["expires_at"],
        at=row["at"],
        content_hash=row.get("content_hash"),
    )


def _unknown(inputs: list[str]) -> str:
    return f"{', '.join(map(repr, inputs))} cannot be fingerprinted (a stream, or an object of unknown kind)"


def _ago(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"

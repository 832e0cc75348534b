"""The runner: one scheduling loop for every executor.

Design
------
A run is a :class:`~bubbles.engine.graph.Graph` of nodes plus an executor. The runner keeps, per
node, a small record (:class:`_Slot`): how many dependencies are unfinished, who waits for it, its
state, its attempt number and its output handle. Everything happens on one thread, the thread
that called :meth:`Runner.run`, in one loop::

    ready ──dispatch──▶ executor ──post(Attempt)──▶ inbox ──▶ handle ──▶ dependents ready
      ▲                                                          │
      └──────────── retry timer (backoff + jitter) ◀── failed ───┘

* **Dispatch** takes ready nodes while fewer than ``executor.capacity`` calls are in flight (and
  while their concurrency group — a ``ParallelTask`` or ``map`` limit — has room), substitutes
  upstream outputs for the :class:`Ref` placeholders and submits a
  :class:`~bubbles.engine.execute.Call`. A call's timeout clock starts at submission, or, for an
  executor that keeps a short queue (``reports_start``), when it posts ``("started", ...)``.
* **The inbox** is one ``SimpleQueue``. Executors put Attempts in it from any thread; the
  ``@bubbles`` driver puts new nodes in it. The loop blocks on it, waking early only for the
  nearest retry timer or timeout deadline.
* **Success** stores the output once, hands it to dependents, and drops it as soon as its last
  consumer has succeeded (so a 10,000-task fan-out does not keep 10,000 intermediates alive).
  Outputs nobody consumes are kept for the :class:`RunResult` (``keep_outputs=True`` keeps all).
* **Failure** is retried while the task's :class:`RetryPolicy` allows; otherwise every transitive
  dependent becomes ``upstream_failed``. With ``fail_fast`` nothing new is started (running
  tasks finish, the rest are ``skipped``); without it every branch that can still run does.
* **Timeouts**: at the deadline the runner records :class:`TaskTimeout` and asks the executor to
  ``abandon`` the attempt (killed in a worker process; left behind, ignored, in a thread).
* **Ctrl-C** (``KeyboardInterrupt`` on this thread, at any moment: while the executor starts
  too) or :meth:`Runner.cancel`: the executor stops what runs, every unfinished task is
  ``cancelled``, and the run ends ``cancelled``, recorded. A task that raises
  ``KeyboardInterrupt`` itself only fails (:mod:`bubbles.engine.interrupts` tells them apart).
* **Liveness**: while calls are in flight and nothing arrives for a second, the runner asks the
  executor which of them lost their worker (:meth:`RunHandle.lost`) and fails those: a run
  never waits on a call that can no longer answer.
* **One record per attempt**: what the worker reports is an
  :class:`~bubbles.engine.attempt.Attempt`; the runner completes it (group, end time, final
  status), appends it to the journal and builds the events' fields from it.
* **Events** go to hooks (:mod:`bubbles.engine.hooks`) as they happen; with no hook for an event
  the runner does not even build its arguments. Every ended attempt is also appended to the
  run's journal, which observers read through the :class:`~bubbles.engine.live.LiveRun` given
  to ``on_run_start`` (one ``list.append`` per task: how history, collectors and the progress
  display watch a run without a per-task call).

Example: ``a -> b``, ``a -> c``, ``(b, c) -> d`` with 2 workers. ``a`` is dispatched; its Attempt
arrives; ``b`` and ``c`` become ready and both are dispatched; ``b`` fails and is retried after
its backoff while ``c`` finishes; ``b`` succeeds on attempt 2; ``d`` gets ``(out_b, out_c)``; ``a``'s
output was freed when ``c`` (its last consumer) succeeded.
"""

from __future__ import annotations

import heapq
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from queue import Empty, SimpleQueue
from typing import TYPE_CHECKING, Any

from .._errors import BubblesError, RunCancelled, TaskTimeout, UpstreamFailed, describe_error
from .._secrets import SecretRegistry, mask_error, process_registry
from . import interrupts
from .attempt import Attempt
from .execute import Call, Probe, failed_attempt, has_custom_metrics, mask_attempt
from .executors.base import Executor, RunHandle
from .graph import Graph, Node, Ref, substitute
from .hooks import HookSet
from .live import LiveRun
from .result import _MISSING, RunResult, TaskRun, TaskState

if TYPE_CHECKING:
    from .._settings import Settings

__all__ = ["Future", "Runner", "new_run_id"]

S = TaskState
_NOT_RETRIED = "\n(not retried: another task failed and the run is fail_fast)\n"
_TERMINAL = frozenset({S.SUCCEEDED, S.FAILED, S.UPSTREAM_FAILED, S.SKIPPED, S.CANCELLED})
_LIVENESS_EVERY = 1.0  # seconds without news, with calls in flight, before asking which are lost


def _group_fingerprint(children: list[str | None]) -> str | None:
    """The fingerprint of a group's or map's output (its children's, in order); ``None`` if one is unknown."""
    if any(fp is None for fp in children):
        return None
    import hashlib

    return "group:" + hashlib.blake2b("\0".join(children).encode(), digest_size=16).hexdigest()  # type: ignore[arg-type]


def new_run_id() -> str:
    """A sortable, readable run id: ``20261122-031502-4f9a2c81`` (32 random bits: no two runs of one second share one)."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(4)


class Future:
    """The eventual output of a task submitted inside a running ``@bubbles`` function."""

    __slots__ = ("_error", "_event", "_fetch", "_handle", "key")

    def __init__(self, key: str) -> None:
        self.key = key
        self._event = threading.Event()
        self._handle: Any = _MISSING
        self._error: BaseException | None = None
        self._fetch: Callable[[Any], Any] | None = None

    def __repr__(self) -> str:
        state = "done" if self._event.is_set() else "pending"
        return f"<bubbles.Future {self.key!r} {state}>"

    def done(self) -> bool:
        return self._event.is_set()

    def result(self, timeout: float | None = None) -> Any:
        """Wait for the task and return its output; raise its error if it failed."""
        if not self._event.wait(timeout):
            raise TimeoutError(f"Task {self.key!r} did not finish within {timeout} s.")
        if self._error is not None:
            raise self._error
        return self._fetch(self._handle) if self._fetch else self._handle

    def exception(self, timeout: float | None = None) -> BaseException | None:
        if not self._event.wait(timeout):
            raise TimeoutError(f"Task {self.key!r} did not finish within {timeout} s.")
        return self._error

    def _resolve(self, handle: Any, fetch: Callable[[Any], Any] | None) -> None:
        self._handle, self._fetch = handle, fetch
        self._event.set()

    def _fail(self, error: BaseException) -> None:
        self._error = error
        self._event.set()


class _Slot:
    """The runner's record of one node (its attempts are :class:`Attempt` records)."""

    __slots__ = (
        "attempt",
        "children",
        "consumers",
        "dependents",
        "duration",
        "ended_at",
        "error",
        "fingerprint",
        "future",
        "group",
        "last",
        "node",
        "output",
        "started_at",
        "status",
        "target",
        "traceback",
        "waiting",
        "why",
    )

    def __init__(self, node: Node, group: str | None = None) -> None:
        self.node = node
        self.status = S.PENDING
        self.waiting = 0
        self.dependents: list[str] = []
        self.attempt = 0  # attempts made
        self.output: Any = _MISSING
        self.consumers = 0
        self.started_at: float | None = None  # the first attempt's start (a group's: its first child's)
        self.ended_at: float | None = None
        self.duration: float | None = None  # a group's span
        self.error: BaseException | None = None
        self.traceback = ""
        self.last: Attempt | None = None  # the last attempt that ran
        self.fingerprint: str | None = None  # of its output (resume and the cache key downstream tasks by it)
        self.target: Any = None  # where its output is kept, and under which key (a planner's)
        self.why: Any = None  # why it runs rather than being reused (a planner's Reuse event)
        self.future: Future | None = None
        self.children: list[str] | None = None
        self.group = group


class Runner:
    """Runs one graph once. Use :meth:`run`; see the module docstring for the design."""

    def __init__(
        self,
        graph: Graph,
        executor: Executor,
        *,
        run_id: str | None = None,
        fail_fast: bool = True,
        hooks: HookSet | None = None,
        limits: dict[str, int] | None = None,
        params: dict[str, Any] | None = None,
        probes: tuple[Probe, ...] = (),
        capture_logs: bool = False,
        keep_outputs: bool = False,
        dynamic: bool = False,
        settings: Settings | None = None,
        secrets: SecretRegistry | None = None,
        planner: Any = None,
    ) -> None:
        self.graph = graph
        self.planner = planner  # decides reuse (resume, cache) and keeping; see bubbles.session.resume
        self.executor = executor
        self.handle: RunHandle | None = None
        self.settings = settings
        self.secrets = secrets if secrets is not None else SecretRegistry(process_registry())
        self.run_id = run_id or new_run_id()
        self.workflow = graph.name
        self.fail_fast = fail_fast
        self.hooks = hooks or HookSet()
        self.limits = dict(limits or {})
        self.params = dict(params or {})
        self.probes = probes
        self.capture_logs = capture_logs
        self.keep_outputs = keep_outputs
        self.inbox: SimpleQueue[Any] = SimpleQueue()
        self._slots: dict[str, _Slot] = {}
        self._ready: deque[str] = deque()
        self._group_running: dict[str, int] = {}
        self._group_waiting: dict[str, deque[str]] = {}
        self._timers: list[tuple[float, int, str]] = []  # (when, seq, key): retries
        self._deadlines: list[tuple[float, str, int]] = []  # (when, key, attempt): timeouts
        self._seq = 0
        self._running = 0
        self._open = 0  # nodes not yet in a terminal state
        self._closed = not dynamic
        self._dynamic = dynamic
        self._stopping = False
        self._cancelled = False
        self._body_error: BaseException | None = None
        self._output: Any = None
        # Executors that queue calls tell when a call with a timeout actually starts.
        self._reports_start = bool(getattr(executor, "reports_start", False))
        # the journal: ended attempts, in order (read by observers through a LiveRun)
        self._journal: list[Any] = []
        self._n_tasks = 0
        self._n_done = 0
        self._finished = False
        self._live = LiveRun(self)
        self._capacity = executor.capacity
        self._last_news = time.monotonic()
        self._signals = 0

    # -- public -----------------------------------------------------------------------------
    def submit_node(self, node: Node, future: Future) -> None:
        """Add a node while the run is going (thread-safe; used by ``@bubbles``)."""
        self.inbox.put(("add", node, future))

    def close(self, output: Any = None, error: BaseException | None = None) -> None:
        """No more nodes will be added (thread-safe); ``output`` becomes the run's output."""
        self.inbox.put(("close", output, error))

    def cancel(self) -> None:
        """Cancel the run from another thread, as Ctrl-C would."""
        self.inbox.put(("cancel",))

    def run(self) -> RunResult:
        """Run the graph to the end and return its :class:`RunResult` (never raises for task failures)."""
        started = time.time()
        for node in self.graph.nodes.values():
            self._slots[node.key] = _Slot(node)
        self._open = len(self._slots)
        self._n_tasks = sum(1 for slot in self._slots.values() if slot.node.kind == "task")
        for slot in self._slots.values():
            self._link(slot)
        crashed: BaseException | None = None
        with interrupts.watching():  # (one KeyboardInterrupt per run at most: the cancel and record go on)
            self._signals = interrupts.count()
            try:
                self._start(started)
                if self.handle is not None:
                    for slot in list(self._slots.values()):
                        if slot.waiting == 0 and slot.status == S.PENDING:
                            self._make_ready(slot)
                    self._loop()
            except KeyboardInterrupt:
                with interrupts.deferred():
                    self._cancel()
            except BaseException as exc:  # a bug: the run still ends, recorded and announced, then it is raised
                crashed = exc
                with interrupts.deferred():
                    self._cancel()
            if crashed is not None:
                self._cancelled, self._body_error = False, crashed  # it failed, it was not cancelled
            with interrupts.deferred() as before:  # a Ctrl-C now cannot cut the record short
                result = self._finish(started)
            interrupted_while_finishing = interrupts.on_main_thread() and interrupts.count() != before
        if crashed is not None:
            raise crashed
        if interrupted_while_finishing and result.status != "cancelled":
            raise KeyboardInterrupt
        return result

    def _start(self, started: float) -> None:
        """Announce the run, then open the executor (a failure to start ends the run failed, recorded)."""
        if self.hooks.wants("on_run_start"):
            self.hooks.emit(
                "on_run_start",
                run_id=self.run_id,
                workflow=self.workflow,
                tasks=list(self._slots),
                executor=self.executor.name,
                started_at=started,
                params=self.params,
                live=self._live,
                scope=None,
                settings=self.settings,
                mask=self.secrets.mask,
            )
        grace = self.settings.cancel_grace if self.settings is not None else 5.0
        try:
            self.handle = self.executor.open(self.run_id, self.inbox.put, cancel_grace=grace)
        except Exception as exc:  # e.g. a cluster that cannot be reached: the run ends failed, recorded
            self._body_error = exc
            self._closed = True
            return
        self._capacity = self.handle.capacity

    # -- the loop ---------------------------------------------------------------------------
    def _loop(self) -> None:
        inbox = self.inbox
        while True:
            self._dispatch()
            if self._closed and (self._open == 0 or (self._running == 0 and not self._ready and not self._timers)):
                break
            timeout = self._next_wakeup()
            if self._running and (timeout is None or timeout > _LIVENESS_EVERY):
                timeout = _LIVENESS_EVERY
            try:
                message = inbox.get(timeout=timeout) if timeout is not None else inbox.get()
            except Empty:
                message = None
                if self._running:
                    self._check_liveness()
            else:
                self._last_news = time.monotonic()
            while message is not None:
                if type(message) is Attempt:
                    self._on_outcome(message)
                else:
                    self._on_message(message)
                    if self._cancelled:
                        return
                try:
                    message = inbox.get_nowait()
                except Empty:
                    message = None
            if self._timers or self._deadlines:
                self._fire_timers()
            if interrupts._count != self._signals and interrupts.on_main_thread():
                raise KeyboardInterrupt  # a Ctrl-C a task swallowed (serial): the run is cancelled all the same

    def _check_liveness(self) -> None:
        """Nothing arrived for a while: fail the calls whose worker is gone (never wait on them)."""
        if self.handle is None or time.monotonic() - self._last_news < _LIVENESS_EVERY:
            return
        self._last_news = time.monotonic()
        for attempt in self.handle.lost():
            self._on_outcome(attempt)

    def _next_wakeup(self) -> float | None:
        when = None
        if self._timers:
            when = self._timers[0][0]
        if self._deadlines and (when is None or self._deadlines[0][0] < when):
            when = self._deadlines[0][0]
        return None if when is None else max(0.0, when - time.monotonic())

    def _on_message(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "add":
            _, node, future = message
            self._add_dynamic(node, future)
        elif kind == "close":
            self._closed = True
            self._output, self._body_error = message[1], message[2]
            if self._body_error is not None and self.fail_fast:
                self._stop()
        elif kind == "cancel":
            self._cancel()
        elif kind == "started":  # a queued call with a timeout began running: its clock starts now
            _, key, attempt, at = message
            slot = self._slots.get(key)
            spec = slot.node.spec if slot is not None else None
            if slot is not None and spec is not None and spec.timeout and slot.status == S.RUNNING and slot.attempt == attempt:
                heapq.heappush(self._deadlines, (at + spec.timeout, key, attempt))

    # -- graph bookkeeping ------------------------------------------------------------------
    def _link(self, slot: _Slot) -> None:
        for dep in slot.node.deps:
            parent = self._slots[dep]
            parent.dependents.append(slot.node.key)
            parent.consumers += 1
            if parent.status != S.SUCCEEDED:
                slot.waiting += 1
        if slot.node.kind == "gather":
            for dep in slot.node.input_keys():
                self._slots[dep].group = slot.node.key

    def _add_dynamic(self, node: Node, future: Future) -> None:
        self.graph.add(node)
        slot = _Slot(node)
        slot.future = future
        self._slots[node.key] = slot
        self._open += 1
        if node.kind == "task":
            self._n_tasks += 1
        blocked = any(self._slots[d].status in _TERMINAL and self._slots[d].status != S.SUCCEEDED for d in node.deps)
        self._link(slot)
        if blocked:
            self._end(slot, S.UPSTREAM_FAILED, error=self._upstream_error(slot))
        elif self._stopping:
            self._end(slot, S.SKIPPED, error=self._stopped_error(slot))
        elif slot.waiting == 0:
            self._make_ready(slot)

    def _make_ready(self, slot: _Slot) -> None:
        node = slot.node
        if self._stopping:
            self._end(slot, S.SKIPPED, error=self._stopped_error(slot))
        elif node.kind == "task":
            self._ready.append(node.key)
        elif node.kind == "gather" or slot.children is not None:
            keys = slot.children if slot.children is not None else [r.key for r in node.args]
            starts = [s for s in (self._slots[k].started_at for k in keys) if s is not None]
            if starts:  # a group spans from its first child's start to its last child's end
                slot.started_at = min(starts) if slot.started_at is None else min(slot.started_at, *starts)
            if self.planner is not None:  # a group's output is its children's: so is its fingerprint
                slot.fingerprint = _group_fingerprint([self._slots[k].fingerprint for k in keys])
            self._succeed(slot, [self._slots[k].output for k in keys])
            if slot.started_at is not None and slot.ended_at is not None:
                slot.duration = slot.ended_at - slot.started_at
        else:
            self._expand(slot)

    def _expand(self, slot: _Slot) -> None:
        """A ``map`` node's input is ready: add one child task per item."""
        node = slot.node
        source = node.args[0]
        try:
            items = list(self._fetch(self._slots[source.key].output) if isinstance(source, Ref) else source)
        except Exception as exc:  # not iterable, or an iterator (a generator) that raised
            import traceback

            what = "needs an iterable of items" if isinstance(exc, TypeError) else "could not read its items"
            err = BubblesError(f"map task {node.key!r} {what}: {describe_error(exc)}", task=node.key)
            self._end(slot, S.FAILED, error=err, tb=traceback.format_exc())
            self._fail_downstream(slot)
            if self.fail_fast:
                self._stop()
            return
        slot.children = []
        slot.started_at = time.time()
        for i, item in enumerate(items):
            child = Node(f"{node.key}[{i}]", node.spec, (item, *node.map_extra), dict(node.kwargs), limit=node.limit)
            self.graph.add(child)
            cslot = _Slot(child, group=node.key)
            cslot.dependents.append(node.key)
            cslot.consumers = 1
            self._slots[child.key] = cslot
            slot.children.append(child.key)
            self._open += 1
            self._ready.append(child.key)
        self._n_tasks += len(items)
        slot.waiting = len(items)
        if not items:
            self._succeed(slot, [])

    # -- dispatch ---------------------------------------------------------------------------
    def _dispatch(self) -> None:
        ready, slots, capacity = self._ready, self._slots, self._capacity
        while ready and self._running < capacity:
            key = ready.popleft()
            slot = slots[key]
            if slot.status not in (S.PENDING, S.RETRY_WAIT):
                continue
            limit = slot.node.limit
            if limit is not None:
                if self._group_running.get(limit, 0) >= self.limits.get(limit, capacity):
                    self._group_waiting.setdefault(limit, deque()).append(key)
                    continue
                self._group_running[limit] = self._group_running.get(limit, 0) + 1
            self._submit(slot)

    def _final(self, slot: _Slot) -> bool:
        """Whether nothing in the run consumes the slot's output (a ``map`` item's: nothing consumes the map's).

        A deferred output (the plan of a read, :mod:`bubbles._deferred`) is then computed in its task. In a
        ``@bubbles`` flow consumers appear as the flow goes, so every output is computed in its task.
        """
        if self._dynamic:
            return True
        for key in slot.dependents:
            dependent = self._slots[key]
            if dependent.node.kind == "task" or not self._final(dependent):
                return False
        return True

    def _submit(self, slot: _Slot) -> None:
        node = slot.node
        spec = node.spec
        assert spec is not None
        if self.planner is not None and slot.attempt == 0:
            inputs = {k: self._slots[k].fingerprint for k in dict.fromkeys(node.input_keys())}
            decision = self.planner.decide(node, inputs)
            if decision.reuse is not None:
                self._reuse(slot, decision)
                return
            slot.target, slot.why = decision.target, decision.event
        slot.attempt += 1
        slot.status = S.RUNNING
        args, kwargs = node.args, node.kwargs
        if node.deps:
            outputs = {k: self._slots[k].output for k in node.input_keys()}
            nested = node.nested_refs
            args = tuple([substitute(a, outputs, nested) for a in args])
            if kwargs:
                kwargs = {k: substitute(v, outputs, nested) for k, v in kwargs.items()}
        call = Call(
            node.key,
            slot.attempt,
            spec.fn,
            args,
            kwargs,
            self.run_id,
            self.workflow,
            spec.timeout,
            self.probes,
            self.params,
            self.capture_logs,
            self.settings,
            self.secrets,
            slot.target,
            self._final(slot),
        )
        self._running += 1
        if spec.timeout is not None and not self._reports_start:
            heapq.heappush(self._deadlines, (time.monotonic() + spec.timeout, node.key, slot.attempt))
        if self.hooks.wants("on_task_start"):
            self.hooks.emit(
                "on_task_start",
                run_id=self.run_id,
                workflow=self.workflow,
                task=node.key,
                group=slot.group,
                attempt=slot.attempt,
                started_at=time.time(),
                worker="",
            )
        assert self.handle is not None
        try:
            self.handle.submit(call)
        except Exception as exc:  # e.g. a function or argument that cannot be shipped
            import traceback

            self.inbox.put(failed_attempt(call, exc, traceback.format_exc()))

    def _reuse(self, slot: _Slot, decision: Any) -> None:
        """The task's output is kept from an earlier run with the same key: it does not run."""
        self._release_group(slot)  # (the dispatch counted it against its group's limit)
        now = time.time()
        attempt = Attempt(
            slot.node.key,
            0,
            "reused",
            run_id=self.run_id,
            group=slot.group,
            ran=False,
            events=[e for e in (decision.event, getattr(decision, "kept", None), *getattr(decision, "carried", ()))
                    if e is not None] or None,
            started_at=now,
            ended_at=now,
            duration=0.0,
        )
        slot.fingerprint = decision.fingerprint
        slot.last = attempt
        if slot.started_at is None:
            slot.started_at = now
        self._succeed(slot, decision.reuse, attempt)

    # -- outcomes ---------------------------------------------------------------------------
    def _on_outcome(self, attempt: Attempt) -> None:
        slot = self._slots.get(attempt.task)
        if slot is None or slot.status != S.RUNNING or slot.attempt != attempt.attempt:
            return  # a late answer from an abandoned (timed-out or cancelled) attempt
        self._running -= 1
        self._release_group(slot)
        attempt.run_id = self.run_id
        attempt.group = slot.group
        attempt.ended_at = time.time()
        if attempt.secrets:  # resolved in a worker process: the run masks them from now on
            self.secrets.update(attempt.secrets)
            attempt.secrets = None
        if self.secrets and (not attempt.ok or attempt.logs or attempt.events or has_custom_metrics(attempt.metrics)):
            mask_attempt(attempt, self.secrets)  # with what the run knows, which a worker may not
        if slot.started_at is None:
            slot.started_at = attempt.started_at
        slot.last = attempt
        if self.planner is not None:
            self._planned(slot, attempt)
        if attempt.ok:
            value, attempt.value = attempt.value, None  # the journal must not keep outputs alive
            slot.error, slot.traceback = None, ""  # an earlier attempt's error is not this task's
            self._succeed(slot, value, attempt)
        else:
            self._failed_attempt(slot, attempt)

    def _planned(self, slot: _Slot, attempt: Attempt) -> None:
        """Note the output's fingerprint (from its Checkpoint event) and why the task ran."""
        for event in attempt.events or ():
            if getattr(event, "kind", "") == "checkpoint":
                slot.fingerprint = event.fingerprint
        if slot.why is not None:
            attempt.events = [slot.why, *(attempt.events or ())]

    def _release_group(self, slot: _Slot) -> None:
        limit = slot.node.limit
        if limit is None:
            return
        self._group_running[limit] -= 1
        waiting = self._group_waiting.get(limit)
        if waiting:
            self._ready.appendleft(waiting.popleft())

    def _succeed(self, slot: _Slot, value: Any, attempt: Attempt | None = None) -> None:
        node = slot.node
        slot.status = S.SUCCEEDED
        slot.ended_at = time.time()
        slot.output = value
        self._open -= 1
        spec = node.spec
        if attempt is not None:
            self._journal.append(attempt)
            self._n_done += 1
            if self.hooks.wants("on_task_end") or (spec is not None and spec.on_success):
                self._emit_end(slot, attempt)
        if slot.future is not None:
            slot.future._resolve(value, self._fetch)
        for dep in node.deps:
            self._release(self._slots[dep])
        if slot.children:
            for child_key in slot.children:
                self._release(self._slots[child_key])
        for key in slot.dependents:
            dependent = self._slots[key]
            if dependent.status == S.PENDING:  # (an expanded map stays PENDING until its children end)
                dependent.waiting -= 1
                if dependent.waiting == 0:
                    self._make_ready(dependent)

    def _release(self, slot: _Slot) -> None:
        slot.consumers -= 1
        if slot.consumers <= 0 and not self.keep_outputs and slot.future is None:
            slot.output = _MISSING

    def _failed_attempt(self, slot: _Slot, attempt: Attempt) -> None:
        spec = slot.node.spec
        assert spec is not None
        error = attempt.error or BubblesError(f"Task {attempt.task!r} failed without an error.", task=attempt.task)
        attempt.error = error
        retry = spec.retry.should_retry(error, slot.attempt)
        if retry and not self._stopping:
            delay = spec.retry.delay(slot.attempt)
            slot.status = S.RETRY_WAIT
            slot.error, slot.traceback = error, attempt.traceback  # kept: the run may stop before the next attempt
            self._seq += 1
            heapq.heappush(self._timers, (time.monotonic() + delay, self._seq, slot.node.key))
            attempt.status = "retrying"
            attempt.delay = delay
            self._journal.append(attempt)
            if self.hooks.wants("on_task_retry"):
                self.hooks.emit("on_task_retry", workflow=self.workflow, **attempt.event_fields())
            return
        if retry:
            attempt.traceback += _NOT_RETRIED
        self._end(slot, S.FAILED, attempt=attempt)
        self._fail_downstream(slot)
        if self.fail_fast:
            self._stop()

    def _fail_downstream(self, slot: _Slot) -> None:
        stack = list(slot.dependents)
        while stack:
            child = self._slots[stack.pop()]
            if child.status in _TERMINAL:
                continue
            self._end(child, S.UPSTREAM_FAILED, error=self._upstream_error(child))
            stack.extend(child.dependents)

    def _end(
        self,
        slot: _Slot,
        state: str,
        *,
        attempt: Attempt | None = None,
        error: BaseException | None = None,
        tb: str = "",
    ) -> None:
        """``slot`` ends in ``state``: with the ``attempt`` that ran last, or with none (``error``)."""
        now = time.time()
        if attempt is None:  # it ends without a new attempt (did not run, or stopped while waiting)
            if error is not None and self.secrets:  # text the runner built (a map's source, a flow body) is masked too
                error, tb = mask_error(error, self.secrets), self.secrets.mask(tb)
            attempt = Attempt(
                slot.node.key,
                slot.attempt,
                state,
                run_id=self.run_id,
                group=slot.group,
                ran=False,
                error=error,
                traceback=tb,
                ended_at=now,
            )
        attempt.status = state
        slot.status = state
        slot.ended_at = now
        slot.error = attempt.error
        slot.traceback = attempt.traceback
        self._open -= 1
        self._journal.append(attempt)
        if slot.node.kind == "task":
            self._n_done += 1
        if slot.future is not None and attempt.error is not None:
            slot.future._fail(attempt.error)
        spec = slot.node.spec
        if self.hooks.wants("on_task_end") or (spec is not None and spec.on_failure and state == S.FAILED):
            self._emit_end(slot, attempt)

    def _emit_end(self, slot: _Slot, attempt: Attempt) -> None:
        fields = attempt.event_fields()
        fields.update(workflow=self.workflow, started_at=slot.started_at)
        last = slot.last
        if not attempt.ran and last is not None:  # what was measured is the last attempt's
            fields.update(duration=last.duration, metrics=last.metrics, worker=last.worker, logs=None)
        self.hooks.emit("on_task_end", **fields)
        spec = slot.node.spec
        state = attempt.status
        callback = (
            None if spec is None else spec.on_success if state == S.SUCCEEDED else spec.on_failure if state == S.FAILED else None
        )
        if callback is not None:
            try:
                callback(**fields)
            except Exception:
                import logging

                logging.getLogger("bubbles").warning("bubbles: callback of task %r raised; ignored", slot.node.key, exc_info=True)

    def _upstream_error(self, slot: _Slot) -> UpstreamFailed:
        failed = [d for d in slot.node.deps if self._slots[d].status not in (S.SUCCEEDED, S.PENDING, S.RUNNING)]
        if slot.children:
            failed += [c for c in slot.children if self._slots[c].status in (S.FAILED, S.UPSTREAM_FAILED, S.CANCELLED)]
        return UpstreamFailed(
            f"Task {slot.node.key!r} did not run because {', '.join(map(repr, failed)) or 'an upstream task'} failed.",
            task=slot.node.key,
            upstream=failed,
            run_id=self.run_id,
        )

    def _stopped_error(self, slot: _Slot) -> BubblesError:
        if self._body_error is not None:
            return BubblesError(
                f"Task {slot.node.key!r} was not started: the run stopped ({describe_error(self._body_error)}).",
                task=slot.node.key,
            )
        return BubblesError(
            f"Task {slot.node.key!r} was not started: another task failed and the run is fail_fast. "
            "Run with fail_fast=False to run every branch that can still run.",
            task=slot.node.key,
        )

    def _stop(self) -> None:
        """fail_fast: start nothing new; what runs may finish."""
        self._stopping = True
        for _, _, key in self._timers:  # tasks waiting to retry end with their last error
            slot = self._slots[key]
            if slot.status == S.RETRY_WAIT:
                self._end(slot, S.FAILED, error=slot.error, tb=slot.traceback + _NOT_RETRIED)
        self._timers.clear()
        while self._ready:
            slot = self._slots[self._ready.popleft()]
            if slot.status == S.RETRY_WAIT:
                self._end(slot, S.FAILED, error=slot.error, tb=slot.traceback + _NOT_RETRIED)
            elif slot.status == S.PENDING:
                self._end(slot, S.SKIPPED, error=self._stopped_error(slot))
        for waiting in self._group_waiting.values():
            while waiting:
                slot = self._slots[waiting.popleft()]
                if slot.status == S.PENDING:
                    self._end(slot, S.SKIPPED, error=self._stopped_error(slot))

    # -- timers -----------------------------------------------------------------------------
    def _fire_timers(self) -> None:
        now = time.monotonic()
        while self._deadlines and self._deadlines[0][0] <= now:
            _, key, attempt = heapq.heappop(self._deadlines)
            slot = self._slots[key]
            if slot.status != S.RUNNING or slot.attempt != attempt:
                continue
            spec = slot.node.spec
            assert spec is not None
            assert self.handle is not None
            self.handle.abandon(key, attempt)
            how = "killed" if self.executor.hard_timeouts else "abandoned (threads cannot be stopped; its result will be ignored)"
            error = TaskTimeout(
                f"Task {key!r} ran past its timeout of {spec.timeout:g} s on attempt {attempt} and was {how}.",
                task=key,
                attempt=attempt,
                run_id=self.run_id,
            )
            self._on_outcome(
                Attempt(
                    key,
                    attempt,
                    "failed",
                    error=error,
                    started_at=time.time() - (spec.timeout or 0),
                    duration=spec.timeout or 0.0,
                    metrics={"execution_time": spec.timeout or 0.0},
                )
            )
        while self._timers and self._timers[0][0] <= now:
            _, _, key = heapq.heappop(self._timers)
            slot = self._slots[key]
            if slot.status == S.RETRY_WAIT:
                self._ready.append(key)

    # -- cancel and finish ------------------------------------------------------------------
    def _cancel(self) -> None:
        self._cancelled = True
        self._stopping = True
        for slot in self._slots.values():
            if slot.status not in _TERMINAL:
                self._end(
                    slot,
                    S.CANCELLED,
                    error=RunCancelled(f"Task {slot.node.key!r} was cancelled with the run.", task=slot.node.key),
                )
        self._timers.clear()
        self._ready.clear()

    def _fetch(self, handle: Any) -> Any:
        value = self.handle.fetch(handle) if self.handle is not None else handle
        if hasattr(value, "__bubbles_load__"):  # a reused output, kept by an earlier run
            return value.__bubbles_load__()
        if type(value) is list and any(hasattr(v, "__bubbles_load__") for v in value):
            return [v.__bubbles_load__() if hasattr(v, "__bubbles_load__") else v for v in value]
        return value

    def _finish(self, started: float) -> RunResult:
        for slot in self._slots.values():  # anything never reached (fail_fast)
            if slot.status not in _TERMINAL:
                self._end(slot, S.SKIPPED, error=self._stopped_error(slot))
        tasks: dict[str, TaskRun] = {}
        for key, slot in self._slots.items():
            run = TaskRun(
                name=key,
                state=slot.status,
                attempts=slot.attempt,
                started_at=slot.started_at,
                ended_at=slot.ended_at,
                error=slot.error,
                traceback=slot.traceback,
                group=slot.group,
                record=slot.last,
                span=slot.duration,
            )
            if slot.output is not _MISSING:
                fetch = self._fetch  # a gather's or map's output is a list of its tasks' handles
                try:
                    run._output = fetch(slot.output) if slot.node.kind == "task" else fetch(list(slot.output))
                except BubblesError as exc:  # e.g. the Dask cluster that held it is gone: .result says why
                    run._unfetched = exc
                if slot.future is None:
                    slot.output = _MISSING  # the result holds it now; the journal must not keep it alive
            tasks[key] = run
        if self.handle is not None:
            try:
                self.handle.close(cancel=self._cancelled or self._body_error is not None)
            except Exception:  # releasing workers must not lose the run's record
                import logging

                logging.getLogger("bubbles").warning("bubbles: the executor did not close cleanly", exc_info=True)
        if self._cancelled:
            status = "cancelled"
        elif self._body_error is not None or any(t.state != S.SUCCEEDED for t in tasks.values()):
            status = "failed"
        else:
            status = "succeeded"
        error = self._body_error
        if error is not None:
            error = mask_error(error, self.secrets)
        result = RunResult(
            run_id=self.run_id,
            workflow=self.workflow,
            status=status,
            executor=self.executor.name,
            started_at=started,
            ended_at=time.time(),
            tasks=tasks,
            output=self._output,
            error=error,
        )
        self._running = 0  # (attempts abandoned by a cancel or a crash are not running any more)
        self._finished = True
        self._live.close()
        if self.hooks.wants("on_run_end"):
            self.hooks.emit(
                "on_run_end",
                run_id=self.run_id,
                workflow=self.workflow,
                status=status,
                started_at=started,
                ended_at=result.ended_at,
                duration=result.duration,
                result=result,
            )
        return result

"""The Dask executor: tasks run on a Dask distributed cluster, outputs stay on the workers.

How one attempt travels::

    runner ──submit(Call)──▶ batch ──client.map(run_attempt, ..., args with dask futures)
                                   │  Dask resolves the futures worker-to-worker
                                   ▼
                             Dask worker: execute(call) ──▶ value kept in worker memory
                                   │ Attempt without its value, as a Dask event
                                   ▼
    runner ◀──post(Attempt(value=<dask future>))── client event handler

* **Outputs are Dask futures.** The runner stores the future as the task's output handle and
  passes it on to downstream calls; Dask moves the data from worker to worker (Arrow tables with
  Dask's Arrow serializer). The client only pulls a value when it truly needs one: final results,
  ``map`` items, ``future.result()`` in a ``@bubbles`` flow. When the runner drops its last
  reference to a handle, the Dask future is released and the worker frees the data.
* **Metadata as events.** Each attempt reports its :class:`~bubbles.engine.attempt.Attempt` (metrics, the worker's
  address, logs, error and traceback) through ``worker.log_event`` on a topic private to this
  executor, so there is one Dask task per bubbles task and no second round trip.
* **Retries stay in the runner.** Dask is told ``retries=0`` and every attempt gets its own key
  (``pure=False``), so a resubmitted attempt never collides with the old one. A worker that dies
  is Dask's business: it recomputes the lost tasks on the other workers, and the run goes on.
* **Failures Dask sees** (a worker that died too often, an output that could not be moved, the
  scheduler gone) arrive as the future's error and become the attempt's failed Attempt. Losing
  the scheduler fails every running task with :class:`SchedulerLost` (not retried) and the run
  ends ``failed``.
* **Batches.** ``submit`` only queues the call; a sender thread hands everything the runner
  dispatched meanwhile to Dask in one ``client.map`` (one scheduler message, not one per task).
* **Capacity**: the cluster's total threads; without task timeouts 16 times that, so the
  workers never wait for the client (the runner starts a task's timeout clock at submission, so
  with timeouts we keep submission and start close together). ``max_workers`` overrides.
* **Timeouts are soft**, as in threads: Dask cannot stop a running task, so the attempt is
  cancelled, its result ignored, and the worker thread finishes it in the background.

Where the cluster comes from: ``address=`` (or ``client=``), else ``BUBBLES_DASK_ADDRESS``, else
Dask's ``scheduler-address`` setting (``DASK_SCHEDULER_ADDRESS``), else an active
``distributed.Client`` in this process, else a ``LocalCluster`` sized to this machine, started
for the run and closed after it (and said so in the log).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import os
import site
import sys
import sysconfig
import threading
import time
import traceback
from collections import OrderedDict
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..._errors import BubblesError, ConfigError, MissingDependencyError, NotPicklableError, TaskError
from ..._settings import Settings, current_settings
from ..attempt import Attempt
from ..execute import Call, failed_attempt
from ..task import TaskSpec
from .base import Pool, PoolRun

if TYPE_CHECKING:
    from distributed import Client, Future, Security

__all__ = ["DaskConnectionError", "DaskExecutor", "DaskTaskError", "SchedulerLost", "resolve_address"]

log = logging.getLogger("bubbles")
_ENV_ADDRESS = "BUBBLES_DASK_ADDRESS"
_ENV_TLS = {"ca": "BUBBLES_DASK_TLS_CA_FILE", "cert": "BUBBLES_DASK_TLS_CERT", "key": "BUBBLES_DASK_TLS_KEY"}
_pickle_lock = threading.Lock()
_SCATTER_BYTES = 1 << 20
_FUNCTIONS_KEPT = 1024


class DaskConnectionError(ConfigError):
    """The Dask scheduler could not be reached (or has no workers) when the run started."""

    transient = True


class SchedulerLost(TaskError):
    """The client lost its connection to the Dask scheduler while the task ran."""

    transient = False


class DaskTaskError(TaskError):
    """Dask itself failed the task (e.g. its workers kept dying, or its output could not be moved)."""

    transient = True


def resolve_address(address: str | None = None, settings: Settings | None = None) -> tuple[str | None, str]:
    """The scheduler address to use and where it came from (``None``: start a LocalCluster).

    Example:
        >>> resolve_address("tcp://10.0.0.5:8786")
        ('tcp://10.0.0.5:8786', 'argument')
    """
    if address:
        return address, "argument"
    settings = settings if settings is not None else current_settings()
    if settings.dask_address:
        return settings.dask_address, settings.source("dask_address")
    import dask.config

    configured = dask.config.get("scheduler-address", None) or dask.config.get("scheduler_address", None)
    if configured:
        return str(configured), "Dask config 'scheduler-address'"
    return None, ""


class DaskExecutor(Pool):
    """Runs tasks on a Dask distributed cluster. See the module docstring for the design.

    Args:
        max_workers: tasks in flight at once (default: from the cluster's threads).
        address: scheduler address, e.g. ``"tcp://10.0.0.5:8786"`` or ``"tls://..."``.
        client: an existing ``distributed.Client`` to use (it is not closed after the run).
        security: a ``distributed.Security`` for ``tls://`` clusters (default: from
            ``tls_ca_file``/``tls_cert``/``tls_key``, the ``BUBBLES_DASK_TLS_*`` variables, or
            Dask's own ``distributed.comm.tls`` settings).
        tls_ca_file, tls_cert, tls_key: PEM files for TLS (client certificate and key).
        connect_timeout: seconds to wait for the scheduler.
        wait_for_workers: seconds to wait for the first worker to join.
        oversubscribe: without task timeouts, keep this many tasks per cluster thread in flight.
        cluster_options: keyword arguments for the ``LocalCluster`` started when no address is set.

    Example:
        >>> wf.run(executor="dask", address="tcp://scheduler:8786")  # doctest: +SKIP
    """

    name = "dask"
    hard_timeouts = False

    def __init__(
        self,
        max_workers: int | None = None,
        *,
        address: str | Client | None = None,
        client: Client | None = None,
        security: Security | None = None,
        tls_ca_file: str | None = None,
        tls_cert: str | None = None,
        tls_key: str | None = None,
        connect_timeout: float = 30.0,
        wait_for_workers: float = 60.0,
        oversubscribe: int = 16,
        cluster_options: dict[str, Any] | None = None,
        settings: Settings | None = None,
    ) -> None:
        super().__init__()
        self._settings = settings
        if address is not None and not isinstance(address, str):
            client, address = address, None  # run(address=client) reads naturally too
        self._max_workers = max_workers
        self.capacity = max_workers or 1  # set from the cluster in start()
        self._address = address
        self._client: Client | None = client
        self._own_client = False
        self._cluster: Any = None
        self._hidden: contextlib.ExitStack | None = None
        self._security = security
        self._tls = (tls_ca_file, tls_cert, tls_key)
        self._connect_timeout = connect_timeout
        self._wait_for_workers = wait_for_workers
        self._oversubscribe = max(1, int(oversubscribe))
        self._cluster_options = dict(cluster_options or {})
        self._functions: OrderedDict[int, tuple[Any, str, bytes]] = OrderedDict()  # id(fn) -> (fn, digest, pickled)
        self._timeouts = False
        self._threads = 1
        self._inflight: dict[tuple[str, str, int], Future] = {}  # (run_id, task, attempt) -> future
        # handed to Dask, future not yet noted: an attempt reported that early waits here for it
        self._mapping: set[tuple[str, str, int]] = set()
        self._early: dict[tuple[str, str, int], Attempt] = {}
        self._seen_done: dict[Any, float] = {}
        self._queue: list[Call] = []  # submitted, not yet handed to Dask
        self._wake = threading.Event()
        self._sender: threading.Thread | None = None
        self._lock = threading.Lock()
        self._lost_error: BaseException | None = None
        self._closing = False
        self._topic = ""
        self._token = os.urandom(4).hex()
        self.dashboard_link: str | None = None

    def __repr__(self) -> str:
        where = self._address or (self._client.scheduler.address if self._client is not None and self._client.scheduler else "?")
        return f"<DaskExecutor {where} capacity={self.capacity}>"

    # -- checks -------------------------------------------------------------------------------
    def check(self, specs: list[TaskSpec]) -> None:
        _import_distributed()
        for spec in specs:
            self._function_bytes(spec.fn, spec.name)
            if spec.timeout is not None:
                self._timeouts = True

    def _function_bytes(self, fn: Any, name: str) -> tuple[str, bytes]:
        with self._lock:
            entry = self._functions.get(id(fn))
            if entry is not None and entry[0] is fn:
                self._functions.move_to_end(id(fn))
                return entry[1], entry[2]
        try:
            data = _dumps_function(fn)
        except Exception as exc:
            raise NotPicklableError(
                f"Task {name!r} cannot be sent to Dask workers: {type(exc).__name__}: {exc}. It probably captures "
                "something that only lives in this process (a lock, an open connection or file). Create that "
                "inside the task instead.",
                task=name,
            ) from exc
        digest = hashlib.sha1(data).hexdigest()
        with self._lock:
            self._functions[id(fn)] = (fn, digest, data)
            while len(self._functions) > _FUNCTIONS_KEPT:
                self._functions.popitem(last=False)
        return digest, data

    # -- lifecycle ----------------------------------------------------------------------------
    def _start(self) -> None:
        distributed = _import_distributed()
        self._closing = False
        self._lost_error = None
        if self._client is None:
            self._client = self._connect(distributed)
            self._own_client = True
        client = self._client
        try:
            client.wait_for_workers(1, timeout=self._wait_for_workers)
        except TimeoutError as exc:
            self._stop()
            raise DaskConnectionError(
                f"The Dask scheduler at {client.scheduler.address} has no workers after {self._wait_for_workers:g} s. "
                f"Start some with: dask worker {client.scheduler.address}",
                address=client.scheduler.address,
            ) from exc
        self._threads = max(1, sum(client.nthreads().values()))
        per_thread = 1 if self._timeouts else self._oversubscribe
        self.capacity = self._max_workers or self._threads * per_thread
        self.dashboard_link = client.dashboard_link if self._cluster is not None else None
        self._topic = f"bubbles-{self._token}-{id(self):x}"
        client.subscribe_topic(self._topic, self._on_event)
        self._sender = threading.Thread(target=self._send_loop, name="bubbles-dask-submit", daemon=True)
        self._sender.start()

    def _connect(self, distributed: Any) -> Client:
        address, source = resolve_address(self._address, self._settings)
        if address is None:
            active = _active_client(distributed)
            if active is not None:
                self._own_client = False
                return active
            return self._local_cluster(distributed)
        security = self._security_for(address)
        try:
            return distributed.Client(address, security=security, timeout=self._connect_timeout, set_as_default=False)
        except (OSError, TimeoutError, TypeError) as exc:  # TypeError: TLS address without a TLS context
            tls = address.startswith("tls://")
            hint = "; for tls:// give the CA file and a client certificate (docs/distributed.md)." if tls else "."
            raise DaskConnectionError(
                f"Could not reach the Dask scheduler at {address} (from {source}) within {self._connect_timeout:g} s: "
                f"{type(exc).__name__}: {exc}. Check that `dask scheduler` runs there and the host and port are right{hint}",
                address=address,
            ) from exc

    def _local_cluster(self, distributed: Any) -> Client:
        options: dict[str, Any] = {"dashboard_address": ":0", "processes": True}
        options.update(self._cluster_options)
        # hidden for the cluster's whole life: a worker its nanny restarts (a task killed it) starts the same way
        hidden = contextlib.ExitStack()
        hidden.enter_context(_main_module_hidden())
        try:
            cluster = distributed.LocalCluster(**options)
        except BaseException:
            hidden.close()
            raise
        self._hidden = hidden
        self._cluster = cluster
        client = distributed.Client(cluster, set_as_default=False)
        workers = cluster.scheduler_info.get("workers", {})
        threads = sum(w.get("nthreads", 0) for w in workers.values())
        log.warning(  # (a warning: shown even with no logging set up, as the README promises)
            "bubbles: no Dask scheduler address given (address=, %s or Dask's 'scheduler-address'); started a "
            "LocalCluster at %s with %d workers and %d threads on this machine. It stops when the run ends.",
            _ENV_ADDRESS,
            cluster.scheduler_address,
            len(workers),
            threads,
        )
        return client

    def _security_for(self, address: str) -> Security | None:
        if self._security is not None:
            return self._security
        settings = self._settings or current_settings()
        ca, cert, key = (
            self._tls[0] or settings.dask_tls_ca_file,
            self._tls[1] or settings.dask_tls_cert,
            self._tls[2] or settings.dask_tls_key,
        )
        if not (ca or cert or key):
            if address.startswith("tls://"):
                from distributed import Security

                configured = Security()  # Dask's own distributed.comm.tls settings
                if not (getattr(configured, "tls_ca_file", None) and getattr(configured, "tls_client_cert", None)):
                    raise ConfigError(
                        f"The Dask scheduler at {address} speaks TLS, but no certificates were given. Pass "
                        f"tls_ca_file=, tls_cert= and tls_key= (or security=), set {', '.join(_ENV_TLS.values())}, "
                        "or configure Dask's distributed.comm.tls settings; see docs/distributed.md.",
                        address=address,
                    )
            return None  # Dask reads its own distributed.comm.tls settings
        missing = [n for n, v in (("CA file", ca), ("certificate", cert), ("key", key)) if not v]
        if missing:
            raise ConfigError(
                f"TLS for the Dask scheduler at {address} needs a CA file, a client certificate and its key; "
                f"missing: {', '.join(missing)}. Pass tls_ca_file=, tls_cert=, tls_key= or set "
                f"{', '.join(_ENV_TLS.values())}.",
                address=address,
            )
        for path in (ca, cert, key):
            if not os.path.isfile(str(path)):
                raise ConfigError(f"TLS file {path!r} for the Dask scheduler at {address} does not exist.", source=path)
        from distributed import Security

        return Security(tls_ca_file=ca, tls_client_cert=cert, tls_client_key=key, require_encryption=True)

    # -- running ------------------------------------------------------------------------------
    def _submit(self, run: PoolRun, call: Call) -> None:
        if self._lost_error is not None:
            raise self._lost_error
        self._function_bytes(call.fn, call.key)
        if call.timeout is not None and not self._timeouts:  # a @bubbles flow: specs arrive as it runs
            self._timeouts = True
            self.capacity = self._max_workers or self._threads
        with self._lock:
            self._queue.append(call)
            first = len(self._queue) == 1
        if first:
            self._wake.set()

    def _send_loop(self) -> None:
        """Hand queued calls to Dask in batches: one scheduler message per batch, not per task.

        The runner dispatches everything that is ready in one go and then waits; this thread picks
        up what it dispatched meanwhile, so a fan-out of 1,000 tasks becomes a few ``client.map``.
        """
        while not self._closing:
            self._wake.wait()
            self._wake.clear()
            with self._lock:
                batch, self._queue = self._queue, []
            if self._closing:
                return
            if not batch:
                continue
            try:
                self._send(batch)
            except Exception as exc:  # never lose a batch: each call gets its failure
                for c in batch:
                    self._route(c.run_id, failed_attempt(c, exc, traceback.format_exc()))

    def _send(self, batch: list[Call]) -> None:
        from ._dask_worker import run_attempt

        if self._lost_error is not None:  # submitting now would only wait for a reconnection
            for c in batch:
                self._route(c.run_id, failed_attempt(c, self._lost_error))
            return
        keys = [f"{c.key}-{c.attempt}-{c.run_id}-{self._token}" for c in batch]
        shells, digests, datas = [], [], []
        for c in batch:
            digest, data = self._function_bytes(c.fn, c.key)
            digests.append(digest)
            datas.append(data)
            # the call without its function and inputs (they travel as bytes and Dask arguments)
            shells.append(dataclasses.replace(c, fn=None, args=(), kwargs={}))  # type: ignore[arg-type]
        assert self._client is not None
        idents = [(c.run_id, c.key, c.attempt) for c in batch]
        with self._lock:
            self._mapping.update(idents)
        try:
            args = [self._scatter_large(list(c.args)) for c in batch]
            kwargs = [self._scatter_large(c.kwargs) for c in batch]
            futures = self._client.map(
                run_attempt,
                shells,
                digests,
                datas,
                args,
                kwargs,
                [self._topic] * len(batch),
                key=keys,
                pure=False,
                retries=0,
            )
        except Exception as exc:  # e.g. an argument Dask cannot serialize
            with self._lock:
                self._mapping.difference_update(idents)
            for c in batch:
                self._route(
                    c.run_id,
                    failed_attempt(
                        c,
                        NotPicklableError(
                            f"The inputs of task {c.key!r} cannot be sent to Dask: {type(exc).__name__}: {exc}. "
                            "Pass plain data between tasks (Arrow, pandas, lists, dicts).",
                            task=c.key,
                        ),
                    ),
                )
            return
        reported = []
        with self._lock:
            self._mapping.difference_update(idents)
            for ident, future in zip(idents, futures, strict=True):
                early = self._early.pop(ident, None)
                if early is None:
                    self._inflight[ident] = future
                else:  # it ran and reported before client.map returned
                    reported.append((early, future))
        for future in futures:
            future.add_done_callback(self._on_done)
        for attempt, future in reported:
            self._deliver(attempt, future)
        del batch, futures, shells, args, kwargs  # hold no upstream futures while waiting: let outputs be freed

    def _scatter_large(self, values: Any) -> Any:
        """Send big client-side inputs (data given to a pipeline, constants) to the workers once.

        Embedded in the task graph they would travel through the scheduler (Dask warns above
        10 MB); scattered, they go straight to a worker and the task refers to them.
        """
        from ...observe.sizes import measure

        assert self._client is not None
        items = values.items() if isinstance(values, dict) else enumerate(values)
        big = [(k, v) for k, v in items if not _is_future(v) and (measure(v)[1] or 0) >= _SCATTER_BYTES]
        for k, v in big:
            values[k] = self._client.scatter(v, hash=False)
        return values

    def _on_event(self, event: tuple[float, bytes]) -> None:
        """A worker reported an attempt (runs on the client's event loop)."""
        import pickle

        try:
            attempt: Attempt = pickle.loads(event[1])
        except Exception:  # e.g. a class the client cannot import: the future's own error will say it
            log.warning("bubbles: could not read an attempt reported by a Dask worker", exc_info=True)
            return
        ident = (attempt.run_id, attempt.task, attempt.attempt)
        with self._lock:
            future = self._inflight.pop(ident, None)
            if future is None and ident in self._mapping:
                self._early[ident] = attempt  # client.map has not returned yet: _send delivers it
                return
        if future is None:
            return  # a recomputation after a worker died, or an abandoned attempt
        self._deliver(attempt, future)

    def _deliver(self, attempt: Attempt, future: Future) -> None:
        if attempt.ok:
            attempt.value = future
        else:
            future.release()
        self._route(attempt.run_id, attempt)

    def _on_done(self, future: Future) -> None:
        """Dask finished a future; only failures Dask itself saw need reporting (callback thread)."""
        if future.status == "finished" or self._closing:
            return
        with self._lock:
            found = [k for k, f in self._inflight.items() if f.key == future.key]
            for k in found:
                del self._inflight[k]
        if not found:
            return
        run_id, key, attempt = found[0]
        if future.status == "cancelled":
            error: BaseException = SchedulerLost(
                f"Task {key!r} (attempt {attempt}) was lost: the client lost its connection to the Dask scheduler"
                f"{' at ' + self._scheduler_address() if self._scheduler_address() else ''}. Check that the "
                "scheduler is running; the run is recorded as failed.",
                task=key,
                attempt=attempt,
            )
            self._lost_error = error
        else:
            exc = _future_exception(future)
            error = DaskTaskError(
                f"Dask failed task {key!r} (attempt {attempt}): {type(exc).__name__}: {exc}. If its workers died, "
                "check their memory limits and logs; if its output could not be moved between workers, return "
                "plain data (Arrow, pandas, lists, dicts).",
                task=key,
                attempt=attempt,
                error_type=type(exc).__name__,
            )
        self._route(run_id, Attempt(key, attempt, "failed", run_id=run_id, error=error, started_at=time.time()))

    def _scheduler_address(self) -> str:
        try:
            return str(self._client.scheduler.address) if self._client is not None and self._client.scheduler else ""
        except Exception:
            return ""

    def _abandon(self, run: PoolRun, call: Call) -> None:
        ident = (call.run_id, call.key, call.attempt)
        with self._lock:
            self._queue = [c for c in self._queue if (c.run_id, c.key, c.attempt) != ident]
            future = self._inflight.pop(ident, None)
        if future is not None:
            future.cancel()

    def _cancel_calls(self, run: PoolRun, calls: list[Call], *, wait: bool) -> None:
        idents = {(c.run_id, c.key, c.attempt) for c in calls}
        with self._lock:
            self._queue = [c for c in self._queue if (c.run_id, c.key, c.attempt) not in idents]
            futures = [self._inflight.pop(i) for i in idents if i in self._inflight]
        if futures and self._client is not None:
            try:
                self._client.cancel(futures, force=True)
            except Exception:
                log.debug("bubbles: could not cancel Dask futures", exc_info=True)

    def _lost(self, run: PoolRun, calls: list[Call]) -> list[tuple[Call, BaseException]]:
        if self._lost_error is not None:
            return [(c, self._lost_error) for c in calls]
        lost: list[tuple[Call, BaseException]] = []
        now = time.monotonic()
        with self._lock:
            for c in calls:
                future = self._inflight.get((c.run_id, c.key, c.attempt))
                if future is None or future.status == "pending":
                    continue
                first = self._seen_done.setdefault(future.key, now)
                if now - first > 10.0:  # finished, but its attempt never reported: do not wait for it
                    lost.append(
                        (
                            c,
                            DaskTaskError(
                                f"Task {c.key!r} (attempt {c.attempt}) ended on Dask ({future.status}) without reporting "
                                "its outcome (the worker's event was lost). The task may be retried.",
                                task=c.key,
                                attempt=c.attempt,
                            ),
                        )
                    )
        return lost

    def _fetch(self, handle: Any) -> Any:
        if isinstance(handle, list):  # a ParallelTask's or a map's output: one handle per task
            futures = [h for h in handle if _is_future(h)]
            pulled = dict(zip((f.key for f in futures), self._gather(futures), strict=True)) if futures else {}
            return [pulled[h.key] if _is_future(h) else h for h in handle]
        if not _is_future(handle):
            return handle
        try:
            return handle.result()
        except Exception as exc:
            raise BubblesError(
                f"Could not fetch a task output from the Dask cluster: {type(exc).__name__}: {exc}. "
                "The worker holding it may have died with nothing left to recompute it from.",
            ) from exc

    def _gather(self, futures: list[Future]) -> list[Any]:
        """Fetch several outputs in one round trip."""
        if self._client is None:
            raise BubblesError("Could not fetch task outputs: the Dask client is closed.")
        try:
            return list(self._client.gather(futures, errors="raise"))
        except Exception as exc:
            raise BubblesError(
                f"Could not fetch {len(futures)} task output(s) from the Dask cluster: {type(exc).__name__}: {exc}.",
            ) from exc

    def _stop(self) -> None:
        client = self._client
        if client is None:
            return
        self._closing = True
        self._wake.set()
        if self._sender is not None and self._sender is not threading.current_thread():
            self._sender.join(timeout=10)
        self._sender = None
        with self._lock:
            running = list(self._inflight.values())
            self._inflight.clear()
            self._queue.clear()
            self._seen_done.clear()
        if running:
            try:
                client.cancel(running, force=True)
            except Exception:
                log.debug("bubbles: could not cancel Dask futures", exc_info=True)
        if self._topic:
            try:
                client.unsubscribe_topic(self._topic)
            except Exception:
                pass
        if self._own_client:
            try:
                client.close()
            finally:
                if self._cluster is not None:
                    self._cluster.close()
                    self._cluster = None
                if self._hidden is not None:
                    self._hidden.close()
                    self._hidden = None
            self._client = None


# -- helpers ---------------------------------------------------------------------------------
@contextlib.contextmanager
def _main_module_hidden() -> Iterator[None]:
    """Start worker processes without re-running the user's script in them.

    LocalCluster starts its workers with multiprocessing's *spawn*, which imports the parent's
    ``__main__`` file in each child; a script that calls ``pipeline.run(distributed=True)`` at top
    level (no ``if __name__ == "__main__":`` guard, as in the examples) would then run itself again
    in every worker and the cluster would fail to start. The workers do not need the script: task
    functions from ``__main__`` travel by value. So spawn is not told about it.
    """
    main = sys.modules.get("__main__")
    saved: dict[str, Any] = {n: main.__dict__[n] for n in ("__file__", "__spec__") if main is not None and n in main.__dict__}
    if main is None or "__file__" not in saved:
        yield
        return
    del main.__file__
    main.__spec__ = None
    try:
        yield
    finally:
        main.__dict__.update(saved)


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError as exc:
        raise MissingDependencyError("Running on Dask (distributed=True)", "distributed", "dask") from exc
    return distributed


def _active_client(distributed: Any) -> Client | None:
    try:
        return distributed.default_client()  # type: ignore[no-any-return]
    except ValueError:
        return None


def _is_future(value: Any) -> bool:
    return type(value).__name__ == "Future" and type(value).__module__.startswith("distributed")


def _future_exception(future: Future) -> BaseException:
    try:
        exc = future.exception(timeout=5)
    except Exception as err:  # cancelled, or the scheduler went away meanwhile
        return err
    return exc if isinstance(exc, BaseException) else RuntimeError(str(exc))


def _is_local_code(module: Any) -> bool:
    """Whether ``module`` is the user's own code (a script, a project module), not an installed package.

    Dask workers on other machines have the installed packages but not the user's project files, so
    functions from those are shipped by value.
    """
    name = getattr(module, "__name__", "")
    top = name.partition(".")[0]
    file = getattr(module, "__file__", None)
    if not file or top in ("bubbles", "pybubbles") or top in sys.stdlib_module_names:
        return False
    return _is_local_file(file)


def _is_local_file(file: str) -> bool:
    """Whether the source file ``file`` is outside the installed packages and the standard library."""
    roots = {sysconfig.get_paths().get(k, "") for k in ("purelib", "platlib", "stdlib", "platstdlib")}
    roots.update(site.getsitepackages() if hasattr(site, "getsitepackages") else [])
    roots.add(site.getusersitepackages() if hasattr(site, "getusersitepackages") else "")
    path = os.path.abspath(file)
    return not any(root and path.startswith(os.path.abspath(root) + os.sep) for root in roots)


def _dumps_function(fn: Any) -> bytes:
    """Cloudpickle a task function; the user's own modules go by value (workers lack them)."""
    import cloudpickle

    inner = getattr(fn, "func", fn)  # functools.partial
    module = sys.modules.get(getattr(inner, "__module__", None) or "")
    by_value = module is not None and module.__name__ != "__main__" and _is_local_code(module)
    with _pickle_lock:  # cloudpickle's by-value registry is process-wide: register only for this dump
        registered = False
        if by_value:
            try:
                cloudpickle.register_pickle_by_value(module)
                registered = True
            except ValueError:  # already registered by the user
                pass
        try:
            return cloudpickle.dumps(fn, protocol=5)
        finally:
            if registered:
                cloudpickle.unregister_pickle_by_value(module)

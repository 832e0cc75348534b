"""What runs on a Dask worker for one task attempt.

:func:`run_attempt` is the function the Dask executor submits. It rebuilds the
:class:`~bubbles.engine.execute.Call` (arguments arrive already resolved by Dask: upstream outputs
that live on other workers were fetched worker-to-worker), runs it through
:func:`~bubbles.engine.execute.execute`, sends the :class:`Outcome` *without its value* back to
the client as a Dask event, and returns the value, which stays in the worker's memory as the
task's Dask future. So a task's output never passes through the client unless the client asks.

Task functions arrive as cloudpickled bytes (see ``dask._function_bytes``) and are unpickled once
per worker process, cached by digest.
"""

from __future__ import annotations

import pickle
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from ..._errors import RemoteTaskError
from ..execute import Call, Outcome, execute, mark_remote, replace_unpicklable_error

__all__ = ["run_attempt"]

_FUNCTIONS: OrderedDict[str, Callable[..., Any]] = OrderedDict()
_FUNCTIONS_MAX = 256
_lock = threading.Lock()


def _function(digest: str, data: bytes) -> Callable[..., Any]:
    with _lock:
        fn = _FUNCTIONS.get(digest)
        if fn is not None:
            _FUNCTIONS.move_to_end(digest)
            return fn
    fn = pickle.loads(data)
    with _lock:
        _FUNCTIONS[digest] = fn
        while len(_FUNCTIONS) > _FUNCTIONS_MAX:
            _FUNCTIONS.popitem(last=False)
    return fn


def _payload(outcome: Outcome) -> bytes:
    """The outcome, pickled; an error that cannot pickle is replaced by a RemoteTaskError.

    cloudpickle, because an exception class defined in the user's own module arrived here by
    value; cloudpickle sends it back under the same identity, so ``retry_on`` and ``isinstance``
    on the client still see the user's class.
    """
    import cloudpickle

    try:
        return cloudpickle.dumps(outcome, protocol=5)
    except Exception:
        replace_unpicklable_error(outcome)
        outcome.logs = None if outcome.logs is None else [{k: str(v) for k, v in r.items()} for r in outcome.logs]
        return cloudpickle.dumps(outcome, protocol=5)


def run_attempt(shell: Call, digest: str, fn_bytes: bytes, args: Any, kwargs: Any, topic: str) -> Any:
    """Run one attempt on this worker; report its Outcome as an event; return its value."""
    from distributed import get_worker

    mark_remote()
    worker = get_worker()
    try:
        fn = _function(digest, fn_bytes)
    except Exception as exc:  # e.g. a module the function needs is not installed on this worker
        import traceback

        outcome = Outcome(
            shell.key,
            shell.attempt,
            False,
            error=RemoteTaskError(
                f"Task {shell.key!r} could not be loaded on Dask worker {worker.address}: {type(exc).__name__}: {exc}. "
                "Install the packages the task imports on every worker (the same versions as on the client).",
                task=shell.key,
                attempt=shell.attempt,
                error_type=type(exc).__name__,
            ),
            traceback=traceback.format_exc(),
        )
    else:
        call = Call(
            shell.key,
            shell.attempt,
            fn,
            tuple(args),
            dict(kwargs),
            shell.run_id,
            shell.workflow,
            shell.timeout,
            shell.probes,
            shell.params,
            shell.capture_logs,
        )
        outcome = execute(call)
    outcome.worker = worker.address
    value, outcome.value = outcome.value, None
    worker.log_event(topic, _payload(outcome))
    return value

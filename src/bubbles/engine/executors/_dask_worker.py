"""What runs on a Dask worker for one task attempt.

:func:`run_attempt` is the function the Dask executor submits. It rebuilds the
:class:`~bubbles.engine.execute.Call` (arguments arrive already resolved by Dask: upstream outputs
that live on other workers were fetched worker-to-worker), runs it through
:func:`~bubbles.engine.execute.execute`, sends the :class:`~bubbles.engine.attempt.Attempt` *without its value* back to
the client as a Dask event, and returns the value, which stays in the worker's memory as the
task's Dask future. So a task's output never passes through the client unless the client asks.

Task functions arrive as cloudpickled bytes (see ``dask._function_bytes``) and are unpickled once
per worker process, cached by digest.
"""

from __future__ import annotations

import dataclasses
import pickle
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from ..._errors import RemoteTaskError
from ..attempt import Attempt
from ..execute import Call, execute, failed_attempt, mark_remote, replace_unpicklable_error

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


def _payload(attempt: Attempt) -> bytes:
    """The attempt, pickled; an error that cannot pickle is replaced by a RemoteTaskError.

    cloudpickle, because an exception class defined in the user's own module arrived here by
    value; cloudpickle sends it back under the same identity, so ``retry_on`` and ``isinstance``
    on the client still see the user's class.
    """
    import cloudpickle

    try:
        return cloudpickle.dumps(attempt, protocol=5)
    except Exception:
        replace_unpicklable_error(attempt)
        attempt.logs = None if attempt.logs is None else [{k: str(v) for k, v in r.items()} for r in attempt.logs]
        attempt.events = None if attempt.events is None else [repr(e) for e in attempt.events]
        return cloudpickle.dumps(attempt, protocol=5)


def run_attempt(shell: Call, digest: str, fn_bytes: bytes, args: Any, kwargs: Any, topic: str) -> Any:
    """Run one attempt on this worker; report its Attempt as an event; return its value."""
    from distributed import get_worker

    mark_remote()
    worker = get_worker()
    try:
        fn = _function(digest, fn_bytes)
    except Exception as exc:  # e.g. a module the function needs is not installed on this worker
        import traceback

        attempt = failed_attempt(
            shell,
            RemoteTaskError(
                f"Task {shell.key!r} could not be loaded on Dask worker {worker.address}: {type(exc).__name__}: {exc}. "
                "Install the packages the task imports on every worker (the same versions as on the client).",
                task=shell.key,
                attempt=shell.attempt,
                error_type=type(exc).__name__,
            ),
            traceback.format_exc(),
        )
    else:
        call = dataclasses.replace(shell, fn=fn, args=tuple(args), kwargs=dict(kwargs))
        attempt = execute(call)
    attempt.worker = worker.address
    value, attempt.value = attempt.value, None
    worker.log_event(topic, _payload(attempt))
    return value

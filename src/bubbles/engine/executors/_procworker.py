"""Main loop of a worker process started by the processes executor.

Started as ``python -c "...; main(in_fd, out_fd)"`` (never by re-importing the user's script, so
a script without an ``if __name__ == "__main__"`` guard is safe). It ignores Ctrl-C (the parent
decides), exits when the parent goes away, and answers each call with an Attempt. Functions are
cached by the digest of their pickled bytes, at most ``FUNCTIONS_PER_WORKER`` of them, least
recently used first out — the parent keeps a mirror of this cache and sends a function's
bytes again when it knows the worker no longer has it.
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
import threading
import time
import traceback
from collections import OrderedDict
from multiprocessing.connection import Connection
from typing import Any

from ..._errors import NotPicklableError
from ..attempt import Attempt
from ..execute import execute, failed_attempt, mark_remote, replace_unpicklable_error
from ..serialize import recv, send

FUNCTIONS_PER_WORKER = 256


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(3)


def _sendable(attempt: Attempt) -> Attempt:
    """Replace what cannot be pickled by a clear error instead of losing the attempt."""
    try:
        pickle.dumps(attempt.error, protocol=5)
    except Exception:
        replace_unpicklable_error(attempt)
    if attempt.events:
        try:
            pickle.dumps(attempt.events, protocol=5)
        except Exception:
            attempt.events = [repr(e) for e in attempt.events]
    return attempt


def main(in_fd: int, out_fd: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    mark_remote()
    conn_in, conn_out = Connection(in_fd), Connection(out_fd)
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()
    functions: OrderedDict[str, Any] = OrderedDict()
    send(conn_out, ("ready", os.getpid()))
    while True:
        digest = None
        try:
            message = recv(conn_in)
            if message is None:
                return
            if message[0] == "path":
                sys.path[:] = message[1]
                continue
            _, digest, data, call = message
            if data is not None:
                functions[digest] = pickle.loads(data)
                while len(functions) > FUNCTIONS_PER_WORKER:
                    functions.popitem(last=False)
            fn = functions[digest]  # (a KeyError if the parent's mirror is off: reported, not fatal)
            functions.move_to_end(digest)
        except (EOFError, OSError):
            return
        except Exception as exc:  # the call or its function cannot be loaded here
            send(conn_out, ("broken", f"{type(exc).__name__}: {exc}", traceback.format_exc(), digest))
            continue
        call.fn = fn
        attempt = execute(call)
        spill = call.settings.spill_dir if call.settings is not None else None
        try:
            send(conn_out, ("done", _sendable(attempt)), spill=spill)
        except BaseException as exc:  # the value cannot be pickled (even a SystemExit in its __reduce__)
            unsent = failed_attempt(
                call,
                NotPicklableError(
                    f"Task {call.key!r} returned a {type(attempt.value).__name__} that cannot be sent "
                    f"back from a worker process ({exc}). Return plain data (Arrow, pandas, lists, "
                    "dicts), or run it with executor='threads'.",
                    task=call.key,
                ),
                started_at=attempt.started_at,
            )
            unsent.duration, unsent.metrics, unsent.worker = attempt.duration, attempt.metrics, attempt.worker
            unsent.logs, unsent.secrets = attempt.logs, attempt.secrets
            send(conn_out, ("done", unsent))

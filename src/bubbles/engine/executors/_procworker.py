"""Main loop of a worker process started by the processes executor.

Started as ``python -c "...; main(in_fd, out_fd)"`` (never by re-importing the user's script, so
a script without an ``if __name__ == "__main__"`` guard is safe). It ignores Ctrl-C (the parent
decides), exits when the parent goes away, and answers each call with an Outcome.
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
import threading
import time
import traceback
from multiprocessing.connection import Connection
from typing import Any

from ..._errors import NotPicklableError
from ..execute import Outcome, execute, mark_remote, replace_unpicklable_error
from ..serialize import recv, send


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(3)


def _sendable(outcome: Outcome) -> Outcome:
    """Replace what cannot be pickled by a clear error instead of losing the outcome."""
    try:
        pickle.dumps(outcome.error, protocol=5)
    except Exception:
        replace_unpicklable_error(outcome)
    return outcome


def main(in_fd: int, out_fd: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    mark_remote()
    conn_in, conn_out = Connection(in_fd), Connection(out_fd)
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()
    functions: dict[int, Any] = {}
    send(conn_out, ("ready", os.getpid()))
    while True:
        try:
            message = recv(conn_in)
            if message is not None and message[0] == "call" and message[2] is not None:
                functions[message[1]] = pickle.loads(message[2])
        except (EOFError, OSError):
            return
        except Exception as exc:  # the call or its function cannot be loaded here
            send(conn_out, ("broken", f"{type(exc).__name__}: {exc}", traceback.format_exc()))
            continue
        if message is None:
            return
        if message[0] == "path":
            sys.path[:] = message[1]
            continue
        _, fid, _, call = message
        call.fn = functions[fid]
        outcome = execute(call)
        try:
            send(conn_out, ("done", _sendable(outcome)))
        except Exception as exc:  # the value itself cannot be pickled
            send(
                conn_out,
                (
                    "done",
                    Outcome(
                        call.key,
                        call.attempt,
                        False,
                        error=NotPicklableError(
                            f"Task {call.key!r} returned a {type(outcome.value).__name__} that cannot be sent "
                            f"back from a worker process ({exc}). Return plain data (Arrow, pandas, lists, "
                            "dicts), or run it with executor='threads'.",
                            task=call.key,
                        ),
                        started_at=outcome.started_at,
                        duration=outcome.duration,
                        metrics=outcome.metrics,
                        worker=outcome.worker,
                    ),
                ),
            )

"""Alerting: callbacks when a run succeeds or fails, and a webhook that posts a failed run's summary.

Both are hooks on ``on_run_end``: pass them to ``Workflow(..., hooks=[...])``, ``wf.attach(...)``
or ``wf.run(hooks=[...])``. A callback or webhook that fails is logged and never breaks the run.
Task-level callbacks are the ``on_success=`` / ``on_failure=`` options of a task.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from .._errors import describe_error
from .._secrets import mask

__all__ = ["Callbacks", "WebhookNotifier", "run_summary"]

log = logging.getLogger("bubbles")


def run_summary(result: Any) -> dict[str, Any]:
    """A JSON-able summary of a :class:`~bubbles.RunResult`: status, timings, counts and failed tasks."""
    counts: dict[str, int] = {}
    for t in result.tasks.values():
        counts[t.state] = counts.get(t.state, 0) + 1
    failed = []
    for t in result.failed[:20]:
        frames = [line.strip() for line in (t.traceback or "").splitlines() if line.strip().startswith('File "')]
        failed.append(
            {
                "task": t.name,
                "attempts": t.attempts,
                "error_type": type(t.error).__name__ if t.error is not None else None,
                "error": mask(describe_error(t.error).split(": ", 1)[1]) if t.error is not None else None,
                "where": frames[-1] if frames else None,
            }
        )
    return {
        "run_id": result.run_id,
        "workflow": result.workflow,
        "status": result.status,
        "executor": result.executor,
        "started_at": result.started_at,
        "ended_at": result.ended_at,
        "duration": result.duration,
        "tasks": counts,
        "failed_tasks": failed,
        "failed_total": len(result.failed),
        "error": mask(describe_error(result.error)) if result.error is not None else None,
        "show": f"bubbles show {result.run_id}",
    }


class Callbacks:
    """Run-level ``on_success`` / ``on_failure`` callbacks, each called with the :class:`RunResult`.

    Example:
        >>> from bubbles import Workflow
        >>> seen = []
        >>> wf = Workflow("cb", hooks=[Callbacks(on_success=lambda result: seen.append(result.status))])
        >>> _ = wf.add_task(lambda: 1, name="one")
        >>> _ = wf.run()
        >>> seen
        ['succeeded']
    """

    def __init__(self, on_success: Callable[[Any], Any] | None = None, on_failure: Callable[[Any], Any] | None = None) -> None:
        self.on_success = on_success
        self.on_failure = on_failure

    def on_run_end(self, *, status: str, result: Any, **future_kwargs: Any) -> None:
        callback = self.on_success if status == "succeeded" else self.on_failure
        if callback is None:
            return
        try:
            callback(result)
        except Exception:
            log.warning("bubbles: run callback %r raised; ignored", callback, exc_info=True)


class WebhookNotifier:
    """POSTs a JSON summary (see :func:`run_summary`) of a run to ``url`` when it fails.

    Args:
        url: the endpoint (``${NAME}`` references are resolved as secrets, and masked in logs).
        on: ``"failure"`` (default), ``"success"`` or ``"always"``.
        timeout: seconds per attempt; failed posts are retried ``retries`` times with a short backoff.
        headers: extra HTTP headers (e.g. an authorization token).

    Example:
        >>> from bubbles import Workflow
        >>> wf = Workflow("nightly", hooks=[WebhookNotifier("https://hooks.example.com/etl")])  # doctest: +SKIP
    """

    def __init__(
        self, url: str, *, on: str = "failure", timeout: float = 10.0, retries: int = 2, headers: dict[str, str] | None = None
    ) -> None:
        if on not in ("failure", "success", "always"):
            from .._errors import ConfigError

            raise ConfigError(f"WebhookNotifier(on={on!r}): use 'failure', 'success' or 'always'.")
        self.url = url
        self.on = on
        self.timeout = timeout
        self.retries = retries
        self.headers = dict(headers or {})
        self.last_response: int | None = None

    def __repr__(self) -> str:
        return f"WebhookNotifier({mask(self.url)!r}, on={self.on!r})"

    def on_run_end(self, *, status: str, result: Any, **future_kwargs: Any) -> None:
        if self.on != "always" and (status == "succeeded") != (self.on == "success"):
            return
        import urllib.error
        import urllib.request

        from .._secrets import resolve

        body = json.dumps({"event": f"run_{status}", **run_summary(result)}, default=str).encode()
        url = resolve(self.url, purpose="webhook")
        headers = {"Content-Type": "application/json", "User-Agent": "bubbles", **self.headers}
        for attempt in range(self.retries + 1):
            request = urllib.request.Request(url, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    self.last_response = response.status
                    return
            except (urllib.error.URLError, OSError) as exc:
                if attempt == self.retries:
                    log.warning("bubbles: webhook %s failed for run %s: %s", mask(url), result.run_id, mask(str(exc)))
                    return
                time.sleep(0.5 * 2**attempt)

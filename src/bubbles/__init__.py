"""bubbles: extract, transform and load steps as plain Python functions, run as a workflow.

Example:
    >>> from bubbles import Workflow
    >>> wf = Workflow("hello")
    >>> greet = wf.add_task(lambda: "hello", name="greet")
    >>> wf.run().tasks["greet"].result
    'hello'
"""

from __future__ import annotations

from ._context import TaskContext, current_task, log_metric
from ._errors import (
    BubblesError,
    ConfigError,
    CycleError,
    DataError,
    DuplicateTaskError,
    GraphError,
    MissingDependencyError,
    NotPicklableError,
    RemoteTaskError,
    RunCancelled,
    RunFailed,
    SignatureError,
    TaskError,
    TaskTimeout,
    UnknownTaskError,
    UpstreamFailed,
)
from ._version import __version__
from .api.decorators import FlowFunction, TaskFunction, flow, task
from .api.pipeline import Pipeline
from .api.workflow import ParallelTask, TaskHandle, Workflow
from .data.http import (
    ApiError,
    ApiKey,
    ApiRequestError,
    ApiResponseError,
    ApiSource,
    BasicAuth,
    BearerToken,
    Breaker,
    CircuitOpenError,
    Cursor,
    Incremental,
    LinkHeader,
    NextLink,
    OffsetLimit,
    PageNumber,
    PaginationLoopError,
    RateLimit,
    Retry,
    read_api,
)
from .engine.result import RunResult, TaskRun, TaskState
from .engine.runner import Future
from .observe.alerts import Callbacks, WebhookNotifier
from .observe.metrics import MetricsCollector

bubbles = flow  # `from bubbles import bubbles` — the seeds' decorator name

__all__ = [
    "ApiError",
    "ApiKey",
    "ApiRequestError",
    "ApiResponseError",
    "ApiSource",
    "BasicAuth",
    "BearerToken",
    "Breaker",
    "BubblesError",
    "Callbacks",
    "CircuitOpenError",
    "ConfigError",
    "Cursor",
    "CycleError",
    "DataError",
    "DuplicateTaskError",
    "FlowFunction",
    "Future",
    "GraphError",
    "Incremental",
    "LinkHeader",
    "MetricsCollector",
    "MissingDependencyError",
    "NextLink",
    "NotPicklableError",
    "OffsetLimit",
    "PageNumber",
    "PaginationLoopError",
    "ParallelTask",
    "Pipeline",
    "RateLimit",
    "RemoteTaskError",
    "Retry",
    "RunCancelled",
    "RunFailed",
    "RunResult",
    "SignatureError",
    "TaskContext",
    "TaskError",
    "TaskFunction",
    "TaskHandle",
    "TaskRun",
    "TaskState",
    "TaskTimeout",
    "UnknownTaskError",
    "UpstreamFailed",
    "WebhookNotifier",
    "Workflow",
    "__version__",
    "bubbles",
    "current_task",
    "flow",
    "log_metric",
    "read_api",
    "task",
]

for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type) or callable(_obj):
        try:
            _obj.__module__ = "bubbles"
        except (AttributeError, TypeError):
            pass
del _name, _obj

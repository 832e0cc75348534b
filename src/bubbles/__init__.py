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
from .engine.result import RunResult, TaskRun, TaskState
from .engine.runner import Future
from .observe.metrics import MetricsCollector

bubbles = flow  # `from bubbles import bubbles` — the seeds' decorator name

__all__ = [
    "BubblesError",
    "ConfigError",
    "CycleError",
    "DataError",
    "DuplicateTaskError",
    "FlowFunction",
    "Future",
    "GraphError",
    "MetricsCollector",
    "MissingDependencyError",
    "NotPicklableError",
    "ParallelTask",
    "Pipeline",
    "RemoteTaskError",
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
    "Workflow",
    "__version__",
    "bubbles",
    "current_task",
    "flow",
    "log_metric",
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

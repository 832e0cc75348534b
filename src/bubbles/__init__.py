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
    PoolClosedError,
    RemoteTaskError,
    RunCancelled,
    RunFailed,
    SignatureError,
    TaskAborted,
    TaskError,
    TaskTimeout,
    UnknownTaskError,
    UpstreamFailed,
)
from ._version import __version__
from .api.decorators import FlowFunction, TaskFunction, flow, task
from .api.pipeline import Pipeline
from .api.workflow import ParallelTask, TaskHandle, Workflow
from .data.db import (
    Connection,
    ConnectionFailed,
    ConstraintViolation,
    DatabaseError,
    QueryError,
    SchemaDriftError,
    commit_watermarks,
    connect,
    read_batches,
    read_incremental,
    read_sql,
    read_table,
    read_tables,
    write_table,
)
from .data.deliver import DeliveryError, DeliveryReceipt, decrypt_file, deliver
from .data.files import (
    BadLineError,
    CsvFormat,
    WrittenFile,
    compact,
    read_avro,
    read_csv,
    read_json,
    read_orc,
    read_parquet,
    write_avro,
    write_csv,
    write_json,
    write_orc,
    write_parquet,
)
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
from .data.lazy import LazyTable, SourceChangedError
from .data.quality import (
    Check,
    Column,
    Contract,
    ContractError,
    Dedup,
    Freshness,
    QualityError,
    RowCount,
    Unique,
    Validation,
    check,
    load_contract,
    mask,
    produces,
    validate,
)
from .data.transform import sql
from .engine.result import RunResult, TaskRun, TaskState
from .engine.runner import Future
from .observe.alerts import Callbacks, WebhookNotifier
from .observe.metrics import MetricsCollector

# `from bubbles import bubbles` (seed 001) or `from pybubbles import bubbles`: the decorator, which
# also carries the package's public names (set from __all__ below: plain attributes, no
# __getattr__), so seed 002's `bubbles.Pipeline()` works after that import too
bubbles = flow

__all__ = [
    "ApiError",
    "ApiKey",
    "ApiRequestError",
    "ApiResponseError",
    "ApiSource",
    "BadLineError",
    "BasicAuth",
    "BearerToken",
    "Breaker",
    "BubblesError",
    "Callbacks",
    "Check",
    "CircuitOpenError",
    "Column",
    "ConfigError",
    "Connection",
    "ConnectionFailed",
    "ConstraintViolation",
    "Contract",
    "ContractError",
    "CsvFormat",
    "Cursor",
    "CycleError",
    "DataError",
    "DatabaseError",
    "Dedup",
    "DeliveryError",
    "DeliveryReceipt",
    "DuplicateTaskError",
    "FlowFunction",
    "Freshness",
    "Future",
    "GraphError",
    "Incremental",
    "LazyTable",
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
    "PoolClosedError",
    "QualityError",
    "QueryError",
    "RateLimit",
    "RemoteTaskError",
    "Retry",
    "RowCount",
    "RunCancelled",
    "RunFailed",
    "RunResult",
    "SchemaDriftError",
    "SignatureError",
    "SourceChangedError",
    "TaskAborted",
    "TaskContext",
    "TaskError",
    "TaskFunction",
    "TaskHandle",
    "TaskRun",
    "TaskState",
    "TaskTimeout",
    "Unique",
    "UnknownTaskError",
    "UpstreamFailed",
    "Validation",
    "WebhookNotifier",
    "Workflow",
    "WrittenFile",
    "__version__",
    "bubbles",
    "check",
    "commit_watermarks",
    "compact",
    "connect",
    "current_task",
    "decrypt_file",
    "deliver",
    "flow",
    "load_contract",
    "log_metric",
    "mask",
    "produces",
    "read_api",
    "read_avro",
    "read_batches",
    "read_csv",
    "read_incremental",
    "read_json",
    "read_orc",
    "read_parquet",
    "read_sql",
    "read_table",
    "read_tables",
    "sql",
    "task",
    "validate",
    "write_avro",
    "write_csv",
    "write_json",
    "write_orc",
    "write_parquet",
    "write_table",
]

for _name in __all__:
    _obj = globals()[_name]
    setattr(bubbles, _name, _obj)  # `bubbles.Pipeline` after `from bubbles import bubbles`
    if isinstance(_obj, type) or callable(_obj):
        try:
            _obj.__module__ = "bubbles"
        except (AttributeError, TypeError):
            pass
del _name, _obj

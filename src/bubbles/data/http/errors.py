"""Errors of the HTTP API reader.

```
BubblesError
├── ApiError                       a request or page of an API extraction failed
│   ├── ApiRequestError            the server refused or never answered (status, network, timeout)
│   ├── CircuitOpenError           the host's circuit breaker is open: failing fast, no request sent
│   └── ApiResponseError (+DataError)  the server answered, but not with what was expected
│       └── PaginationLoopError    the server sent the same cursor / link / page twice
```

Each carries ``source`` (the URL, secrets masked), ``page`` (1-based page of the extraction),
``status`` (HTTP status or ``None``) and ``reason``. ``transient`` is set per error: ``True`` for
network failures, 429 and 5xx (the workflow's task retry may help), ``False`` for the rest.
"""

from __future__ import annotations

from typing import Any

from ..._errors import BubblesError, DataError

__all__ = ["ApiError", "ApiRequestError", "ApiResponseError", "CircuitOpenError", "PaginationLoopError"]


class ApiError(BubblesError):
    """A request or page of an API extraction failed; fields ``source``, ``page``, ``status``, ``reason``."""

    source: str
    page: int | None
    status: int | None
    reason: str

    def __init__(self, message: str = "", **fields: Any) -> None:
        fields.setdefault("source", "")
        fields.setdefault("page", None)
        fields.setdefault("status", None)
        fields.setdefault("reason", "")
        super().__init__(message, **fields)


class ApiRequestError(ApiError):
    """The server answered with an error status, or did not answer (network error, timeout)."""


class CircuitOpenError(ApiError):
    """The circuit breaker for the host is open: the request was not sent."""

    transient = True


class ApiResponseError(ApiError, DataError):
    """The server answered 2xx, but the body is not what was expected (not JSON, wrong shape)."""

    transient = False


class PaginationLoopError(ApiResponseError):
    """Pagination would never end: the server returned a cursor, link or page it had returned before."""

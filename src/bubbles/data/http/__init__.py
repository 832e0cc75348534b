"""Read paginated JSON APIs into Arrow, with retries, a shared rate limit and a circuit breaker.

Example:
    >>> from bubbles.data.http import ApiSource, Cursor, BearerToken
    >>> api = ApiSource("https://api.example.com", auth=BearerToken("${TOKEN}"), rate_limit="5/s")
    >>> table = api.read("/orders", paginate=Cursor("next_cursor"), records_path="data")  # doctest: +SKIP

See ``docs/http.md``. Importing this package does not import httpx or pyarrow.
"""

from __future__ import annotations

from ._fetch import HttpStats, Retry
from .auth import ApiKey, Auth, BasicAuth, BearerToken
from .breaker import Breaker, CircuitBreaker
from .errors import ApiError, ApiRequestError, ApiResponseError, CircuitOpenError, PaginationLoopError
from .incremental import Incremental
from .paginate import Cursor, LinkHeader, NextLink, OffsetLimit, Page, PageNumber, Paginator
from .ratelimit import RateLimit, RateLimiter
from .source import ApiSource, read_api

__all__ = [
    "ApiError",
    "ApiKey",
    "ApiRequestError",
    "ApiResponseError",
    "ApiSource",
    "Auth",
    "BasicAuth",
    "BearerToken",
    "Breaker",
    "CircuitBreaker",
    "CircuitOpenError",
    "Cursor",
    "HttpStats",
    "Incremental",
    "LinkHeader",
    "NextLink",
    "OffsetLimit",
    "Page",
    "PageNumber",
    "Paginator",
    "PaginationLoopError",
    "RateLimit",
    "RateLimiter",
    "Retry",
    "read_api",
]

"""One page, fetched resiliently: circuit breaker, rate limit, timeout, retries with backoff.

The order around each attempt is fixed, and each step counts in :class:`HttpStats`:

1. the host's breaker must allow the request (else :class:`CircuitOpenError`, not retried);
2. the host's rate limiter hands out a slot (a *throttled wait* if the caller had to sleep);
3. the request goes out with the source's timeout;
4. a connection error, timeout, truncated body, 429 or 5xx is *transient*: tenacity retries it
   after ``Retry-After`` when the server sent one, else after exponential backoff with jitter;
   connection errors, timeouts and 5xx also count as breaker failures;
5. any other 4xx, a body that is not JSON, or records not where ``records_path`` says are
   errors at once, naming the URL, the page and the reason.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from ..._context import log_metric
from ..._errors import ConfigError
from ..._secrets import mask
from .breaker import CircuitBreaker
from .errors import ApiRequestError, ApiResponseError, CircuitOpenError
from .flatten import find_path, split_path
from .paginate import Page, PageRequest
from .ratelimit import RateLimiter

if TYPE_CHECKING:
    import httpx
    import tenacity

__all__ = ["HttpStats", "PageFetcher", "Retry"]

log = logging.getLogger("bubbles.http")


@dataclass(frozen=True)
class Retry:
    """How often and how patiently to retry a transient failure of one request.

    Args:
        attempts: tries in all, the first included (1 = no retry).
        backoff: first backoff in seconds; it doubles each retry, plus up to ``backoff`` of jitter.
        max_backoff: ceiling of one backoff.
        max_retry_after: longest ``Retry-After`` the source accepts to wait; a longer one fails.
        statuses: HTTP statuses treated as transient.

    Example:
        >>> Retry(attempts=8, backoff=1.0, max_backoff=60)
        Retry(attempts=8, backoff=1.0, max_backoff=60, max_retry_after=120.0, statuses=(429, 500, 502, 503, 504))
    """

    attempts: int = 5
    backoff: float = 0.5
    max_backoff: float = 30.0
    max_retry_after: float = 120.0
    statuses: tuple[int, ...] = (429, 500, 502, 503, 504)

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.backoff < 0 or self.max_backoff < 0:
            raise ConfigError(f"{self!r}: attempts must be >= 1 and backoff times >= 0.")


@dataclass
class HttpStats:
    """Counters of one extraction, reported as task metrics ``http_<name>``."""

    requests: int = 0
    retries: int = 0
    retry_wait_seconds: float = 0.0
    throttled_waits: int = 0
    throttled_seconds: float = 0.0
    breaker_trips: int = 0
    breaker_rejections: int = 0
    pages: int = 0  # pages delivered (not speculative fetches past the end)
    records: int = 0
    bytes: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **amounts: float) -> None:
        with self._lock:
            for name, amount in amounts.items():
                setattr(self, name, getattr(self, name) + amount)

    def as_dict(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}

    def report(self) -> None:
        """Add the counters to the running task's metrics (no-op outside a task)."""
        for name, value in self.as_dict().items():
            log_metric(f"http_{name}", value, add=True)


class Abandoned(Exception):
    """The extraction this fetch belongs to has already failed or stopped; the page is not needed."""


class _Transient(Exception):
    """A failure worth retrying; turned into ApiRequestError when the retries run out."""

    def __init__(self, reason: str, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.retry_after = retry_after


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header: a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def _json_mime(content_type: str) -> bool:
    mime = content_type.split(";")[0].strip().lower()
    return mime in ("application/json", "text/json") or mime.endswith("+json")


def _preview(content: bytes, limit: int = 80) -> str:
    """The start of a body for an error message: masked whole *before* it is cut (a cut secret still leaks)."""
    text = mask(content[: limit * 64].decode("utf-8", "replace"))
    return repr(text[:limit] + ("..." if len(text) > limit or len(content) > limit * 64 else ""))


class PageFetcher:
    """Fetches pages for one extraction; safe to call from several threads at once."""

    def __init__(
        self,
        client: httpx.Client,
        *,
        auth_headers: dict[str, str],
        auth_params: dict[str, str],
        retry: Retry,
        timeout: float,
        limiter: RateLimiter | None,
        breaker: CircuitBreaker | None,
        records_path: str | None,
        check_content_type: bool,
        stats: HttpStats,
    ) -> None:
        import tenacity

        self.client = client
        self.auth_headers = auth_headers
        self.auth_params = auth_params
        self.retry = retry
        self.timeout = timeout
        self.limiter = limiter
        self.breaker = breaker
        self.records_path = records_path
        self.check_content_type = check_content_type
        self.stats = stats
        # Set when the extraction stops (a page failed, or the consumer stopped reading): fetches
        # still retrying on other threads give up at their next step instead of running out
        # their retries (possibly minutes of Retry-After) for pages nobody will read.
        self.stop = threading.Event()
        # backoff, 2*backoff, 4*backoff ... up to max_backoff, plus up to `backoff` of jitter so that
        # clients failing together do not retry together. (Spelled with the basic waits, which every
        # tenacity 8.x/9.x has; wait_exponential_jitter renamed its arguments.)
        self._backoff = tenacity.wait_exponential(multiplier=retry.backoff, max=retry.max_backoff) + tenacity.wait_random(
            0, retry.backoff
        )
        # One Retrying for every page and thread: tenacity keeps each call's state in a thread-local.
        self._retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(retry.attempts),
            wait=self._wait,
            retry=tenacity.retry_if_exception_type(_Transient),
            before_sleep=self._before_sleep,
            reraise=True,
            sleep=self._sleep,
        )

    # -- the retry loop -------------------------------------------------------------------------
    def fetch(self, request: PageRequest) -> Page:
        """Fetch and parse one page, retrying transient failures; raises an ApiError subclass."""
        url = self._url(request)
        shown = mask(str(url))
        try:
            return self._retrying(self._attempt, request, url, shown)
        except _Transient as exc:
            page_no = request.index + 1
            raise ApiRequestError(
                f"GET {shown} (page {page_no}) failed after {self.retry.attempts} attempt(s): {exc.reason}. "
                "The server may be down or overloaded; retry the task later (retries= on the task), or give the "
                "source more attempts (retry=Retry(attempts=...)).",
                source=shown,
                page=page_no,
                status=exc.status,
                reason=exc.reason,
                transient=True,
            ) from exc

    def _before_sleep(self, state: tenacity.RetryCallState) -> None:
        request, _, shown = state.args
        exc = state.outcome.exception() if state.outcome else None
        wait = float(getattr(state.next_action, "sleep", 0.0) or 0.0)
        self.stats.add(retries=1, retry_wait_seconds=wait)
        log.warning(
            "GET %s (page %d) attempt %d failed: %s; retrying in %.2f s",
            shown,
            request.index + 1,
            state.attempt_number,
            exc,
            wait,
        )

    def _sleep(self, seconds: float) -> None:
        if self.stop.wait(seconds):
            raise Abandoned()

    def _wait(self, state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Transient) and exc.retry_after is not None:
            return exc.retry_after  # the server said when; honour it rather than guess
        return float(self._backoff(state))

    def _url(self, request: PageRequest) -> httpx.URL:
        import httpx

        params = {key: value for key, value in {**request.params, **self.auth_params}.items() if value is not None}
        # copy_merge_params replaces a key already in the URL: a next-link's own page parameter is never doubled.
        return httpx.URL(request.url).copy_merge_params(params) if params else httpx.URL(request.url)

    # -- one attempt ----------------------------------------------------------------------------
    def _attempt(self, request: PageRequest, url: httpx.URL, shown: str) -> Page:
        import httpx

        page_no = request.index + 1
        where = dict(source=shown, page=page_no)
        if self.stop.is_set():
            raise Abandoned()
        if self.breaker is not None:
            wait = self.breaker.allow()
            if wait is not None:
                self.stats.add(breaker_rejections=1)
                raise CircuitOpenError(
                    f"GET {shown} (page {page_no}) not sent: the circuit breaker for {self.breaker.name} is open after "
                    f"{self.breaker.failures} consecutive failures; it lets a probe through in {wait:.1f} s. "
                    "Check the server, then run the task again.",
                    **where,
                    reason="circuit breaker open",
                    transient=True,
                )
        if self.limiter is not None:
            waited = self.limiter.acquire()
            if waited > 0:
                self.stats.add(throttled_waits=1, throttled_seconds=waited)
        self.stats.add(requests=1)
        try:
            response = self.client.get(url, headers=self.auth_headers)
        except httpx.TimeoutException as exc:
            self._failed()
            raise _Transient(f"no response within the {self.timeout:g} s timeout ({type(exc).__name__})") from None
        except httpx.TransportError as exc:  # refused, dropped connection, truncated body
            self._failed()
            raise _Transient(f"connection error: {type(exc).__name__}: {mask(str(exc)) or 'no details'}") from None
        except BaseException:  # not the server's fault (a bad URL, Ctrl-C): no verdict, free the probe slot
            if self.breaker is not None:
                self.breaker.release()
            raise

        status = response.status_code
        if status in self.retry.statuses:
            after = _retry_after(response.headers.get("retry-after"))
            if status == 429:
                if self.breaker is not None:
                    self.breaker.release()
                if after is not None and self.limiter is not None:
                    self.limiter.defer(after)  # every task on this host slows down, not only this one
            else:
                self._failed()
            reason = f"HTTP {status} {response.reason_phrase}" + (f" (Retry-After: {after:g} s)" if after is not None else "")
            if after is not None and after > self.retry.max_retry_after:
                raise ApiRequestError(
                    f"GET {shown} (page {page_no}): {reason}, longer than max_retry_after={self.retry.max_retry_after:g} s. "
                    "Run the task later, or raise Retry(max_retry_after=...).",
                    **where,
                    status=status,
                    reason=reason,
                    transient=True,
                )
            raise _Transient(reason, status=status, retry_after=after)
        if self.breaker is not None:
            self.breaker.success()  # the server answered: it is alive, whatever it said
        if status >= 400:
            hint = {
                401: "Check the credentials (auth=...) and that the secret is set.",
                403: "The credentials lack permission for this resource.",
                404: "Check the URL and path.",
            }.get(status, "Check the request parameters.")
            reason = f"HTTP {status} {response.reason_phrase}"
            raise ApiRequestError(
                f"GET {shown} (page {page_no}) failed: {reason}; body {_preview(response.content)}. {hint}",
                **where,
                status=status,
                reason=reason,
                transient=False,
            )
        return self._parse(request, response, shown)

    def _failed(self) -> None:
        if self.breaker is not None and self.breaker.failure():
            self.stats.add(breaker_trips=1)

    # -- the body -------------------------------------------------------------------------------
    def _parse(self, request: PageRequest, response: httpx.Response, shown: str) -> Page:
        import hashlib
        import json

        page_no = request.index + 1
        content = response.content
        where = dict(source=shown, page=page_no, status=response.status_code)
        content_type = response.headers.get("content-type", "")
        if self.check_content_type and content_type and not _json_mime(content_type):
            reason = f"Content-Type {content_type!r} is not JSON"
            raise ApiResponseError(
                f"GET {shown} (page {page_no}): expected a JSON body, found Content-Type {content_type!r}, "
                f"body {_preview(content)}. Check the URL (an HTML page is often a login or error page), "
                "or pass check_content_type=False if the server mislabels JSON.",
                **where,
                reason=reason,
            )
        try:
            body = json.loads(content)
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
            text = content.decode("utf-8", "replace").strip()
            pos = getattr(exc, "pos", 0)
            msg = getattr(exc, "msg", str(exc))
            truncated = text[:1] in ("{", "[") and (pos >= len(text) - 1 or msg.startswith("Unterminated"))
            if truncated:  # cut off in transit: another try will likely get all of it
                raise _Transient(f"truncated JSON body ({len(content)} bytes, ends {_preview(content[-40:])})") from None
            reason = f"body is not JSON ({msg} at char {pos})"
            raise ApiResponseError(
                f"GET {shown} (page {page_no}): {reason}; body {_preview(content)}. "
                "Check the URL and that the endpoint returns JSON.",
                **where,
                reason=reason,
            ) from None
        records = self._records(body, shown, page_no, response.status_code)
        digest = hashlib.blake2b(content, digest_size=16).hexdigest()
        links = {str(rel): info["url"] for rel, info in response.links.items() if rel and "url" in info}
        self.stats.add(bytes=len(content))
        return Page(request, body, records, dict(response.headers), links, digest, len(content))

    def _records(self, body: Any, shown: str, page_no: int, status: int) -> list[dict[str, Any]]:
        import json

        path = self.records_path
        where = dict(source=shown, page=page_no, status=status)
        at = f"at {path!r}" if split_path(path) else "as the whole body (records_path=None)"
        try:
            found = find_path(body, path)
        except KeyError as exc:
            keys = sorted(body)[:10] if isinstance(body, dict) else None
            reason = f"no {exc.args[0]!r} on the way to records_path {path!r}"
            raise ApiResponseError(
                f"GET {shown} (page {page_no}): {reason}; the body is {type(body).__name__}"
                + (f" with keys {keys}" if keys is not None else "")
                + ". Fix records_path to where the list of records is.",
                **where,
                reason=reason,
            ) from None
        if found is None:
            return []  # some APIs send "items": null on an empty page
        if isinstance(found, dict) and not split_path(path):
            keys = sorted(found)[:10]
            reason = f"expected a list of records {at}, found an object with keys {keys}"
            raise ApiResponseError(
                f"GET {shown} (page {page_no}): {reason}. Set records_path= to the key that holds the list.",
                **where,
                reason=reason,
            )
        if not isinstance(found, list):
            reason = f"expected a list of records {at}, found {type(found).__name__} {_preview(json.dumps(found).encode())}"
            raise ApiResponseError(f"GET {shown} (page {page_no}): {reason}. Fix records_path.", **where, reason=reason)
        for i, item in enumerate(found):
            if not isinstance(item, dict):
                reason = f"record {i} {at} is {type(item).__name__} {item!r:.60}, expected a JSON object"
                raise ApiResponseError(
                    f"GET {shown} (page {page_no}): {reason}. Point records_path at a list of objects.", **where, reason=reason
                )
        return found

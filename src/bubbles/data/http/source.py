"""Read a paginated JSON API into Arrow: :func:`read_api` for one URL, :class:`ApiSource` for a service.

A read walks the pages (see :mod:`.paginate`), takes the records at ``records_path`` from each
body, optionally flattens nested objects, and turns each page into an Arrow table. Every request
goes through the resilience steps of :mod:`._fetch`: the host's circuit breaker, the host's rate
limiter (one per process, shared by all sources, threads and tasks calling that host), a timeout,
and retries with backoff that honour ``Retry-After``.

All or nothing
    :meth:`ApiSource.read` and :func:`read_api` fetch every page before they return one table, so
    a failure on page 7 leaves nothing half-loaded downstream. :meth:`ApiSource.read_batches`
    streams one batch per page for large extractions; the generator raises on the failing page,
    so a streaming load must write to a staging table (or temp file) and swap it in only once the
    generator is exhausted. The incremental watermark is proposed only after the last page.

Concurrency
    With ``concurrency=N`` (and an indexed pagination style: page number or offset) a source
    fetches up to N pages at once on a thread pool; pages are still returned in order. Tasks of
    the threads executor that read the same host share its rate limiter and breaker.

Schemas
    Without ``schema=`` each page's types are inferred and :meth:`read` unifies them across pages
    (a column missing from some pages is null there; int and float widen to float); a column
    whose types cannot be unified (an int on page 1, a string on page 4) is an error naming both
    pages. With ``schema=`` each page is converted to it (fields not in it are dropped) and every
    streamed batch has that schema.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ... import _naming as naming
from ..._errors import ConfigError
from ..._secrets import mask
from .. import lineage
from ._fetch import HttpStats, PageFetcher, Retry
from .auth import Auth
from .breaker import Breaker, CircuitBreaker, breaker_for
from .errors import ApiResponseError, PaginationLoopError
from .flatten import flatten_record
from .incremental import Incremental
from .paginate import Page, PageRequest, Paginator, SinglePage, _Loop
from .ratelimit import RateLimit, RateLimiter, limiter_for

if TYPE_CHECKING:
    from concurrent.futures import Future

    import httpx
    import pyarrow as pa

__all__ = ["ApiSource", "read_api"]

log = logging.getLogger("bubbles.http")


def _host(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _without_query(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


class ApiSource:
    """A JSON API service: base URL, auth and resilience settings, shared by all its endpoints.

    Args:
        base_url: prefix of every endpoint, e.g. ``"https://api.example.com/v2"``.
        auth: :class:`BearerToken`, :class:`BasicAuth`, :class:`ApiKey` (secrets as ``${NAME}``).
        headers: extra headers on every request.
        params: query parameters on every request.
        timeout: seconds to connect, and to wait for each read of the response.
        retry: :class:`Retry` policy, or a number of attempts; ``None`` or ``1`` for no retry.
        rate_limit: ``"10/s"``, ``"600/min"``, a number per second or a :class:`RateLimit`;
            shared with every other source in the process calling the same host at that rate.
        breaker: :class:`Breaker` settings (shared per host), or ``None`` for no breaker.
        concurrency: pages fetched at once, for page-number and offset pagination.
        check_content_type: refuse a 2xx body whose Content-Type is not JSON.

    Example:
        >>> from bubbles.data.http import BearerToken, Cursor, Retry
        >>> api = ApiSource("https://api.example.com/v2", auth=BearerToken("${EXAMPLE_TOKEN}"),
        ...                 rate_limit="5/s", retry=Retry(attempts=6))
        >>> orders = api.read("/orders", paginate=Cursor("meta.next"), records_path="data")  # doctest: +SKIP
    """

    def __init__(
        self,
        base_url: str = "",
        *,
        auth: Auth | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, Any] | None = None,
        timeout: float = 30.0,
        retry: Retry | int | None = None,
        rate_limit: RateLimit | str | float | None = None,
        breaker: Breaker | None = Breaker(),
        concurrency: int = 1,
        check_content_type: bool = True,
    ) -> None:
        if concurrency < 1:
            raise ConfigError(f"ApiSource(concurrency={concurrency}) must be at least 1.")
        if not timeout > 0:
            raise ConfigError(f"ApiSource(timeout={timeout}) must be a positive number of seconds.")
        self.base_url = base_url
        self.auth = auth
        self.headers = dict(headers or {})
        self.params = dict(params or {})
        self.timeout = float(timeout)
        self.retry = retry if isinstance(retry, Retry) else Retry() if retry is None else Retry(attempts=int(retry))
        self.rate_limit = RateLimit.parse(rate_limit) if rate_limit is not None else None
        self.breaker = breaker
        self.concurrency = concurrency
        self.check_content_type = check_content_type
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    # -- lifecycle ------------------------------------------------------------------------------
    def _http(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                try:
                    import httpx
                except ImportError:
                    from ..._errors import MissingDependencyError

                    raise MissingDependencyError("Reading HTTP APIs", "httpx", "http") from None
                from ..._secrets import mask_loggers

                mask_loggers("httpx", "httpcore")  # they log request URLs, which may carry an API key
                pool = max(self.concurrency, 10)
                self._client = httpx.Client(
                    timeout=httpx.Timeout(self.timeout),
                    limits=httpx.Limits(max_connections=pool, max_keepalive_connections=pool),
                    headers={"Accept": "application/json", **self.headers},
                    follow_redirects=True,
                )
            return self._client

    def close(self) -> None:
        """Close the connection pool (a later read opens a new one)."""
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def __enter__(self) -> ApiSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        # A source dropped without close() must not leak its sockets (or their ResourceWarnings).
        client = self.__dict__.get("_client")
        if client is not None:
            try:
                client.close()
            except Exception:  # interpreter shutdown: nothing left to tidy
                pass

    def __getstate__(self) -> dict[str, Any]:
        # Ship settings to a worker process, not the connection pool or the lock.
        state = self.__dict__.copy()
        state["_client"] = None
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"ApiSource({mask(self.base_url)!r}, rate_limit={self.rate_limit}, breaker={self.breaker}, "
            f"concurrency={self.concurrency})"
        )

    # -- what a read shares with other reads ----------------------------------------------------
    def url_for(self, path: str = "") -> str:
        """``base_url`` joined with ``path`` (an absolute ``path`` is used as it is)."""
        if "://" in path or not self.base_url:
            return path
        return self.base_url.rstrip("/") + "/" + path.lstrip("/") if path else self.base_url

    def limiter(self, url: str) -> RateLimiter | None:
        """The process-wide rate limiter this source uses for ``url``'s host."""
        return limiter_for(_host(url), self.rate_limit) if self.rate_limit else None

    def circuit(self, url: str) -> CircuitBreaker | None:
        """The process-wide circuit breaker this source uses for ``url``'s host."""
        return breaker_for(_host(url), self.breaker) if self.breaker else None

    # -- reading --------------------------------------------------------------------------------
    def pages(
        self,
        path: str = "",
        *,
        params: dict[str, Any] | None = None,
        paginate: Paginator | None = None,
        records_path: str | None = None,
        incremental: Incremental | None = None,
        max_pages: int | None = None,
    ) -> Iterator[Page]:
        """Every page of ``path`` in order, with its parsed body and records (the other reads build on this).

        Example:
            >>> for page in api.pages("/items", paginate=PageNumber()):  # doctest: +SKIP
            ...     print(page.number, len(page.records))
        """
        url = self.url_for(path)
        if not url.startswith(("http://", "https://")):
            raise ConfigError(
                f"API URL {mask(url)!r} must start with http:// or https:// (base_url={mask(self.base_url)!r}, path={path!r})."
            )
        pager = copy.deepcopy(paginate) if paginate is not None else SinglePage()
        pager.reset()
        query = {**self.params, **(params or {})}
        mark_name = mark = None
        if incremental is not None:
            mark_name = incremental.name or f"http:{_without_query(url)}"
            mark = incremental.watermark(mark_name)
            if mark is not None:
                query[incremental.param] = incremental.as_param(mark)
        auth_headers = self.auth.headers() if self.auth else {}
        auth_params = self.auth.params() if self.auth else {}
        stats = HttpStats()
        fetcher = PageFetcher(
            self._http(),
            auth_headers=auth_headers,
            auth_params=auth_params,
            retry=self.retry,
            timeout=self.timeout,
            limiter=self.limiter(url),
            breaker=self.circuit(url),
            records_path=records_path,
            check_content_type=self.check_content_type,
            stats=stats,
        )
        shown = mask(url)
        started = time.perf_counter()
        breaker = fetcher.breaker
        try:
            first = pager.first(url, query)
            if pager.indexed and self.concurrency > 1:
                walk = self._concurrent(pager, first, fetcher, max_pages)
            else:
                walk = self._sequential(pager, first, fetcher, max_pages)
            last: Page | None = None
            for page in walk:
                stats.add(pages=1, records=len(page.records))
                if incremental is not None:
                    mark = incremental.highest(page.records, mark)
                last = page
                yield page
            cut_short = max_pages is not None and last is not None and last.number >= max_pages and _continues(pager, last)
            if incremental is not None and mark_name is not None and mark is not None:
                if cut_short:
                    # Unread pages may hold older changes than the newest one read (APIs often list
                    # newest first): advancing would skip them for good.
                    log.warning("%s: read stopped at max_pages=%d; the watermark %r is not advanced", shown, max_pages, mark_name)
                else:
                    incremental.propose(mark_name, mark)
            lineage.read(None, *naming.api_dataset(url), kind="api", format="json", rows=stats.records)
            log.info(
                "read %d records in %d pages from %s in %.2f s (%d requests, %d retries, %d throttled waits)",
                stats.records,
                stats.pages,
                shown,
                time.perf_counter() - started,
                stats.requests,
                stats.retries,
                stats.throttled_waits,
            )
        finally:
            stats.report()
            if breaker is not None:
                from ..._context import log_metric

                log_metric("http_breaker_open", 1.0 if breaker.state != "closed" else 0.0)

    def _loop_error(self, exc: _Loop, page: Page) -> PaginationLoopError:
        shown = mask(str(page.request.url))
        return PaginationLoopError(
            f"Pagination of {shown} would never end: after page {page.number}, {exc}. "
            "Check the paginator settings (path/param), or report the API's behaviour; nothing was returned.",
            source=shown,
            page=page.number,
            status=None,
            reason=str(exc),
        )

    def _sequential(
        self, pager: Paginator, request: PageRequest | None, fetcher: PageFetcher, max_pages: int | None
    ) -> Iterator[Page]:
        previous: Page | None = None
        while request is not None:
            page = fetcher.fetch(request)
            if pager.indexed and previous is not None:
                self._check_repeat(page, previous)
            yield page
            if max_pages is not None and page.number >= max_pages:
                return
            try:
                request = pager.next(page)
            except _Loop as exc:
                raise self._loop_error(exc, page) from None
            previous = page

    def _check_repeat(self, page: Page, previous: Page) -> None:
        if page.records and page.digest == previous.digest:
            raise self._loop_error(
                _Loop(
                    f"page {page.number} has the same body as page {previous.number}: "
                    "the server seems to ignore the page parameter"
                ),
                previous,
            )

    def _concurrent(
        self, pager: Paginator, first_request: PageRequest, fetcher: PageFetcher, max_pages: int | None
    ) -> Iterator[Page]:
        first = fetcher.fetch(first_request)
        yield first
        if pager.next(first) is None or max_pages == 1:
            return
        end = pager.page_count(first)  # exclusive page index; None: unknown, fetch ahead speculatively
        if max_pages is not None:
            end = min(end, max_pages) if end is not None else max_pages
        url, params = first_request.url, {k: v for k, v in first_request.params.items()}
        from concurrent.futures import ThreadPoolExecutor

        pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="bubbles-http")
        pending: dict[int, Future[Page]] = {}
        submitted, expect, previous = 1, 1, first
        try:
            while True:
                while len(pending) < self.concurrency and (end is None or submitted < end):
                    pending[submitted] = pool.submit(fetcher.fetch, pager.request_for(submitted, url, params))
                    submitted += 1
                if expect not in pending:
                    return
                page = pending.pop(expect).result()
                self._check_repeat(page, previous)
                yield page
                if pager.is_last(page):
                    return
                previous, expect = page, expect + 1
        finally:
            # Pages past the end, or after a failure, are not needed: drop those not yet sent and
            # make those retrying give up, then wait for the requests in flight (bounded by the timeout).
            fetcher.stop.set()
            pool.shutdown(wait=True, cancel_futures=True)

    def read_batches(
        self,
        path: str = "",
        *,
        params: dict[str, Any] | None = None,
        paginate: Paginator | None = None,
        records_path: str | None = None,
        flatten: bool = False,
        sep: str = "__",
        schema: pa.Schema | None = None,
        incremental: Incremental | None = None,
        max_pages: int | None = None,
    ) -> Iterator[pa.RecordBatch]:
        """Stream one record batch per page (empty pages are skipped).

        Raises on the failing page after yielding the earlier ones: load into a staging table and
        swap it in only after the loop ends (see the module docs). Without ``schema=``, each batch
        has the types inferred from its own page.

        Example:
            >>> for batch in api.read_batches("/events", paginate=Cursor("next"), records_path="data"):  # doctest: +SKIP
            ...     staging.write(batch)
        """
        for page in self.pages(
            path, params=params, paginate=paginate, records_path=records_path, incremental=incremental, max_pages=max_pages
        ):
            table = _page_table(page, flatten, sep, schema)
            if table is not None:
                yield from table.combine_chunks().to_batches()

    def read(
        self,
        path: str = "",
        *,
        params: dict[str, Any] | None = None,
        paginate: Paginator | None = None,
        records_path: str | None = None,
        flatten: bool = False,
        sep: str = "__",
        schema: pa.Schema | None = None,
        incremental: Incremental | None = None,
        max_pages: int | None = None,
    ) -> pa.Table:
        """Every record of every page as one Arrow table; nothing is returned unless all pages were read.

        Args:
            path: endpoint, joined to ``base_url`` (or an absolute URL).
            params: query parameters for this endpoint.
            paginate: :class:`PageNumber`, :class:`OffsetLimit`, :class:`Cursor`, :class:`NextLink`,
                :class:`LinkHeader`, or ``None`` for a single page.
            records_path: dotted path to the list of records in the body (``None``: the body is the list).
            flatten: turn nested objects into columns ``parent__child``; else they stay structs.
            sep: separator of flattened names.
            schema: declared Arrow schema; else inferred and unified across pages.
            incremental: only records changed since the committed watermark (see :class:`Incremental`).
            max_pages: stop after this many pages (a sample, or a bound on a huge endpoint).

        Example:
            >>> api = ApiSource("https://api.example.com")
            >>> table = api.read("/users", paginate=PageNumber(size=100, size_param="per_page"), flatten=True)  # doctest: +SKIP
        """
        import pyarrow as pa

        tables: list[tuple[int, pa.Table]] = []
        for page in self.pages(
            path, params=params, paginate=paginate, records_path=records_path, incremental=incremental, max_pages=max_pages
        ):
            table = _page_table(page, flatten, sep, schema)
            if table is not None:
                tables.append((page.number, table))
        if not tables:
            return schema.empty_table() if schema is not None else pa.table({})
        if schema is None:
            _unify([(n, t.schema) for n, t in tables], mask(self.url_for(path)))
        result = pa.concat_tables([t for _, t in tables], promote_options="permissive")
        return lineage.came_from(result, *naming.api_dataset(self.url_for(path)))


def _continues(pager: Paginator, page: Page) -> bool:
    """Whether pagination would have gone on after ``page``."""
    try:
        return pager.next(page) is not None
    except _Loop:
        return False


def _page_table(page: Page, flatten: bool, sep: str, schema: pa.Schema | None) -> pa.Table | None:
    import pyarrow as pa

    if not page.records:
        return None
    rows = [flatten_record(r, sep) for r in page.records] if flatten else page.records
    try:
        return pa.Table.from_pylist(rows, schema=schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        column, detail = _bad_column(rows, schema, exc)
        shown = mask(str(page.request.url))
        declared = schema is not None and column in schema.names
        expected = f"declared type {schema.field(column).type}" if declared else "one type per column"  # type: ignore[union-attr]
        raise ApiResponseError(
            f"Page {page.number} of {shown}: column {column!r} cannot be converted to Arrow ({expected}): {detail}. "
            "Declare schema= with the right type, or fix the data at the source.",
            source=shown,
            page=page.number,
            column=column,
            reason=detail,
        ) from None


def _bad_column(rows: list[dict[str, Any]], schema: pa.Schema | None, exc: Exception) -> tuple[str, str]:
    """Find which column of a page fails to convert, for the error message."""
    import pyarrow as pa

    names = schema.names if schema is not None else list(dict.fromkeys(k for r in rows for k in r))
    for name in names:
        try:
            pa.array([r.get(name) for r in rows], type=schema.field(name).type if schema is not None else None)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as col_exc:
            return name, str(col_exc)
    return "?", str(exc)


def _unify(schemas: list[tuple[int, pa.Schema]], shown: str) -> None:
    """Check that the pages' inferred schemas unify; name the column and pages that do not."""
    import pyarrow as pa

    seen: dict[str, tuple[int, pa.DataType]] = {}  # column -> (page first seen with a type, type so far)
    for number, schema in schemas:
        for fld in schema:
            known = seen.get(fld.name)
            if known is None or pa.types.is_null(known[1]):
                seen[fld.name] = (number, fld.type)
                continue
            try:
                before = pa.schema([pa.field(fld.name, known[1])])
                merged = pa.unify_schemas([before, pa.schema([fld])], promote_options="permissive")
            except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
                raise ApiResponseError(
                    f"The schema of {shown} changes between pages: column {fld.name!r} is {known[1]} on page {known[0]} "
                    f"but {fld.type} on page {number} ({exc}). Declare schema= with the type to use.",
                    source=shown,
                    page=number,
                    column=fld.name,
                    reason=f"column {fld.name!r} changed type",
                ) from None
            widened = merged.field(fld.name).type
            seen[fld.name] = (known[0] if widened == known[1] else number, widened)


def read_api(
    url: str,
    *,
    params: dict[str, Any] | None = None,
    paginate: Paginator | None = None,
    records_path: str | None = None,
    flatten: bool = False,
    sep: str = "__",
    schema: pa.Schema | None = None,
    incremental: Incremental | None = None,
    max_pages: int | None = None,
    **source: Any,
) -> pa.Table:
    """Read every page of a JSON API endpoint into one Arrow table (all pages, or an error).

    Takes the arguments of :meth:`ApiSource.read`, and those of :class:`ApiSource` (``auth``,
    ``timeout``, ``retry``, ``rate_limit``, ``breaker``, ``concurrency``, ...) as keywords.

    Example:
        >>> from bubbles.data.http import read_api, PageNumber, BearerToken
        >>> users = read_api(
        ...     "https://api.example.com/users",
        ...     paginate=PageNumber(size=100, size_param="per_page"),
        ...     records_path="data", auth=BearerToken("${EXAMPLE_TOKEN}"), rate_limit="10/s",
        ... )  # doctest: +SKIP
    """
    with ApiSource(**source) as api:
        return api.read(
            url,
            params=params,
            paginate=paginate,
            records_path=records_path,
            flatten=flatten,
            sep=sep,
            schema=schema,
            incremental=incremental,
            max_pages=max_pages,
        )

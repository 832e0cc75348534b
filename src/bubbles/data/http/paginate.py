"""How an API splits its results into pages, and how to ask for the next one.

A paginator turns the page just read into the request for the next (or ``None`` at the end):

========================  =================================================  ==========
style                      next page from                                     concurrent
========================  =================================================  ==========
:class:`PageNumber`        ``?page=N`` (+ optional page size / total)         yes
:class:`OffsetLimit`       ``?offset=N&limit=M`` (+ optional total)           yes
:class:`Cursor`            a token in the body, sent back as a parameter      no
:class:`NextLink`          a URL in the body (``"next": "https://..."``)      no
:class:`LinkHeader`        the ``Link: <...>; rel="next"`` response header    no
========================  =================================================  ==========

The *indexed* styles (page number, offset) name every page up front, so a source with
``concurrency > 1`` fetches several at once: all remaining pages when the first page tells the
total, otherwise a sliding window of speculative requests that stops at the first short or
empty page (at most ``concurrency - 1`` requests past the end are wasted). The token and link
styles only learn the next page from the current one and always go one at a time.

Every style refuses to loop: a cursor or link seen before, or a page whose body is byte for byte
the previous page's (a server ignoring the page parameter), raises
:class:`~bubbles.data.http.errors.PaginationLoopError`.
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass, field
from typing import Any

from ..._errors import ConfigError
from .flatten import find_path

__all__ = ["Cursor", "LinkHeader", "NextLink", "OffsetLimit", "Page", "PageNumber", "PageRequest", "Paginator", "SinglePage"]


@dataclass
class PageRequest:
    """One page to fetch: the URL and the query parameters to set on it."""

    url: str
    params: dict[str, Any] = field(default_factory=dict)
    index: int = 0  # 0-based position of the page in the extraction


@dataclass
class Page:
    """A page as read: its request, parsed body, records and the response's headers and links."""

    request: PageRequest
    body: Any
    records: list[dict[str, Any]]
    headers: dict[str, str]
    links: dict[str, str]
    digest: str
    size: int  # bytes of the body

    @property
    def number(self) -> int:
        """1-based page number, as errors and logs show it."""
        return self.request.index + 1


class _Loop(Exception):
    """Raised by a paginator when pagination would never end; the reader adds URL and page."""


class Paginator(abc.ABC):
    """Base class. Subclasses implement :meth:`next`; indexed ones also :meth:`request_for`."""

    indexed = False

    def first(self, url: str, params: dict[str, Any]) -> PageRequest:
        """The request for the first page."""
        return PageRequest(url, dict(params), 0)

    @abc.abstractmethod
    def next(self, page: Page) -> PageRequest | None:
        """The request for the page after ``page``, or ``None`` when ``page`` was the last."""

    def reset(self) -> None:  # noqa: B027 -- optional hook: most styles keep no state
        """Forget what an earlier extraction saw (called at the start of each one)."""

    # Indexed styles only.
    def request_for(self, index: int, url: str, params: dict[str, Any]) -> PageRequest:
        raise TypeError(f"{type(self).__name__} pages cannot be requested by index (indexed = False)")

    def page_count(self, first: Page) -> int | None:
        """Total pages, when the first page says how many records or pages there are."""
        return None

    def is_last(self, page: Page) -> bool:
        raise TypeError(f"{type(self).__name__} does not tell the last page from its index (indexed = False)")


class SinglePage(Paginator):
    """No pagination: the endpoint returns everything at once."""

    def next(self, page: Page) -> PageRequest | None:
        return None


class _Indexed(Paginator):
    indexed = True

    def __init__(self) -> None:
        self._base: tuple[str, dict[str, Any]] = ("", {})

    def first(self, url: str, params: dict[str, Any]) -> PageRequest:
        self._base = (url, dict(params))
        return self.request_for(0, url, params)

    def next(self, page: Page) -> PageRequest | None:
        if self.is_last(page):
            return None
        total = self.page_count(page)
        if total is not None and page.request.index + 1 >= total:
            return None
        return self.request_for(page.request.index + 1, *self._base)


@dataclass
class PageNumber(_Indexed):
    """``?page=1``, ``?page=2``, ... until an empty or short page, or the total the body gives.

    Args:
        param: the page-number parameter.
        start: number of the first page (1, sometimes 0).
        size: page size to ask for (sent as ``size_param``); a shorter page is the last.
        size_param: parameter for the page size, e.g. ``"per_page"``.
        total_pages_path: where the body says how many pages there are, e.g. ``"meta.pages"``.
        total_path: where the body says how many records there are (needs ``size``).

    Example:
        >>> paging = PageNumber("page", size=100, size_param="per_page", total_path="meta.total")
    """

    param: str = "page"
    start: int = 1
    size: int | None = None
    size_param: str | None = None
    total_pages_path: str | None = None
    total_path: str | None = None

    def __post_init__(self) -> None:
        super().__init__()
        if self.total_path and not self.size:
            raise ConfigError("PageNumber(total_path=...) needs size= to turn a record count into a page count.")

    def request_for(self, index: int, url: str, params: dict[str, Any]) -> PageRequest:
        query = {**params, self.param: self.start + index}
        if self.size and self.size_param:
            query[self.size_param] = self.size
        return PageRequest(url, query, index)

    def page_count(self, first: Page) -> int | None:
        if self.total_pages_path:
            found = find_path(first.body, self.total_pages_path, None)
            if isinstance(found, str) and found.isdigit():
                return int(found)
            return int(found) if isinstance(found, int | float) and not isinstance(found, bool) else None
        if self.total_path and self.size:
            found = find_path(first.body, self.total_path, None)
            return math.ceil(int(found) / self.size) if isinstance(found, int | float) else None
        return None

    def is_last(self, page: Page) -> bool:
        return not page.records or (self.size is not None and len(page.records) < self.size)


@dataclass
class OffsetLimit(_Indexed):
    """``?offset=0&limit=100``, ``?offset=100&limit=100``, ... until a short page or the total.

    Example:
        >>> paging = OffsetLimit(limit=500, total_path="total")
    """

    limit: int = 100
    offset_param: str = "offset"
    limit_param: str = "limit"
    start: int = 0
    total_path: str | None = None

    def __post_init__(self) -> None:
        super().__init__()
        if self.limit < 1:
            raise ConfigError(f"OffsetLimit(limit={self.limit}) must ask for at least one record per page.")

    def request_for(self, index: int, url: str, params: dict[str, Any]) -> PageRequest:
        offset = self.start + index * self.limit
        return PageRequest(url, {**params, self.offset_param: offset, self.limit_param: self.limit}, index)

    def page_count(self, first: Page) -> int | None:
        if not self.total_path:
            return None
        found = find_path(first.body, self.total_path, None)
        return math.ceil(max(int(found) - self.start, 0) / self.limit) if isinstance(found, int | float) else None

    def is_last(self, page: Page) -> bool:
        return len(page.records) < self.limit


@dataclass
class Cursor(Paginator):
    """A continuation token from the body, sent back as a parameter until the body has none.

    Args:
        path: where the body holds the next token, e.g. ``"meta.next_cursor"``.
        param: the parameter that carries it.
        has_more_path: optional boolean in the body that says whether more pages follow.

    Example:
        >>> paging = Cursor(path="response_metadata.next_cursor", param="cursor")
    """

    path: str = "next_cursor"
    param: str = "cursor"
    has_more_path: str | None = None
    _seen: set[str] = field(default_factory=set, init=False, repr=False)
    _base: tuple[str, dict[str, Any]] = field(default=("", {}), init=False, repr=False)

    def reset(self) -> None:
        self._seen = set()

    def first(self, url: str, params: dict[str, Any]) -> PageRequest:
        self._base = (url, dict(params))
        return PageRequest(url, dict(params), 0)

    def next(self, page: Page) -> PageRequest | None:
        if self.has_more_path and find_path(page.body, self.has_more_path, False) is False:
            return None
        token = find_path(page.body, self.path, None)
        if token is None or token == "":
            return None
        key = str(token)
        if key in self._seen:
            raise _Loop(f"the cursor {key!r} at {self.path!r} was already returned by an earlier page")
        self._seen.add(key)
        url, params = self._base
        return PageRequest(url, {**params, self.param: token}, page.request.index + 1)


class _Linked(Paginator):
    def __init__(self) -> None:
        self._seen: set[str] = set()

    def reset(self) -> None:
        self._seen = set()

    @abc.abstractmethod
    def _link(self, page: Page) -> str | None:
        """The next page's URL found in ``page`` (body or header), or ``None``."""

    def next(self, page: Page) -> PageRequest | None:
        link = self._link(page)
        if not link:
            return None
        from urllib.parse import urljoin

        url = urljoin(page.request.url, link)
        if url in self._seen or (url == page.request.url and not page.request.params):
            raise _Loop(f"the next link {url!r} points to a page already read")
        self._seen.add(url)
        return PageRequest(url, {}, page.request.index + 1)


class NextLink(_Linked):
    """The next page's URL is in the body (absolute or relative), e.g. ``{"next": "/items?page=2"}``.

    Example:
        >>> paging = NextLink("links.next")
    """

    def __init__(self, path: str = "next") -> None:
        super().__init__()
        self.path = path

    def _link(self, page: Page) -> str | None:
        link = find_path(page.body, self.path, None)
        return link if isinstance(link, str) else None

    def __repr__(self) -> str:
        return f"NextLink({self.path!r})"


class LinkHeader(_Linked):
    """The next page's URL is in the ``Link`` response header (RFC 8288), as GitHub sends it.

    Example:
        >>> paging = LinkHeader()
    """

    def __init__(self, rel: str = "next") -> None:
        super().__init__()
        self.rel = rel

    def _link(self, page: Page) -> str | None:
        return page.links.get(self.rel)

    def __repr__(self) -> str:
        return f"LinkHeader({self.rel!r})"

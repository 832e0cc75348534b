"""Dataset names, the OpenLineage way: every connector names what it touched here, and only here.

A dataset is a ``(namespace, name)`` pair: the namespace says where the data lives (the data
source), the name what it is inside it; together they read as a URI. This module is the one place
the convention is applied, so a file written by one task and read by another (or by another tool
that follows OpenLineage) is the same dataset.

=============================  ===================================  ==================================
what                           namespace                            name
=============================  ===================================  ==================================
local file or directory        ``file://{host}``                    ``/abs/path/orders.csv``
object storage (fsspec URL)    ``s3://{bucket}`` (``gs://`` ...)    ``/key/of/orders.parquet``
PostgreSQL table               ``postgres://{host}:{port}``         ``{database}.{schema}.{table}``
DuckDB table                   ``duckdb://{host}{/abs/file.duckdb}``  ``{schema}.{table}`` (``main``)
SQLite table                   ``sqlite://{host}{/abs/file.db}``    ``main.{table}``
HTTP API endpoint              ``https://{host}[:{port}]``          ``/v1/orders`` (no query string)
=============================  ===================================  ==================================

Credentials never become part of a name: user and password are dropped from URLs, query strings
(where API keys hide) are left out, and the run's secrets are masked in what is stored and sent.

Example:
    >>> file_dataset("s3://lake/orders/2026.parquet")
    ('s3://lake', '/orders/2026.parquet')
    >>> api_dataset("https://user:pw@api.example.com/v1/orders?api_key=abc")
    ('https://api.example.com', '/v1/orders')
"""

from __future__ import annotations

import functools
import os
import socket
from typing import Any
from urllib.parse import urlsplit

__all__ = ["api_dataset", "db_dataset", "file_dataset", "host", "uri"]


@functools.cache
def host() -> str:
    """This machine's name, the authority of local files (a path means nothing without its machine)."""
    return socket.gethostname() or "localhost"


def _authority(netloc: str) -> str:
    """``user:password@host:port`` -> ``host:port``: credentials never name a dataset."""
    return netloc.rpartition("@")[2]


def file_dataset(path: Any) -> tuple[str, str]:
    """The dataset of a file or directory: a local path, a ``file://`` URL or an fsspec URL (or a ``Location``)."""
    if hasattr(path, "is_local"):  # a Location of the file connectors
        text = path.path if path.is_local else path.url
    else:
        text = os.fspath(path)
    if text.startswith("file://"):
        text = text[len("file://"):]
    if "://" in text:
        parts = urlsplit(text)
        key = parts.path if parts.path.startswith("/") else "/" + parts.path
        return f"{parts.scheme}://{_authority(parts.netloc)}", key
    absolute = os.path.abspath(os.path.expanduser(text))
    return f"file://{host()}", absolute.replace(os.sep, "/")


def db_dataset(spec: Any, table: str, schema: str | None = None) -> tuple[str, str]:
    """The dataset of a database table, from a parsed connection URL (:class:`~bubbles.data.db.url.ConnSpec`).

    ``schema`` defaults to the database's own default (``public`` on PostgreSQL, ``main`` on
    DuckDB and SQLite).
    """
    dialect = spec.dialect
    if dialect == "postgresql":
        namespace = f"postgres://{spec.host or 'localhost'}:{spec.port or 5432}"
        return namespace, f"{spec.database}.{schema or 'public'}.{table}"
    path = spec.path if spec.path == ":memory:" else os.path.abspath(spec.path).replace(os.sep, "/")
    return f"{dialect}://{host()}{'/' if not path.startswith('/') else ''}{path}", f"{schema or 'main'}.{table}"


def api_dataset(url: str) -> tuple[str, str]:
    """The dataset of an HTTP endpoint: scheme and host (no credentials), and the path (no query string)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{_authority(parts.netloc)}", parts.path or "/"


def uri(namespace: str, name: str) -> str:
    """The dataset as one URI, as people read it (``postgres://db:5432/shop.public.orders``)."""
    if name.startswith("/") or namespace.endswith("/"):
        return namespace + name
    return f"{namespace}/{name}"

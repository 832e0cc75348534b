"""``connect()``: a URL or a connection name in, a :class:`~bubbles.data.db.base.Connection` out."""

from __future__ import annotations

from typing import Any

from ..._errors import ConfigError
from .base import Connection
from .url import parse_url

__all__ = ["connect"]


def connect(url_or_name: str | Connection, **options: Any) -> Connection:
    """Open a database connection from a URL or a named connection.

    Args:
        url_or_name: ``duckdb:///path``, ``sqlite:///path``, ``postgresql://user@host:port/db``
            (password as ``${PGPASSWORD}``, resolved from the environment or
            ``.bubbles/secrets.toml``), or a name defined in ``bubbles.toml`` /
            ``BUBBLES_CONN_<NAME>``. An existing connection is returned as is.
        **options: ``pool_size`` (PostgreSQL, default 4), ``batch_size`` (rows per Arrow batch
            for reads, default 65,536), ``read_only`` (DuckDB).

    Returns:
        A thread-safe, picklable connection. Use it as a context manager or call ``close()``.

    Raises:
        ConfigError: unknown name, bad URL, literal password in code, or a missing secret.
        ConnectionFailed: PostgreSQL is unreachable or refused the login (transient: retried per
            the task's policy; the message names host and database, never the password).

    Example:
        >>> import bubbles
        >>> conn = bubbles.connect("duckdb:///:memory:")
        >>> bubbles.read_sql(conn, "SELECT 1 AS one").num_rows
        1
        >>> conn.close()
    """
    if isinstance(url_or_name, Connection):
        return url_or_name
    if not isinstance(url_or_name, str) or not url_or_name:
        raise ConfigError(f"connect() needs a URL or a connection name, got {url_or_name!r}.")
    if "://" in url_or_name:
        spec = parse_url(url_or_name)
    else:
        from ...config import connection_url

        url, from_env = connection_url(url_or_name)
        spec = parse_url(url, name=url_or_name, allow_literal_password=from_env)
    if spec.dialect == "duckdb":
        from .duckdb import DuckDBConnection

        return DuckDBConnection(spec, url_or_name, options)
    if spec.dialect == "sqlite":
        from .sqlite import SQLiteConnection

        return SQLiteConnection(spec, url_or_name, options)
    from .postgres import PostgresConnection

    conn = PostgresConnection(spec, url_or_name, options)
    if options.get("check", True):
        conn.ping()  # fail here, naming host and database, rather than on first use
    return conn

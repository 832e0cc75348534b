"""The PostgreSQL run store: one history for runs on many machines and Dask workers.

Set the ``store`` setting to a PostgreSQL URL (``BUBBLES_STORE=postgresql://etl:${PW}@db:5432/ops``,
or ``store = "..."`` under ``[settings]`` in ``bubbles.toml``); the password is a ``${SECRET}``
reference, resolved when the store opens. The tables are the SQLite store's, in their own
schema (``bubbles`` by default; ``?schema=ops_bubbles`` in the URL chooses another), created in one
transaction by the first bubbles that connects. Needs ``pip install 'pybubbles[postgres]'``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .._errors import MissingDependencyError
from .base import RunStore, StoreError

__all__ = ["PostgresStore"]


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


class PostgresStore(RunStore):
    """The run store in a PostgreSQL database."""

    kind = "postgres"

    def __init__(self, url: str, *, timeout: float = 30.0) -> None:
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        self.schema = query.pop("schema", "bubbles")
        if not self.schema.replace("_", "").isalnum():
            raise StoreError(f"The run store's schema name {self.schema!r} must be letters, digits and _.", source=_redact(url))
        self._url = urlunsplit(parts._replace(query=urlencode(query)))
        if parts.password and "${" not in parts.password:  # a literal password is a secret all the same
            from .._secrets import register_secret

            register_secret(parts.password)
        super().__init__(_redact(url))
        self.timeout = timeout

    def _connect(self) -> Any:
        try:
            import psycopg
        except ImportError as exc:
            raise MissingDependencyError("A PostgreSQL run store", "psycopg", "postgres") from exc
        from .._secrets import register_secret, resolve

        url = resolve(self._url, purpose="the run store")
        password = urlsplit(url).password
        if password:
            register_secret(password)
        conn = psycopg.connect(url, autocommit=True, connect_timeout=max(1, int(self.timeout)))
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
        conn.execute(f'SET search_path TO "{self.schema}"')
        conn.execute(f"SET lock_timeout = '{int(self.timeout * 1000)}ms'")
        return conn

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s")

    def _begin(self, cur: Any) -> None:
        cur.execute("BEGIN")

    def _has_table(self, cur: Any, name: str) -> bool:
        cur.execute("SELECT to_regclass(%s)", (f'"{self.schema}".{name}',))
        return cur.fetchone()[0] is not None

    def _before_schema(self, cur: Any) -> None:
        cur.execute("SELECT pg_advisory_xact_lock(hashtext('bubbles run store schema'))")  # one migrator at a time

    def _is_driver_error(self, exc: BaseException) -> bool:
        try:
            import psycopg
        except ImportError:
            return False
        return isinstance(exc, psycopg.Error)

    def _translate(self, exc: BaseException) -> StoreError:
        from .._secrets import mask

        text = mask(str(exc).strip())
        transient = any(w in text for w in ("could not connect", "Connection refused", "timeout", "lock", "terminating"))
        return StoreError(
            f"The PostgreSQL run store {self.location} failed: {text}. Check that the server is up and the user may "
            f"create schema {self.schema!r}; runs that cannot be written are kept in the home's history-pending "
            "folder and written once it works.",
            source=self.location,
            transient=transient,
        )

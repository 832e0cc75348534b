"""Database URLs: parsing, secret references, and the redacted form that is safe to show.

Accepted forms::

    duckdb:///path/to/warehouse.duckdb     duckdb:///:memory:     duckdb://   (in memory)
    sqlite:///relative/or/absolute.db      sqlite:///:memory:
    postgresql://user@host:port/db?sslmode=require&sslrootcert=/etc/ca.pem
    postgresql://user:${PGPASSWORD}@host/db     (the password is a reference, resolved at connect time)

``postgres://`` and ``postgresql+adbc://`` are read as ``postgresql://``. Query parameters of a
PostgreSQL URL are passed to libpq unchanged (TLS: ``sslmode``, ``sslrootcert``, ``sslcert``,
``sslkey``; also ``connect_timeout``, ``application_name``, ...), except the bubbles options
``pool_size`` and ``batch_size``.

A literal password in a URL written in code or in ``bubbles.toml`` is refused: write
``${NAME}`` and put the value in the environment or ``.bubbles/secrets.toml``. Without any
password the PostgreSQL driver falls back to libpq's own ``PGPASSWORD`` / ``~/.pgpass``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from ..._errors import ConfigError
from ..._secrets import Secret, register_secret, resolve

__all__ = ["BUBBLES_OPTIONS", "ConnSpec", "parse_url"]

_SCHEMES = {
    "duckdb": "duckdb",
    "sqlite": "sqlite",
    "sqlite3": "sqlite",
    "postgresql": "postgresql",
    "postgres": "postgresql",
    "postgresql+adbc": "postgresql",
    "postgresql+psycopg": "postgresql",
}
BUBBLES_OPTIONS = frozenset({"pool_size", "batch_size"})
_REF = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}")


@dataclass(frozen=True)
class ConnSpec:
    """A parsed connection URL. ``password`` is a :class:`Secret`; ``source`` is what the user wrote."""

    dialect: str
    path: str = ""
    host: str = ""
    port: int | None = None
    user: str = ""
    password: Secret | None = None
    database: str = ""
    params: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    source: str = field(default="", repr=False)
    name: str | None = None

    @property
    def redacted(self) -> str:
        """The URL with the password as ``***``: safe for logs, reprs and errors."""
        if self.dialect != "postgresql":
            return f"{self.dialect}:///{self.path}"
        auth = quote(self.user, safe="") + (":***" if self.password else "")
        netloc = (auth + "@" if auth else "") + self.host + (f":{self.port}" if self.port else "")
        query = ("?" + urlencode(self.params)) if self.params else ""
        return f"postgresql://{netloc}/{self.database}{query}"

    @property
    def where(self) -> str:
        """Host and database for messages: ``database 'shop' on 127.0.0.1:5432`` or a file path."""
        if self.dialect == "postgresql":
            return f"database {self.database!r} on {self.host or 'localhost'}:{self.port or 5432} as user {self.user!r}"
        return f"{self.dialect} database {self.path!r}"

    def libpq_uri(self) -> str:
        """The full URI for libpq, password included. Never log it."""
        auth = quote(self.user, safe="")
        if self.password is not None:
            auth += ":" + quote(self.password.get(), safe="")
        netloc = (auth + "@" if auth else "") + self.host + (f":{self.port}" if self.port else "")
        query = ("?" + urlencode(self.params)) if self.params else ""
        return f"postgresql://{netloc}/{quote(self.database, safe='')}{query}"


def parse_url(url: str, *, name: str | None = None, allow_literal_password: bool = False) -> ConnSpec:
    """Parse ``url`` into a :class:`ConnSpec`, resolving ``${NAME}`` secret references.

    Args:
        url: a database URL (see the module docstring).
        name: the named connection it came from, for messages.
        allow_literal_password: accept ``user:password@`` written out (only for URLs that came
            from the environment, e.g. ``BUBBLES_CONN_<NAME>``).

    Example:
        >>> parse_url("duckdb:///:memory:").dialect
        'duckdb'
    """
    if not isinstance(url, str) or "://" not in url:
        raise ConfigError(
            f"{url!r} is not a database URL. Use duckdb:///path, sqlite:///path or postgresql://user@host:port/db, "
            "or the name of a connection in bubbles.toml / BUBBLES_CONN_<NAME>.",
            source=str(url),
        )
    scheme, rest = url.split("://", 1)
    dialect = _SCHEMES.get(scheme.lower())
    if dialect is None:
        raise ConfigError(
            f"Unknown database scheme {scheme!r} in a connection URL. Supported: duckdb://, sqlite://, postgresql://.",
            source=scheme,
        )
    if dialect in ("duckdb", "sqlite"):
        path, _, query = rest.partition("?")
        path = resolve(unquote(path.removeprefix("/")), purpose=f"connection {name or dialect}")
        if path in ("", ":memory:"):
            path = ":memory:"
        else:
            path = str(Path(path).expanduser())
        options = dict(parse_qsl(query))
        return ConnSpec(dialect, path=path, options=options, source=url, name=name)
    return _parse_postgres(url, name=name, allow_literal_password=allow_literal_password)


def _parse_postgres(url: str, *, name: str | None, allow_literal_password: bool) -> ConnSpec:
    # Split the password out before urlsplit: a ${REF} contains braces that urlsplit keeps, but a
    # resolved password may contain '@', '/' or '?' that would confuse it.
    scheme_rest = url.split("://", 1)[1]
    netloc, slash, tail = scheme_rest.partition("/")
    userinfo, at, hostport = netloc.rpartition("@")
    user, colon, raw_password = userinfo.partition(":")
    password: Secret | None = None
    what = f"connection {name!r}" if name else "the connection URL"
    if colon and raw_password:
        if _REF.fullmatch(raw_password):
            password = Secret(resolve(raw_password, purpose=what), name="password")
        elif allow_literal_password:
            value = unquote(raw_password)
            register_secret(value)
            password = Secret(value, name="password")
        else:
            register_secret(unquote(raw_password))
            raise ConfigError(
                f"{what} contains a literal password. Passwords never go in code or bubbles.toml: write "
                "postgresql://user:${PGPASSWORD}@host/db and set PGPASSWORD in the environment or in "
                ".bubbles/secrets.toml (or put the whole URL in BUBBLES_CONN_<NAME>).",
                source=name,
            )
    parts = urlsplit("postgresql://" + (user + at if at else "") + hostport + slash + tail)
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"{what}: the port in {hostport!r} is not a number.", source=name) from None
    params: dict[str, str] = {}
    options: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        value = resolve(value, purpose=what) if _REF.search(value) else value
        (options if key in BUBBLES_OPTIONS else params)[key] = value
    database = unquote(parts.path.lstrip("/")) or unquote(parts.username or "") or "postgres"
    return ConnSpec(
        "postgresql",
        host=parts.hostname or "",
        port=port,
        user=unquote(parts.username or ""),
        password=password,
        database=database,
        params=params,
        options=options,
        source=url,
        name=name,
    )

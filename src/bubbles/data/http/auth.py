"""Authentication for API sources: bearer token, basic, API key in a header or the query.

Credentials are given as ``${NAME}`` references (resolved from the environment or the secrets
file by :mod:`bubbles._secrets`, only when the first request is sent) or as :class:`~bubbles._secrets.Secret`
values. Every resolved value, and the header built from it, is registered for masking, so URLs,
log lines and error messages show ``***`` instead.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

from ..._secrets import Secret, register_secret, resolve

__all__ = ["ApiKey", "Auth", "BasicAuth", "BearerToken"]


def _value(ref: str | Secret, purpose: str) -> str:
    value = ref.get() if isinstance(ref, Secret) else resolve(ref, purpose=purpose)
    # A literal written in code is still a secret once it is sent: mask it like a resolved one.
    register_secret(value)
    return value


class Auth:
    """Base class: what to add to each request. Subclasses resolve their secret on first use."""

    def headers(self) -> dict[str, str]:
        """Headers to send with every request."""
        return {}

    def params(self) -> dict[str, str]:
        """Query parameters to send with every request."""
        return {}


@dataclass(repr=False)
class BearerToken(Auth):
    """``Authorization: Bearer <token>``.

    Example:
        >>> auth = BearerToken("${GITHUB_TOKEN}")
    """

    token: str | Secret
    _header: str | None = field(default=None, init=False)

    def headers(self) -> dict[str, str]:
        if self._header is None:
            self._header = f"Bearer {_value(self.token, 'a bearer token')}"
            register_secret(self._header)
        return {"Authorization": self._header}

    def __repr__(self) -> str:
        return "BearerToken('***')"


@dataclass(repr=False)
class BasicAuth(Auth):
    """HTTP basic authentication (``Authorization: Basic ...``).

    Example:
        >>> auth = BasicAuth("etl", "${SHOP_API_PASSWORD}")
    """

    username: str | Secret
    password: str | Secret
    _header: str | None = field(default=None, init=False)

    def headers(self) -> dict[str, str]:
        if self._header is None:
            user = self.username.get() if isinstance(self.username, Secret) else resolve(self.username)
            pair = f"{user}:{_value(self.password, 'basic auth')}".encode()
            encoded = base64.b64encode(pair).decode("ascii")
            register_secret(encoded)  # the base64 form would otherwise leak in a logged header
            self._header = f"Basic {encoded}"
        return {"Authorization": self._header}

    def __repr__(self) -> str:
        return f"BasicAuth({self.username if isinstance(self.username, str) and '${' not in self.username else '***'!r}, '***')"


@dataclass(repr=False)
class ApiKey(Auth):
    """An API key sent in a header (default ``X-API-Key``) or, with ``query=``, as a query parameter.

    Example:
        >>> in_header = ApiKey("${WEATHER_KEY}", header="X-Api-Key")
        >>> in_query = ApiKey("${WEATHER_KEY}", query="appid")
    """

    key: str | Secret
    header: str = "X-API-Key"
    query: str | None = None
    _resolved: str | None = field(default=None, init=False)

    def _key(self) -> str:
        if self._resolved is None:
            self._resolved = _value(self.key, "an API key")
        return self._resolved

    def headers(self) -> dict[str, str]:
        return {} if self.query else {self.header: self._key()}

    def params(self) -> dict[str, str]:
        return {self.query: self._key()} if self.query else {}

    def __repr__(self) -> str:
        where = f"query={self.query!r}" if self.query else f"header={self.header!r}"
        return f"ApiKey('***', {where})"

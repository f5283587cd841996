"""Which names hold secrets: headers, JSON and form keys, query parameters.

Owns the built-in lists and the matching rules; ``redact.headers``,
``redact.keys`` and ``redact.query_params`` extend them. A key matches when,
normalised (camelCase split, ``-``, ``.`` and spaces read as ``_``, lower
case), it is a secret key or ends in ``_`` and one (``x-auth-token``,
``clientSecret``, ``user_password``). Standard library only.
"""

from __future__ import annotations

import functools
import re
from urllib.parse import unquote_plus

from shadowproxy.settings import RedactSettings

__all__ = [
    "SECRET_HEADERS",
    "SECRET_KEYS",
    "SECRET_PARAMS",
    "SECRET_WORDS",
    "SecretNames",
    "normalise_key",
]

SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"}
)
"""Header names always secret (lower-case); every secret key is a secret header name too."""

SECRET_KEYS = frozenset(
    {
        "authorization",
        "cookie",
        "set_cookie",
        "token",
        "access_token",
        "refresh_token",
        "id_token",
        "password",
        "passwd",
        "secret",
        "client_secret",
        "api_key",
        "apikey",
        "private_key",
        "session",
        "sig",
        "signature",
    }
)
"""Keys whose values are secret in JSON bodies, form bodies and headers (normalised)."""

SECRET_WORDS = (
    "token",
    "key",
    "secret",
    "password",
    "passwd",
    "signature",
    "sig",
    "auth",
    "credential",
    "session",
)
"""A query parameter (or log key) whose lower-cased name contains one of these is secret."""

SECRET_PARAMS = frozenset({"code", "jwt"})
"""Query parameters secret by their exact name: OAuth authorisation codes and bare JWTs."""

_MAX_MEMO = 4096
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SEPARATORS = re.compile(r"[-.\s]+")


@functools.lru_cache(maxsize=4096)
def normalise_key(name: str) -> str:
    """``X-Auth-Token``, ``accessToken`` and ``access.token`` all become ``..._token``."""
    return _SEPARATORS.sub("_", _CAMEL.sub("_", name)).lower()


class SecretNames:
    """The built-in secret names plus the configured ones.

    Decisions are remembered per name (a bounded memo): the hot path asks
    about every request header, and the same few names come every time.
    """

    __slots__ = ("_headers", "_key_memo", "_keys", "_memo", "_param_memo", "_params")

    def __init__(self, settings: RedactSettings) -> None:
        configured = (*settings.headers, *settings.keys)
        self._headers = SECRET_HEADERS | {name.lower() for name in settings.headers}
        self._keys = SECRET_KEYS | {normalise_key(name) for name in configured}
        self._params = SECRET_PARAMS | {name.lower() for name in settings.query_params}
        self._memo: dict[str, bool] = {}
        self._param_memo: dict[str, bool] = {}
        self._key_memo: dict[str, bool] = {}

    def header(self, name: str) -> bool:
        """True for the built-in secret headers, ``redact.headers`` and secret-key names."""
        known = self._memo.get(name)
        if known is None:
            known = _remember(self._memo, name, name.lower() in self._headers or self.key(name))
        return known

    def key(self, name: str) -> bool:
        """True when a JSON or form key (or a header name) names a secret."""
        known = self._key_memo.get(name)
        if known is None:
            parts = normalise_key(name).split("_")
            secret = any("_".join(parts[i:]) in self._keys for i in range(len(parts)))
            known = _remember(self._key_memo, name, secret)
        return known

    def param(self, name: str) -> bool:
        """True for a query parameter holding a secret word, a secret key or a configured name."""
        known = self._param_memo.get(name)
        if known is None:
            lowered = unquote_plus(name).lower()
            secret = (
                lowered in self._params
                or any(word in lowered for word in SECRET_WORDS)
                or self.key(lowered)
            )
            known = _remember(self._param_memo, name, secret)
        return known


def _remember(memo: dict[str, bool], name: str, decision: bool) -> bool:
    """Store ``decision`` for ``name``; a full memo starts over, so clients cannot grow it."""
    if len(memo) >= _MAX_MEMO:
        memo.clear()
    memo[name] = decision
    return decision

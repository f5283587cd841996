"""Redaction: what never reaches a file, log line or metric.

Owns the built-in secret lists (headers, query-parameter words), the
``[REDACTED]`` / ``hmac-sha256:<16 hex>`` markers, and the rules applied to
recorded differences, query strings, header lists and free-form mappings.
Every function is idempotent: redacting a redacted value changes nothing.
Body paths use the comparison engine's JSONPath dialect
(``shadowproxy.compare.paths``), so ``redact.body_paths`` reads like ``ignore``.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
from collections.abc import Mapping
from urllib.parse import unquote_plus

import orjson

from shadowproxy.compare.paths import Segments, parse_pattern
from shadowproxy.model import Difference, Headers
from shadowproxy.settings import RedactSettings

__all__ = [
    "REDACTED",
    "SECRET_HEADERS",
    "SECRET_WORDS",
    "Redactor",
    "is_marker",
]

REDACTED = "[REDACTED]"
"""The marker that replaces a secret when no ``redact.hash_key`` is set."""

SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"}
)
"""Header names always redacted (lower-case)."""

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

_HASHED = re.compile(r"hmac-sha256:[0-9a-f]{16}")
_HEADER_LINE = re.compile(
    r"(?i)\b((?:proxy-)?authorization|(?:set-)?cookie|x-api-key)(\s*[:=]\s*)([^\r\n]+)"
)
_SCHEME_TOKEN = re.compile(
    r"(?i)\b((?:bearer|basic|digest)\s+)"
    r"(hmac-sha256:[0-9a-f]{16}|\[REDACTED\]|[A-Za-z0-9._~+/=-]{8,})"
)
_PARAM = re.compile(r"(^|[?&;\s\"'])([^\s=&?;\"']+)=([^\s&;\"']*)")
_CANONICAL = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


def is_marker(value: object) -> bool:
    """True when ``value`` is already a redaction marker (keeps redaction idempotent)."""
    return isinstance(value, str) and (value == REDACTED or _HASHED.fullmatch(value) is not None)


class Redactor:
    """Applies one ``RedactSettings`` to everything the sinks record.

    Raises ValueError at construction when a body path is malformed, naming it.
    """

    __slots__ = ("_extra_params", "_headers", "_key", "_patterns")

    def __init__(self, settings: RedactSettings) -> None:
        self._headers = SECRET_HEADERS | {name.lower() for name in settings.headers}
        self._extra_params = frozenset(name.lower() for name in settings.query_params)
        self._key = settings.hash_key
        self._patterns = tuple(parse_pattern(text) for text in settings.body_paths)

    def marker(self, value: object) -> str:
        """The replacement for the secret ``value``: fixed, or a keyed hash when configured."""
        if is_marker(value):
            return value  # type: ignore[return-value]  # is_marker proved it is a str
        if self._key is None:
            return REDACTED
        digest = hmac.new(self._key, _canonical_bytes(value), hashlib.sha256).hexdigest()
        return f"hmac-sha256:{digest[:16]}"

    def is_secret_header(self, name: str) -> bool:
        """True for the built-in secret headers and ``redact.headers``."""
        return name.lower() in self._headers

    def is_secret_param(self, name: str) -> bool:
        """True for parameter names holding a secret word or listed in ``redact.query_params``."""
        lowered = name.lower()
        return lowered in self._extra_params or any(word in lowered for word in SECRET_WORDS)

    def headers(self, headers: Headers) -> Headers:
        """``headers`` with every secret header's value replaced."""
        return tuple(
            (name, self.marker(value) if self.is_secret_header(name) else value)
            for name, value in headers
        )

    def query(self, query: str) -> str:
        """``query`` (without ``?``) with every secret parameter's value replaced."""
        if not query:
            return query
        parts = []
        for part in query.split("&"):
            name, sep, value = part.partition("=")
            if sep and self.is_secret_param(unquote_plus(name)):
                part = f"{name}={self.marker(unquote_plus(value))}"
            parts.append(part)
        return "&".join(parts)

    def difference(self, diff: Difference) -> Difference:
        """``diff`` with its values redacted when its path (or part of a subtree) is secret."""
        if self.is_secret_header(diff.path):
            return _with_values(diff, self.marker(diff.legacy), self.marker(diff.candidate))
        if not self._patterns:
            return diff
        segments = _concrete(diff.path)
        if segments is None:
            return diff
        legacy = self._tree(diff.legacy, segments)
        candidate = self._tree(diff.candidate, segments)
        if legacy is diff.legacy and candidate is diff.candidate:
            return diff
        return _with_values(diff, legacy, candidate)

    def text(self, text: str) -> str:
        """``text`` with credentials replaced: header lines, bearer tokens, query parameters."""
        text = _HEADER_LINE.sub(lambda m: m.group(1) + m.group(2) + self.marker(m.group(3)), text)
        text = _SCHEME_TOKEN.sub(lambda m: m.group(1) + self.marker(m.group(2)), text)
        return _PARAM.sub(self._param, text)

    def mapping(self, data: Mapping[str, object]) -> dict[str, object]:
        """A copy of ``data`` with secrets replaced, recursively.

        The safety net for free-form data (log events, generic records): the
        value of a key is secret when the key is a secret header or holds a
        secret word; every string also goes through ``text``.
        """
        return {str(key): self._entry(str(key), value) for key, value in data.items()}

    def _entry(self, key: str, value: object) -> object:
        """One entry of ``mapping``."""
        if value is not None and (
            self.is_secret_header(key.replace("_", "-")) or self.is_secret_param(key)
        ):
            return self.marker(value)
        return self._value(value)

    def _value(self, value: object) -> object:
        """Strings, mappings and sequences scrubbed; anything else unchanged."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return self.mapping(value)
        if isinstance(value, list | tuple):
            if len(value) == 2 and isinstance(value[0], str) and self.is_secret_header(value[0]):
                return [value[0], self.marker(value[1])]
            return [self._value(item) for item in value]
        return value

    def _param(self, match: re.Match[str]) -> str:
        """Replacement for one ``name=value`` found in free text."""
        name, value = match.group(2), match.group(3)
        if not value or not self.is_secret_param(unquote_plus(name)):
            return match.group(0)
        return f"{match.group(1)}{name}={self.marker(unquote_plus(value))}"

    def _tree(self, value: object, path: Segments) -> object:
        """``value`` found at ``path`` with every node a body pattern covers redacted."""
        if value is None:
            return value
        if any(pattern.covers(path) for pattern in self._patterns):
            return self.marker(value)
        if isinstance(value, Mapping):
            items = {key: self._tree(child, (*path, str(key))) for key, child in value.items()}
            changed = any(items[key] is not value[key] for key in items)
            return items if changed else value
        if isinstance(value, list | tuple):
            children = [self._tree(child, (*path, i)) for i, child in enumerate(value)]
            changed = any(new is not old for new, old in zip(children, value, strict=True))
            return children if changed else value
        return value


@functools.lru_cache(maxsize=4096)
def _concrete(path: str) -> Segments | None:
    """Segments of a difference path like ``$.items[3].price``; None when it is no JSONPath.

    Header names, ``status`` and ``latency`` give None.
    """
    try:
        steps = parse_pattern(path).steps
    except ValueError:
        return None
    segments: list[str | int] = []
    for step in steps:
        if step.descend or step.selector is None:
            return None
        segments.append(step.selector)
    return tuple(segments)


def _with_values(diff: Difference, legacy: object, candidate: object) -> Difference:
    """A copy of ``diff`` carrying new values; a missing side stays None."""
    return Difference(
        cls=diff.cls,
        kind=diff.kind,
        path=diff.path,
        legacy=None if diff.legacy is None else legacy,
        candidate=None if diff.candidate is None else candidate,
        noise=diff.noise,
    )


def _canonical_bytes(value: object) -> bytes:
    """Bytes that identify ``value``, equal for equal values, for keyed hashing."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    try:
        return orjson.dumps(value, option=_CANONICAL)
    except TypeError:
        return repr(value).encode("utf-8", "surrogatepass")

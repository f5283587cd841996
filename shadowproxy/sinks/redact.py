"""Redaction: what never reaches a file, log line or metric.

Owns the ``[REDACTED]`` / ``hmac-sha256:<16 hex>`` markers and the rules
applied to recorded differences, paths, query strings, header lists and
free-form mappings: secret names (``names``), JSONPath body patterns (the
comparison engine's dialect, so ``redact.body_paths`` reads like
``ignore``), credentials in free text, JWT-shaped strings, ``redact.patterns``,
and the request's own secrets (``secrets.KnownSecrets``) wherever they come
back. Redaction runs after comparison, on the recorded values only, so a
verdict never changes. Every function is idempotent: markers are never
redacted again.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
from collections.abc import Mapping
from urllib.parse import parse_qsl, unquote, unquote_plus, urlencode

import orjson

from shadowproxy.compare.paths import Segments, parse_pattern
from shadowproxy.memo import ByValue
from shadowproxy.model import Difference, Headers
from shadowproxy.settings import RedactSettings
from shadowproxy.sinks.names import SecretNames
from shadowproxy.sinks.secrets import KnownSecrets, SecretFinder, outside_markers

__all__ = [
    "JWT",
    "NO_SECRETS",
    "REDACTED",
    "RedactSettingsError",
    "Redactor",
    "is_marker",
]

REDACTED = "[REDACTED]"
"""The marker that replaces a secret when no ``redact.hash_key`` is set."""

JWT = re.compile(r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*")
"""A JSON Web Token: three base64url segments, the first an encoded JSON object."""

NO_SECRETS = KnownSecrets(())
"""The request secrets of a record that has none (generic records, start-up logs)."""

_HASHED = re.compile(r"hmac-sha256:[0-9a-f]{16}")
_HEADER_LINE = re.compile(
    r"(?i)\b((?:proxy-)?authorization|(?:set-)?cookie|x-api-key)(\s*[:=]\s*)([^\r\n]+)"
)
_SCHEME_TOKEN = re.compile(
    r"(?i)\b((?:bearer|basic|digest)\s+)"
    r"(hmac-sha256:[0-9a-f]{16}|\[REDACTED\]|[A-Za-z0-9._~+/=-]{8,})"
)
# Most recorded strings hold no credential at all: one scan decides whether to look.
_CREDENTIAL_HINT = re.compile(r"(?i)=|authorization|cookie|x-api-key|bearer|basic|digest")
_PARAM = re.compile(r"(^|[?&;\s\"'])([^\s=&?;\"']+)=([^\s&;\"']*)")
_JSON_TEXT = (("{", "}"), ("[", "]"))
_CANONICAL = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
_PATHS_KEPT = 256
_PATHS: ByValue[str, tuple[Segments | None]] = ByValue(_PATHS_KEPT)


class RedactSettingsError(ValueError):
    """A ``redact`` setting that cannot be used; ``key`` names it (``body_paths``, ``patterns``)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def is_marker(value: object) -> bool:
    """True when ``value`` is already a redaction marker (keeps redaction idempotent)."""
    return isinstance(value, str) and (value == REDACTED or _HASHED.fullmatch(value) is not None)


class Redactor:
    """Applies one ``RedactSettings`` to everything the sinks record.

    Raises ``RedactSettingsError`` at construction when a body path is
    malformed or a pattern is not a usable regular expression, naming it.
    """

    __slots__ = ("_key", "_names", "_paths", "_patterns", "finder")

    def __init__(self, settings: RedactSettings) -> None:
        self._names = SecretNames(settings)
        self._key = settings.hash_key
        try:
            self._paths = tuple(parse_pattern(text) for text in settings.body_paths)
        except ValueError as exc:
            raise RedactSettingsError("body_paths", str(exc)) from None
        self._patterns = tuple(_regex(text) for text in settings.patterns)
        self.finder = SecretFinder(self._names, self._paths)
        """Finds a request's own secrets with these settings (the proxy calls it)."""

    def marker(self, value: object) -> str:
        """The replacement for the secret ``value``: fixed, or a keyed hash when configured."""
        if is_marker(value):
            return value  # type: ignore[return-value]  # is_marker proved it is a str
        if self._key is None:
            return REDACTED
        digest = hmac.new(self._key, _canonical_bytes(value), hashlib.sha256).hexdigest()
        return f"hmac-sha256:{digest[:16]}"

    def is_secret_header(self, name: str) -> bool:
        """True for the built-in secret headers, ``redact.headers`` and secret-key names."""
        return self._names.header(name)

    def is_secret_param(self, name: str) -> bool:
        """True for a parameter named like a secret or listed in ``redact.query_params``."""
        return self._names.param(name)

    def headers(self, headers: Headers) -> Headers:
        """``headers`` with every secret header's value replaced."""
        return tuple(
            (name, self.marker(value) if self.is_secret_header(name) else value)
            for name, value in headers
        )

    def query(self, query: str, known: KnownSecrets = NO_SECRETS) -> str:
        """``query`` (without ``?``) with secret parameters' values and request secrets replaced."""
        if not query:
            return query
        parts = []
        for part in query.split("&"):
            name, sep, value = part.partition("=")
            if sep and (self.is_secret_param(name) or known.is_secret(unquote_plus(value))):
                part = f"{name}={self.marker(unquote_plus(value))}"
            parts.append(self.text(part, known))
        return "&".join(parts)

    def path(self, path: str, known: KnownSecrets = NO_SECRETS) -> str:
        """A request path with every segment holding a request secret (or a credential) replaced."""
        if not known:
            return self.text(path, known)
        segments = [
            self.marker(unquote(segment)) if known.is_secret(unquote(segment)) else segment
            for segment in path.split("/")
        ]
        return self.text("/".join(segments), known)

    def difference(self, diff: Difference, known: KnownSecrets = NO_SECRETS) -> Difference:
        """``diff`` with secret values replaced; class, kind and sides stay as compared.

        Both values go when the path is a secret header or lies under a secret
        key or a body path; otherwise subtrees keep their shape with secret
        nodes replaced, and every string is scrubbed.
        """
        segments = _concrete(diff.path)
        if segments is None:
            secret = self.is_secret_header(diff.path)
        else:
            secret = self._secret_path(segments)
        path = self.text(diff.path, known)
        if secret:
            legacy: object = self.marker(diff.legacy)
            candidate: object = self.marker(diff.candidate)
        else:
            legacy = self._node(diff.legacy, segments or (), known)
            candidate = self._node(diff.candidate, segments or (), known)
        if path == diff.path and legacy == diff.legacy and candidate == diff.candidate:
            return diff
        return Difference(
            cls=diff.cls,
            kind=diff.kind,
            path=path,
            legacy=None if diff.legacy is None else legacy,
            candidate=None if diff.candidate is None else candidate,
            noise=diff.noise,
        )

    def body(
        self, body: bytes, content_type: str | None, known: KnownSecrets = NO_SECRETS
    ) -> bytes:
        """A whole body (a captured request, a golden answer) with its secrets replaced.

        A form's fields and a JSON document's nodes by their names (secret
        keys, ``body_paths``) and values; any other body as text (as bytes
        when it is not UTF-8), like a recorded string.
        """
        media = (content_type or "").partition(";")[0].strip().lower()
        if media == "application/x-www-form-urlencoded":
            try:
                fields = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
            except UnicodeDecodeError:
                fields = None
            if fields is not None:
                return urlencode(
                    [
                        (
                            name,
                            self.marker(value)
                            if self.is_secret_param(name)
                            else self._child(value, (name,), known),
                        )
                        for name, value in fields
                    ]
                ).encode()
        if "json" in media or body.lstrip()[:1] in {b"{", b"["}:
            try:
                document = orjson.loads(body)
            except orjson.JSONDecodeError:
                pass
            else:
                return orjson.dumps(self._node(document, (), known), option=orjson.OPT_NON_STR_KEYS)
        scrubbed = self._bytes(body, (), known)
        return scrubbed.encode() if isinstance(scrubbed, str) else scrubbed

    def text(self, text: str, known: KnownSecrets = NO_SECRETS) -> str:
        """``text`` with request secrets, credentials, JWTs and configured patterns replaced."""
        if known:
            text = known.scrub(text, self.marker)
        if _CREDENTIAL_HINT.search(text) is not None:
            text = _HEADER_LINE.sub(
                lambda m: m.group(1) + m.group(2) + self.marker(m.group(3)), text
            )
            text = _SCHEME_TOKEN.sub(lambda m: m.group(1) + self.marker(m.group(2)), text)
            text = _PARAM.sub(self._param, text)
        if "eyJ" in text:
            text = outside_markers(text, functools.partial(self._sub, JWT))
        for pattern in self._patterns:
            text = outside_markers(text, functools.partial(self._sub, pattern))
        return text

    def _sub(self, pattern: re.Pattern[str], text: str) -> str:
        """Every match of ``pattern`` in ``text`` replaced by its marker."""
        return pattern.sub(lambda m: self.marker(m.group(0)), text)

    def mapping(
        self, data: Mapping[str, object], known: KnownSecrets = NO_SECRETS
    ) -> dict[str, object]:
        """A copy of ``data`` with secrets replaced, recursively.

        The safety net for free-form data (log events, generic records): the
        value of a key is secret when the key is a secret header or holds a
        secret word; every string also goes through ``text``.
        """
        return {str(key): self._entry(str(key), value, known) for key, value in data.items()}

    def _entry(self, key: str, value: object, known: KnownSecrets) -> object:
        """One entry of ``mapping``."""
        if value is not None and (
            self.is_secret_header(key.replace("_", "-")) or self.is_secret_param(key)
        ):
            return self.marker(value)
        return self._value(value, known)

    def _value(self, value: object, known: KnownSecrets) -> object:
        """Strings, mappings and sequences scrubbed; anything else unchanged."""
        if isinstance(value, str):
            return self.text(value, known)
        if isinstance(value, Mapping):
            return self.mapping(value, known)
        if isinstance(value, (list, tuple)):
            if len(value) == 2 and isinstance(value[0], str) and self.is_secret_header(value[0]):
                return [value[0], self.marker(value[1])]
            return [self._value(item, known) for item in value]
        if known.is_secret(value):
            return self.marker(value)
        return value

    def _param(self, match: re.Match[str]) -> str:
        """Replacement for one ``name=value`` found in free text."""
        name, value = match.group(2), match.group(3)
        if not value or is_marker(value) or not self.is_secret_param(name):
            return match.group(0)
        return f"{match.group(1)}{name}={self.marker(unquote_plus(value))}"

    def _secret_path(self, path: Segments) -> bool:
        """True when ``path`` lies under a secret key or a configured body path."""
        if any(isinstance(step, str) and self._names.key(step) for step in path):
            return True
        return any(pattern.covers(path) for pattern in self._paths)

    def _node(self, value: object, path: Segments, known: KnownSecrets) -> object:
        """A recorded value at ``path`` (not itself secret) with secret nodes replaced."""
        if value is None or isinstance(value, bool):
            return value
        if known and known.is_secret(value):
            return self.marker(value)
        if isinstance(value, Mapping):
            return {
                known.scrub(str(key), self.marker): self._child(child, (*path, str(key)), known)
                for key, child in value.items()
            }
        if isinstance(value, (list, tuple)):
            return [self._child(child, (*path, i), known) for i, child in enumerate(value)]
        if isinstance(value, str):
            return self._string(value, path, known)
        if isinstance(value, (bytes, bytearray, memoryview)):
            return self._bytes(bytes(value), path, known)
        return value

    def _child(self, value: object, path: Segments, known: KnownSecrets) -> object:
        """``_node`` for a child whose parent was not secret: only its own step can make it so."""
        step = path[-1]
        if value is not None and (
            (isinstance(step, str) and self._names.key(step))
            or any(pattern.covers(path) for pattern in self._paths)
        ):
            return self.marker(value)
        return self._node(value, path, known)

    def _string(self, value: str, path: Segments, known: KnownSecrets) -> str:
        """A string value; one holding a JSON document is redacted inside, as the document."""
        stripped = value.strip()
        if any(stripped.startswith(a) and stripped.endswith(b) for a, b in _JSON_TEXT):
            try:
                document = orjson.loads(stripped)
            except orjson.JSONDecodeError:
                pass
            else:
                redacted = self._node(document, path, known)
                if redacted != document:
                    value = orjson.dumps(redacted, option=orjson.OPT_NON_STR_KEYS).decode()
        return self.text(value, known)

    def _bytes(self, value: bytes, path: Segments, known: KnownSecrets) -> bytes | str:
        """Bytes scrubbed as UTF-8 text, or byte for byte (latin-1) when they are not UTF-8."""
        try:
            return self._string(value.decode("utf-8"), path, known)
        except UnicodeDecodeError:
            text = value.decode("latin-1")
            scrubbed = self.text(text, known)
            return value if scrubbed == text else scrubbed.encode("latin-1", "replace")


@functools.lru_cache(maxsize=4096)
def _concrete(path: str) -> Segments | None:
    """Segments of a difference path like ``$.items[3].price``; None when it is no JSONPath.

    Header names, ``status`` and ``latency`` give None. A route's divergences
    name the same few paths again and again: each is parsed once while kept.
    """
    kept = _PATHS.get(path)
    if kept is None:
        kept = _PATHS.keep(path, (_parsed(path),))
    return kept[0]


def _parsed(path: str) -> Segments | None:
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


def _regex(text: str) -> re.Pattern[str]:
    """A configured pattern; raises ``RedactSettingsError`` naming it when it is unusable."""
    try:
        pattern = re.compile(text)
    except re.error as exc:
        raise RedactSettingsError(
            "patterns", f"{text!r} is not a regular expression: {exc}"
        ) from None
    if pattern.match(""):
        raise RedactSettingsError("patterns", f"{text!r} matches the empty string")
    return pattern


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

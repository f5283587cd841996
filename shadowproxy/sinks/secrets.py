"""A request's own secrets: found in the request, scrubbed wherever they come back.

Owns which values of one request are secret and how they are recognised in
recorded text. Secret are: the credentials of ``Authorization`` and
``Proxy-Authorization`` (the credential after the scheme; Basic's decoded
``user:password``, user and password; Digest's ``username``, ``response``,
``nonce``, ``cnonce`` and ``opaque``), cookie values, the values of secret
query parameters and of other secret headers, and in JSON or form request
bodies the values at ``redact.body_paths`` and under secret keys.

A secret is recognised as written, percent-encoded (any of its characters,
either hex case, ``+`` or ``%20`` for spaces), base64 (standard or URL-safe, padded or not), HTML-
and JSON-escaped, and at the very end of a string as a prefix of at least
``MIN_SUBSTRING`` characters (a value cut short). A secret shorter than
``MIN_SUBSTRING`` is recognised only as a whole value, so a one-letter
cookie does not erase every ``a`` of the evidence. Standard library and
orjson only; no I/O.
"""

from __future__ import annotations

import base64
import binascii
import functools
import html
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from urllib.parse import parse_qsl, quote, quote_plus, unquote, unquote_plus

import orjson

from shadowproxy.compare.paths import PathPattern, Segments
from shadowproxy.sinks.names import SecretNames

__all__ = [
    "MAX_SECRETS",
    "MIN_SUBSTRING",
    "SECRET_SEGMENT",
    "KnownSecrets",
    "SecretFinder",
    "known_secrets",
    "mask_path",
    "outside_markers",
]

MIN_SUBSTRING = 4
"""Secrets at least this long are scrubbed inside longer strings."""

MAX_SECRETS = 256
"""Secrets kept per request (a request with more cookies than this is unusual)."""

SECRET_SEGMENT = "{secret}"
"""What a path segment holding a request secret becomes in a route name."""

_MAX_SECRET_CHARS = 16 * 1024
# Shorter base64 fragments would match unrelated base64 text by chance.
_MIN_BASE64_CORE = 8
_MAX_BODY_SCALARS = 4096
_MAX_REMEMBERED = 1024
_MAX_REMEMBERED_CHARS = 512
_CREDENTIALS = frozenset({"authorization", "proxy-authorization"})
_DIGEST_SECRETS = frozenset({"username", "response", "nonce", "cnonce", "opaque"})
_AUTH_PARAM = re.compile(r'([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))')
_MARKER = re.compile(r"(\[REDACTED\]|hmac-sha256:[0-9a-f]{16})")


class SecretFinder:
    """Finds the secret values of a request with one ``redact`` configuration."""

    __slots__ = ("_names", "_parsed", "_patterns")

    def __init__(self, names: SecretNames, patterns: Sequence[PathPattern]) -> None:
        self._names = names
        self._patterns = tuple(patterns)
        # The same credentials and cookies arrive on request after request.
        self._parsed: dict[tuple[str, str], tuple[str, ...]] = {}

    def in_request(self, headers: Iterable[tuple[str, str]], query: str) -> tuple[str, ...]:
        """Secrets in the request's headers and query string (cheap: the hot path calls it)."""
        found: list[str] = []
        secret_header = self._names.header
        for name, value in headers:
            if secret_header(name):
                found.extend(self._header_secrets(name, value))
        if query:
            for part in query.split("&"):
                key, sep, value = part.partition("=")
                if sep and value and self._names.param(key):
                    found.extend((value, unquote_plus(value)))
        return _distinct(found)

    def in_body(self, body: bytes, content_type: str | None) -> tuple[str, ...]:
        """Secrets in a JSON or form body: at ``redact.body_paths`` and under secret keys."""
        if not body:
            return ()
        media = (content_type or "").partition(";")[0].strip().lower()
        if media == "application/x-www-form-urlencoded":
            try:
                fields = parse_qsl(body.decode("utf-8"), keep_blank_values=False)
            except UnicodeDecodeError:
                return ()
            return _distinct(
                value for key, value in fields if self._names.param(key) or self._covered((key,))
            )
        if "json" not in media and body.lstrip()[:1] not in {b"{", b"["}:
            return ()
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError:
            return ()
        return _distinct(self._json_secrets(document))

    def _header_secrets(self, name: str, value: str) -> tuple[str, ...]:
        """The secrets of one secret header's value (remembered for short values)."""
        key = (name, value)
        found = self._parsed.get(key)
        if found is None:
            lowered = name.lower()
            if lowered in _CREDENTIALS:
                found = tuple(_credentials(value))
            elif lowered == "cookie":
                found = tuple(_cookie_values(value))
            else:
                found = (value.strip(),)
            if len(value) <= _MAX_REMEMBERED_CHARS:
                if len(self._parsed) >= _MAX_REMEMBERED:
                    self._parsed.clear()
                self._parsed[key] = found
        return found

    def _covered(self, path: Segments) -> bool:
        return any(pattern.covers(path) for pattern in self._patterns)

    def _json_secrets(self, document: object) -> Iterator[str]:
        """Scalars under a secret key or a body path, found without recursion."""
        stack: list[tuple[object, Segments, bool]] = [(document, (), False)]
        seen = 0
        while stack and seen < _MAX_BODY_SCALARS:
            value, path, secret = stack.pop()
            seen += 1
            secret = secret or self._covered(path)
            if isinstance(value, dict):
                for key, child in value.items():
                    stack.append((child, (*path, key), secret or self._names.key(key)))
            elif isinstance(value, list):
                stack.extend((child, (*path, i), secret) for i, child in enumerate(value))
            elif secret and isinstance(value, (str, int, float)) and not isinstance(value, bool):
                yield str(value)


class KnownSecrets:
    """One request's secrets, and every form they are recognised in.

    Nothing is compiled for the common case: the literal forms are found with
    substring checks; the percent-encoded form of a secret is matched by a
    regular expression (compiled once per secret) only when the decoded text
    holds it.
    """

    __slots__ = ("_forms", "_heads", "_long", "_tail_chars", "_whole")

    def __init__(self, secrets: Sequence[str]) -> None:
        self._whole = frozenset(secrets)
        self._long = tuple(s for s in secrets if len(s) >= MIN_SUBSTRING)
        forms = {form: secret for secret in self._long for form in _forms(secret)}
        # Longest first: a secret's raw form inside its own escaped form goes with it.
        self._forms = tuple(sorted(forms.items(), key=lambda item: -len(item[0])))
        self._heads = frozenset(form[:MIN_SUBSTRING] for form in forms)
        self._tail_chars = max((len(form) for form in forms), default=0)

    def __bool__(self) -> bool:
        return bool(self._whole)

    def is_secret(self, value: object) -> bool:
        """True when ``value`` as a whole is one of the secrets (numbers by their digits)."""
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            return False
        return (value if isinstance(value, str) else str(value)) in self._whole

    def scrub(self, text: str, marker: Callable[[str], str]) -> str:
        """``text`` with every occurrence of a secret replaced by ``marker(secret)``.

        Markers already in ``text`` are left alone, so scrubbing twice changes nothing.
        """
        if text in self._whole:
            return marker(text)
        if not self._forms:
            return text
        found: list[tuple[str | re.Pattern[str], str]] = [
            (form, secret) for form, secret in self._forms if form in text
        ]
        if "%" in text or "+" in text:
            decoded = unquote_plus(text)
            found.extend(
                (_percent_regex(secret), secret)
                for secret in self._long
                if secret in decoded and secret not in text
            )
        if found:
            text = outside_markers(text, lambda part: _replace(part, found, marker))
        return self._cut_tail(text, marker)

    def _cut_tail(self, text: str, marker: Callable[[str], str]) -> str:
        """A secret cut short at the end of ``text`` (a truncated value) is replaced too."""
        tail = text[-self._tail_chars :]
        if not any(head in tail for head in self._heads):
            return text
        for form, secret in self._forms:
            if len(form) <= MIN_SUBSTRING:
                continue
            start = max(len(text) - len(form) + 1, 0)
            head = form[:MIN_SUBSTRING]
            at = text.find(head, start)
            while at != -1:
                if form.startswith(text[at:]):
                    return text[:at] + marker(secret)
                at = text.find(head, at + 1)
        return text


def outside_markers(text: str, scrub: Callable[[str], str]) -> str:
    """``scrub`` applied to the parts of ``text`` between markers, so markers stay intact."""
    if "[REDACTED]" not in text and "hmac-sha256:" not in text:
        return scrub(text)
    parts = _MARKER.split(text)
    # split() with one group: even indices are text, odd ones the markers.
    return "".join(part if i % 2 else scrub(part) for i, part in enumerate(parts))


def _replace(
    text: str,
    found: Sequence[tuple[str | re.Pattern[str], str]],
    marker: Callable[[str], str],
) -> str:
    """Every found form in ``text`` replaced by its secret's marker."""
    for form, secret in found:
        replacement = marker(secret)
        if isinstance(form, str):
            text = text.replace(form, replacement)
        else:
            # A marker holds no backslash, so it is a literal replacement.
            text = form.sub(replacement, text)
    return text


def mask_path(path: str, secrets: Sequence[str]) -> str:
    """``path`` with every segment holding one of ``secrets`` (also percent-encoded) masked.

    Cheap enough for the hot path: route names and metric labels are chosen
    from the masked path, so a password in ``/basic-auth/alice/<pw>`` never
    becomes a label.
    """
    decoded = unquote(path) if "%" in path else path
    if not any(secret in decoded or secret in path for secret in secrets):
        return path
    segments = path.split("/")
    for i, segment in enumerate(segments):
        plain = unquote(segment) if "%" in segment else segment
        for secret in secrets:
            if (
                plain == secret
                or segment == secret
                or (len(secret) >= MIN_SUBSTRING and (secret in plain or secret in segment))
            ):
                segments[i] = SECRET_SEGMENT
                break
    return "/".join(segments)


@functools.lru_cache(maxsize=256)
def known_secrets(secrets: tuple[str, ...]) -> KnownSecrets:
    """The compiled ``KnownSecrets`` of ``secrets`` (a repeated token compiles once)."""
    return KnownSecrets(secrets)


def _credentials(value: str) -> list[str]:
    """The secret parts of an ``Authorization`` value."""
    value = value.strip()
    scheme, _, rest = value.partition(" ")
    rest = rest.strip()
    if not rest:
        return [value]
    found = [rest]
    kind = scheme.lower()
    if kind == "basic":
        try:
            decoded = base64.b64decode(rest, validate=True).decode("utf-8", "replace")
        except (binascii.Error, ValueError):
            return found
        user, _, password = decoded.partition(":")
        found.extend((decoded, user, password))
    elif kind == "digest":
        for match in _AUTH_PARAM.finditer(rest):
            if match.group(1).lower() in _DIGEST_SECRETS:
                found.append(match.group(2) if match.group(2) is not None else match.group(3))
    return found


def _cookie_values(value: str) -> Iterator[str]:
    for pair in value.split(";"):
        _, sep, cookie = pair.partition("=")
        if sep:
            yield cookie.strip().strip('"')


def _distinct(values: Iterable[str]) -> tuple[str, ...]:
    """Non-empty values, each once, at most ``MAX_SECRETS``, each at most 16 KiB."""
    found: dict[str, None] = {}
    for value in values:
        if value and len(found) < MAX_SECRETS:
            found.setdefault(value[:_MAX_SECRET_CHARS], None)
    return tuple(found)


def _forms(secret: str) -> set[str]:
    """The ways ``secret`` is commonly written back: encoded, escaped, base64."""
    forms = {
        secret,
        quote(secret, safe=""),
        quote(secret, safe="/"),
        quote_plus(secret),
        html.escape(secret),
        orjson.dumps(secret).decode()[1:-1],
        *_base64_forms(secret.encode("utf-8", "surrogatepass")),
    }
    return {form for form in forms if len(form) >= MIN_SUBSTRING}


def _base64_forms(raw: bytes) -> Iterator[str]:
    """``raw`` in base64 on its own, and the part that is the same wherever it sits in a blob.

    Inside a longer base64 text, ``raw`` starts at one of three offsets from a
    3-byte boundary; for each, the characters made only of ``raw``'s bits are
    fixed (a base64-encoded page or header block echoing the secret).
    """
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        whole = encode(raw).decode("ascii")
        yield whole
        yield whole.rstrip("=")
        for offset in (1, 2):
            shifted = encode(bytes(offset) + raw).decode("ascii")
            core = shifted[(8 * offset + 5) // 6 : 8 * (offset + len(raw)) // 6]
            if len(core) >= _MIN_BASE64_CORE:
                yield core
        core = whole[: 8 * len(raw) // 6]
        if len(core) >= _MIN_BASE64_CORE:
            yield core


@functools.lru_cache(maxsize=256)
def _percent_regex(secret: str) -> re.Pattern[str]:
    """``secret`` with any of its characters percent-encoded (either hex case), ``+`` for space."""
    parts = []
    for char in secret:
        encoded = "".join(
            f"%[{hex_[0]}{hex_[0].lower()}][{hex_[1]}{hex_[1].lower()}]"
            for hex_ in (f"{byte:02X}" for byte in char.encode("utf-8", "surrogatepass"))
        )
        plus = r"|\+" if char == " " else ""
        parts.append(f"(?:{re.escape(char)}|{encoded}{plus})")
    return re.compile("".join(parts))

"""Header rewriting between client and upstreams: hop-by-hop stripping and forwarding headers.

Pure functions over ``(name, value)`` pairs so the rules are testable and
fuzzable without a server. Order and repetition (two Set-Cookie lines) are
kept; only hop-by-hop headers, those named in Connection, a client's
``X-Shadow-*`` headers and the framing of answers that have no body are removed.

Also the one framing rule all three HTTP/1.1 speakers (the client-facing
server, the upstream client, the hot path) share: which statuses carry no body.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

__all__ = [
    "HOP_BY_HOP",
    "NO_BODY_STATUS",
    "OWN_PREFIX",
    "VIA",
    "add_fields",
    "connection_tokens",
    "has_content_length",
    "length_bits",
    "request_headers",
    "response_headers",
]

VIA = "1.1 shadowproxy"
"""What the proxy adds to ``Via`` in both directions."""

NO_BODY_STATUS = frozenset({204, 304})
"""Answers that never carry a body, whatever their headers say (RFC 9112 section 6.3)."""

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authorization",
        "proxy-authenticate",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)

# The proxy recomputes framing itself; forwarding the client's value would
# let a mismatched length reach the upstream.
_FRAMING = frozenset({"content-length"})

Pairs = list[tuple[str, str]]
_CONNECTION_CHARS: Final = len("connection")
_CONTENT_LENGTH_CHARS: Final = len("content-length")


def length_bits(names: Iterable[str]) -> int:
    """The lengths of ``names`` as the bits of one number.

    ``(bits >> len(name)) & 1`` says whether ``name`` is as long as one of them:
    a header name of any other length needs no ``lower()`` to be passed over,
    and the look costs neither a boxed int nor a hash, as a set of lengths would.
    """
    bits = 0
    for name in names:
        bits |= 1 << len(name)
    return bits


def add_fields(pieces: list[str], headers: Iterable[tuple[str, str]]) -> None:
    """Append each field's line to a head's ``pieces`` as name, ``": "``, value and CR LF.

    A head is joined from its pieces once, not from a string built per line.
    """
    for name, value in headers:
        pieces.append(name)
        pieces.append(": ")
        pieces.append(value)
        pieces.append("\r\n")


def has_content_length(headers: Iterable[tuple[str, str]]) -> bool:
    """Whether ``headers`` carry a Content-Length (only names that long are lower-cased)."""
    for name, _ in headers:
        if len(name) == _CONTENT_LENGTH_CHARS and name.lower() == "content-length":
            return True
    return False


_RESPONSE_RULED: Final = length_bits((*HOP_BY_HOP, *_FRAMING, "via"))
"""The lengths of the names ``response_headers`` has a rule for."""

_FORWARDED = frozenset({"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"})

OWN_PREFIX = "x-shadow-"
"""The proxy's own headers (``X-Shadow-Request`` on mirrored copies, the drill's probe):
a client's are never forwarded, so no upstream takes one for the proxy's."""


def connection_tokens(headers: Iterable[tuple[str, str]]) -> set[str]:
    """The options every Connection header names, lowercased (``close``, header names)."""
    tokens: set[str] = set()
    for name, value in headers:
        # Runs on every head, both ways: only a name of the right length is lower-cased.
        if len(name) == _CONNECTION_CHARS and name.lower() == "connection":
            for token in value.split(","):
                token = token.strip().lower()
                if token:
                    tokens.add(token)
    return tokens


def request_headers(
    headers: Iterable[tuple[str, str]],
    *,
    client_ip: str,
    scheme: str,
    host: str | None,
    via: str,
    upstream_host: str | None = None,
    drop: frozenset[str] = frozenset(),
) -> Pairs:
    """Headers to send upstream: end-to-end ones plus X-Forwarded-* and Via.

    ``upstream_host`` replaces the client's Host when the upstream should see
    its own name; otherwise the client's Host is kept. ``drop`` names (lower
    case) further headers to leave out, in the same pass.
    """
    # One pass with one lower() per header: this runs on every client request.
    pairs = list(headers)
    named = connection_tokens(pairs)
    kept: Pairs = []
    forwarded_for: list[str] = []
    previous_via: list[str] = []
    for name, value in pairs:
        lower = name.lower()
        if (
            lower in HOP_BY_HOP
            or lower in named
            or lower in _FRAMING
            or lower in drop
            or lower.startswith(OWN_PREFIX)
        ):
            continue
        if lower == "x-forwarded-for":
            forwarded_for.append(value)
        elif lower == "via":
            previous_via.append(value)
        elif lower not in _FORWARDED and not (upstream_host is not None and lower == "host"):
            kept.append((name, value))
    chain = ", ".join([*forwarded_for, client_ip]) if client_ip else ", ".join(forwarded_for)
    if chain:
        kept.append(("X-Forwarded-For", chain))
    kept.append(("X-Forwarded-Proto", scheme))
    if host:
        kept.append(("X-Forwarded-Host", host))
    if upstream_host is not None:
        kept.append(("Host", upstream_host))
    kept.append(("Via", ", ".join([*previous_via, via])))
    return kept


def response_headers(headers: Iterable[tuple[str, str]], via: str, status: int) -> Pairs:
    """Headers to send to the client: legacy's end-to-end headers plus Via.

    Content-Length is kept so the client sees legacy's framing (the proxy
    aborts the connection if fewer bytes arrive), except on a ``status`` that
    never has a body: a 204 must not carry one and a 304's would frame nothing.
    """
    pairs = list(headers)
    named = connection_tokens(pairs)
    bodiless = status in NO_BODY_STATUS
    # Runs on every answer: a name no rule can match (by its length) is kept without a
    # lower(). Connection names options too, keep-alive nearly always.
    ruled = _RESPONSE_RULED | length_bits(named) if named else _RESPONSE_RULED
    kept: Pairs = []
    previous_via: list[str] = []
    for pair in pairs:
        name = pair[0]
        if not (ruled >> len(name)) & 1:
            kept.append(pair)
            continue
        lower = name.lower()
        if lower in HOP_BY_HOP or lower in named or (bodiless and lower in _FRAMING):
            continue
        if lower == "via":
            previous_via.append(pair[1])
        else:
            kept.append(pair)
    kept.append(("Via", ", ".join([*previous_via, via]) if previous_via else via))
    return kept

"""Which response headers are compared, and how.

Owns the never-compared list (hop-by-hop, volatile and secret-bearing headers,
skipped even when a rule lists them) and the header kinds: ``content_type``
(media type differs or is present on one side only), ``content_type_params``
(same media type, different parameters such as charset) and ``header`` (a
listed header's value differs or is present on one side only). Repeated
headers are compared as their values joined with ``", "`` in wire order. Pure code.
"""

from __future__ import annotations

from shadowproxy.compare.found import Collector, Found
from shadowproxy.compare.media import MediaType
from shadowproxy.model import Headers

__all__ = [
    "NEVER_COMPARED",
    "compared_headers",
    "diff_content_type",
    "diff_headers",
    "header_values",
]

NEVER_COMPARED = frozenset(
    {
        # hop-by-hop (RFC 9110 section 7.6.1) and framing
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "content-encoding",
        # volatile: differ between any two answers
        "date",
        "server",
        "age",
        "expires",
        "last-modified",
        "etag",
        "vary",
        "via",
        "x-request-id",
        "x-correlation-id",
        "x-amzn-trace-id",
        "traceparent",
        "tracestate",
        "x-runtime",
        "x-response-time",
        "server-timing",
        "alt-svc",
        # secret-bearing: values must never reach evidence
        "set-cookie",
        "authorization",
        "www-authenticate",
        "cookie",
    }
)
"""Lower-cased header names never compared, even when ``rules.headers`` lists them."""


def compared_headers(extra: tuple[str, ...]) -> tuple[str, ...]:
    """Sorted names compared besides Content-Type: ``extra`` minus the never-compared list."""
    names = {name.strip().lower() for name in extra}
    return tuple(sorted(names - NEVER_COMPARED - {"content-type"}))


def header_values(headers: Headers, names: frozenset[str]) -> dict[str, str]:
    """Values of the headers in ``names`` (lower-cased), repeats joined with ``", "``."""
    values: dict[str, str] = {}
    for key, value in headers:
        name = key.lower()
        if name in names:
            previous = values.get(name)
            values[name] = value.strip() if previous is None else f"{previous}, {value.strip()}"
    return values


def diff_content_type(legacy: MediaType, candidate: MediaType, out: Collector) -> None:
    """Append a ``content_type`` or ``content_type_params`` difference if the types differ."""
    if legacy.essence != candidate.essence:
        out.add(Found("content_type", "content-type", legacy.raw, candidate.raw))
    elif legacy.params != candidate.params:
        out.add(Found("content_type_params", "content-type", legacy.raw, candidate.raw))


def diff_headers(
    legacy: dict[str, str], candidate: dict[str, str], names: tuple[str, ...], out: Collector
) -> None:
    """Append a ``header`` difference for each name in ``names`` whose values differ."""
    for name in names:
        left, right = legacy.get(name), candidate.get(name)
        if left != right:
            out.add(Found("header", name, left, right))

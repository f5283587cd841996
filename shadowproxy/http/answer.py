"""An answer to a client as bytes on the wire, the same from both client-facing servers.

The lean server (``server_request.py``) and the hand-over to aiohttp's server
(``handover.py``) write every answer the hot path gives them through these
functions, so a client gets the same bytes whichever server took its
request: the status line and header fields exactly as legacy sent them
(each character one Latin-1 byte, never re-encoded), plus only the framing
(``Content-Length``, or chunked for a streamed body of unknown length) and
the ``Connection`` option keep-alive needs. No ``Date``, ``Server`` or
``Content-Type`` of the proxy's own.

Pure functions over strings and bytes: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from shadowproxy.http.headers import NO_BODY_STATUS, add_fields, has_content_length

__all__ = ["LAST_CHUNK", "Streaming", "body_chunk", "head", "streaming", "whole"]

Pairs = list[tuple[str, str]]

LAST_CHUNK: Final = b"0\r\n\r\n"
"""Ends a chunked body (no trailers)."""


def head(
    version: str, status: int, reason: str, headers: Pairs, framing: str, keep_alive: bool
) -> bytes:
    """The answer's head: status line, ``headers``, ``framing`` and the Connection option."""
    pieces = [f"HTTP/{version} {status} {reason}\r\n"]
    add_fields(pieces, headers)
    if framing:
        pieces.append(framing)
    if not keep_alive:
        pieces.append("Connection: close\r\n")
    elif version == "1.0":
        pieces.append("Connection: keep-alive\r\n")
    pieces.append("\r\n")
    return "".join(pieces).encode("latin-1")


def whole(
    version: str,
    method: str,
    status: int,
    reason: str,
    headers: Pairs,
    body: bytes,
    keep_alive: bool,
) -> tuple[bytes, bytes]:
    """The head and the body it frames (empty when none is sent, as for HEAD).

    Content-Length is added when ``headers`` lack it. Two pieces, not one: a
    transport writes both in one system call (``writelines``) without the copy
    of the body that joining them costs.
    """
    # RFC 9110 section 8.6: no Content-Length on 1xx or 204; a 304's describes
    # another answer, so it is never invented.
    framed = status >= 200 and status not in NO_BODY_STATUS
    length = framed and not has_content_length(headers)
    framing = f"Content-Length: {len(body)}\r\n" if length else ""
    data = head(version, status, reason, headers, framing, keep_alive)
    return data, body if framed and method != "HEAD" else b""


@dataclass(frozen=True, slots=True)
class Streaming:
    """The head of an answer whose body follows in pieces, and how to frame them."""

    head: bytes
    chunked: bool
    bodiless: bool
    """HEAD, 1xx, 204 or 304: body bytes given later are not sent."""
    keep_alive: bool
    """False when the body is delimited by the connection's end (an HTTP/1.0 client)."""


def streaming(
    version: str, method: str, status: int, reason: str, headers: Pairs, keep_alive: bool
) -> Streaming:
    """Frame a streamed answer: legacy's Content-Length, else chunked (1.1) or until close (1.0)."""
    bodiless = method == "HEAD" or status in NO_BODY_STATUS or status < 200
    chunked = False
    framing = ""
    if not bodiless and not has_content_length(headers):
        if version == "1.1":
            framing = "Transfer-Encoding: chunked\r\n"
            chunked = True
        else:
            # An HTTP/1.0 client reads to the connection's end.
            keep_alive = False
    return Streaming(
        head(version, status, reason, headers, framing, keep_alive), chunked, bodiless, keep_alive
    )


def body_chunk(data: bytes, chunked: bool) -> bytes:
    """``data`` as it goes on the wire."""
    return b"%x\r\n%b\r\n" % (len(data), data) if chunked else data

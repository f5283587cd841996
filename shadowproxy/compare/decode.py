"""Undo Content-Encoding for comparison only, never beyond a byte cap.

Owns the decoders for ``gzip`` / ``x-gzip``, ``deflate`` (zlib-wrapped, or raw
as some servers send it), ``br`` (``brotli``), ``zstd`` (``zstandard``, when
importable) and ``identity``. Every decoder is incremental and bounded: output
beyond the cap stops decoding at once, so a decompression bomb costs at most
``max_bytes + 1`` bytes of memory and ends as ``too_large``. A corrupt,
truncated or unsupported encoding ends as ``decode``. Failures are values,
not exceptions. Pure code: may import only the standard library, the codecs
and ``shadowproxy.model``.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

import brotli

from shadowproxy.model import ErrorKind

_zstandard: ModuleType | None
try:
    import zstandard

    _zstandard = zstandard
except ImportError:  # optional: zstd bodies then end as a decode error
    _zstandard = None

__all__ = ["Decoded", "decode"]


@dataclass(frozen=True, slots=True)
class Decoded:
    """A decoded body, or why there is none (``error`` set, ``data`` empty)."""

    data: bytes
    error: ErrorKind | None = None
    detail: str = ""


class _DecodeFailedError(Exception):
    """Internal signal from one decoder; turned into a ``Decoded`` before leaving."""

    def __init__(self, kind: ErrorKind, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


def _too_large(encoding: str, cap: int) -> _DecodeFailedError:
    return _DecodeFailedError(ErrorKind.TOO_LARGE, f"{encoding} body decodes beyond {cap} bytes")


def _zlib(data: bytes, cap: int, wbits: int, encoding: str) -> bytes:
    out = bytearray()
    rest = data
    # A gzip body may hold several members back to back; each gets a fresh decoder.
    while True:
        decoder = zlib.decompressobj(wbits)
        try:
            out += decoder.decompress(rest, cap + 1 - len(out))
            if len(out) > cap:
                raise _too_large(encoding, cap)
            while decoder.unconsumed_tail and not decoder.eof:
                out += decoder.decompress(decoder.unconsumed_tail, cap + 1 - len(out))
                if len(out) > cap:
                    raise _too_large(encoding, cap)
        except zlib.error as exc:
            raise _DecodeFailedError(
                ErrorKind.DECODE, f"invalid {encoding} stream: {exc}"
            ) from None
        if not decoder.eof:
            raise _DecodeFailedError(ErrorKind.DECODE, f"truncated {encoding} stream")
        rest = decoder.unused_data
        if not rest or wbits != 31:
            return bytes(out)


def _gzip(data: bytes, cap: int) -> bytes:
    return _zlib(data, cap, 31, "gzip")


def _deflate(data: bytes, cap: int) -> bytes:
    # RFC 9110 deflate is zlib-wrapped, but some servers send raw deflate.
    if data[:1] and (data[0] & 0x0F) == 8 and int.from_bytes(data[:2], "big") % 31 == 0:
        return _zlib(data, cap, 15, "deflate")
    return _zlib(data, cap, -15, "deflate")


def _brotli(data: bytes, cap: int) -> bytes:
    decoder = brotli.Decompressor()
    try:
        out = bytearray(decoder.process(data, output_buffer_limit=cap + 1))
        while len(out) <= cap and not decoder.can_accept_more_data():
            out += decoder.process(b"", output_buffer_limit=cap + 1 - len(out))
    except brotli.error as exc:
        raise _DecodeFailedError(ErrorKind.DECODE, f"invalid br stream: {exc}") from None
    if len(out) > cap:
        raise _too_large("br", cap)
    if not decoder.is_finished():
        raise _DecodeFailedError(ErrorKind.DECODE, "truncated br stream")
    return bytes(out)


def _zstd(data: bytes, cap: int) -> bytes:
    codec = _zstandard
    if codec is None:
        raise _DecodeFailedError(
            ErrorKind.DECODE, "zstd decoder unavailable (zstandard not installed)"
        )
    try:
        # The stream reader is bounded but silent about truncation; once it has
        # shown the output fits the cap, the frame decoder can safely check that
        # every frame is complete.
        reader = codec.ZstdDecompressor().stream_reader(data, read_across_frames=True)
        size = 0
        while size <= cap:
            chunk = reader.read(cap + 1 - size)
            if not chunk:
                break
            size += len(chunk)
        if size > cap:
            raise _too_large("zstd", cap)
        out = bytearray()
        rest = data
        while rest:
            decoder = codec.ZstdDecompressor().decompressobj()
            out += decoder.decompress(rest)
            if not decoder.eof:
                raise _DecodeFailedError(ErrorKind.DECODE, "truncated zstd stream")
            rest = decoder.unused_data
    except codec.ZstdError as exc:
        raise _DecodeFailedError(ErrorKind.DECODE, f"invalid zstd stream: {exc}") from None
    return bytes(out)


_DECODERS: dict[str, Callable[[bytes, int], bytes]] = {
    "gzip": _gzip,
    "x-gzip": _gzip,
    "deflate": _deflate,
    "br": _brotli,
    "zstd": _zstd,
}


def decode(body: bytes, content_encoding: str | None, max_bytes: int) -> Decoded:
    """Undo ``content_encoding`` (a header value, codings in applied order) on ``body``.

    The result never exceeds ``max_bytes``; an identity body longer than that is
    ``too_large`` as well, so every caller sees the same cap.
    """
    codings = [c.strip().lower() for c in (content_encoding or "").split(",")]
    data = body
    try:
        for coding in reversed(codings):
            if coding in ("", "identity"):
                continue
            decoder = _DECODERS.get(coding)
            if decoder is None:
                raise _DecodeFailedError(
                    ErrorKind.DECODE, f"unsupported content-encoding {coding!r}"
                )
            data = decoder(data, max_bytes)
        if len(data) > max_bytes:
            raise _DecodeFailedError(ErrorKind.TOO_LARGE, f"body exceeds {max_bytes} bytes")
    except _DecodeFailedError as failed:
        return Decoded(b"", failed.kind, failed.detail)
    return Decoded(data)

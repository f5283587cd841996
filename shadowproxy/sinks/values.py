"""Bounding recorded values: JSON-safe, non-UTF-8 bytes encoded, long values cut.

Owns the rule that a value in a record is never larger than
``evidence.max_value_chars``: strings are cut and end with ``…``; containers
whose compact JSON is longer become that JSON text, cut the same way; bytes
that are not UTF-8 become ``{"base64": ..., "bytes": N}``. Runs after
redaction, so cutting never reveals a secret. Standard library and orjson only.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping

import orjson

__all__ = ["ELLIPSIS", "bound_value"]

ELLIPSIS = "…"
"""Appended to a value that was cut."""

_INT64 = 2**63


def bound_value(value: object, max_chars: int) -> object:
    """``value`` as a JSON-compatible value no longer than ``max_chars`` characters (plus ``…``)."""
    out = _jsonable(value, max_chars)
    # The {"base64", "bytes"} form of a binary value is a leaf, already bounded.
    if isinstance(out, (dict, list)) and not isinstance(value, (bytes, bytearray, memoryview)):
        text = orjson.dumps(out).decode()
        if len(text) > max_chars:
            return _cut(text, max_chars)
    return out


def _jsonable(value: object, max_chars: int) -> object:
    """A JSON-compatible copy with strings cut and bytes decoded or encoded."""
    # isinstance takes tuples of types here, not unions: compiled, ``A | B`` would
    # build a union object on every call (as in redact.py and secrets.py).
    if value is None or isinstance(value, (bool, float)):
        return value
    if isinstance(value, int):
        # orjson refuses integers beyond 64 bits; their digits are still evidence.
        return value if -_INT64 <= value < _INT64 else _cut(str(value), max_chars)
    if isinstance(value, str):
        return _cut(value, max_chars)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _binary(bytes(value), max_chars)
    if isinstance(value, Mapping):
        return {str(key): _jsonable(child, max_chars) for key, child in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(child, max_chars) for child in value]
    return _cut(str(value), max_chars)


def _binary(data: bytes, max_chars: int) -> object:
    """UTF-8 bytes as text; anything else base64-encoded (of a prefix when long) with its size."""
    try:
        return _cut(data.decode("utf-8"), max_chars)
    except UnicodeDecodeError:
        keep = max(max_chars, 4) * 3 // 4
        return {"base64": base64.b64encode(data[:keep]).decode("ascii"), "bytes": len(data)}


def _cut(text: str, max_chars: int) -> str:
    """``text`` cut to ``max_chars`` characters, marked with ``…`` when cut.

    Lone surrogates (undecodable text smuggled through ``surrogateescape``)
    are replaced so the result always encodes as UTF-8.
    """
    if len(text) > max_chars:
        text = text[:max_chars] + ELLIPSIS
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text

"""JSON parsing for comparison: exact integers, and the engine's one nesting limit.

Owns ``MAX_DEPTH`` and ``parse_json``. Every step after parsing recurses once
per level of nesting: the tree walk, Python's ``==`` on containers, the strict
re-check's serialisation, pickling a verdict back from the comparison process,
writing evidence. Each of them has its own limit, and most of those move with
the caller's stack. So the depth is decided once, here, before any of them
runs: a document nested deeper than ``MAX_DEPTH`` does not parse, whatever its
depth beyond it (msgspec's own recursion limit, around 1,000 levels, lies
beyond it and ends the same way).

Checking the depth costs nothing for usual documents: the first decoder is
typed as "any JSON value at most ``_TYPED_LEVELS`` deep", so msgspec checks the
depth while it parses. A deeper document is parsed again untyped and measured
with one orjson serialisation, whose own limit is ``MAX_DEPTH``. Integers
beyond 64 bits keep every digit (orjson would turn them into floats). Pure code.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import GenericAlias
from typing import Any

import msgspec
import orjson

from shadowproxy.model import JsonValue

__all__ = ["MAX_DEPTH", "TOO_DEEP", "ParsedJson", "deeper_than", "parse_json"]

MAX_DEPTH = 254
"""Deepest nesting compared as a tree (``[[1]]`` is 2 levels, a scalar 0).

orjson's serialisation limit: a document within it can be serialised (strict
re-check, evidence) and walked with ample room on the interpreter's stack."""

TOO_DEEP = f"nesting deeper than {MAX_DEPTH} levels"
"""The parse error of a document beyond ``MAX_DEPTH``."""

# msgspec builds a typed decoder level by level without sharing, so its cost
# grows about 2.3 times per level: 10 levels take about 10 ms, once, at import.
_TYPED_LEVELS = 10


def _typed_levels(levels: int) -> Any:
    """The type of a JSON value nested at most ``levels`` deep."""
    scalar: Any = bool | int | float | str | None
    value = scalar
    for _ in range(levels):
        value = scalar | GenericAlias(list, (value,)) | GenericAlias(dict, (str, value))
    return value


_SHALLOW = msgspec.json.Decoder(_typed_levels(_TYPED_LEVELS))
_ANY = msgspec.json.Decoder()


@dataclass(frozen=True, slots=True)
class ParsedJson:
    """A parsed document, or why there is none (``error`` set: what the body side reports)."""

    value: JsonValue = None
    error: str | None = None


def parse_json(data: bytes) -> ParsedJson:
    """Parse ``data`` as JSON, exactly; nesting beyond ``MAX_DEPTH`` is an error."""
    try:
        return ParsedJson(_SHALLOW.decode(data))
    except msgspec.ValidationError:
        pass  # valid so far, but nested deeper than the typed decoder checks
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        return _invalid(data, exc)
    try:
        value = _ANY.decode(data)
    except RecursionError:
        return ParsedJson(error=TOO_DEEP)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        return _invalid(data, exc)
    if _too_deep(value):
        return ParsedJson(error=TOO_DEEP)
    return ParsedJson(value)


def _invalid(data: bytes, exc: Exception) -> ParsedJson:
    # orjson's message names the line and column; msgspec's does not.
    try:
        orjson.loads(data)
    except orjson.JSONDecodeError as detailed:
        return ParsedJson(error=f"invalid JSON: {detailed}")
    return ParsedJson(error=f"invalid JSON: {exc}")


def _too_deep(value: object) -> bool:
    """True when ``value`` nests more than ``MAX_DEPTH`` levels deep."""
    try:
        orjson.dumps(value)
    except orjson.JSONEncodeError:
        # orjson also refuses integers beyond 64 bits: measure level by level then.
        return deeper_than(value, MAX_DEPTH)
    return False


def deeper_than(value: object, limit: int) -> bool:
    """True when the parsed ``value`` nests more than ``limit`` levels deep (level by level)."""
    level = [value] if type(value) in (dict, list) else []
    for _ in range(limit):
        if not level:
            return False
        level = [
            child
            for node in level
            for child in (node.values() if type(node) is dict else node)  # type: ignore[attr-defined]
            if type(child) in (dict, list)
        ]
    return bool(level)

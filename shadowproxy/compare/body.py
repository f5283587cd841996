"""Body comparison after Content-Encoding is undone: JSON, text or bytes.

Owns the choice of comparison and the body-level kinds: ``parse`` (one side
parses as JSON, the other does not, or nests deeper than ``parse.MAX_DEPTH``),
``body`` (text or bytes differ; JSON that parses on neither side is compared
as text), plus everything ``tree`` finds inside JSON. Pure code.
"""

from __future__ import annotations

import hashlib

from shadowproxy.compare.found import Collector, Found
from shadowproxy.compare.media import BodyKind, MediaType, body_kind
from shadowproxy.compare.parse import ParsedJson, parse_json
from shadowproxy.compare.tree import TreeRules, diff_json, json_type
from shadowproxy.compare.window import same_kind_number_change

__all__ = ["BODY_PATH", "diff_bodies"]

BODY_PATH = "$"
"""Path of differences about a whole body (``parse``, ``body``)."""

_MAX_LINE_CHARS = 200


def _fingerprint(data: bytes) -> dict[str, object]:
    return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _first_line_difference(legacy: str, candidate: str, out: Collector) -> None:
    left, right = legacy.splitlines(), candidate.splitlines()
    for number in range(max(len(left), len(right))):
        a = left[number] if number < len(left) else None
        b = right[number] if number < len(right) else None
        if a != b:
            out.add(Found("body", BODY_PATH, _line(number, a), _line(number, b), ()))
            return
    # Same lines, different line endings.
    out.add(
        Found(
            "body",
            BODY_PATH,
            _line(0, left[0] if left else ""),
            _line(0, right[0] if right else ""),
            (),
        )
    )


def _line(number: int, text: str | None) -> dict[str, object]:
    return {"line": number + 1, "text": None if text is None else text[:_MAX_LINE_CHARS]}


def diff_bodies(
    legacy: bytes,
    candidate: bytes,
    legacy_media: MediaType,
    candidate_media: MediaType,
    rules: TreeRules,
    out: Collector,
) -> None:
    """Append the differences between two decoded bodies to ``out``.

    JSON when either side declares JSON, else text when either side declares
    text, else bytes. Equal bytes are equal whatever the types say.
    """
    if legacy == candidate and legacy_media.charset == candidate_media.charset:
        return
    kinds = {body_kind(legacy_media), body_kind(candidate_media)}
    if BodyKind.JSON in kinds:
        left, right = parse_json(legacy), parse_json(candidate)
        if left.error is None and right.error is None:
            single = same_kind_number_change(legacy, candidate)
            diff_json(left.value, right.value, rules, out, single)
            return
        if left.error is None or right.error is None:
            out.add(Found("parse", BODY_PATH, _parse_side(left), _parse_side(right), ()))
            return
    if BodyKind.TEXT in kinds or BodyKind.JSON in kinds:
        legacy_text = legacy.decode(legacy_media.text_codec(), errors="replace")
        candidate_text = candidate.decode(candidate_media.text_codec(), errors="replace")
        if legacy_text != candidate_text:
            _first_line_difference(legacy_text, candidate_text, out)
        return
    if legacy != candidate:
        out.add(Found("body", BODY_PATH, _fingerprint(legacy), _fingerprint(candidate), ()))


def _parse_side(parsed: ParsedJson) -> str:
    if parsed.error is not None:
        return parsed.error
    return json_type(parsed.value)

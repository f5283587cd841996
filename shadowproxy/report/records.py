"""Typed views of the evidence records the report reads most: exchanges and rollups.

Owns decoding one JSONL line into an ``ExchangeRecord`` or a ``RollupRecord``
with msgspec, which skips the fields the report never reads (bodies' summaries,
equivalences, notes) in C and leaves a difference's values undecoded until an
example needs them. Fields the aggregator checks itself are typed ``Any`` so
that a record rejected here is exactly one the aggregator would reject too;
anything that does not decode (another record type, a malformed line) is left
to the caller's general path. Imports msgspec only.
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = ["Difference", "ExchangeRecord", "RollupRecord", "decode_record", "raw_text"]

_NULL = msgspec.Raw(b"null")


class Difference(msgspec.Struct, frozen=True, gc=False):
    """One entry of an exchange's ``differences``; the values stay raw JSON."""

    cls: str = msgspec.field(name="class")
    kind: str
    path: str
    noise: Any = None
    legacy: msgspec.Raw = _NULL
    candidate: msgspec.Raw = _NULL


class ExchangeRecord(msgspec.Struct, frozen=True, tag="exchange", tag_field="type"):
    """The fields of an ``exchange`` record the report reads."""

    route: str
    domain: str
    ts: str
    method: Any = "?"
    path: Any = "?"
    classes: Any = None
    differences: list[Difference] | None = None


class RollupRecord(msgspec.Struct, frozen=True, tag="rollup", tag_field="type"):
    """The fields of a ``rollup`` record the report reads; counters default to 0."""

    route: str
    domain: str
    ts_start: str
    ts_end: Any = None
    compared: Any = 0
    match: Any = 0
    diverged: Any = 0
    structural: Any = 0
    semantic: Any = 0
    timing: Any = 0
    noise: Any = 0
    errors: Any = 0
    skipped: Any = None
    latency: Any = None


_DECODER: msgspec.json.Decoder[ExchangeRecord | RollupRecord] = msgspec.json.Decoder(
    ExchangeRecord | RollupRecord
)


def decode_record(line: bytes) -> ExchangeRecord | RollupRecord | None:
    """The typed record on ``line``, or None when it is anything else (or malformed)."""
    try:
        return _DECODER.decode(line)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return None


def raw_text(raw: msgspec.Raw) -> str:
    """Compact JSON text of a raw value; integers keep every digit."""
    return msgspec.json.encode(msgspec.json.decode(raw)).decode()

"""Typed views of the evidence records the report reads most: exchanges and rollups.

Owns decoding one JSONL line into an ``ExchangeRecord`` or a ``RollupRecord``
with msgspec, which skips the fields the report never reads (bodies' summaries,
equivalences, notes) in C and leaves a difference's values undecoded until an
example needs them. Enumerations (verdict, difference class) and the lengths
of keys (route, domain, kind) are checked here, in C; fields the aggregator
checks itself (counters, histograms) are typed ``Any`` so that it can tell a
hostile value from a wrongly typed one. Anything that does not decode
(another record type, a malformed line) is left to the caller's general
path. A value nested deeper than the interpreter's recursion limit is hostile
(``HostileValueError``), never a RecursionError. Each record's phase (``mode``,
``canary_percent``, ``mode_since``) becomes a ``PhaseKey`` (``phase_key``).
``ownership`` and ``drill`` records, rare and small, are read from the general
path's dict (``ownership_change``, ``drill_summary``), with their texts cut and
at most 32 ``numbers``. Imports msgspec and the report's errors, values and
time parsing.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from shadowproxy.report.accumulators import cut
from shadowproxy.report.errors import HostileValueError
from shadowproxy.report.summary import DrillSummary, OwnershipChange
from shadowproxy.report.timeparse import parse_record_ts

__all__ = [
    "MAX_KEY_CHARS",
    "UNKNOWN_PHASE",
    "Difference",
    "ExchangeRecord",
    "PhaseKey",
    "RollupRecord",
    "decode_record",
    "drill_summary",
    "ownership_change",
    "phase_key",
    "raw_text",
]

MAX_KEY_CHARS = 1024
"""Longest route or domain a record may name; a longer one makes the record malformed."""
_MAX_KIND_CHARS = 64
_MAX_TEXT_CHARS = 256
_MAX_NUMBERS = 32
_NULL = msgspec.Raw(b"null")

Key = Annotated[str, msgspec.Meta(max_length=MAX_KEY_CHARS)]
"""A route or domain name."""
Mode = Literal["shadow", "canary", "candidate", "legacy-only", "force-legacy"]
"""A record's ``mode`` (docs/evidence.md, Phases)."""
PhaseKey = tuple[str, float | None, float | None]
"""``(mode, canary percent, since)``: one stint of a route in one phase on one replica."""
UNKNOWN_PHASE: PhaseKey = ("unknown", None, None)
"""The phase of records older than phases: never a canary step's evidence."""


class Difference(msgspec.Struct, frozen=True, gc=False):
    """One entry of an exchange's ``differences``; the values stay raw JSON."""

    cls: Literal["structural", "semantic", "timing"] = msgspec.field(name="class")
    kind: Annotated[str, msgspec.Meta(max_length=_MAX_KIND_CHARS)]
    path: str
    noise: Any = None
    legacy: msgspec.Raw = _NULL
    candidate: msgspec.Raw = _NULL


class ExchangeRecord(msgspec.Struct, frozen=True, tag="exchange", tag_field="type"):
    """The fields of an ``exchange`` record the report reads."""

    route: Key
    domain: Key
    ts: str
    verdict: Literal["match", "diverged", "noise", "error"] | None = None
    method: Any = "?"
    path: Any = "?"
    classes: list[str] | None = None
    differences: list[Difference] | None = None
    differences_omitted: Any = 0
    mode: Mode | None = None
    canary_percent: Any = None
    mode_since: str | None = None


class RollupRecord(msgspec.Struct, frozen=True, tag="rollup", tag_field="type"):
    """The fields of a ``rollup`` record the report reads; counters default to 0."""

    route: Key
    domain: Key
    ts_start: str
    ts_end: str | None = None
    compared: Any = 0
    match: Any = 0
    diverged: Any = 0
    structural: Any = 0
    semantic: Any = 0
    timing: Any = 0
    noise: Any = 0
    errors: Any = 0
    streams: Any = 0
    skipped: Any = None
    latency: Any = None
    mode: Mode | None = None
    canary_percent: Any = None
    mode_since: str | None = None


_DECODER: msgspec.json.Decoder[ExchangeRecord | RollupRecord] = msgspec.json.Decoder(
    ExchangeRecord | RollupRecord
)


def decode_record(line: bytes) -> ExchangeRecord | RollupRecord | None:
    """The typed record on ``line``, or None when it is anything else (or malformed)."""
    try:
        return _DECODER.decode(line)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return None
    except RecursionError:
        raise HostileValueError("a value is nested too deep to decode") from None


def raw_text(raw: msgspec.Raw) -> str:
    """Compact JSON text of a raw value; integers keep every digit."""
    try:
        return msgspec.json.encode(msgspec.json.decode(raw)).decode()
    except RecursionError:
        raise HostileValueError("a value is nested too deep to decode") from None


def phase_key(record: ExchangeRecord | RollupRecord) -> PhaseKey:
    """The record's phase; ValueError when its canary percent or since is malformed."""
    mode = record.mode
    if mode is None:
        return UNKNOWN_PHASE
    since = None if record.mode_since is None else parse_record_ts(record.mode_since, "mode_since")
    if mode != "canary":
        return (mode, None, since)
    percent = record.canary_percent
    if type(percent) not in (int, float) or not 0 <= percent <= 100:
        raise ValueError("a canary record needs canary_percent in [0, 100]")
    return (mode, float(percent), since)


def drill_summary(record: dict[str, Any]) -> DrillSummary:
    """The ``drill`` record ``record``; KeyError, TypeError or ValueError when malformed."""
    passed, drill_id = record["passed"], record.get("id")
    if not isinstance(passed, bool) or not (drill_id is None or isinstance(drill_id, str)):
        raise ValueError("a drill record needs passed true or false and a string id")
    return DrillSummary(
        ts=parse_record_ts(record["ts"], "ts"),
        route=_text(record["route"]),
        passed=passed,
        drill_id=None if drill_id is None else _text(drill_id),
    )


def _text(value: object) -> str:
    return cut(str(value or ""), _MAX_TEXT_CHARS)


def ownership_change(record: dict[str, Any]) -> OwnershipChange:
    """The ``ownership`` record ``record``; KeyError, TypeError or ValueError when malformed."""
    percent = record.get("percent")
    numbers = record.get("numbers") or {}
    if not isinstance(numbers, dict):
        raise ValueError("numbers must be an object")
    return OwnershipChange(
        ts=parse_record_ts(record["ts"], "ts"),
        route=_text(record["route"]),
        from_mode=_text(record.get("from")),
        to_mode=_text(record.get("to")),
        percent=float(percent) if isinstance(percent, int | float) else None,
        reason=_text(record.get("reason")),
        source=_text(record.get("source")),
        numbers={
            _text(k): float(v)
            for k, v in list(numbers.items())[:_MAX_NUMBERS]
            if isinstance(v, int | float) and not isinstance(v, bool)
        },
    )

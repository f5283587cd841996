"""Building the JSONL records of docs/evidence.md (contract v1) from domain values.

Owns the field layout of ``exchange`` records, RFC 3339 timestamps and the
deterministic sampling of matching exchanges. Values pass through redaction
(with the request's own secrets) then bounding before they land in a record.
No I/O.
"""

from __future__ import annotations

import hashlib

from shadowproxy.model import Exchange, Observation, Outcome, RequestFacts, Verdict
from shadowproxy.records import EXCHANGE, SCHEMA_VERSION
from shadowproxy.settings import EvidenceSettings
from shadowproxy.sinks.redact import Redactor
from shadowproxy.sinks.rollup import phase_fields
from shadowproxy.sinks.secrets import KnownSecrets, known_secrets
from shadowproxy.sinks.values import bound_value
from shadowproxy.timestamps import rfc3339

__all__ = ["MAX_CLIENT_ID_CHARS", "exchange_record", "sampled", "wanted"]

MAX_CLIENT_ID_CHARS = 128
"""A client's request id is cut to this many characters in ``client_request_id``."""

_SAMPLE_SCALE = 1_000_000
_MAX_PATH_CHARS = 2048


def sampled(exchange_id: str, percent: float) -> bool:
    """Whether a matching exchange is recorded; an id gets the same answer in every worker."""
    if percent <= 0:
        return False
    if percent >= 100:
        return True
    digest = hashlib.blake2b(exchange_id.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest) % _SAMPLE_SCALE < percent * (_SAMPLE_SCALE / 100)


def _record_path(
    request: RequestFacts, redactor: Redactor, include_query: bool, known: KnownSecrets
) -> str:
    """The recorded ``path``, scrubbed; the query left out, or redacted when ``include_query``."""
    path = redactor.path(request.path, known)
    if include_query and request.query:
        return f"{path}?{redactor.query(request.query, known)}"
    return path


def exchange_record(
    exchange: Exchange, verdict: Verdict, redactor: Redactor, settings: EvidenceSettings
) -> dict[str, object]:
    """The ``exchange`` record of one compared exchange."""
    request = exchange.request
    known = known_secrets(request.secrets)
    limit = settings.max_value_chars
    kept = verdict.differences[: max(settings.max_differences, 0)]
    differences = []
    for raw in kept:
        diff = redactor.difference(raw, known)
        differences.append(
            {
                "class": str(diff.cls),
                "kind": bound_value(diff.kind, limit),
                "path": bound_value(diff.path, limit),
                "legacy": bound_value(diff.legacy, limit),
                "candidate": bound_value(diff.candidate, limit),
                "noise": diff.noise,
            }
        )
    client_id = request.client_request_id
    record: dict[str, object] = {
        "v": SCHEMA_VERSION,
        "type": EXCHANGE,
        "ts": rfc3339(request.started_at),
        "id": request.id,
        "client_request_id": None
        if client_id is None
        else bound_value(redactor.text(client_id, known), MAX_CLIENT_ID_CHARS),
        "route": request.route,
        "domain": request.domain,
        "method": request.method,
        "path": bound_value(
            _record_path(request, redactor, settings.include_query, known), _MAX_PATH_CHARS
        ),
        "verdict": str(verdict.outcome),
        "classes": sorted(str(c) for c in verdict.classes),
        "legacy": _side(exchange.legacy, with_error=False),
        "candidate": _side(exchange.candidate, with_error=True),
        "answered_by": str(exchange.answered_by),
        **phase_fields(request.phase),
    }
    if exchange.secondary is not None:
        record["secondary"] = _side(exchange.secondary, with_error=True)
    kind = exchange.stream_kind
    if kind is not None:
        record["stream"] = {
            "kind": str(kind),
            "legacy": _window(exchange.legacy),
            "candidate": _window(exchange.candidate),
        }
    record["differences"] = differences
    record["differences_omitted"] = len(verdict.differences) - len(kept)
    record["equivalences"] = {str(k): int(n) for k, n in sorted(verdict.equivalences.items())}
    record["note"] = (
        None if verdict.note is None else bound_value(redactor.text(verdict.note, known), limit)
    )
    return record


def wanted(verdict: Verdict, exchange_id: str, settings: EvidenceSettings) -> bool:
    """Whether an exchange with ``verdict`` gets an ``exchange`` record."""
    return verdict.outcome is not Outcome.MATCH or sampled(
        exchange_id, settings.sample_matches_percent
    )


def _window(observation: Observation) -> dict[str, object] | None:
    """``{events, ended, closed_ms, bytes}`` of a side's stream window, or None."""
    window = observation.stream
    if window is None:
        return None
    return {
        "events": len(window.events),
        "ended": str(window.ended),
        "closed_ms": round(window.closed_s * 1000, 3),
        "bytes": window.size,
    }


def _side(observation: Observation, *, with_error: bool) -> dict[str, object]:
    """``{status, ms, bytes}`` (and ``error`` for the shadow sides)."""
    side: dict[str, object] = {
        "status": observation.status,
        "ms": round(observation.elapsed_s * 1000, 3),
        "bytes": observation.body_size,
    }
    if with_error:
        side["error"] = None if observation.error is None else str(observation.error)
    return side

"""The comparator: one exchange and its rules in, one verdict out.

Owns the order of work and the verdict. A byte-identical pair (same status,
same body bytes, same compared headers and Content-Encoding, no secondary, not
slow) is a match without decoding or parsing anything. Otherwise the bodies are
decoded (``decode``), status, headers and bodies are diffed (``headers``,
``body``, ``tree``), latency is checked (``timing``), the secondary is diffed
against legacy for noise (``noise``), and each difference is classified
(``classify``). Candidate failures become an ``error`` verdict whose ``note``
starts with the ``ErrorKind`` value; nothing is compared then. Streams (an
observation with ``stream`` set) take the full path: their events are compared
instead of bodies (``events``), and first-event and gap timing instead of
the whole exchange's latency.

Deterministic: the same exchange, rules and learned state give the same verdict.
Pure code: no I/O, no clock, no asyncio.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

from shadowproxy.compare.classify import classify
from shadowproxy.compare.decode import Decoded, decode
from shadowproxy.compare.events import diff_streams
from shadowproxy.compare.fields import FieldRules
from shadowproxy.compare.found import EQUIVALENCE_NAMES, Collector, Found
from shadowproxy.compare.headers import (
    compared_headers,
    diff_content_type,
    diff_headers,
    header_values,
)
from shadowproxy.compare.media import parse_content_type
from shadowproxy.compare.noise import NoiseFilter, NoiseLearner, learning_key
from shadowproxy.compare.paths import PathPattern, parse_pattern
from shadowproxy.compare.recall import BodyRecall
from shadowproxy.compare.rules import CompareRules
from shadowproxy.compare.timing import is_slow, latency_difference
from shadowproxy.compare.tree import TreeRules
from shadowproxy.memo import ByIdentity
from shadowproxy.model import NO_EQUIVALENCES, ErrorKind, Exchange, Observation, Outcome, Verdict

__all__ = ["MAX_DIFFERENCES", "Comparator", "validate_rules"]

MAX_DIFFERENCES = 1000
"""Differences kept per exchange by default; the rest are dropped and the note says so."""

_MATCH = Verdict(Outcome.MATCH, equivalences=NO_EQUIVALENCES)
_PLAN_CACHE_SIZE = 256


@dataclass(frozen=True, slots=True)
class _Plan:
    """``CompareRules`` prepared once: patterns parsed, header sets built."""

    tree: TreeRules
    ignore: tuple[PathPattern, ...]
    ignore_literals: frozenset[str]
    headers: tuple[str, ...]
    header_set: frozenset[str]
    """Everything read from the headers: Content-Type, Content-Encoding and ``headers``."""


def _prepare(rules: CompareRules) -> _Plan:
    ignore = tuple(parse_pattern(p) for p in rules.ignore if p.startswith("$"))
    literals = frozenset(p.strip().lower() for p in rules.ignore if not p.startswith("$"))
    headers = compared_headers(rules.headers)
    return _Plan(
        tree=TreeRules(
            unordered=tuple(parse_pattern(p) for p in rules.unordered),
            tolerance=rules.tolerance,
            equivalences=rules.equivalences,
            fields=FieldRules(
                whitespace=tuple(parse_pattern(p) for p in rules.whitespace),
                json_strings=tuple(parse_pattern(p) for p in rules.json_strings),
                maps=tuple(parse_pattern(p) for p in rules.maps),
                added=tuple(parse_pattern(p) for p in rules.added_fields),
            ),
        ),
        ignore=ignore,
        ignore_literals=literals,
        headers=headers,
        header_set=frozenset({"content-type", "content-encoding", *headers}),
    )


def validate_rules(rules: CompareRules) -> None:
    """Raise ``ValueError`` naming the first invalid pattern (for the config loader)."""
    for key, patterns in (
        ("ignore", rules.ignore),
        ("unordered", rules.unordered),
        ("whitespace", rules.whitespace),
        ("json_strings", rules.json_strings),
        ("maps", rules.maps),
        ("added_fields", rules.added_fields),
    ):
        for pattern in patterns:
            if key != "ignore" or pattern.startswith("$"):
                try:
                    parse_pattern(pattern)
                except ValueError as exc:
                    raise ValueError(f"{key}: {exc}") from None


class Comparator:
    """Compares exchanges; holds the bounded noise-learning state. One per process."""

    __slots__ = ("_max_differences", "_noise", "_plans", "_recall")

    def __init__(self, *, max_routes: int = 1024, max_differences: int = MAX_DIFFERENCES) -> None:
        self._noise = NoiseLearner(max_routes)
        self._max_differences = max_differences
        self._plans: ByIdentity[CompareRules, _Plan] = ByIdentity(_PLAN_CACHE_SIZE)
        self._recall = BodyRecall()

    @property
    def noise(self) -> NoiseLearner:
        """The learned noise (read it for status pages; the comparator updates it)."""
        return self._noise

    def _plan(self, rules: CompareRules) -> _Plan:
        # Keyed by identity: hashing nested frozen rules on every call costs more
        # than the whole fast path.
        return self._plans.get(rules, _prepare)

    def compare(self, exchange: Exchange, rules: CompareRules) -> Verdict:
        """The verdict for ``exchange`` under ``rules``."""
        legacy, candidate = exchange.legacy, exchange.candidate
        if legacy.error is not None:
            return Verdict(
                Outcome.ERROR, equivalences=NO_EQUIVALENCES, note=f"legacy_failed: {legacy.error}"
            )
        if candidate.error is not None:
            return Verdict(Outcome.ERROR, equivalences=NO_EQUIVALENCES, note=str(candidate.error))
        if candidate.truncated:
            return _error(ErrorKind.TOO_LARGE, "candidate body exceeds the comparison cap")
        plan = self._plan(rules)
        if legacy.stream is not None or candidate.stream is not None:
            return self._compare(exchange, plan, rules)
        if _identical(legacy, candidate, plan, rules):
            if exchange.secondary is not None and rules.noise.learn:
                legacy_body = _decoded(legacy, rules)
                self._learn(exchange, legacy_body, plan, rules)
            return _MATCH
        return self._compare(exchange, plan, rules)

    def _compare(self, exchange: Exchange, plan: _Plan, rules: CompareRules) -> Verdict:
        legacy, candidate = exchange.legacy, exchange.candidate
        candidate_body = _decoded(candidate, rules)
        if candidate_body.error is not None:
            return _error(candidate_body.error, f"candidate {candidate_body.detail}")
        legacy_body = _decoded(legacy, rules)
        out = Collector(self._max_differences)
        _diff_response(
            legacy, candidate, legacy_body, candidate_body, plan, rules, out, self._recall
        )
        if legacy.stream is None and candidate.stream is None:
            slow = latency_difference(legacy.elapsed_s, candidate.elapsed_s, rules.timing)
            if slow is not None:
                out.add(slow)
        secondary_paths = self._learn(exchange, legacy_body, plan, rules)
        noise = NoiseFilter(
            ignore=plan.ignore,
            ignore_literals=plan.ignore_literals,
            secondary_paths=secondary_paths,
            learner=self._noise if rules.noise.learn else None,
            route=exchange.request.route,
            rules=rules.noise,
        )
        differences = tuple(classify(f, noise=noise.is_noise(f)) for f in out.found)
        classes = frozenset(d.cls for d in differences if not d.noise)
        outcome = Outcome.DIVERGED if classes else Outcome.NOISE if differences else Outcome.MATCH
        notes = []
        if legacy_body.error is not None:
            notes.append(f"legacy body not compared: {legacy_body.error}: {legacy_body.detail}")
        if out.truncated:
            notes.append(f"differences truncated at {self._max_differences}")
        equivalences = {k: out.equivalences[k] for k in EQUIVALENCE_NAMES if k in out.equivalences}
        return Verdict(
            outcome=outcome,
            classes=classes,
            differences=differences,
            equivalences=MappingProxyType(equivalences) if equivalences else NO_EQUIVALENCES,
            note="; ".join(notes) or None,
        )

    def _learn(
        self, exchange: Exchange, legacy_body: Decoded, plan: _Plan, rules: CompareRules
    ) -> frozenset[str]:
        """Diff legacy against a usable secondary; learn and return the differing paths."""
        secondary = exchange.secondary
        if secondary is None or not secondary.ok or secondary.truncated:
            return frozenset()
        secondary_body = _decoded(secondary, rules)
        if secondary_body.error is not None:
            return frozenset()
        out = Collector(self._max_differences)
        _diff_response(
            exchange.legacy, secondary, legacy_body, secondary_body, plan, rules, out, self._recall
        )
        if rules.noise.learn:
            self._noise.observe(
                exchange.request.route, [learning_key(f) for f in out.found], rules.noise
            )
        return frozenset(f.path for f in out.found)


def _error(kind: ErrorKind, detail: str) -> Verdict:
    return Verdict(Outcome.ERROR, equivalences=NO_EQUIVALENCES, note=f"{kind}: {detail}")


def _decoded(observation: Observation, rules: CompareRules) -> Decoded:
    if observation.truncated:
        return Decoded(b"", ErrorKind.TOO_LARGE, "body exceeds the comparison cap")
    return decode(observation.body, observation.header("content-encoding"), rules.max_decoded_bytes)


def _identical(
    legacy: Observation, candidate: Observation, plan: _Plan, rules: CompareRules
) -> bool:
    """The fast path: nothing to decode or parse because nothing compared differs."""
    if legacy.status != candidate.status or legacy.body != candidate.body or legacy.truncated:
        return False
    if legacy.headers != candidate.headers:
        names = plan.header_set
        if header_values(legacy.headers, names) != header_values(candidate.headers, names):
            return False
    return not is_slow(legacy.elapsed_s * 1000.0, candidate.elapsed_s * 1000.0, rules.timing)


def _diff_response(
    legacy: Observation,
    other: Observation,
    legacy_body: Decoded,
    other_body: Decoded,
    plan: _Plan,
    rules: CompareRules,
    out: Collector,
    recall: BodyRecall,
) -> None:
    """Status, Content-Type, listed headers, then bodies or streams: the order of differences.

    A stream against an answer that is not one differs in Content-Type already;
    their bodies are not compared.
    """
    if legacy.status != other.status:
        out.add(Found("status", "status", legacy.status, other.status))
    legacy_media = parse_content_type(legacy.header("content-type"))
    other_media = parse_content_type(other.header("content-type"))
    diff_content_type(legacy_media, other_media, out)
    if plan.headers:
        names = frozenset(plan.headers)
        diff_headers(
            header_values(legacy.headers, names),
            header_values(other.headers, names),
            plan.headers,
            out,
        )
    if legacy.stream is not None and other.stream is not None:
        diff_streams(
            legacy.stream, other.stream, plan.tree, rules.timing, out, json_patch=rules.json_patch
        )
    elif legacy.stream is None and other.stream is None and legacy_body.error is None:
        recall.diff(
            (legacy_body.data, other_body.data), (legacy_media, other_media), plan.tree, out
        )

"""Identity mapping: ids each side created, remembered as pairs, so later requests line up.

When legacy and the candidate each keep their own store, a created resource
gets one id on each side. ``IdentityMap`` remembers the pairs per route
family (``identity.family``): from two answers to the same request it reads
the ids at the route's ``identity.create`` JSON paths; in later copies to the
candidate it rewrites legacy's ids to the candidate's at the configured path
segments, query parameters and JSON body paths (and the candidate's back to
legacy's in a copy to legacy, when the candidate answered); and ``equate`` removes from
a verdict the differences that are only a mapped pair (``$.id``: 42 against
1042, or ``/orders/42`` against ``/orders/1042`` segment by segment),
counted as the equivalence ``mapped_id``.

Bounded: at most ``max_pairs`` pairs per family, the least recently used
forgotten first (counted in ``forgotten`` and logged at the first loss and
every power of two). The pairs live in one worker process.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import replace
from types import MappingProxyType
from urllib.parse import quote, quote_plus, unquote, unquote_plus

import orjson
import structlog

from shadowproxy.compare.decode import decode
from shadowproxy.compare.paths import PathPattern, Segments, parse_pattern
from shadowproxy.model import Difference, Observation, Outcome, Verdict
from shadowproxy.settings import RouteIdentity

__all__ = ["MAPPED_ID", "IdentityMap"]

log = structlog.get_logger("shadowproxy.shadow")

MAPPED_ID = "mapped_id"
"""The equivalence a mapped pair of ids counts under in a verdict."""

_MAX_NODES = 100_000
"""Values visited per document when looking for ids (bodies are already capped)."""
_EQUATED_KINDS = frozenset({"value", "type", "header"})


def _key(value: object) -> str | None:
    """How an id is looked up: a string as is, an integer by its digits; anything else is no id."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


class _Family:
    """One family's pairs, both ways: legacy's id to the candidate's, and back."""

    __slots__ = ("backward", "forward")

    def __init__(self) -> None:
        self.forward: OrderedDict[str, object] = OrderedDict()
        """Legacy's id (its key) to the candidate's value, least recently learned first."""
        self.backward: dict[str, object] = {}
        """The candidate's id (its key) to legacy's value."""


class IdentityMap:
    """Legacy's ids to the candidate's (and back), per family, bounded."""

    __slots__ = ("_families", "_max_pairs", "_patterns", "forgotten")

    def __init__(self, max_pairs: int) -> None:
        self._max_pairs = max_pairs
        self._families: dict[str, _Family] = {}
        self._patterns: dict[str, PathPattern] = {}
        self.forgotten = 0
        """Pairs dropped at the bound since start."""

    def pairs(self, family: str) -> int:
        """How many pairs ``family`` holds."""
        found = self._families.get(family)
        return 0 if found is None else len(found.forward)

    def learn(
        self, spec: RouteIdentity, legacy: Observation, candidate: Observation, max_bytes: int
    ) -> int:
        """Remember the ids two answers hold at ``spec.create``; how many pairs were new.

        Only from two successful (2xx) JSON answers, read after their
        Content-Encoding (at most ``max_bytes``).
        """
        if not spec.create or not (_created(legacy) and _created(candidate)):
            return 0
        legacy_doc, candidate_doc = _document(legacy, max_bytes), _document(candidate, max_bytes)
        if legacy_doc is None or candidate_doc is None:
            return 0
        family = self._families.setdefault(spec.family, _Family())
        learned = 0
        for text in spec.create:
            for segments, value in _found(legacy_doc, self._pattern(text)):
                key, other = _key(value), _at(candidate_doc, segments)
                back = _key(other)
                if key is None or back is None:
                    continue
                learned += key not in family.forward
                family.forward[key] = other
                family.forward.move_to_end(key)
                family.backward[back] = value
        before = self.forgotten
        while len(family.forward) > self._max_pairs:
            _, other = family.forward.popitem(last=False)
            family.backward.pop(_key(other) or "", None)
            self.forgotten += 1
        if self.forgotten.bit_length() > before.bit_length():
            # Loud, yet bounded: the first loss and then at every power of two.
            log.warning(
                "identity_pairs_forgotten",
                family=spec.family,
                forgotten=self.forgotten,
                max_pairs=self._max_pairs,
            )
        return learned

    def rewrite(
        self, spec: RouteIdentity, raw_target: str, body: bytes, *, to_legacy: bool = False
    ) -> tuple[str, bytes]:
        """The target and body for the candidate: legacy's ids replaced where ``spec`` says.

        ``to_legacy``: for legacy instead, the candidate's ids replaced (the
        candidate answers the client, legacy gets the copy). An id the family
        does not hold is left as it is (a store migrated with legacy's ids
        keeps them).
        """
        found = self._families.get(spec.family)
        family = None if found is None else found.backward if to_legacy else found.forward
        if not family:
            return raw_target, body
        path, mark, query = raw_target.partition("?")
        if spec.path:
            path = self._path(family, spec.path, path)
        if spec.query and query:
            query = self._query(family, spec.query, query)
        if spec.body and body:
            body = self._body(family, spec.body, body)
        return f"{path}{mark}{query}", body

    def equate(self, family_name: str, verdict: Verdict) -> Verdict:
        """``verdict`` without the differences that are only a mapped pair of ids."""
        found = self._families.get(family_name)
        family = None if found is None else found.forward
        if not family or not verdict.differences:
            return verdict
        kept = [d for d in verdict.differences if not _mapped(family, d)]
        equated = len(verdict.differences) - len(kept)
        if not equated:
            return verdict
        classes = frozenset(d.cls for d in kept if not d.noise)
        outcome = Outcome.DIVERGED if classes else Outcome.NOISE if kept else Outcome.MATCH
        equivalences = dict(verdict.equivalences)
        equivalences[MAPPED_ID] = equivalences.get(MAPPED_ID, 0) + equated
        return replace(
            verdict,
            outcome=outcome,
            classes=classes,
            differences=tuple(kept),
            equivalences=MappingProxyType(equivalences),
        )

    def _pattern(self, text: str) -> PathPattern:
        pattern = self._patterns.get(text)
        if pattern is None:
            pattern = self._patterns[text] = parse_pattern(text)
        return pattern

    def _path(self, family: Mapping[str, object], indices: tuple[int, ...], path: str) -> str:
        segments = path.split("/")
        for index in indices:
            if index < len(segments):
                other = family.get(unquote(segments[index]))
                if other is not None:
                    segments[index] = quote(str(other), safe="")
        return "/".join(segments)

    def _query(self, family: Mapping[str, object], names: tuple[str, ...], query: str) -> str:
        parts = query.split("&")
        for i, part in enumerate(parts):
            name, sep, value = part.partition("=")
            if sep and unquote_plus(name) in names:
                other = family.get(unquote_plus(value))
                if other is not None:
                    parts[i] = f"{name}={quote_plus(str(other))}"
        return "&".join(parts)

    def _body(self, family: Mapping[str, object], paths: tuple[str, ...], body: bytes) -> bytes:
        document = _json(body)
        if document is None:
            return body
        changed = False
        for text in paths:
            for segments, value in list(_found(document, self._pattern(text))):
                key = _key(value)
                other = None if key is None else family.get(key)
                if other is not None and segments:
                    _put(document, segments, other)
                    changed = True
        return orjson.dumps(document) if changed else body


def _mapped(family: Mapping[str, object], diff: Difference) -> bool:
    """True when the two sides of ``diff`` are a mapped pair, whole or path segment by segment."""
    if diff.kind not in _EQUATED_KINDS:
        return False
    if _same(family, diff.legacy, diff.candidate):
        return True
    legacy, candidate = diff.legacy, diff.candidate
    if not (isinstance(legacy, str) and isinstance(candidate, str) and "/" in legacy):
        return False
    ours, theirs = legacy.split("/"), candidate.split("/")
    return len(ours) == len(theirs) and all(
        a == b or _same(family, a, b) for a, b in zip(ours, theirs, strict=True)
    )


def _same(family: Mapping[str, object], legacy: object, candidate: object) -> bool:
    key = _key(legacy)
    if key is None or key not in family:
        return False
    return _key(family[key]) == _key(candidate)


def _created(observation: Observation) -> bool:
    status = observation.status or 0
    return observation.ok and not observation.truncated and 200 <= status < 300


def _document(observation: Observation, max_bytes: int) -> object:
    """The JSON document an answer holds, or None."""
    decoded = decode(observation.body, observation.header("content-encoding"), max_bytes)
    return None if decoded.error is not None else _json(decoded.data)


def _json(body: bytes) -> object:
    """The JSON document of ``body``, or None when it is not one (or holds a 65-bit integer)."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def _found(document: object, pattern: PathPattern) -> Iterator[tuple[Segments, object]]:
    """Every value of ``document`` at a path ``pattern`` denotes, without recursion, bounded."""
    stack: list[tuple[object, Segments]] = [(document, ())]
    visited = 0
    while stack and visited < _MAX_NODES:
        value, path = stack.pop()
        visited += 1
        if pattern.matches(path):
            yield path, value
        if isinstance(value, dict):
            stack.extend((child, (*path, key)) for key, child in value.items())
        elif isinstance(value, list):
            stack.extend((child, (*path, i)) for i, child in enumerate(value))


def _at(document: object, segments: Segments) -> object:
    """The value at ``segments``, or None."""
    for step in segments:
        if isinstance(step, str) and isinstance(document, dict):
            document = document.get(step)
        elif isinstance(step, int) and isinstance(document, list) and step < len(document):
            document = document[step]
        else:
            return None
    return document


def _put(document: object, segments: Segments, value: object) -> None:
    """Replace the value at ``segments`` (which exists) with ``value``."""
    parent, step = _at(document, segments[:-1]), segments[-1]
    if isinstance(parent, dict) and isinstance(step, str):
        parent[step] = value
    elif isinstance(parent, list) and isinstance(step, int):
        parent[step : step + 1] = [value]

"""Flattened differences between two parsed JSON documents.

Owns the walk: subtrees that are equal are skipped at C speed (``==`` confirmed
by one canonical serialisation of all equal siblings at once, because Python's
``==`` equates ``True`` with ``1`` and ``1`` with ``1.0``), and only unequal
subtrees are descended. Object keys are visited sorted and array indices in
order, so the same input always yields the same differences in the same order.
Kinds produced: ``missing``, ``extra``, ``type``, ``value``, ``length``,
``order``, and ``parse`` for a string the ``json_strings`` rule names that
parses on one side only. The field rules (``fields``) apply where their
patterns match: whitespace, JSON held in strings, maps, added fields.

Memory stays a small multiple of the documents: elements are matched as
multisets (``order``, ``unordered``) by their canonical form held as text,
never as orjson's bytes (each keeps a 4 KiB buffer, which once took a
1 MB array pair past a gigabyte), and a sum of hashes, which keeps nothing,
rules out most non-permutations first. The documents are at most
``parse.MAX_DEPTH`` deep, so the recursion is bounded. Pure code.
"""

from __future__ import annotations

import json
import operator
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from itertools import compress, count

import orjson

from shadowproxy.compare.equivalence import integer_string_equals, is_empty_like, same_instant
from shadowproxy.compare.fields import FieldRules, as_map, json_in_string, matched, squeezed
from shadowproxy.compare.found import (
    ADDED_FIELD,
    BIGINT_STRINGS,
    INT_FLOAT,
    JSON_STRING,
    NULL_MISSING_EMPTY,
    TIMESTAMPS,
    WHITESPACE,
    Collector,
    Found,
)
from shadowproxy.compare.paths import PathPattern, Segments, format_path
from shadowproxy.compare.rules import Equivalences, Tolerance

__all__ = ["TreeRules", "canonical", "diff_json", "json_type"]

_SORT = orjson.OPT_SORT_KEYS


@dataclass(frozen=True, slots=True)
class TreeRules:
    """What the walk needs from ``CompareRules``, with patterns already parsed."""

    unordered: tuple[PathPattern, ...] = ()
    tolerance: Tolerance = Tolerance()
    equivalences: Equivalences = Equivalences()
    fields: FieldRules = FieldRules()


def canonical(value: object) -> bytes:
    """A serialisation equal for strictly equal JSON values (keys sorted, types kept)."""
    try:
        return orjson.dumps(value, option=_SORT)
    except orjson.JSONEncodeError:
        # Integers beyond 64 bits: orjson refuses them, the stdlib does not.
        return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def _key(value: object) -> str:
    """The canonical form as text: exact, and compact where orjson's bytes keep a 4 KiB buffer."""
    return canonical(value).decode()


def _hash_sum(values: Iterable[object]) -> int:
    """A fingerprint of a multiset: equal multisets give equal sums."""
    return sum(map(hash, map(canonical, values)))


def _same_elements(legacy: list[object], candidate: list[object], where: list[bool]) -> bool:
    """True when the elements at the ``where`` positions are the same multiset on both sides."""
    # Equal multisets have equal sums; the sum alone costs no memory and
    # settles nearly every other case, such as an array shifted by one.
    if _hash_sum(compress(legacy, where)) != _hash_sum(compress(candidate, where)):
        return False
    counts = Counter(map(_key, compress(legacy, where)))
    counts.subtract(map(_key, compress(candidate, where)))
    return not any(counts.values())


def json_type(value: object) -> str:
    """The JSON type name of a parsed value: object, array, string, number, boolean, null."""
    kind = type(value)
    if kind is dict:
        return "object"
    if kind is list:
        return "array"
    if kind is str:
        return "string"
    if kind is bool:
        return "boolean"
    if value is None:
        return "null"
    return "number"


def _same(left: object, right: object) -> bool:
    """Strict equality for one pair: types must match too."""
    return type(left) is type(right) and left == right


def _all_same(left: Sequence[object], right: Sequence[object]) -> bool:
    """Confirm pairs that ``==`` accepted: containers may still hide True-vs-1 inside."""
    if not left:
        return True
    try:
        # Unsorted first: cheaper, and enough whenever both sides order keys alike.
        if orjson.dumps(left) == orjson.dumps(right):
            return True
    except orjson.JSONEncodeError:
        pass
    return canonical(left) == canonical(right)


def _trusted(left: Sequence[object], right: Sequence[object]) -> bool:
    # What plain == accepted needs no re-check when the texts differ in one number.
    return True


def diff_json(
    legacy: object, candidate: object, rules: TreeRules, out: Collector, single: bool = False
) -> None:
    """Append the differences between two parsed documents to ``out``.

    ``single`` says the texts differ in one number of one kind
    (``window.same_kind_number_change``): ``==`` between their values then
    implies equal types, and at most one child of any container differs.
    """
    walk = _Walk(rules, out, single)
    if _same(legacy, candidate) and walk.confirm([legacy], [candidate]):
        return
    walk.node(legacy, candidate, ())


class _Walk:
    __slots__ = (
        "confirm",
        "equivalences",
        "fields",
        "out",
        "rules",
        "single",
        "tolerance",
        "unordered",
    )

    def __init__(self, rules: TreeRules, out: Collector, single: bool) -> None:
        self.rules = rules
        self.single = single
        self.confirm = _trusted if single else _all_same
        self.unordered = rules.unordered
        self.tolerance = rules.tolerance
        self.equivalences = rules.equivalences
        self.fields = rules.fields
        self.out = out

    def add(self, kind: str, segments: Segments, legacy: object, candidate: object) -> None:
        self.out.add(Found(kind, format_path(segments), legacy, candidate, segments))

    def node(self, legacy: object, candidate: object, at: Segments) -> None:
        if self.out.full:
            return
        if self.fields.maps and matched(self.fields.maps, at):
            legacy, candidate = as_map(legacy), as_map(candidate)
        kind = type(legacy)
        if kind is type(candidate):
            if kind is dict:
                self.objects(legacy, candidate, at)  # type: ignore[arg-type]
                return
            if kind is list:
                self.arrays(legacy, candidate, at)  # type: ignore[arg-type]
                return
            if legacy == candidate:
                return
        self.leaf(legacy, candidate, at)

    def objects(
        self, legacy: dict[str, object], candidate: dict[str, object], at: Segments
    ) -> None:
        # Plain == finds equal siblings at C speed; one canonical dump of them all
        # then rules out True-vs-1 or 1-vs-1.0 hiding inside.
        equal = [k for k in legacy.keys() & candidate.keys() if legacy[k] == candidate[k]]
        if self.confirm([legacy[k] for k in equal], [candidate[k] for k in equal]):
            skip = set(equal)
        else:
            skip = set()
        keys = sorted(legacy.keys() | candidate.keys())
        null_missing = self.equivalences.null_missing_empty
        for key in keys:
            if self.out.full:
                return
            if key in skip:
                continue
            here = (*at, key)
            if key not in candidate:
                if null_missing and is_empty_like(legacy[key]):
                    self.out.count(NULL_MISSING_EMPTY)
                else:
                    self.add("missing", here, legacy[key], None)
            elif key not in legacy:
                if null_missing and is_empty_like(candidate[key]):
                    self.out.count(NULL_MISSING_EMPTY)
                elif self.fields.added and matched(self.fields.added, here):
                    self.out.count(ADDED_FIELD)
                else:
                    self.add("extra", here, None, candidate[key])
            else:
                self.node(legacy[key], candidate[key], here)

    def arrays(self, legacy: list[object], candidate: list[object], at: Segments) -> None:
        if any(pattern.matches(at) for pattern in self.unordered):
            self.multiset(legacy, candidate, at)
            return
        if self.single and len(legacy) == len(candidate):
            # One element at most differs: stop at it, in C, instead of comparing all.
            index = next(compress(count(), map(operator.ne, legacy, candidate)), None)
            if index is not None:
                self.node(legacy[index], candidate[index], (*at, index))
            return
        flags = list(map(operator.ne, legacy, candidate))
        # == accepted the other positions; unless one serialisation per side
        # confirms them, True-vs-1 or 1-vs-1.0 hides there and they are walked too.
        hidden = not self.confirm(
            list(compress(legacy, map(operator.not_, flags))),
            list(compress(candidate, map(operator.not_, flags))),
        )
        reordered = (
            len(legacy) == len(candidate)
            and flags.count(True) > 1
            and _same_elements(legacy, candidate, flags)
        )
        if len(legacy) != len(candidate):
            self.add("length", at, len(legacy), len(candidate))
        elif reordered:
            # Positions that agree hold the same elements, so comparing only the
            # disagreeing ones tells whether the arrays are permutations of each other.
            first = flags.index(True)
            self.add("order", at, legacy[first], candidate[first])
        walk = flags
        if hidden:
            walk = list(map(operator.not_, flags)) if reordered else [True] * len(flags)
        elif reordered:
            return
        for index in compress(count(), walk):
            if self.out.full:
                return
            self.node(legacy[index], candidate[index], (*at, index))

    def multiset(self, legacy: list[object], candidate: list[object], at: Segments) -> None:
        pending = Counter(map(_key, candidate))
        unmatched_legacy: list[int] = []
        for index, key in enumerate(map(_key, legacy)):
            if pending[key] > 0:
                pending[key] -= 1
            else:
                unmatched_legacy.append(index)
        # What is still pending is unmatched; a second pass finds where it sits.
        unmatched_candidate: list[int] = []
        for index, key in enumerate(map(_key, candidate)):
            if pending[key] > 0:
                pending[key] -= 1
                unmatched_candidate.append(index)
        if len(unmatched_legacy) != len(unmatched_candidate):
            self.add("length", at, len(legacy), len(candidate))
        # Leftovers pair up in order so a changed element reports its inner difference.
        for left, right in zip(unmatched_legacy, unmatched_candidate, strict=False):
            if self.out.full:
                return
            self.node(legacy[left], candidate[right], (*at, left))

    def leaf(self, legacy: object, candidate: object, at: Segments) -> None:
        left, right = type(legacy), type(candidate)
        numeric = (int, float)
        if left in numeric and right in numeric:
            self.numbers(legacy, candidate, at)  # type: ignore[arg-type]
            return
        rules = self.equivalences
        if left is str and right is str:
            if self.fields and self.strings(legacy, candidate, at):  # type: ignore[arg-type]
                return
            if rules.timestamps and same_instant(legacy, candidate):  # type: ignore[arg-type]
                self.out.count(TIMESTAMPS)
            else:
                self.add("value", at, legacy, candidate)
            return
        if rules.bigint_strings and (
            (left is str and right is int and integer_string_equals(legacy, candidate))  # type: ignore[arg-type]
            or (left is int and right is str and integer_string_equals(candidate, legacy))  # type: ignore[arg-type]
        ):
            self.out.count(BIGINT_STRINGS)
            return
        if rules.null_missing_empty and is_empty_like(legacy) and is_empty_like(candidate):
            self.out.count(NULL_MISSING_EMPTY)
            return
        if left is right:
            self.add("value", at, legacy, candidate)
        else:
            self.add("type", at, legacy, candidate)

    def strings(self, legacy: str, candidate: str, at: Segments) -> bool:
        """True when a field rule settled two unequal strings (equal, or compared as JSON)."""
        fields = self.fields
        if fields.json_strings and matched(fields.json_strings, at):
            left, right = json_in_string(legacy, at), json_in_string(candidate, at)
            if left.error is None and right.error is None:
                found = len(self.out.found)
                # A fresh walk: the texts' one-number shortcut says nothing about the
                # parsed documents, and strings inside them are never parsed again.
                inner = TreeRules(
                    self.unordered,
                    self.tolerance,
                    self.equivalences,
                    FieldRules(fields.whitespace, (), fields.maps, fields.added),
                )
                _Walk(inner, self.out, False).node(left.value, right.value, at)
                if len(self.out.found) == found and not self.out.full:
                    self.out.count(JSON_STRING)
                return True
            if left.error is None or right.error is None:
                sides = [json_type(p.value) if p.error is None else p.error for p in (left, right)]
                self.add("parse", at, *sides)
                return True
        if (
            fields.whitespace
            and matched(fields.whitespace, at)
            and squeezed(legacy) == squeezed(candidate)
        ):
            self.out.count(WHITESPACE)
            return True
        return False

    def numbers(self, legacy: float, candidate: float, at: Segments) -> None:
        if legacy == candidate:
            if self.equivalences.int_float:
                self.out.count(INT_FLOAT)
            else:
                self.add("value", at, legacy, candidate)
            return
        if not _within(legacy, candidate, self.tolerance):
            self.add("value", at, legacy, candidate)


def _within(legacy: float, candidate: float, tolerance: Tolerance) -> bool:
    """Whether ``tolerance`` covers two unequal numbers (no tolerance covers none)."""
    if not (tolerance.absolute or tolerance.relative):
        # Float arithmetic would round 2**53 + 1 - 2.0**53 to 0.
        return False
    try:
        gap = abs(legacy - candidate)
        return gap <= tolerance.absolute or gap <= tolerance.relative * abs(legacy)
    except OverflowError:
        # An integer beyond the float range: rationals are exact and never overflow.
        exact = abs(Fraction(legacy) - Fraction(candidate))
        return exact <= tolerance.absolute or exact <= Fraction(tolerance.relative) * abs(
            Fraction(legacy)
        )

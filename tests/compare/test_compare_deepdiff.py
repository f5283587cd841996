"""DeepDiff checks the engine: both find the same differences in generated JSON pairs.

DeepDiff's vocabulary is mapped onto ours:

| DeepDiff                                   | engine                          |
|--------------------------------------------|---------------------------------|
| ``dictionary_item_removed`` / ``_added``   | ``missing`` / ``extra``         |
| ``values_changed``                         | ``value``                       |
| ``type_changes``                           | ``type``                        |
| ``iterable_item_removed`` / ``_added`` at  | one ``length`` at the array     |
| each index past the shorter array          |                                 |

DeepDiff always looks inside a changed object (``threshold_to_diff_deeper=0``)
and treats keys starting with ``__`` as data (``ignore_private_variables=False``).
Deliberate differences, documented in docs/comparison.md:

- JSON has one number type. DeepDiff reports an integer against a float as a
  ``type_changes``; the engine compares them as numbers: equal values are the
  ``int_float`` equivalence, others a ``value``. (DeepDiff's own
  ``ignore_numeric_type_changes`` is not used: it also equates ``true`` with
  ``1``, which JSON keeps apart.)
- Arrays are compared index by index (DeepDiff's ``zip_ordered_iterables``),
  but an equal-length array whose differing positions hold the same elements
  in another order is one ``order`` difference, where DeepDiff reports every
  moved position. The test collapses those positions and checks, with
  DeepDiff's ``ignore_order``, that they are indeed a permutation.
- The equivalences that give two different JSON values the same meaning
  (timestamps, big-integer strings, null/missing) are off: DeepDiff has none.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from deepdiff import DeepDiff
from hypothesis import example, given, settings
from hypothesis import strategies as st

from shadowproxy.compare import Comparator, CompareRules, Equivalences
from shadowproxy.compare.paths import Segments, format_path, parse_pattern
from tests.compare.factories import make_exchange, make_observation, value_at
from tests.compare.test_compare_properties import KEYS, LEAVES

RULES = CompareRules(
    equivalences=Equivalences(
        int_float=True, timestamps=False, bigint_strings=False, null_missing_empty=False
    )
)
_NUMBERS = (int, float)

DOCUMENTS = st.recursive(
    # Integers beyond the float range too: JSON allows them, msgspec keeps them.
    LEAVES | st.integers(min_value=-(10**400), max_value=10**400),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=20,
)

Seen = set[tuple[str, str]]
"""Differences as (kind, JSONPath)."""


@st.composite
def _mutated(draw: st.DrawFn, value: object) -> object:
    """``value`` with some leaves, keys and array lengths or orders changed."""
    choice = draw(st.integers(0, 9))
    if choice == 0:
        return draw(DOCUMENTS)
    if isinstance(value, dict):
        result = {k: draw(_mutated(v)) if draw(st.booleans()) else v for k, v in value.items()}
        if value and choice == 1:
            del result[draw(st.sampled_from(sorted(value)))]
        if choice == 2:
            result[draw(KEYS)] = draw(DOCUMENTS)
        return result
    if isinstance(value, list):
        items = [draw(_mutated(v)) if draw(st.booleans()) else v for v in value]
        if choice == 1:
            return items[: draw(st.integers(0, len(items)))]
        if choice == 2:
            return items + draw(st.lists(DOCUMENTS, min_size=1, max_size=3))
        if choice == 3:
            return draw(st.permutations(items))
        return items
    if type(value) is int and choice == 1 and abs(value) < 2**1000:
        # The same number spelled as a float: equal, or rounded when large.
        return float(value)
    if type(value) is float and choice == 1 and value.is_integer():
        return int(value) + draw(st.integers(-1, 1))
    return value


@st.composite
def _pairs(draw: st.DrawFn) -> tuple[object, object]:
    legacy = draw(DOCUMENTS)
    candidate = draw(_mutated(legacy) | DOCUMENTS)
    return legacy, candidate


def _engine(legacy: object, candidate: object, indent: int | None) -> Seen:
    verdict = Comparator().compare(
        make_exchange(
            make_observation(body=json.dumps(legacy)),
            make_observation(body=json.dumps(candidate, indent=indent)),
        ),
        RULES,
    )
    assert verdict.note is None
    seen = [(d.kind, d.path) for d in verdict.differences]
    assert len(seen) == len(set(seen)), seen
    return set(seen)


def _deepdiff(legacy: object, candidate: object) -> Iterator[tuple[str, Segments]]:
    """DeepDiff's differences in the engine's vocabulary, before ``order`` is considered."""
    tree = DeepDiff(
        legacy,
        candidate,
        zip_ordered_iterables=True,
        threshold_to_diff_deeper=0,
        ignore_private_variables=False,
        view="tree",
    )
    for report, levels in tree.items():
        for level in levels:
            path: Segments = tuple(level.path(output_format="list"))
            if report in ("iterable_item_added", "iterable_item_removed"):
                yield "length", path[:-1]
            elif report in ("dictionary_item_removed", "dictionary_item_added"):
                yield ("missing" if report.endswith("removed") else "extra"), path
            elif report == "values_changed":
                yield "value", path
            elif report == "type_changes":
                numbers = type(level.t1) in _NUMBERS and type(level.t2) in _NUMBERS
                if not numbers:
                    yield "type", path
                elif level.t1 != level.t2:
                    yield "value", path
            else:
                raise AssertionError(f"unmapped DeepDiff report {report} at {path}")


def _expected(legacy: object, candidate: object, engine: Seen) -> Seen:
    """DeepDiff's view, with the positions of each array the engine calls reordered collapsed."""
    found = list(_deepdiff(legacy, candidate))
    for kind, text in engine:
        if kind != "order":
            continue
        at = _segments(text)
        left, right = value_at(legacy, at), value_at(candidate, at)
        assert isinstance(left, list) and isinstance(right, list)
        moved = [i for i, (a, b) in enumerate(zip(left, right, strict=True)) if a != b]
        assert len(moved) > 1, f"{text}: an order needs two positions that differ"
        assert not DeepDiff(
            [left[i] for i in moved], [right[i] for i in moved], ignore_order=True
        ), f"{text} is not a permutation"
        found = [
            (k, p)
            for k, p in found
            if not (len(p) > len(at) and p[: len(at)] == at and p[len(at)] in moved)
        ]
        found.append(("order", at))
    return {(k, format_path(p)) for k, p in found}


def _segments(path: str) -> Segments:
    """A concrete JSONPath back into segments."""
    steps = parse_pattern(path).steps
    assert all(not step.descend and step.selector is not None for step in steps)
    return tuple(step.selector for step in steps)  # type: ignore[misc]


class TestAgainstDeepDiff:
    """The fast engine and DeepDiff agree on where two documents differ, and how."""

    @settings(max_examples=400)
    @given(_pairs(), st.sampled_from([None, 2]))
    @example(([1, 1.0], [1.0, 1]), None)
    @example(([True, 1], [1, True]), None)
    @example(([1, 2, True], [2, 1, 1]), None)
    @example(([2**70 + 1], [float(2**70)]), None)
    @example(({"a": 10**400}, {"a": 1.5}), None)
    def test_same_differences(self, pair: tuple[object, object], indent: int | None) -> None:
        """Same set of (kind, path) on generated pairs, through the shortcut and the full walk."""
        legacy, candidate = pair
        # What the engine parses: JSON text, read back.
        legacy, candidate = json.loads(json.dumps(legacy)), json.loads(json.dumps(candidate))
        engine = _engine(legacy, candidate, indent)
        assert engine == _expected(legacy, candidate, engine)

"""Hypothesis properties of the comparison engine."""

from __future__ import annotations

import json
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from shadowproxy.compare import Comparator, CompareRules
from shadowproxy.compare.paths import Segments, format_path
from shadowproxy.model import Outcome, Verdict
from tests.compare.factories import leaf_paths, make_exchange, make_observation, with_value_at

KEYS = st.text(alphabet="abcxyz _'é", min_size=1, max_size=4)
LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6)
)
DOCUMENTS = st.recursive(
    LEAVES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=20,
)
OBJECTS = st.dictionaries(KEYS, DOCUMENTS, min_size=1, max_size=5)


def _compare(legacy: object, candidate: object, rules: CompareRules | None = None) -> Verdict:
    return Comparator().compare(
        make_exchange(make_observation(body=legacy), make_observation(body=candidate)),
        rules or CompareRules(),
    )


def _shuffle_keys(value: object, rng: random.Random) -> object:
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {k: _shuffle_keys(v, rng) for k, v in items}
    if isinstance(value, list):
        return [_shuffle_keys(v, rng) for v in value]
    return value


MARK = "\x00changed\x00"


class TestProperties:
    """Invariants that hold for any JSON document."""

    @given(DOCUMENTS)
    def test_self_comparison_matches(self, document: object) -> None:
        """Comparing a document with itself gives no difference."""
        verdict = _compare(document, document)
        assert verdict.outcome is Outcome.MATCH
        assert verdict.differences == ()

    @given(DOCUMENTS, st.randoms(use_true_random=False))
    def test_key_order_and_formatting_never_matter(
        self, document: object, rng: random.Random
    ) -> None:
        """Reordered keys, indentation and \\u escapes give no difference."""
        legacy = json.dumps(document, ensure_ascii=True).encode()
        candidate = json.dumps(_shuffle_keys(document, rng), ensure_ascii=False, indent=2)
        assert _compare(legacy, candidate).differences == ()

    @given(DOCUMENTS, DOCUMENTS)
    def test_swapping_sides_swaps_missing_and_extra(self, left: object, right: object) -> None:
        """Swapping legacy and candidate swaps missing with extra and both values."""
        rules = CompareRules(timing=CompareRules().timing)
        forward = _compare(left, right, rules).differences
        backward = _compare(right, left, rules).differences
        swap = {"missing": "extra", "extra": "missing"}
        # Orders and equivalences are asymmetric only in which element is "first";
        # every kind and path is mirrored.
        assert sorted((swap.get(d.kind, d.kind), d.path) for d in forward) == sorted(
            (d.kind, d.path) for d in backward
        )
        missing = {(d.path, repr(d.legacy)) for d in forward if d.kind == "missing"}
        assert missing == {(d.path, repr(d.candidate)) for d in backward if d.kind == "extra"}

    @settings(max_examples=60)
    @given(OBJECTS, OBJECTS, st.data())
    def test_ignore_rule_removes_exactly_its_paths(
        self, left: dict[str, object], right: dict[str, object], data: st.DataObject
    ) -> None:
        """An ignore rule turns exactly the differences under its path into noise."""
        key = data.draw(st.sampled_from(sorted(left.keys() | right.keys())))
        pattern = format_path((key,))
        plain = _compare(left, right).differences
        ignored = _compare(left, right, CompareRules(ignore=(pattern,))).differences
        under = [
            d.path == pattern or d.path.startswith((pattern + ".", pattern + "[")) for d in plain
        ]
        assert [(d.kind, d.path) for d in ignored] == [(d.kind, d.path) for d in plain]
        assert [d.noise for d in ignored] == under

    @settings(max_examples=60)
    @given(DOCUMENTS, st.data())
    def test_secondary_difference_makes_exactly_that_path_noise(
        self, document: object, data: st.DataObject
    ) -> None:
        """A secondary differing at one leaf makes exactly that candidate difference noise."""
        paths = leaf_paths(document)
        noisy = data.draw(st.sampled_from(paths))
        others: list[Segments | None] = [p for p in paths if p != noisy] or [None]
        other = data.draw(st.sampled_from(others))
        candidate = with_value_at(document, noisy, MARK)
        if other is not None:
            candidate = with_value_at(candidate, other, MARK)
        secondary = with_value_at(document, noisy, MARK + "2")
        verdict = Comparator().compare(
            make_exchange(
                make_observation(body=document),
                make_observation(body=candidate),
                make_observation(body=secondary),
            ),
            CompareRules(),
        )
        flags = {d.path: d.noise for d in verdict.differences}
        assert flags[format_path(noisy)] is True
        if other is not None:
            assert flags[format_path(other)] is False
            assert verdict.outcome is Outcome.DIVERGED
        else:
            assert verdict.outcome is Outcome.NOISE

    @given(DOCUMENTS, DOCUMENTS)
    def test_same_input_same_output(self, left: object, right: object) -> None:
        """Two comparisons of the same pair give identical verdicts."""
        assert _compare(left, right) == _compare(left, right)

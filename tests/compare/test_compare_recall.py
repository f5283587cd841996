"""compare/recall.py: body differences remembered by the pair of body digests."""

from __future__ import annotations

import hashlib

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shadowproxy.compare import Comparator, CompareRules
from shadowproxy.compare.body import diff_bodies
from shadowproxy.compare.found import INT_FLOAT, Collector
from shadowproxy.compare.media import parse_content_type
from shadowproxy.compare.recall import DIGESTS_KEPT, MAX_ENTRIES, BodyRecall
from shadowproxy.compare.tree import TreeRules
from tests.compare.factories import make_exchange, make_observation
from tests.compare.test_compare_properties import DOCUMENTS

MEDIA = parse_content_type("application/json")
RULES = TreeRules()


def _through(
    recall: BodyRecall,
    legacy: object,
    candidate: object,
    out: Collector | None = None,
    rules: TreeRules = RULES,
) -> Collector:
    out = out if out is not None else Collector(100)
    recall.diff((orjson.dumps(legacy), orjson.dumps(candidate)), (MEDIA, MEDIA), rules, out)
    return out


def _direct(legacy: object, candidate: object, out: Collector | None = None) -> Collector:
    out = out if out is not None else Collector(100)
    diff_bodies(orjson.dumps(legacy), orjson.dumps(candidate), MEDIA, MEDIA, RULES, out)
    return out


class TestBodyRecall:
    def test_a_pair_seen_before_is_answered_from_the_cache(self) -> None:
        """The second time, the same differences and equivalences, without a walk."""
        recall = BodyRecall()
        legacy, candidate = {"price": 99, "n": 1}, {"price": 49, "n": 1.0}
        first = _through(recall, legacy, candidate)
        second = _through(recall, legacy, candidate)
        assert (recall.hits, recall.misses) == (1, 1)
        assert second.found == first.found == _direct(legacy, candidate).found
        assert second.equivalences == first.equivalences == {INT_FLOAT: 1}

    def test_another_document_or_other_rules_are_not_answered_from_it(self) -> None:
        recall = BodyRecall()
        _through(recall, {"price": 99}, {"price": 49})
        other = _through(recall, {"price": 99}, {"price": 48})
        _through(recall, {"price": 99}, {"price": 49}, rules=TreeRules())
        assert (recall.hits, recall.misses) == (0, 3)
        assert [f.candidate for f in other.found] == [48]

    def test_replayed_only_where_the_collector_has_room_for_all_of_it(self) -> None:
        """A collector that would have stopped the walk early gets the walk itself."""
        recall = BodyRecall()
        legacy, candidate = {"a": 1, "b": 2}, {"a": 3, "b": 4}
        _through(recall, legacy, candidate)
        nearly_full = Collector(1)
        _through(recall, legacy, candidate, out=nearly_full)
        assert (recall.hits, recall.misses) == (0, 2)
        assert nearly_full.found == _direct(legacy, candidate, Collector(1)).found
        assert nearly_full.truncated

    def test_large_values_are_never_kept(self) -> None:
        """An entry holds scalars and short strings only: never a subtree or a long text."""
        recall = BodyRecall()
        _through(recall, {"a": {"b": 1}}, {"a": [1]})
        _through(recall, {"a": "x" * 300}, {"a": "y" * 300})
        assert len(recall) == 0

    def test_bounded_least_recently_used_forgotten(self) -> None:
        recall = BodyRecall()
        for price in range(MAX_ENTRIES + 1):
            _through(recall, {"price": -1}, {"price": price})
        assert len(recall) == MAX_ENTRIES
        _through(recall, {"price": -1}, {"price": MAX_ENTRIES})
        _through(recall, {"price": -1}, {"price": 0})
        assert (recall.hits, recall.misses) == (1, MAX_ENTRIES + 2)

    def test_the_same_body_object_is_hashed_once(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The comparison process gets a body it held as the same object: no second digest."""
        hashed: list[int] = []
        real = hashlib.sha256

        def sha256(data: bytes) -> hashlib._Hash:
            hashed.append(len(data))
            return real(data)

        monkeypatch.setattr(hashlib, "sha256", sha256)
        recall = BodyRecall()
        legacy, candidate = orjson.dumps({"price": 99}), orjson.dumps({"price": 49})
        for _ in range(3):
            recall.diff((legacy, candidate), (MEDIA, MEDIA), RULES, Collector(100))
        assert len(hashed) == 2
        recall.diff((bytes(bytearray(legacy)), candidate), (MEDIA, MEDIA), RULES, Collector(100))
        assert len(hashed) == 3
        assert (recall.hits, recall.misses) == (3, 1)

    def test_digests_are_kept_for_a_few_bodies_only(self) -> None:
        recall = BodyRecall()
        bodies = [orjson.dumps({"n": n}) for n in range(2 * DIGESTS_KEPT)]
        for legacy, candidate in zip(bodies[::2], bodies[1::2], strict=True):
            recall.diff((legacy, candidate), (MEDIA, MEDIA), RULES, Collector(100))
        assert len(recall._digests) == DIGESTS_KEPT


class TestVerdictsUnchanged:
    @settings(max_examples=150, deadline=None)
    @given(st.lists(st.tuples(DOCUMENTS, DOCUMENTS), min_size=1, max_size=4), st.data())
    def test_one_comparator_judges_a_repeated_pair_as_a_fresh_one(
        self, pairs: list[tuple[object, object]], data: st.DataObject
    ) -> None:
        """Comparing pairs again (in any order) through one comparator gives each the verdict
        a fresh comparator gives it."""
        comparator, rules = Comparator(), CompareRules()
        order = data.draw(st.lists(st.sampled_from(range(len(pairs))), min_size=1, max_size=8))
        for index in [*range(len(pairs)), *order]:
            legacy, candidate = pairs[index]
            sides = make_observation(body=legacy), make_observation(body=candidate)
            exchange = make_exchange(*sides)
            assert comparator.compare(exchange, rules) == Comparator().compare(exchange, rules)

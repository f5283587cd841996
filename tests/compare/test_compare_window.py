"""The textual shortcut: where two texts differ, and when one number is all that changed."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shadowproxy.compare.found import Collector
from shadowproxy.compare.parse import parse_json
from shadowproxy.compare.tree import TreeRules, diff_json
from shadowproxy.compare.window import common_prefix, common_suffix, same_kind_number_change
from tests.compare.factories import leaf_paths, value_at, with_value_at
from tests.compare.test_compare_properties import DOCUMENTS


def _naive_prefix(a: bytes, b: bytes) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


class TestCommonRuns:
    @given(st.binary(max_size=6000), st.binary(max_size=40), st.binary(max_size=40))
    def test_prefix_and_suffix_match_a_byte_by_byte_scan(
        self, shared: bytes, left: bytes, right: bytes
    ) -> None:
        """Galloping and bisecting find exactly what a byte-by-byte scan finds."""
        a, b = shared + left + shared, shared + right + shared
        assert common_prefix(a, b) == _naive_prefix(a, b)
        limit = min(len(a), len(b)) - common_prefix(a, b)
        assert common_suffix(a, b, limit) == min(_naive_prefix(a[::-1], b[::-1]), limit)


class TestSameKindNumberChange:
    @pytest.mark.parametrize(
        ("legacy", "candidate", "expected"),
        [
            (b'{"price":1.0,"n":3}', b'{"price":2.0,"n":3}', True),
            (b"[10]", b"[1]", True),
            (b"[1,2]", b"[1,22]", True),
            (b"[1.5]", b"[1e5]", True),
            (b'{"sku":"A-17"}', b'{"sku":"A-18"}', True),
            (b"[1]", b"[1.0]", False),
            (b"[1e2]", b"[100]", False),
            (b"[true]", b"[1]", False),
            (b"[1,2]", b"[1, 2]", False),
            (b'{"a":1,"b":2}', b'{"b":2,"a":1}', False),
            (b"[1,2]", b"[1,2]", False),
            (b'["ab"]', b'["a1b"]', False),
            (b'["' + b"1" * 100 + b'"]', b'["' + b"1" * 99 + b'2"]', False),
        ],
    )
    def test_table(self, legacy: bytes, candidate: bytes, expected: bool) -> None:
        """Only a change inside one run of number characters of one kind qualifies."""
        assert same_kind_number_change(legacy, candidate) is expected

    @given(DOCUMENTS, st.data())
    def test_shortcut_finds_what_the_full_walk_finds(
        self, document: object, data: st.DataObject
    ) -> None:
        """Whenever the shortcut applies, the walk reports exactly what it does without it."""
        numbers = [p for p in leaf_paths(document) if _is_number(value_at(document, p))]
        if not numbers:
            return
        path = data.draw(st.sampled_from(numbers))
        old = value_at(document, path)
        new: object = (
            data.draw(st.integers(-(2**70), 2**70))
            if isinstance(old, int)
            else data.draw(st.floats(allow_nan=False, allow_infinity=False))
        )
        legacy = json.dumps(document).encode()
        candidate = json.dumps(with_value_at(document, path, new)).encode()
        if not same_kind_number_change(legacy, candidate):
            return
        left, right = parse_json(legacy).value, parse_json(candidate).value
        fast, full = Collector(100), Collector(100)
        diff_json(left, right, TreeRules(), fast, single=True)
        diff_json(left, right, TreeRules(), full, single=False)
        assert fast == full

    def test_a_drifted_price_in_a_large_document_takes_the_shortcut(self) -> None:
        """The common drift (one value in a big array) qualifies and is found."""
        items = [{"id": i, "price": 9.5 + i} for i in range(500)]
        legacy = orjson.dumps({"items": items})
        items[321] = {"id": 321, "price": 1.25}
        candidate = orjson.dumps({"items": items})
        assert same_kind_number_change(legacy, candidate)
        out = Collector(100)
        left, right = parse_json(legacy).value, parse_json(candidate).value
        diff_json(left, right, TreeRules(), out, single=True)
        assert [(f.kind, f.path, f.legacy, f.candidate) for f in out.found] == [
            ("value", "$.items[321].price", 330.5, 1.25)
        ]


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)

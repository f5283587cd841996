"""One table row per class and kind: the difference the engine reports for it."""

from __future__ import annotations

from dataclasses import replace

import pytest

from shadowproxy.compare import KIND_CLASS, Comparator, CompareRules
from shadowproxy.model import DiffClass, Outcome
from tests.compare.factories import make_exchange, make_observation, make_stream

obs = make_observation
stream = make_stream


class StartsWith(str):
    """Equal to any string with this prefix (parser messages vary between versions)."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and other.startswith(str(self))

    __hash__ = str.__hash__


TEXT = "text/plain; charset=utf-8"
BIN = "application/octet-stream"
WITH_ETAG = CompareRules(headers=("cache-control",))
PATCHES = CompareRules(json_patch=True)
A, B, C = ("message", "a", None, 10.0), ("message", "b", None, 20.0), ("message", "c", None, 30.0)
ADD = [{"op": "add", "path": "/a", "value": 1}]

ROWS = [
    # (id, legacy, candidate, rules, class, kind, path, legacy value, candidate value)
    ("status", obs(200, {}), obs(201, {}), None, "structural", "status", "status", 200, 201),
    (
        "content_type",
        obs(body="<a/>", content_type="text/html"),
        obs(body="<a/>", content_type="text/xml"),
        None,
        "structural",
        "content_type",
        "content-type",
        "text/html",
        "text/xml",
    ),
    (
        "content_type_one_side",
        obs(body=b"x", content_type=BIN),
        obs(body=b"x", content_type=None),
        None,
        "structural",
        "content_type",
        "content-type",
        BIN,
        None,
    ),
    (
        "missing",
        obs(body={"a": 1, "b": 2}),
        obs(body={"a": 1}),
        None,
        "structural",
        "missing",
        "$.b",
        2,
        None,
    ),
    (
        "extra",
        obs(body={"a": 1}),
        obs(body={"a": 1, "b": 2}),
        None,
        "structural",
        "extra",
        "$.b",
        None,
        2,
    ),
    (
        "type",
        obs(body={"a": "1"}),
        obs(body={"a": [1]}),
        None,
        "structural",
        "type",
        "$.a",
        "1",
        [1],
    ),
    (
        "type_bool_vs_int",
        obs(body={"a": True}),
        obs(body={"a": 1}),
        None,
        "structural",
        "type",
        "$.a",
        True,
        1,
    ),
    (
        "type_null",
        obs(body={"a": None}),
        obs(body={"a": 0}),
        None,
        "structural",
        "type",
        "$.a",
        None,
        0,
    ),
    (
        "parse",
        obs(body={"a": 1}),
        obs(body=b"<html>oops</html>"),
        None,
        "structural",
        "parse",
        "$",
        "object",
        StartsWith("invalid JSON: unexpected character"),
    ),
    (
        "value_number",
        obs(body={"p": 10.0}),
        obs(body={"p": 10.5}),
        None,
        "semantic",
        "value",
        "$.p",
        10.0,
        10.5,
    ),
    (
        "value_string",
        obs(body={"s": "a"}),
        obs(body={"s": "b"}),
        None,
        "semantic",
        "value",
        "$.s",
        "a",
        "b",
    ),
    (
        "value_bool",
        obs(body=[True]),
        obs(body=[False]),
        None,
        "semantic",
        "value",
        "$[0]",
        True,
        False,
    ),
    (
        "length",
        obs(body={"l": [1, 2, 3]}),
        obs(body={"l": [1, 2]}),
        None,
        "semantic",
        "length",
        "$.l",
        3,
        2,
    ),
    (
        "order",
        obs(body={"l": [1, 2, 3]}),
        obs(body={"l": [3, 2, 1]}),
        None,
        "semantic",
        "order",
        "$.l",
        1,
        3,
    ),
    (
        "body_text",
        obs(body="one\ntwo\n", content_type=TEXT),
        obs(body="one\nTWO\n", content_type=TEXT),
        None,
        "semantic",
        "body",
        "$",
        {"line": 2, "text": "two"},
        {"line": 2, "text": "TWO"},
    ),
    (
        "content_type_params",
        obs(body="x", content_type="text/plain; charset=utf-8"),
        obs(body="x", content_type="text/plain; charset=iso-8859-1"),
        None,
        "semantic",
        "content_type_params",
        "content-type",
        "text/plain; charset=utf-8",
        "text/plain; charset=iso-8859-1",
    ),
    (
        "header",
        obs(headers={"Cache-Control": "no-store"}),
        obs(headers={"Cache-Control": "max-age=60"}),
        WITH_ETAG,
        "semantic",
        "header",
        "cache-control",
        "no-store",
        "max-age=60",
    ),
    (
        "header_one_side",
        obs(headers={"Cache-Control": "no-store"}),
        obs(),
        WITH_ETAG,
        "semantic",
        "header",
        "cache-control",
        "no-store",
        None,
    ),
    ("latency", obs(ms=10.0), obs(ms=200.0), None, "timing", "latency", "latency", 10.0, 200.0),
    # Streams: each side's window of events (docs/streams.md).
    (
        "event_missing",
        stream([A, B, C]),
        stream([A, C]),
        None,
        "structural",
        "event_missing",
        "$[1].message",
        {"type": "message", "id": None, "data": "b"},
        None,
    ),
    (
        "event_extra",
        stream([A, C]),
        stream([A, B, C]),
        None,
        "structural",
        "event_extra",
        "$[1].message",
        None,
        {"type": "message", "id": None, "data": "b"},
    ),
    (
        "event_type",
        stream([A]),
        stream([("update", "a", None, 10.0)]),
        None,
        "structural",
        "event_type",
        "$[0].message",
        "message",
        "update",
    ),
    (
        "patch",
        stream([("patch", ADD, None, 10.0)]),
        stream([("patch", [{"op": "remove", "path": "/x"}], None, 10.0)]),
        PATCHES,
        "structural",
        "patch",
        "$.document",
        None,
        "operation 1: no value at /x",
    ),
    (
        "event_order",
        stream([A, B, C]),
        stream([A, ("message", "c", None, 20.0), ("message", "b", None, 30.0)]),
        None,
        "semantic",
        "event_order",
        "$[2].message",
        2,
        1,
    ),
    (
        "event_id",
        stream([("message", "a", "1", 10.0)]),
        stream([("message", "a", "2", 10.0)]),
        None,
        "semantic",
        "event_id",
        "$[0].message",
        "1",
        "2",
    ),
    (
        "first_event",
        stream([A]),
        stream([("message", "a", None, 300.0)]),
        None,
        "timing",
        "first_event",
        "first_event",
        10.0,
        300.0,
    ),
    (
        "event_gap",
        stream([A, B]),
        stream([A, ("message", "b", None, 500.0)]),
        None,
        "timing",
        "event_gap",
        "$[1].message",
        10.0,
        490.0,
    ),
]


class TestKindTable:
    """The kind, class, path and values reported for each kind of difference."""

    @pytest.mark.parametrize(
        ("legacy", "candidate", "rules", "cls", "kind", "path", "left", "right"),
        [pytest.param(*row[1:], id=row[0]) for row in ROWS],
    )
    def test_row(
        self,
        legacy: object,
        candidate: object,
        rules: CompareRules | None,
        cls: str,
        kind: str,
        path: str,
        left: object,
        right: object,
    ) -> None:
        """Each row yields exactly one difference with the expected class, kind, path and values."""
        verdict = Comparator().compare(
            make_exchange(legacy, candidate),  # type: ignore[arg-type]
            rules or CompareRules(),
        )
        assert verdict.outcome is Outcome.DIVERGED
        assert [(d.cls, d.kind, d.path) for d in verdict.differences] == [
            (DiffClass(cls), kind, path)
        ]
        assert (verdict.differences[0].legacy, verdict.differences[0].candidate) == (left, right)
        assert verdict.classes == {DiffClass(cls)}

    def test_every_kind_has_a_row(self) -> None:
        """The table covers every kind the engine can produce."""
        assert {row[5] for row in ROWS} == set(KIND_CLASS)

    def test_binary_body_records_size_and_sha256(self) -> None:
        """Differing bytes report their size and sha256, not their content."""
        verdict = Comparator().compare(
            make_exchange(obs(body=b"abc", content_type=BIN), obs(body=b"abcd", content_type=BIN)),
            CompareRules(),
        )
        (difference,) = verdict.differences
        assert (difference.cls, difference.kind, difference.path) == (
            DiffClass.SEMANTIC,
            "body",
            "$",
        )
        assert difference.legacy == {
            "bytes": 3,
            "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        }
        assert difference.candidate["bytes"] == 4  # type: ignore[index]

    def test_number_within_tolerance_is_equal(self) -> None:
        """Numbers within the absolute or relative tolerance give no difference."""
        rules = replace(CompareRules(), tolerance=replace(CompareRules().tolerance, absolute=0.01))
        near = make_exchange(obs(body={"p": 10.0}), obs(body={"p": 10.005}))
        far = make_exchange(obs(body={"p": 10.0}), obs(body={"p": 10.02}))
        relative = replace(
            CompareRules(), tolerance=replace(CompareRules().tolerance, relative=0.01)
        )
        assert Comparator().compare(near, rules).outcome is Outcome.MATCH
        assert Comparator().compare(far, rules).outcome is Outcome.DIVERGED
        assert Comparator().compare(far, relative).outcome is Outcome.MATCH

    def test_unordered_array_is_a_multiset(self) -> None:
        """An array listed as unordered matches in any order but still reports changed elements."""
        rules = CompareRules(unordered=("$.tags",))
        shuffled = make_exchange(
            obs(body={"tags": ["a", "b", "a"]}), obs(body={"tags": ["a", "a", "b"]})
        )
        changed = make_exchange(obs(body={"tags": ["a", "b"]}), obs(body={"tags": ["c", "a"]}))
        assert Comparator().compare(shuffled, rules).outcome is Outcome.MATCH
        verdict = Comparator().compare(changed, rules)
        assert [(d.kind, d.path, d.legacy, d.candidate) for d in verdict.differences] == [
            ("value", "$.tags[1]", "b", "c")
        ]

    def test_unordered_multiset_reports_length(self) -> None:
        """An unordered array with an extra element reports a length difference."""
        rules = CompareRules(unordered=("$.tags",))
        verdict = Comparator().compare(
            make_exchange(obs(body={"tags": ["a"]}), obs(body={"tags": ["b", "a"]})), rules
        )
        assert [(d.kind, d.path, d.legacy, d.candidate) for d in verdict.differences] == [
            ("length", "$.tags", 1, 2)
        ]

    @pytest.mark.parametrize(
        ("legacy", "candidate", "found"),
        [
            pytest.param([1, 1.0], [1.0, 1], [], id="int-float-equal-in-place"),
            pytest.param([True, 1], [1, True], [("type", "$[0]"), ("type", "$[1]")], id="bool"),
            pytest.param(
                [1, 2, True], [2, 1, 1], [("order", "$"), ("type", "$[2]")], id="order-and-type"
            ),
        ],
    )
    def test_order_counts_only_positions_that_differ(
        self, legacy: object, candidate: object, found: list[tuple[str, str]]
    ) -> None:
        """An order needs elements that == tells apart; equal-looking ones are checked in place."""
        verdict = Comparator().compare(
            make_exchange(obs(body=legacy), obs(body=candidate)), CompareRules()
        )
        assert [(d.kind, d.path) for d in verdict.differences] == found

    def test_length_then_changed_prefix(self) -> None:
        """A longer array reports its length and any change in the shared prefix."""
        verdict = Comparator().compare(
            make_exchange(obs(body=[1, 2]), obs(body=[1, 5, 3])), CompareRules()
        )
        assert [(d.kind, d.path) for d in verdict.differences] == [
            ("length", "$"),
            ("value", "$[1]"),
        ]

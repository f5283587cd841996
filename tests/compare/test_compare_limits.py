"""The engine's bounds: one nesting limit, and memory and time in proportion to the bodies."""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable

import orjson
import pytest

from shadowproxy.compare import Comparator, CompareRules
from shadowproxy.compare.parse import MAX_DEPTH, TOO_DEEP, parse_json
from shadowproxy.model import DiffClass, Outcome, Verdict
from tests.compare.factories import make_exchange, make_observation

BIG = 12345678901234567890123


def _compare(legacy: bytes, candidate: bytes, rules: CompareRules | None = None) -> Verdict:
    exchange = make_exchange(make_observation(body=legacy), make_observation(body=candidate))
    return Comparator().compare(exchange, rules or CompareRules())


def _nested(depth: int, leaf: str, shape: str) -> bytes:
    """``leaf`` inside ``depth`` arrays, or objects (key ``a``), or both alternating."""
    opens = {"array": ["["], "object": ['{"a":'], "mixed": ["[", '{"a":']}[shape]
    closes = {"[": "]", '{"a":': "}"}
    chain = [opens[i % len(opens)] for i in range(depth)]
    return ("".join(chain) + leaf + "".join(closes[o] for o in reversed(chain))).encode()


def _leaf_path(depth: int, shape: str) -> str:
    steps = {"array": ["[0]"], "object": [".a"], "mixed": ["[0]", ".a"]}[shape]
    return "$" + "".join(steps[i % len(steps)] for i in range(depth))


def _summary(verdict: Verdict) -> list[tuple[str, DiffClass, str]]:
    return [(d.kind, d.cls, d.path) for d in verdict.differences]


class TestDepthLimit:
    """One limit, MAX_DEPTH, decides for every step, with one classification beyond it."""

    @pytest.mark.parametrize("shape", ["array", "object", "mixed"])
    @pytest.mark.parametrize("depth", [300, 600, 900, 2000, 5000, 100_000])
    def test_one_classification_beyond_the_limit(self, depth: int, shape: str) -> None:
        """Identical deep documents differing at their deepest leaf give one text difference."""
        verdict = _compare(_nested(depth, "1", shape), _nested(depth, "2", shape))
        assert verdict.outcome is Outcome.DIVERGED
        assert _summary(verdict) == [("body", DiffClass.SEMANTIC, "$")]

    @pytest.mark.parametrize("shape", ["array", "object", "mixed"])
    @pytest.mark.parametrize(
        ("legacy_leaf", "candidate_leaf", "inner"),
        [
            ("1", "2", 0),  # the textual shortcut applies
            ('{"x":1,"y":1}', '{"y":1,"x":2}', 1),  # keys reordered: the full walk
            (f"[{BIG},1]", f"[{BIG},2]", 1),  # orjson refuses the integer: measured level by level
        ],
    )
    def test_the_limit_is_exact(
        self, shape: str, legacy_leaf: str, candidate_leaf: str, inner: int
    ) -> None:
        """At MAX_DEPTH the leaf's difference is found; one level deeper, the body is text."""
        at_limit = _compare(
            _nested(MAX_DEPTH - inner, legacy_leaf, shape),
            _nested(MAX_DEPTH - inner, candidate_leaf, shape),
        )
        assert [(kind, cls) for kind, cls, _ in _summary(at_limit)] == [
            ("value", DiffClass.SEMANTIC)
        ]
        assert at_limit.differences[0].path.startswith(_leaf_path(MAX_DEPTH - inner, shape))
        beyond = _compare(
            _nested(MAX_DEPTH - inner + 1, legacy_leaf, shape),
            _nested(MAX_DEPTH - inner + 1, candidate_leaf, shape),
        )
        assert _summary(beyond) == [("body", DiffClass.SEMANTIC, "$")]

    @pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 900, 5000])
    def test_one_side_too_deep_is_a_parse_difference(self, depth: int) -> None:
        """A document beyond the limit against one within it: parse, naming the limit."""
        verdict = _compare(_nested(2, "1", "array"), _nested(depth, "1", "array"))
        ((kind, cls, path),) = _summary(verdict)
        assert (kind, cls, path) == ("parse", DiffClass.STRUCTURAL, "$")
        assert (verdict.differences[0].legacy, verdict.differences[0].candidate) == (
            "array",
            TOO_DEEP,
        )

    def test_identical_bytes_match_at_any_depth(self) -> None:
        """Equal bodies match without parsing, however deep."""
        body = _nested(100_000, "1", "mixed")
        assert _compare(body, body).outcome is Outcome.MATCH

    def test_parsing_decides_alone(self) -> None:
        """parse_json accepts exactly MAX_DEPTH levels, whichever decoder measures them."""
        for leaf in ("1", str(BIG)):
            for shape in ("array", "object"):
                assert parse_json(_nested(3, leaf, shape)).error is None
                assert parse_json(_nested(MAX_DEPTH, leaf, shape)).error is None
                assert parse_json(_nested(MAX_DEPTH + 1, leaf, shape)).error == TOO_DEEP
        # orjson's own serialisation limit is the one the check relies on.
        orjson.dumps(orjson.loads(_nested(MAX_DEPTH, "1", "array")))
        with pytest.raises(orjson.JSONEncodeError):
            orjson.dumps(orjson.loads(_nested(MAX_DEPTH + 1, "1", "array")))

    def test_room_left_on_the_stack(self) -> None:
        """A document at the limit compares even when the caller is 200 frames deep."""

        def nested_call(frames: int, call: Callable[[], Verdict]) -> Verdict:
            return call() if frames == 0 else nested_call(frames - 1, call)

        legacy, candidate = _nested(MAX_DEPTH, "1", "mixed"), _nested(MAX_DEPTH, "2", "mixed")
        verdict = nested_call(200, lambda: _compare(legacy, candidate))
        assert [d.kind for d in verdict.differences] == ["value"]


def _measured(legacy: bytes, candidate: bytes, rules: CompareRules) -> tuple[Verdict, float, float]:
    """The verdict, the traced memory peak over the bodies' size, the time over two parses."""
    exchange = make_exchange(make_observation(body=legacy), make_observation(body=candidate))
    parse_s = min(_seconds(lambda: (parse_json(legacy), parse_json(candidate))) for _ in range(3))
    compare_s = min(_seconds(lambda: Comparator().compare(exchange, rules)) for _ in range(2))
    tracemalloc.start()
    try:
        verdict = Comparator().compare(exchange, rules)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return verdict, peak / (len(legacy) + len(candidate)), compare_s / parse_s


def _seconds(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def _items(count: int, shift: int) -> list[dict[str, object]]:
    return [{"id": i + shift, "name": f"item {i}", "tags": ["a", "b"]} for i in range(count)]


class TestMemoryAndTime:
    """A comparison costs memory and time in proportion to the bodies, whatever their shape."""

    def test_array_shifted_by_one(self) -> None:
        """[0..139999] against the same shifted by one: bounded memory, the capped differences."""
        legacy = orjson.dumps(list(range(140_000)))
        candidate = orjson.dumps(list(range(1, 140_001)))
        assert len(legacy) > 850_000
        verdict, memory, _ = _measured(legacy, candidate, CompareRules())
        # Parsing alone holds about six times the bodies (Python integers in lists).
        assert memory < 10, f"peak {memory:.1f} times the bodies"
        assert verdict.outcome is Outcome.DIVERGED
        assert verdict.note == "differences truncated at 1000"
        assert [(d.kind, d.path, d.legacy, d.candidate) for d in verdict.differences] == [
            ("value", f"$[{i}]", i, i + 1) for i in range(1000)
        ]

    @pytest.mark.parametrize(
        ("legacy", "candidate", "rules", "kinds"),
        [
            pytest.param(
                list(range(50_000)), list(reversed(range(50_000))), None, {"order"}, id="reversed"
            ),
            pytest.param(_items(10_000, 0), _items(10_000, 1), None, {"value"}, id="objects"),
            pytest.param(
                _items(10_000, 0), _items(10_000, 0)[::-1], None, {"order"}, id="objects-reversed"
            ),
            pytest.param(
                list(range(50_000)),
                list(range(1, 50_001)),
                CompareRules(unordered=("$",)),
                {"value"},
                id="unordered",
            ),
            pytest.param(
                {f"k{i}": i for i in range(50_000)},
                {f"k{i}": i + 1 for i in range(50_000)},
                None,
                {"value"},
                id="wide-values",
            ),
            pytest.param(
                {f"k{i}": i for i in range(50_000)},
                {f"j{i}": i for i in range(50_000)},
                None,
                {"extra"},  # keys sorted: every j… comes before the first k…
                id="wide-keys",
            ),
            pytest.param(
                {"text": "x" * 500_000}, {"text": "y" * 500_000}, None, {"value"}, id="long-string"
            ),
            pytest.param(
                [f"{i:0500d}" for i in range(1000)],
                [f"{i + 1:0500d}" for i in range(1000)],
                None,
                {"value"},
                id="long-strings",
            ),
        ],
    )
    def test_pathological_shapes(
        self,
        legacy: object,
        candidate: object,
        rules: CompareRules | None,
        kinds: set[str],
    ) -> None:
        """Each shape stays within a small multiple of the bodies' memory and parse time."""
        verdict, memory, duration = _measured(
            orjson.dumps(legacy), orjson.dumps(candidate), rules or CompareRules()
        )
        # A permutation of many small distinct elements is the worst case: one
        # counter entry per distinct element (about 16 times the bodies).
        assert memory < 20, f"peak {memory:.1f} times the bodies"
        # Generous for a shared 2-core machine (an unordered array of integers,
        # cheap to parse, takes about 60): quadratic work would be thousands.
        assert duration < 250, f"{duration:.0f} times the parse"
        assert {d.kind for d in verdict.differences} == kinds
        assert 0 < len(verdict.differences) <= 1000

"""Bounding recorded values."""

from __future__ import annotations

import base64

import orjson

from shadowproxy.sinks.values import ELLIPSIS, bound_value


class TestBoundValue:
    def test_short_values_pass_unchanged(self) -> None:
        """Scalars, short strings and small containers are kept as they are."""
        for value in (None, True, 3, 2.5, "abc", {"a": [1, 2]}):
            assert bound_value(value, 50) == value

    def test_long_string_is_cut(self) -> None:
        """A string beyond the limit keeps ``max_chars`` characters and ends with an ellipsis."""
        assert bound_value("x" * 300, 10) == "x" * 10 + ELLIPSIS

    def test_large_container_becomes_cut_json(self) -> None:
        """A container whose JSON exceeds the limit becomes its JSON text, cut."""
        out = bound_value({"items": list(range(100))}, 20)
        assert out == '{"items":[0,1,2,3,4,' + ELLIPSIS

    def test_utf8_bytes_become_text(self) -> None:
        """Bytes that decode as UTF-8 are recorded as a string."""
        assert bound_value("café".encode(), 20) == "café"

    def test_non_utf8_bytes_become_base64(self) -> None:
        """Undecodable bytes become ``{"base64", "bytes"}`` and serialise as valid JSON."""
        raw = b"\xff\xfe\x00binary"
        out = bound_value(raw, 64)
        assert out == {"base64": base64.b64encode(raw).decode(), "bytes": len(raw)}
        assert orjson.loads(orjson.dumps(out)) == out

    def test_long_non_utf8_bytes_keep_size_and_a_prefix(self) -> None:
        """Long binary values keep their true size and a bounded base64 prefix."""
        out = bound_value(b"\xff" * 10_000, 40)
        assert isinstance(out, dict) and out["bytes"] == 10_000
        assert len(str(out["base64"])) <= 40

    def test_huge_integers_and_surrogates_are_serialisable(self) -> None:
        """Integers beyond 64 bits and lone surrogates still produce valid JSON."""
        out = bound_value([2**80, "bad\udcff"], 100)
        assert orjson.loads(orjson.dumps(out)) == [str(2**80), "bad?"]

"""JSONPath formatting and patterns."""

from __future__ import annotations

import pytest

from shadowproxy.compare.paths import format_path, parse_pattern, prefixes


class TestFormatPath:
    """``paths.format_path`` and friends."""

    @pytest.mark.parametrize(
        ("segments", "text"),
        [
            ((), "$"),
            (("items", 3, "price"), "$.items[3].price"),
            (("a b",), "$['a b']"),
            (("it's", "x\\y"), "$['it\\'s']['x\\\\y']"),
            (("1abc", "_ok"), "$['1abc']._ok"),
            ((0, 1), "$[0][1]"),
        ],
    )
    def test_format(self, segments: tuple[str | int, ...], text: str) -> None:
        """Plain keys use dots, others are quoted and escaped, indices use brackets."""
        assert format_path(segments) == text

    def test_prefixes(self) -> None:
        """Every ancestor, root first."""
        assert prefixes(("a", 0)) == ["$", "$.a", "$.a[0]"]


class TestPatterns:
    """``paths.parse_pattern`` and matching."""

    @pytest.mark.parametrize(
        ("pattern", "segments", "matches"),
        [
            ("$.items[*].updated_at", ("items", 4, "updated_at"), True),
            ("$.items[*].updated_at", ("items", 4, "created_at"), False),
            ("$..request_id", ("request_id",), True),
            ("$..request_id", ("a", 2, "b", "request_id"), True),
            ("$..request_id", ("request_id", "x"), False),
            ("$.a.*", ("a", "b"), True),
            ("$.a.*", ("a", 0), True),
            ("$.a.*", ("a",), False),
            ("$['a b'][2]", ("a b", 2), True),
            ('$["a b"][2]', ("a b", 1), False),
            ("$['*']", ("*",), True),
            ("$['*']", ("x",), False),
            ("$..[0]", ("x", "y", 0), True),
            ("$", (), True),
        ],
    )
    def test_matches(self, pattern: str, segments: tuple[str | int, ...], matches: bool) -> None:
        """Wildcards match one child, ``..`` any depth, quoted keys literally."""
        assert parse_pattern(pattern).matches(segments) is matches

    def test_covers_descendants(self) -> None:
        """``covers`` also accepts paths below a matched one."""
        pattern = parse_pattern("$.meta")
        assert pattern.covers(("meta", "trace", 0))
        assert not pattern.matches(("meta", "trace", 0))
        assert not pattern.covers(("metadata",))

    @pytest.mark.parametrize("bad", ["items", "$.", "$[x]", "$.a[", "$..", "$.a b"])
    def test_invalid(self, bad: str) -> None:
        """Malformed patterns are rejected with a message naming them."""
        with pytest.raises(ValueError, match="JSONPath"):
            parse_pattern(bad)

"""Route labels of hostile paths: chosen after dot segments and encoded dots are resolved."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shadowproxy.compare.rules import CompareRules
from shadowproxy.http.routing import RouteTable, route_path
from shadowproxy.settings import RouteSpec


class TestRoutePath:
    """route_path resolves what an upstream would resolve; everything else is left alone."""

    @pytest.mark.parametrize(
        ("raw", "resolved"),
        [
            ("/a/b/../c", "/a/c"),
            ("/a/%2e%2e/c", "/c"),
            ("/a/%2E%2E/%2e/c", "/c"),
            ("//a//b", "/a/b"),
            ("/../../etc/passwd", "/etc/passwd"),
            ("/a/b/..", "/a/"),
            ("/a%00b", "/a%00b"),
            ("/orders/42.json", "/orders/42.json"),
            ("/", "/"),
        ],
    )
    def test_examples(self, raw: str, resolved: str) -> None:
        """Dot segments go, ``%2e`` counts as a dot, repeated slashes fold, nothing else changes."""
        assert route_path(raw) == resolved

    @given(st.lists(st.sampled_from(["a", "b", ".", "..", "%2e", "%2E%2e", "", "x.y"]), max_size=8))
    def test_result_has_no_dot_segments_and_is_stable(self, segments: list[str]) -> None:
        """The result starts with /, has no dot segment, and resolving it again is a no-op."""
        resolved = route_path("/" + "/".join(segments))
        assert resolved.startswith("/")
        assert not {".", ".."} & set(resolved.split("/"))
        assert route_path(resolved) == resolved

    def test_prefix_route_cannot_be_escaped(self) -> None:
        """``/static/../admin`` is labelled ``/admin``, not the ``/static/*`` route."""
        spec = RouteSpec("/static/*", "static", "assets", 100.0, False, CompareRules())
        table = RouteTable(
            [spec], default_sample_percent=100.0, default_rules=CompareRules(), max_routes=10
        )
        assert table.resolve("/static/../admin").name == "/admin"
        assert table.resolve("/static/%2e%2e/admin").name == "/admin"
        assert table.resolve("/static/app.css").name == "static"

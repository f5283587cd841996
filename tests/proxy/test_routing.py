"""Route resolution: templates, prefixes, normalisation and the cardinality cap."""

from __future__ import annotations

import random

from shadowproxy.compare.rules import CompareRules
from shadowproxy.config import settings_from_document
from shadowproxy.http.routing import OTHER, RouteTable, normalise_path
from shadowproxy.settings import MAX_LEARNED_ROUTE, RouteSpec


def _spec(match: str, domain: str = "orders") -> RouteSpec:
    return RouteSpec(match, match, domain, 100.0, False, CompareRules())


def _table(*specs: RouteSpec, max_routes: int = 500) -> RouteTable:
    return RouteTable(
        specs, default_sample_percent=50.0, default_rules=CompareRules(), max_routes=max_routes
    )


class TestRouteTable:
    """Configured routes first, normalised names after, bounded."""

    def test_template_matches_segment_by_segment(self) -> None:
        """/orders/{id} matches /orders/42 but neither /orders nor /orders/42/items."""
        table = _table(_spec("/orders/{id}"))
        assert table.resolve("/orders/42").name == "/orders/{id}"
        assert table.resolve("/orders/42").domain == "orders"
        assert table.resolve("/orders").name == "/orders"
        assert table.resolve("/orders/42/items").name == "/orders/{id}/items"

    def test_prefix(self) -> None:
        """A match ending in * is a prefix."""
        table = _table(_spec("/static/*", "assets"))
        assert table.resolve("/static/css/site.css").domain == "assets"

    def test_unmatched_paths_use_default_sampling(self) -> None:
        """Unconfigured routes inherit the global sample rate and domain ``default``."""
        route = _table().resolve("/health")
        assert (route.domain, route.sample_percent, route.mirror_writes) == ("default", 50.0, False)

    def test_cap_collapses_into_other(self) -> None:
        """10,000 random paths yield at most max_routes names plus ``other``."""
        table = _table(max_routes=50)
        rng = random.Random(7)
        words = ["a", "b", "c", "d", "e", "f", "g", "h"]
        names = {
            table.resolve("/" + "/".join(rng.choice(words) for _ in range(rng.randint(1, 4)))).name
            for _ in range(10_000)
        }
        assert len(names) <= 51
        assert OTHER in names

    def test_repeated_paths_resolve_as_the_first_time(self) -> None:
        """Remembered resolutions agree with a fresh table, past the memory's bound too."""
        table = _table(_spec("/orders/{id}"), max_routes=100)
        paths = [f"/orders/{n}" for n in range(3000)] + [f"/x{n}/y" for n in range(3000)]
        paths += ["/a/" + "b" * 300, "/static/../orders/7", "/orders/7"]
        first = [table.resolve(path) for path in paths]
        again = [table.resolve(path) for path in reversed(paths)]
        fresh = _table(_spec("/orders/{id}"), max_routes=100)
        expected = [fresh.resolve(path) for path in paths]
        assert [r.name for r in first] == [r.name for r in expected]
        assert [r.name for r in reversed(again)] == [r.name for r in expected]
        assert first[-2].name == first[-1].name == "/orders/{id}"


def _words(n: int, length: int = 8) -> str:
    """A path segment of letters, none a hex digit (never an {id}), distinct for each ``n``."""
    letters = "".join(_NOT_HEX[(n // 20**i) % 20] for i in range(4))
    return (letters * length)[:length]


_NOT_HEX = "ghijklmnopqrstuvwxyz"


class TestLearnedRoutes:
    """Learned names are few and short; configured routes are outside their bound."""

    def test_default_bound_is_a_hundred(self) -> None:
        """Without max_routes in the file, a hundred names are learned, then ``other``."""
        settings = settings_from_document(
            {"upstreams": {"legacy": "http://a:1", "candidate": "http://b:2"}}, "<test>"
        )
        table = _table(max_routes=settings.max_routes)
        names = {table.resolve(f"/{_words(n)}").name for n in range(150)}
        assert (settings.max_routes, len(names - {OTHER}), OTHER in names) == (100, 100, True)

    def test_long_name_is_other_and_takes_no_place(self) -> None:
        """A name over MAX_LEARNED_ROUTE characters is ``other``; short ones are still learned."""
        table = _table(max_routes=2)
        long_path = "/" + "/".join(_words(n, 60) for n in range(3))
        at_limit = "/" + "/".join((_words(1, 42), _words(2, 42), _words(3, 41)))
        assert len(normalise_path(long_path)) > MAX_LEARNED_ROUTE == len(at_limit)
        assert table.resolve(long_path).name == OTHER
        assert table.resolve(at_limit).name == at_limit
        assert table.resolve("/short").name == "/short"
        assert table.resolve("/third").name == OTHER

    def test_configured_routes_are_never_displaced(self) -> None:
        """With the learned names full of junk, configured routes still match by name."""
        table = _table(_spec("/orders/{id}"), _spec("/static/*", "assets"), max_routes=3)
        for n in range(1000):
            table.resolve(f"/{_words(n)}/{_words(n + 1)}")
        assert table.resolve("/orders/42").name == "/orders/{id}"
        assert table.resolve("/orders/42").domain == "orders"
        assert table.resolve("/static/site.css").domain == "assets"
        assert table.resolve("/real").name == OTHER


class TestNormalisePath:
    """Identifier-like segments become {id}."""

    def test_identifiers(self) -> None:
        """Numbers, UUIDs, long hex and opaque tokens collapse; words stay."""
        assert normalise_path("/users/42") == "/users/{id}"
        assert normalise_path("/o/550e8400-e29b-41d4-a716-446655440000") == "/o/{id}"
        assert normalise_path("/blob/deadbeefdeadbeefdeadbeef") == "/blob/{id}"
        assert normalise_path("/t/eyJhbGciOiJIUzI1NiJ9abc123XYZ") == "/t/{id}"
        assert normalise_path("/api/v2/orders") == "/api/v2/orders"

    def test_password_like_segments(self) -> None:
        """Eight or more characters mixing letters and digits never become a label."""
        assert normalise_path("/basic-auth/alice/s3cretPw9") == "/basic-auth/alice/{id}"
        assert normalise_path("/keys/ak_live_2x9Q") == "/keys/{id}"
        assert normalise_path("/oauth2/token/john.smith") == "/oauth2/token/john.smith"

"""Noise: ignore rules, the secondary in the same exchange, and bounded learning."""

from __future__ import annotations

from shadowproxy.compare import Comparator, CompareRules, NoiseLearner, NoiseRules
from shadowproxy.model import Outcome, Verdict
from tests.compare.factories import make_exchange, make_observation

obs = make_observation
LEARN = CompareRules(noise=NoiseRules(rate=0.5, min_samples=4, max_paths=10))


def _train(comparator: Comparator, rounds: int, *, route: str = "/r", index: int = 0) -> None:
    """Exchanges where candidate equals legacy but the secondary differs at one item's id."""
    for n in range(rounds):
        legacy = obs(body={"items": [{"id": 1}, {"id": 2}]})
        secondary_items = [{"id": 1}, {"id": 2}]
        secondary_items[index] = {"id": 100 + n}
        comparator.compare(
            make_exchange(legacy, legacy, obs(body={"items": secondary_items}), route=route), LEARN
        )


def _probe(comparator: Comparator, *, route: str = "/r") -> Verdict:
    """An exchange without a secondary whose candidate differs at item 1's id."""
    return comparator.compare(
        make_exchange(
            obs(body={"items": [{"id": 1}, {"id": 2}]}),
            obs(body={"items": [{"id": 1}, {"id": 3}]}),
            route=route,
        ),
        LEARN,
    )


class TestIgnore:
    """``ignore`` rules."""

    def test_ignored_paths_are_kept_as_noise(self) -> None:
        """Differences under an ignore pattern stay listed, flagged noise, outside the classes."""
        rules = CompareRules(ignore=("$.items[*].updated_at", "$..request_id"))
        verdict = Comparator().compare(
            make_exchange(
                obs(body={"items": [{"updated_at": 1}], "meta": {"request_id": "a"}}),
                obs(body={"items": [{"updated_at": 2}], "meta": {"request_id": "b"}}),
            ),
            rules,
        )
        assert verdict.outcome is Outcome.NOISE
        assert verdict.classes == frozenset()
        assert [(d.path, d.noise) for d in verdict.differences] == [
            ("$.items[0].updated_at", True),
            ("$.meta.request_id", True),
        ]

    def test_header_names_can_be_ignored(self) -> None:
        """Non-JSONPath ignore entries match header paths."""
        rules = CompareRules(headers=("x-version",), ignore=("X-Version",))
        verdict = Comparator().compare(
            make_exchange(obs(headers={"X-Version": "1"}), obs(headers={"X-Version": "2"})), rules
        )
        assert verdict.outcome is Outcome.NOISE


class TestSecondary:
    """Noise detected from the secondary within one exchange."""

    def test_candidate_difference_where_secondary_also_differs_is_noise(self) -> None:
        """Only the path where legacy and secondary disagree becomes noise."""
        verdict = Comparator().compare(
            make_exchange(
                obs(body={"now": 1, "total": 10}),
                obs(body={"now": 2, "total": 11}),
                obs(body={"now": 3, "total": 10}),
            ),
            CompareRules(),
        )
        assert verdict.outcome is Outcome.DIVERGED
        assert [(d.path, d.noise) for d in verdict.differences] == [
            ("$.now", True),
            ("$.total", False),
        ]

    def test_failed_secondary_gives_no_noise(self) -> None:
        """A secondary that failed is not used for noise."""
        from shadowproxy.model import ErrorKind

        verdict = Comparator().compare(
            make_exchange(obs(body={"now": 1}), obs(body={"now": 2}), obs(error=ErrorKind.TIMEOUT)),
            CompareRules(),
        )
        assert [d.noise for d in verdict.differences] == [False]


class TestLearning:
    """Noise learned per route from legacy-vs-secondary differences."""

    def test_noisy_path_is_learned_after_min_samples(self) -> None:
        """Below min_samples nothing is noise; after it the learned path is, at every index."""
        comparator = Comparator()
        _train(comparator, 3, index=0)
        assert _probe(comparator).outcome is Outcome.DIVERGED
        _train(comparator, 1, index=0)
        assert comparator.noise.rates("/r") == {"$.items[*].id": 1.0}
        verdict = _probe(comparator)
        # Learned at index 0, applied at index 1.
        assert verdict.outcome is Outcome.NOISE
        assert [(d.path, d.noise) for d in verdict.differences] == [("$.items[1].id", True)]

    def test_rate_threshold(self) -> None:
        """A path differing in at most ``rate`` of the sampled exchanges is not noisy."""
        comparator = Comparator()
        _train(comparator, 2)
        legacy = obs(body={"items": [{"id": 1}, {"id": 2}]})
        for _ in range(2):
            comparator.compare(make_exchange(legacy, legacy, legacy, route="/r"), LEARN)
        assert comparator.noise.rates("/r") == {"$.items[*].id": 0.5}
        assert _probe(comparator).outcome is Outcome.DIVERGED

    def test_learning_is_per_route(self) -> None:
        """Noise learned on one route does not apply to another."""
        comparator = Comparator()
        _train(comparator, 4, route="/a")
        assert _probe(comparator, route="/a").outcome is Outcome.NOISE
        assert _probe(comparator, route="/b").outcome is Outcome.DIVERGED

    def test_learning_can_be_switched_off(self) -> None:
        """With ``learn: false`` nothing is learned or applied."""
        comparator = Comparator()
        off = CompareRules(noise=NoiseRules(learn=False, min_samples=1))
        legacy = obs(body={"a": 1})
        comparator.compare(make_exchange(legacy, legacy, obs(body={"a": 2})), off)
        assert comparator.noise.routes() == ()

    def test_paths_per_route_are_bounded(self) -> None:
        """At most ``max_paths`` distinct paths are tracked per route."""
        learner = NoiseLearner()
        rules = NoiseRules(max_paths=3)
        for n in range(10):
            learner.observe("/r", [f"$.k{n}", "$.always"], rules)
        assert len(learner.rates("/r")) == 3
        assert learner.rates("/r")["$.always"] == 1.0

    def test_routes_are_bounded_least_recent_first(self) -> None:
        """Beyond ``max_routes`` the least recently seen route is forgotten."""
        learner = NoiseLearner(max_routes=2)
        rules = NoiseRules()
        learner.observe("/a", ["$.x"], rules)
        learner.observe("/b", ["$.x"], rules)
        learner.observe("/a", ["$.x"], rules)
        learner.observe("/c", ["$.x"], rules)
        assert learner.routes() == ("/a", "/c")

    def test_comparator_bounds_routes(self) -> None:
        """The comparator passes its route bound to the learner."""
        comparator = Comparator(max_routes=3)
        for n in range(10):
            _train(comparator, 1, route=f"/r{n}")
        assert comparator.noise.routes() == ("/r7", "/r8", "/r9")

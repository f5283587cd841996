"""The comparator as a whole: outcomes, errors, the fast path, bounds, exports."""

from __future__ import annotations

import gzip

import pytest

import shadowproxy.compare as compare
from shadowproxy.compare import NEVER_COMPARED, Comparator, CompareRules
from shadowproxy.compare.engine import validate_rules
from shadowproxy.model import DiffClass, ErrorKind, Outcome
from tests.compare.factories import make_exchange, make_observation

obs = make_observation


class TestOutcomes:
    """match / diverged / noise / error."""

    def test_identical_answers_match(self) -> None:
        """Same status, body and compared headers match, whatever volatile headers say."""
        legacy = obs(body={"a": 1}, headers={"Date": "Mon", "Server": "old", "ETag": "1"})
        candidate = obs(body={"a": 1}, headers={"Date": "Tue", "Server": "new", "ETag": "2"})
        verdict = Comparator().compare(make_exchange(legacy, candidate), CompareRules())
        assert (verdict.outcome, verdict.differences, verdict.note) == (Outcome.MATCH, (), None)

    @pytest.mark.parametrize("kind", list(ErrorKind))
    def test_candidate_failure_is_an_error(self, kind: ErrorKind) -> None:
        """A candidate error gives an error verdict with the kind as note and no differences."""
        verdict = Comparator().compare(
            make_exchange(obs(body={"a": 1}), obs(error=kind)), CompareRules()
        )
        assert (verdict.outcome, verdict.note, verdict.differences) == (
            Outcome.ERROR,
            str(kind),
            (),
        )
        assert verdict.classes == frozenset()

    def test_truncated_candidate_is_too_large(self) -> None:
        """A candidate body cut at the comparison cap is an error, not a body difference."""
        verdict = Comparator().compare(
            make_exchange(obs(body=b"{}"), obs(body=b"{", truncated=True)), CompareRules()
        )
        assert verdict.outcome is Outcome.ERROR
        assert verdict.note is not None and verdict.note.startswith("too_large:")

    def test_failed_legacy_is_reported(self) -> None:
        """A failed legacy (normally skipped by the proxy) gives an error that names legacy."""
        verdict = Comparator().compare(
            make_exchange(obs(error=ErrorKind.RESET), obs()), CompareRules()
        )
        assert (verdict.outcome, verdict.note) == (Outcome.ERROR, "legacy_failed: reset")

    def test_truncated_legacy_compares_without_body(self) -> None:
        """A legacy body cut at the cap is not compared; status still is."""
        verdict = Comparator().compare(
            make_exchange(obs(200, body=b"{", truncated=True), obs(500, body=b"{}")), CompareRules()
        )
        assert [d.kind for d in verdict.differences] == ["status"]
        assert verdict.note is not None and "legacy body not compared: too_large" in verdict.note

    def test_classes_collect_every_non_noise_class(self) -> None:
        """A verdict lists each class with at least one non-noise difference."""
        verdict = Comparator().compare(
            make_exchange(obs(200, body={"a": 1, "b": 1}, ms=1), obs(404, body={"a": 2}, ms=500)),
            CompareRules(),
        )
        assert verdict.classes == {DiffClass.STRUCTURAL, DiffClass.SEMANTIC, DiffClass.TIMING}
        assert [d.kind for d in verdict.differences] == ["status", "value", "missing", "latency"]


class TestHeaders:
    """Which headers are compared."""

    def test_never_compared_even_when_listed(self) -> None:
        """Listing a volatile or secret-bearing header does not make it compared."""
        rules = CompareRules(headers=("set-cookie", "date", "etag", "authorization"))
        legacy = obs(headers={"Set-Cookie": "s=1", "Date": "a", "ETag": "1", "Authorization": "x"})
        candidate = obs(
            headers={"Set-Cookie": "s=2", "Date": "b", "ETag": "2", "Authorization": "y"}
        )
        verdict = Comparator().compare(make_exchange(legacy, candidate), rules)
        assert verdict.outcome is Outcome.MATCH
        assert {"set-cookie", "date", "etag", "content-encoding", "vary"} <= NEVER_COMPARED

    def test_unlisted_headers_are_not_compared(self) -> None:
        """By default only Content-Type is compared."""
        verdict = Comparator().compare(
            make_exchange(obs(headers={"Cache-Control": "a"}), obs(headers={"Cache-Control": "b"})),
            CompareRules(),
        )
        assert verdict.outcome is Outcome.MATCH

    def test_repeated_headers_are_joined(self) -> None:
        """Repeated header lines compare as one comma-joined value, case-insensitively named."""
        rules = CompareRules(headers=("Link",))
        legacy = obs(headers=(("Link", "a"), ("link", "b")))
        candidate = obs(headers=(("LINK", "a, b"),))
        assert (
            Comparator().compare(make_exchange(legacy, candidate), rules).outcome is Outcome.MATCH
        )


class TestBounds:
    """Work and memory stay bounded."""

    def test_differences_are_capped(self) -> None:
        """A document differing everywhere keeps at most max_differences, and the note says so."""
        legacy = obs(body={f"k{i}": i for i in range(500)})
        candidate = obs(body={f"k{i}": -i - 1 for i in range(500)})
        verdict = Comparator(max_differences=100).compare(
            make_exchange(legacy, candidate), CompareRules()
        )
        assert len(verdict.differences) == 100
        assert verdict.note == "differences truncated at 100"

    def test_default_cap_is_one_thousand(self) -> None:
        """The default cap is 1000 differences."""
        legacy = obs(body=list(range(3000)))
        candidate = obs(body=[-1] * 3000)
        verdict = Comparator().compare(make_exchange(legacy, candidate), CompareRules())
        assert len(verdict.differences) == compare.MAX_DIFFERENCES == 1000


class TestFastPath:
    """Byte-identical answers are matched without parsing."""

    def test_identical_invalid_json_matches(self) -> None:
        """Equal bytes match even when they would not parse: nothing was parsed."""
        verdict = Comparator().compare(
            make_exchange(obs(body=b"{nope"), obs(body=b"{nope")), CompareRules()
        )
        assert verdict.outcome is Outcome.MATCH

    def test_same_bytes_different_encoding_are_decoded(self) -> None:
        """Equal bytes under different Content-Encoding are not taken as equal."""
        body = gzip.compress(b'{"a": 1}')
        legacy = obs(body=body, headers={"Content-Encoding": "gzip"})
        verdict = Comparator().compare(make_exchange(legacy, obs(body=body)), CompareRules())
        assert verdict.outcome is Outcome.DIVERGED

    def test_slow_identical_answer_is_not_fast_matched(self) -> None:
        """The fast path still applies the timing rule."""
        verdict = Comparator().compare(make_exchange(obs(ms=1), obs(ms=900)), CompareRules())
        assert verdict.classes == {DiffClass.TIMING}


class TestRulesAndExports:
    """Rule validation and the public surface."""

    def test_validate_rules_names_the_key(self) -> None:
        """An invalid pattern is reported with its key for the config loader."""
        with pytest.raises(ValueError, match=r"^unordered: JSONPath 'tags'"):
            validate_rules(CompareRules(unordered=("tags",)))
        validate_rules(CompareRules(ignore=("$..id", "x-header"), unordered=("$.tags",)))

    def test_exports(self) -> None:
        """The package exports exactly its documented names, all of which exist."""
        assert sorted(compare.__all__) == sorted(
            [
                "EQUIVALENCE_NAMES",
                "KIND_CLASS",
                "MAX_DIFFERENCES",
                "NEVER_COMPARED",
                "Comparator",
                "CompareRules",
                "Equivalences",
                "NoiseLearner",
                "NoiseRules",
                "TimingRules",
                "Tolerance",
                "decode",
                "validate_rules",
            ]
        )
        assert all(hasattr(compare, name) for name in compare.__all__)
        assert callable(compare.decode.decode)

"""JSON values: equivalences and their counts, big integers, escaping, charsets."""

from __future__ import annotations

import pytest

from shadowproxy.compare import Comparator, CompareRules, Equivalences, Tolerance
from shadowproxy.model import Outcome, Verdict
from tests.compare.factories import make_exchange, make_observation

obs = make_observation
OFF = Equivalences(int_float=False, timestamps=False, bigint_strings=False)
BIG = 12345678901234567890123


def _verdict(
    legacy: object, candidate: object, equivalences: Equivalences | None = None
) -> Verdict:
    rules = CompareRules(equivalences=equivalences or Equivalences())
    return Comparator().compare(make_exchange(obs(body=legacy), obs(body=candidate)), rules)


class TestEquivalences:
    """Each cross-runtime equivalence, switched on and off, and its count."""

    @pytest.mark.parametrize(
        ("name", "legacy", "candidate", "switch"),
        [
            ("int_float", {"a": 1, "b": [2]}, {"a": 1.0, "b": [2.0]}, {"int_float": False}),
            (
                "timestamps",
                {"t": "2026-11-23T13:40:00Z"},
                {"t": "2026-11-23T14:40:00.000000+01:00"},
                {"timestamps": False},
            ),
            ("bigint_strings", {"id": BIG}, {"id": str(BIG)}, {"bigint_strings": False}),
            (
                "null_missing_empty",
                {"a": None, "b": [], "c": None},
                {"c": []},
                {"null_missing_empty": False},
            ),
        ],
    )
    def test_equivalence(
        self, name: str, legacy: object, candidate: object, switch: dict[str, bool]
    ) -> None:
        """On, the values are equal and counted under the name; off, they differ."""
        on = Equivalences(null_missing_empty=True)
        verdict = _verdict(legacy, candidate, on)
        expected_count = {"int_float": 2, "timestamps": 1, "bigint_strings": 1}.get(name, 3)
        assert verdict.outcome is Outcome.MATCH
        assert dict(verdict.equivalences) == {name: expected_count}
        off = _verdict(legacy, candidate, Equivalences(**switch))
        assert off.outcome is Outcome.DIVERGED
        assert name not in off.equivalences

    def test_small_integer_as_string_is_a_type_change(self) -> None:
        """Only integers beyond 2**53 - 1 may travel as strings; ``"3"`` for ``3`` is structural."""
        verdict = _verdict({"qty": 3}, {"qty": "3"}, Equivalences())
        assert verdict.outcome is Outcome.DIVERGED
        assert [(d.cls.value, d.kind) for d in verdict.differences] == [("structural", "type")]

    def test_null_missing_empty_is_off_by_default(self) -> None:
        """By default a null value and a missing key differ."""
        verdict = _verdict({"a": None}, {})
        assert [d.kind for d in verdict.differences] == ["missing"]

    @pytest.mark.parametrize(
        ("legacy", "candidate"),
        [
            ("2026-11-23T13:40:00.1Z", "2026-11-23T13:40:00.12Z"),
            ("2026-11-23T13:40:00Z", "2026-11-23T13:40:01Z"),
            ("2026-11-23T13:40:00Z", "2026-11-23 13:40:00"),
        ],
    )
    def test_different_instants_differ(self, legacy: str, candidate: str) -> None:
        """Timestamps of different instants, or without an offset, are different values."""
        assert _verdict({"t": legacy}, {"t": candidate}).outcome is Outcome.DIVERGED

    def test_counts_are_absent_when_nothing_applied(self) -> None:
        """A plain match carries an empty equivalence map."""
        assert dict(_verdict({"a": 1}, {"a": 1}).equivalences) == {}

    def test_bool_is_never_a_number(self) -> None:
        """True and 1 are a type difference even inside otherwise equal arrays."""
        verdict = _verdict({"l": [1, True, 3]}, {"l": [1, 1, 3]})
        assert [(d.kind, d.path) for d in verdict.differences] == [("type", "$.l[1]")]


class TestExactness:
    """Values that lossy parsing would get wrong."""

    def test_big_integers_keep_every_digit(self) -> None:
        """Integers beyond 64 bits that differ in the last digit differ."""
        verdict = _verdict(f'{{"n": {BIG}}}', f'{{"n": {BIG + 1}}}')
        assert [(d.path, d.legacy, d.candidate) for d in verdict.differences] == [
            ("$.n", BIG, BIG + 1)
        ]

    def test_negative_big_integers_keep_every_digit(self) -> None:
        """Negative integers beyond 64 bits stay exact integers."""
        verdict = _verdict(f"[{-BIG}]", f"[{-BIG - 1}]")
        assert [(d.kind, d.legacy, d.candidate) for d in verdict.differences] == [
            ("value", -BIG, -BIG - 1)
        ]

    def test_no_tolerance_is_exact_between_integer_and_float(self) -> None:
        """2**53 + 1 against 2.0**53 differ, though float arithmetic rounds the gap to 0."""
        verdict = _verdict(f"[{2**53 + 1}]", f"[{float(2**53)!r}]")
        assert [(d.kind, d.path) for d in verdict.differences] == [("value", "$[0]")]

    def test_integer_beyond_the_float_range_against_a_float(self) -> None:
        """A 400-digit integer against a float is a value difference, not an OverflowError."""
        huge = 10**400
        assert [(d.kind, d.legacy) for d in _verdict([huge], [1.5]).differences] == [
            ("value", huge)
        ]
        relative = CompareRules(tolerance=Tolerance(relative=0.01))
        within = Comparator().compare(
            make_exchange(obs(body=[huge]), obs(body=[huge + 10**390])), relative
        )
        beyond = Comparator().compare(
            make_exchange(obs(body=[huge]), obs(body=[huge + 10**399])), relative
        )
        assert (within.outcome, beyond.outcome) == (Outcome.MATCH, Outcome.DIVERGED)

    def test_escaping_and_whitespace_do_not_matter(self) -> None:
        """``\\u00e9`` equals ``é`` and whitespace is irrelevant."""
        verdict = _verdict(b'{"name":"\\u00e9t\\u00e9","k":1}', '{ "k" : 1,\n  "name": "été" }')
        assert verdict.outcome is Outcome.MATCH

    def test_invalid_json_on_both_sides_compares_as_text(self) -> None:
        """Two unparseable JSON bodies fall back to a text comparison."""
        verdict = _verdict(b"{broken", b"{broken!")
        assert [(d.kind, d.path) for d in verdict.differences] == [("body", "$")]

    def test_json_type_suffix_is_json(self) -> None:
        """``application/problem+json`` bodies are parsed as JSON."""
        problem = "application/problem+json"
        verdict = Comparator().compare(
            make_exchange(
                obs(body='{"a": 1, "b": 2}', content_type=problem),
                obs(body='{"b": 2, "a": 1}', content_type=problem),
            ),
            CompareRules(),
        )
        assert verdict.outcome is Outcome.MATCH


class TestText:
    """Text bodies are compared as text in their charset."""

    def test_charsets_decode_to_the_same_text(self) -> None:
        """Latin-1 and UTF-8 spellings of the same text differ only in the charset parameter."""
        legacy = obs(body="café".encode("latin-1"), content_type="text/plain; charset=ISO-8859-1")
        candidate = obs(body="café".encode(), content_type="text/plain; charset=utf-8")
        verdict = Comparator().compare(make_exchange(legacy, candidate), CompareRules())
        assert [d.kind for d in verdict.differences] == ["content_type_params"]

    def test_charset_name_case_is_irrelevant(self) -> None:
        """``charset=UTF-8`` and ``charset=utf-8`` are the same parameter."""
        legacy = obs(body="x", content_type="text/plain; charset=UTF-8")
        candidate = obs(body="x", content_type="text/plain;charset=utf-8")
        verdict = Comparator().compare(make_exchange(legacy, candidate), CompareRules())
        assert verdict.outcome is Outcome.MATCH

    def test_xml_is_text(self) -> None:
        """application/xml bodies report the first differing line."""
        xml = "application/xml"
        verdict = Comparator().compare(
            make_exchange(
                obs(body="<a>\n<b/>\n</a>", content_type=xml),
                obs(body="<a>\n<c/>\n</a>", content_type=xml),
            ),
            CompareRules(),
        )
        (difference,) = verdict.differences
        assert (difference.legacy, difference.candidate) == (
            {"line": 2, "text": "<b/>"},
            {"line": 2, "text": "<c/>"},
        )

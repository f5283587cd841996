"""Field rules: whitespace, JSON in strings, maps and added fields, at the listed paths only."""

from __future__ import annotations

import json

import pytest

from shadowproxy.compare import Comparator, CompareRules, validate_rules
from shadowproxy.compare.parse import MAX_DEPTH
from shadowproxy.model import DiffClass, Outcome, Verdict
from tests.compare.factories import make_exchange, make_observation

obs = make_observation


def _verdict(legacy: object, candidate: object, **rules: tuple[str, ...]) -> Verdict:
    exchange = make_exchange(obs(body=legacy), obs(body=candidate))
    return Comparator().compare(exchange, CompareRules(**rules))  # type: ignore[arg-type]


def _found(verdict: Verdict) -> list[tuple[str, str, object, object]]:
    return [(d.kind, d.path, d.legacy, d.candidate) for d in verdict.differences]


class TestWhitespace:
    """``whitespace`` strings compare trimmed, with every run of whitespace as one space."""

    def test_listed_field_equal(self) -> None:
        """Spaces, tabs and newlines around and inside the text are one space; counted."""
        verdict = _verdict(
            {"name": "big  lamp\n", "items": [{"note": "a\tb"}]},
            {"name": " big lamp", "items": [{"note": "a b"}]},
            whitespace=("$.name", "$.items[*].note"),
        )
        assert verdict.outcome is Outcome.MATCH
        assert dict(verdict.equivalences) == {"whitespace": 2}

    def test_other_fields_and_other_text_still_differ(self) -> None:
        """Unlisted fields keep their whitespace; listed ones still differ in their words."""
        verdict = _verdict(
            {"name": "big lamp", "other": "a b"},
            {"name": "big  lump", "other": "a  b"},
            whitespace=("$.name",),
        )
        assert _found(verdict) == [
            ("value", "$.name", "big lamp", "big  lump"),
            ("value", "$.other", "a b", "a  b"),
        ]


class TestJsonStrings:
    """``json_strings`` fields are parsed and compared as JSON below the field's path."""

    def test_same_document_other_spelling(self) -> None:
        """Key order, spacing and escaping inside the string do not matter; counted."""
        verdict = _verdict(
            {"payload": '{"user": {"id": 7, "name": "\\u00e9"}, "tags": [1, 2]}'},
            {"payload": '{"tags":[1,2],"user":{"name":"é","id":7}}'},
            json_strings=("$.payload",),
        )
        assert verdict.outcome is Outcome.MATCH
        assert dict(verdict.equivalences) == {"json_string": 1}

    def test_differences_get_paths_inside_the_string(self) -> None:
        """A drifted value and a missing key inside the payload are reported at their paths."""
        verdict = _verdict(
            {"payload": json.dumps({"user": {"id": 7, "role": "admin"}})},
            {"payload": json.dumps({"user": {"id": 8}})},
            json_strings=("$.payload",),
        )
        assert _found(verdict) == [
            ("value", "$.payload.user.id", 7, 8),
            ("missing", "$.payload.user.role", "admin", None),
        ]
        assert verdict.classes == {DiffClass.STRUCTURAL, DiffClass.SEMANTIC}

    def test_one_side_not_json_is_a_parse_difference(self) -> None:
        """A payload that parses on one side only is a structural ``parse`` at the field."""
        verdict = _verdict({"payload": '{"a": 1}'}, {"payload": "a=1"}, json_strings=("$.payload",))
        ((kind, path, legacy, candidate),) = _found(verdict)
        assert (kind, path, legacy) == ("parse", "$.payload", "object")
        assert str(candidate).startswith("invalid JSON")
        assert verdict.classes == {DiffClass.STRUCTURAL}

    def test_neither_side_json_compares_as_strings(self) -> None:
        """Two payloads that are not JSON are compared as the strings they are."""
        verdict = _verdict({"payload": "a=1"}, {"payload": "a=2"}, json_strings=("$.payload",))
        assert _found(verdict) == [("value", "$.payload", "a=1", "a=2")]

    def test_unlisted_strings_are_strings(self) -> None:
        """Without the rule, a JSON payload spelled differently is a value difference."""
        verdict = _verdict({"payload": '{"a":1}'}, {"payload": '{"a": 1}'})
        assert _found(verdict) == [("value", "$.payload", '{"a":1}', '{"a": 1}')]

    def test_strings_inside_are_not_parsed_again(self) -> None:
        """JSON inside JSON inside a string stays a string: nesting stays bounded."""
        inner_l = json.dumps({"payload": json.dumps({"x": 1})})
        inner_c = json.dumps({"payload": json.dumps({"x": 1}, indent=1)})
        verdict = _verdict({"payload": inner_l}, {"payload": inner_c}, json_strings=("$..payload",))
        ((kind, path, _legacy, _candidate),) = _found(verdict)
        assert (kind, path) == ("value", "$.payload.payload")

    def test_the_whole_document_stays_within_the_depth_limit(self) -> None:
        """A payload that would take the document beyond the depth limit is not parsed."""
        deep = "[" * (MAX_DEPTH - 1) + "1" + "]" * (MAX_DEPTH - 1)
        verdict = _verdict(
            {"a": {"payload": deep}},
            {"a": {"payload": deep.replace("1", "2")}},
            json_strings=("$.a.payload",),
        )
        ((kind, path, legacy, _candidate),) = _found(verdict)
        assert (kind, path) == ("value", "$.a.payload")
        assert legacy == deep


class TestMaps:
    """``maps`` arrays of key/value entries compare as maps: by key, in any order."""

    def test_entries_in_another_order_match(self) -> None:
        """``{key, value}`` objects and ``[key, value]`` pairs in another order are equal."""
        verdict = _verdict(
            {"labels": [{"key": "a", "value": 1}, {"key": "b", "value": 2}], "p": [["x", 1]]},
            {"labels": [{"key": "b", "value": 2}, {"key": "a", "value": 1}], "p": [["x", 1]]},
            maps=("$.labels", "$.p"),
        )
        assert verdict.outcome is Outcome.MATCH

    def test_differences_by_key(self) -> None:
        """A changed, a removed and an added entry are reported under their keys."""
        verdict = _verdict(
            {"labels": [{"key": "a", "value": 1}, {"key": "b", "value": 2}]},
            {"labels": [{"key": "c", "value": 3}, {"key": "a", "value": 9}]},
            maps=("$.labels",),
        )
        assert _found(verdict) == [
            ("value", "$.labels.a", 1, 9),
            ("missing", "$.labels.b", 2, None),
            ("extra", "$.labels.c", None, 3),
        ]

    def test_entries_against_an_object(self) -> None:
        """One runtime's entry list and another's object with the same pairs are equal."""
        verdict = _verdict(
            {"labels": [["a", 1], ["b", 2]]}, {"labels": {"b": 2, "a": 1}}, maps=("$.labels",)
        )
        assert verdict.outcome is Outcome.MATCH

    def test_without_the_rule_order_matters(self) -> None:
        """Unlisted, the same entries in another order are an ``order`` difference."""
        verdict = _verdict(
            {"labels": [{"key": "a", "value": 1}, {"key": "b", "value": 2}]},
            {"labels": [{"key": "b", "value": 2}, {"key": "a", "value": 1}]},
        )
        assert [d.kind for d in verdict.differences] == ["order"]

    def test_arrays_of_anything_else_stay_arrays(self) -> None:
        """An array that does not hold entries is compared as an array even when listed."""
        verdict = _verdict({"labels": [1, 2]}, {"labels": [2, 1]}, maps=("$.labels",))
        assert [d.kind for d in verdict.differences] == ["order"]


class TestAddedFields:
    """``added_fields``: a field the candidate adds is a documented compatible change."""

    def test_listed_addition_is_counted_not_divergent(self) -> None:
        """The listed fields (by name, or an unknown field number) are counted, not extra."""
        verdict = _verdict(
            {"id": "1", "items": [{"n": 1}, {"n": 2}]},
            {
                "id": "1",
                "#6": True,
                "items": [{"n": 1, "on_sale": True}, {"n": 2, "on_sale": False}],
            },
            added_fields=("$['#6']", "$.items[*].on_sale"),
        )
        assert verdict.outcome is Outcome.MATCH
        assert dict(verdict.equivalences) == {"added_field": 3}

    def test_only_additions(self) -> None:
        """A listed field legacy has and the candidate drops or changes still diverges."""
        verdict = _verdict(
            {"on_sale": True, "x": {"on_sale": 1}},
            {"x": {"on_sale": 2}},
            added_fields=("$.on_sale", "$.x.on_sale"),
        )
        assert [(d.kind, d.path) for d in verdict.differences] == [
            ("missing", "$.on_sale"),
            ("value", "$.x.on_sale"),
        ]

    def test_unlisted_addition_is_structural(self) -> None:
        """Any other added field stays a structural ``extra``."""
        verdict = _verdict({"id": "1"}, {"id": "1", "#7": 1}, added_fields=("$['#6']",))
        assert verdict.classes == {DiffClass.STRUCTURAL}


class TestValidation:
    """Every field rule's patterns are checked when the configuration is read."""

    @pytest.mark.parametrize("key", ["whitespace", "json_strings", "maps", "added_fields"])
    def test_bad_pattern_names_its_key(self, key: str) -> None:
        """A pattern that does not parse is refused, naming the rule."""
        with pytest.raises(ValueError, match=f"^{key}: "):
            validate_rules(CompareRules(**{key: ("items",)}))  # type: ignore[arg-type]

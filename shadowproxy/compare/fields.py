"""Field rules: what a rule says about one field before the walk compares it.

Owns the value transformations behind four ``CompareRules`` keys, each
applied only at the paths its patterns match:

- ``whitespace``: a string trimmed, with every run of whitespace one space;
- ``json_strings``: a string holding JSON (an opaque ``payload``) parsed, so
  the walk compares it as JSON below the field's own path; the parsed
  document may not take the whole beyond ``parse.MAX_DEPTH`` levels, and a
  string inside it is never parsed again, so nesting stays bounded;
- ``maps``: an array of key/value entries (``{"key": k, "value": v}`` objects,
  or ``[k, v]`` pairs) as an object keyed by ``k``, so the order of entries
  never matters (a proto map written by another runtime);
- ``added_fields``: a field only the candidate has, listed as a documented
  compatible change (a proto evolution), which the walk counts instead of
  reporting ``extra``.

The walk (``tree``) decides where; this module only transforms. Pure code.
"""

from __future__ import annotations

from dataclasses import dataclass

from shadowproxy.compare.parse import MAX_DEPTH, ParsedJson, deeper_than, parse_json
from shadowproxy.compare.paths import PathPattern, Segments

__all__ = ["FieldRules", "as_map", "json_in_string", "matched", "squeezed"]


@dataclass(frozen=True, slots=True)
class FieldRules:
    """The four field rules with their patterns parsed."""

    whitespace: tuple[PathPattern, ...] = ()
    json_strings: tuple[PathPattern, ...] = ()
    maps: tuple[PathPattern, ...] = ()
    added: tuple[PathPattern, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.whitespace or self.json_strings or self.maps or self.added)


def matched(patterns: tuple[PathPattern, ...], at: Segments) -> bool:
    """True when one of ``patterns`` denotes exactly the path ``at``."""
    return any(pattern.matches(at) for pattern in patterns)


def squeezed(text: str) -> str:
    """``text`` trimmed, every run of whitespace (any Unicode space) one space."""
    return " ".join(text.split())


def json_in_string(text: str, at: Segments) -> ParsedJson:
    """The JSON held in the string at ``at``; an error when it does not parse or nests too deep.

    The field's own depth counts: the whole document stays within ``MAX_DEPTH``.
    """
    parsed = parse_json(text.encode("utf-8", "surrogatepass"))
    if parsed.error is None and deeper_than(parsed.value, MAX_DEPTH - len(at)):
        return ParsedJson(error=f"nesting deeper than {MAX_DEPTH} levels with its field")
    return parsed


def _entry_key(key: object) -> str | None:
    """An entry's key as an object key: strings as they are, numbers and booleans as JSON."""
    if type(key) is str:
        return key
    if type(key) in (int, float, bool):
        return str(key).lower() if type(key) is bool else str(key)
    return None


def as_map(value: object) -> object:
    """An array of key/value entries as an object by key (the last of a repeated key wins,
    as in protobuf); anything else, including an array holding something else, as it is.

    An entry that is exactly ``{"key", "value"}`` maps to its value, a larger one to itself.
    """
    if type(value) is not list:
        return value
    entries: dict[str, object] = {}
    for entry in value:
        if type(entry) is dict and "key" in entry:
            key = _entry_key(entry["key"])
            item = entry["value"] if entry.keys() == {"key", "value"} else entry
        elif type(entry) is list and len(entry) == 2:
            key, item = _entry_key(entry[0]), entry[1]
        else:
            return value
        if key is None:
            return value
        entries[key] = item
    return entries

"""JSONPath for the comparison engine: formatting concrete paths and matching patterns.

Owns the path syntax shared by differences, ``ignore`` and ``unordered`` rules and
noise learning. A concrete path is a tuple of segments (object keys as ``str``,
array indices as ``int``) and prints as ``$.items[3].price`` or ``$['a b']``.
Patterns add ``*`` / ``[*]`` (any one child) and ``..`` (any depth). Pure code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "PathPattern",
    "Segments",
    "format_path",
    "parse_pattern",
    "prefixes",
]

Segments = tuple[str | int, ...]
"""A concrete body path: object keys and array indices from the root down."""

_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_INDEX = re.compile(r"\[(\d+)\]")
_QUOTED = re.compile(r"""\[(?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)")\]""")
_NAME = re.compile(r"[A-Za-z0-9_\-]+")
_UNESCAPE = re.compile(r"\\(.)")


def _format_key(key: str) -> str:
    if _PLAIN_KEY.match(key):
        return "." + key
    escaped = key.replace("\\", "\\\\").replace("'", "\\'")
    return f"['{escaped}']"


def format_path(segments: Segments, *, wildcard_indices: bool = False) -> str:
    """Print ``segments`` as JSONPath; ``wildcard_indices`` prints every index as ``[*]``."""
    parts = ["$"]
    for segment in segments:
        if isinstance(segment, int):
            parts.append("[*]" if wildcard_indices else f"[{segment}]")
        else:
            parts.append(_format_key(segment))
    return "".join(parts)


def prefixes(segments: Segments, *, wildcard_indices: bool = False) -> list[str]:
    """Every ancestor path of ``segments`` and the path itself, root first."""
    parts = ["$"]
    result = ["$"]
    for segment in segments:
        if isinstance(segment, int):
            parts.append("[*]" if wildcard_indices else f"[{segment}]")
        else:
            parts.append(_format_key(segment))
        result.append("".join(parts))
    return result


@dataclass(frozen=True, slots=True)
class _Step:
    descend: bool
    """True after ``..``: the selector may match at any depth below."""
    selector: str | int | None
    """A key, an index, or None for ``*`` / ``[*]`` (any one child)."""


@dataclass(frozen=True, slots=True)
class PathPattern:
    """A parsed JSONPath pattern (``$.items[*].id``, ``$..request_id``, ``$.a.*``)."""

    text: str
    steps: tuple[_Step, ...]

    def matches(self, segments: Segments) -> bool:
        """True when the pattern denotes exactly this path."""
        return _match(self.steps, 0, segments, 0, prefix_ok=False)

    def covers(self, segments: Segments) -> bool:
        """True when the pattern denotes this path or one of its ancestors."""
        return _match(self.steps, 0, segments, 0, prefix_ok=True)


def _selects(selector: str | int | None, segment: str | int) -> bool:
    if selector is None:
        return True
    return type(selector) is type(segment) and selector == segment


def _match(
    steps: tuple[_Step, ...], step: int, segments: Segments, at: int, *, prefix_ok: bool
) -> bool:
    if step == len(steps):
        return prefix_ok or at == len(segments)
    current = steps[step]
    if current.descend:
        return any(
            _selects(current.selector, segments[j])
            and _match(steps, step + 1, segments, j + 1, prefix_ok=prefix_ok)
            for j in range(at, len(segments))
        )
    if at < len(segments) and _selects(current.selector, segments[at]):
        return _match(steps, step + 1, segments, at + 1, prefix_ok=prefix_ok)
    return False


def parse_pattern(text: str) -> PathPattern:
    """Parse a JSONPath pattern; raises ``ValueError`` naming the problem (config time only)."""
    if not text.startswith("$"):
        raise ValueError(f"JSONPath {text!r} must start with '$'")
    steps: list[_Step] = []
    pos = 1
    while pos < len(text):
        descend = text.startswith("..", pos)
        if descend or text[pos] == ".":
            pos += 2 if descend else 1
            if text.startswith("*", pos):
                steps.append(_Step(descend, None))
                pos += 1
                continue
            name = _NAME.match(text, pos)
            if name is not None:
                steps.append(_Step(descend, name.group()))
                pos = name.end()
                continue
            if not (descend and text.startswith("[", pos)):
                raise ValueError(f"JSONPath {text!r}: expected a name at offset {pos}")
        pos = _bracket(text, pos, descend, steps)
    return PathPattern(text, tuple(steps))


def _bracket(text: str, pos: int, descend: bool, steps: list[_Step]) -> int:
    if text.startswith("[*]", pos):
        steps.append(_Step(descend, None))
        return pos + 3
    index = _INDEX.match(text, pos)
    if index is not None:
        steps.append(_Step(descend, int(index.group(1))))
        return index.end()
    quoted = _QUOTED.match(text, pos)
    if quoted is not None:
        raw = quoted.group(1) if quoted.group(1) is not None else quoted.group(2)
        steps.append(_Step(descend, _UNESCAPE.sub(r"\1", raw)))
        return quoted.end()
    raise ValueError(f"JSONPath {text!r}: unexpected {text[pos : pos + 10]!r} at offset {pos}")

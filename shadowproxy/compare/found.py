"""Unclassified differences and the bounded collector that gathers them.

Owns ``Found`` (a difference before classification and noise partitioning),
the equivalence counter names, and ``Collector``, which caps how many
differences one comparison may gather so a huge document that differs
everywhere costs bounded memory and time. Pure code.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shadowproxy.compare.paths import Segments
from shadowproxy.model import JsonValue

__all__ = [
    "ADDED_FIELD",
    "BIGINT_STRINGS",
    "EQUIVALENCE_NAMES",
    "INT_FLOAT",
    "JSON_STRING",
    "NULL_MISSING_EMPTY",
    "TIMESTAMPS",
    "WHITESPACE",
    "Collector",
    "Found",
]

INT_FLOAT = "int_float"
TIMESTAMPS = "timestamps"
BIGINT_STRINGS = "bigint_strings"
NULL_MISSING_EMPTY = "null_missing_empty"
WHITESPACE = "whitespace"
JSON_STRING = "json_string"
ADDED_FIELD = "added_field"
EQUIVALENCE_NAMES = (
    INT_FLOAT,
    TIMESTAMPS,
    BIGINT_STRINGS,
    NULL_MISSING_EMPTY,
    WHITESPACE,
    JSON_STRING,
    ADDED_FIELD,
)
"""Keys of ``Verdict.equivalences``, in documentation order: the cross-runtime
equivalences, then what the ``whitespace``, ``json_strings`` and ``added_fields``
rules made equal."""


@dataclass(frozen=True, slots=True)
class Found:
    """One difference as the differs see it: a kind at a path, both values.

    ``segments`` is the body path as a tuple (None for status, headers and
    latency), which rules and noise learning match against.
    """

    kind: str
    path: str
    legacy: JsonValue = None
    candidate: JsonValue = None
    segments: Segments | None = None


@dataclass(slots=True)
class Collector:
    """Gathers at most ``limit`` differences and counts applied equivalences."""

    limit: int
    found: list[Found] = field(default_factory=list)
    equivalences: dict[str, int] = field(default_factory=dict)
    truncated: bool = False
    """Set once a difference was dropped because ``limit`` was reached."""

    @property
    def full(self) -> bool:
        """True when no further difference will be kept: walkers stop early."""
        return self.truncated

    def add(self, found: Found) -> None:
        """Keep ``found`` unless the limit is reached (then mark the collection truncated)."""
        if len(self.found) >= self.limit:
            self.truncated = True
            return
        self.found.append(found)

    def count(self, equivalence: str) -> None:
        """Record that ``equivalence`` made two values equal."""
        self.equivalences[equivalence] = self.equivalences.get(equivalence, 0) + 1

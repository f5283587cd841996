"""Comparison rules: the frozen settings the comparison engine reads.

Pure values only. The config loader builds them (global defaults merged with
per-route overrides); the engine never looks anything up elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CompareRules", "Equivalences", "NoiseRules", "TimingRules", "Tolerance"]


@dataclass(frozen=True, slots=True)
class Tolerance:
    """Numbers within ``absolute`` or ``relative`` (fraction of legacy) are equal."""

    absolute: float = 0.0
    relative: float = 0.0


@dataclass(frozen=True, slots=True)
class TimingRules:
    """Candidate is slow when slower by ``ratio`` x and ``min_delta_ms``, or by ``absolute_ms``."""

    ratio: float = 2.0
    min_delta_ms: float = 10.0
    absolute_ms: float = 100.0


@dataclass(frozen=True, slots=True)
class Equivalences:
    """Cross-runtime equivalences, each switchable."""

    int_float: bool = True
    """``1`` equals ``1.0``."""
    timestamps: bool = True
    """RFC 3339 strings equal when they denote the same instant."""
    bigint_strings: bool = True
    """An integer equals its decimal string (``"12345678901234567890"``)."""
    null_missing_empty: bool = False
    """``null``, a missing key and ``[]`` are equal."""


@dataclass(frozen=True, slots=True)
class NoiseRules:
    """When a path is learned noisy for a route from legacy-vs-secondary differences."""

    learn: bool = True
    rate: float = 0.2
    """Noisy above this share of exchanges in which legacy and secondary differ at a path."""
    min_samples: int = 20
    """Exchanges with a secondary needed before a route's rates are trusted."""
    max_paths: int = 1000
    """Distinct paths tracked per route (memory bound)."""


@dataclass(frozen=True, slots=True)
class CompareRules:
    """Everything that decides how one route's exchanges are compared."""

    ignore: tuple[str, ...] = ()
    """JSONPath patterns (``$.items[*].updated_at``, ``$..request_id``); matches are noise."""
    unordered: tuple[str, ...] = ()
    """JSONPath patterns of arrays compared as multisets."""
    whitespace: tuple[str, ...] = ()
    """JSONPath patterns of strings compared with whitespace trimmed and runs of it as one space."""
    json_strings: tuple[str, ...] = ()
    """JSONPath patterns of strings holding JSON (an opaque ``payload``), compared as JSON."""
    maps: tuple[str, ...] = ()
    """JSONPath patterns of arrays of key/value entries compared as maps (by key, any order)."""
    added_fields: tuple[str, ...] = ()
    """JSONPath patterns of fields the candidate may add: a documented compatible change."""
    tolerance: Tolerance = Tolerance()
    headers: tuple[str, ...] = ()
    """Header names compared in addition to Content-Type (lower-case)."""
    timing: TimingRules = TimingRules()
    equivalences: Equivalences = Equivalences()
    noise: NoiseRules = NoiseRules()
    max_decoded_bytes: int = 8 * 1024 * 1024
    """Cap on a body after Content-Encoding is undone; beyond it the outcome is an error."""
    json_patch: bool = False
    """Stream events holding JSON Patch (RFC 6902) arrays are applied to a document per
    side, and the two documents are compared at the end of the window instead."""

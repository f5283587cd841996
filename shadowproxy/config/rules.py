"""The ``compare:`` section, globally and per route: comparison rules over inherited ones."""

from __future__ import annotations

from dataclasses import fields

from shadowproxy.compare import validate_rules
from shadowproxy.compare.rules import (
    CompareRules,
    Equivalences,
    NoiseRules,
    TimingRules,
    Tolerance,
)
from shadowproxy.config.reader import Reader

__all__ = ["compare_rules"]


def compare_rules(reader: Reader, base: CompareRules) -> CompareRules:
    """Rules from ``reader`` where set, ``base`` elsewhere (routes inherit the global rules)."""
    tolerance = reader.child("tolerance")
    timing = reader.child("timing")
    equivalences = reader.child("equivalences")
    noise = reader.child("noise")
    rules = CompareRules(
        ignore=reader.strings("ignore", base.ignore),
        unordered=reader.strings("unordered", base.unordered),
        whitespace=reader.strings("whitespace", base.whitespace),
        json_strings=reader.strings("json_strings", base.json_strings),
        maps=reader.strings("maps", base.maps),
        added_fields=reader.strings("added_fields", base.added_fields),
        tolerance=Tolerance(
            absolute=tolerance.number("absolute", base.tolerance.absolute),
            relative=tolerance.number("relative", base.tolerance.relative, maximum=1.0),
        ),
        headers=tuple(h.lower() for h in reader.strings("headers", base.headers)),
        timing=TimingRules(
            ratio=timing.number("ratio", base.timing.ratio, minimum=1.0),
            min_delta_ms=timing.number("min_delta_ms", base.timing.min_delta_ms),
            absolute_ms=timing.number("absolute_ms", base.timing.absolute_ms, exclusive_min=True),
        ),
        equivalences=Equivalences(
            **{
                f.name: equivalences.boolean(f.name, getattr(base.equivalences, f.name))
                for f in fields(Equivalences)
            }
        ),
        noise=NoiseRules(
            learn=noise.boolean("learn", base.noise.learn),
            rate=noise.number("rate", base.noise.rate, maximum=1.0),
            min_samples=noise.integer("min_samples", base.noise.min_samples, minimum=1),
            max_paths=noise.integer("max_paths", base.noise.max_paths, minimum=1),
        ),
        max_decoded_bytes=reader.integer("max_decoded_bytes", base.max_decoded_bytes, minimum=1),
        json_patch=reader.boolean("json_patch", base.json_patch),
    )
    for part in (tolerance, timing, equivalences, noise, reader):
        part.finish()
    try:
        validate_rules(rules)
    except ValueError as exc:
        key, _, problem = str(exc).partition(": ")
        raise reader.error(problem, key) from None
    return rules

"""Noise: differences that are not the candidate's fault, and the learning behind them.

Owns three ways a difference becomes noise (kept in the verdict, flagged, never
counted in its classes):

1. an ``ignore`` rule covers its path (the path or an ancestor);
2. legacy and the secondary differ at its path or an ancestor in the same exchange;
3. its route has learned the path noisy: over exchanges that had a secondary,
   legacy and secondary differed there in more than ``rate`` of them, once at
   least ``min_samples`` such exchanges were seen. Paths are learned with array
   indices generalised (``$.items[*].id``) so noise at one index covers all.

Memory is bounded: ``max_paths`` paths per route (later paths are not tracked)
and ``max_routes`` routes (the least recently seen route is forgotten). Not
thread-safe: one comparator is used from one thread. Pure code.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field

from shadowproxy.compare.found import Found
from shadowproxy.compare.paths import PathPattern, prefixes
from shadowproxy.compare.rules import NoiseRules

__all__ = ["NoiseFilter", "NoiseLearner", "learning_key", "noise_keys"]


def noise_keys(found: Found, *, wildcard_indices: bool) -> list[str]:
    """The paths whose noise covers ``found``: its own path and every ancestor."""
    if found.segments is None:
        return [found.path]
    return prefixes(found.segments, wildcard_indices=wildcard_indices)


def learning_key(found: Found) -> str:
    """The path under which a legacy-vs-secondary difference is learned."""
    return noise_keys(found, wildcard_indices=True)[-1]


@dataclass(slots=True)
class _RouteNoise:
    samples: int = 0
    counts: dict[str, int] = field(default_factory=dict)


class NoiseLearner:
    """Per-route counts of where legacy and the secondary disagree, bounded."""

    __slots__ = ("_max_routes", "_routes")

    def __init__(self, max_routes: int = 1024) -> None:
        if max_routes < 1:
            raise ValueError("max_routes must be at least 1")
        self._max_routes = max_routes
        self._routes: OrderedDict[str, _RouteNoise] = OrderedDict()

    def observe(self, route: str, paths: Iterable[str], rules: NoiseRules) -> None:
        """Record one exchange with a secondary where legacy and secondary differed at ``paths``."""
        state = self._routes.get(route)
        if state is None:
            if len(self._routes) >= self._max_routes:
                self._routes.popitem(last=False)
            state = self._routes[route] = _RouteNoise()
        else:
            self._routes.move_to_end(route)
        state.samples += 1
        for path in set(paths):
            if path in state.counts:
                state.counts[path] += 1
            elif len(state.counts) < rules.max_paths:
                # Beyond max_paths a new path is not learned: memory stays bounded.
                state.counts[path] = 1

    def is_noisy(self, route: str, paths: Iterable[str], rules: NoiseRules) -> bool:
        """True when any of ``paths`` is learned noisy for ``route``."""
        state = self._routes.get(route)
        if state is None or state.samples < max(rules.min_samples, 1):
            return False
        threshold = rules.rate * state.samples
        return any(state.counts.get(path, 0) > threshold for path in paths)

    def routes(self) -> tuple[str, ...]:
        """Routes currently tracked, least recently seen first."""
        return tuple(self._routes)

    def rates(self, route: str) -> dict[str, float]:
        """Share of sampled exchanges in which each tracked path differed (for status pages)."""
        state = self._routes.get(route)
        if state is None or state.samples == 0:
            return {}
        return {path: count / state.samples for path, count in sorted(state.counts.items())}


@dataclass(frozen=True, slots=True)
class NoiseFilter:
    """Decides, for one exchange, which differences are noise."""

    ignore: tuple[PathPattern, ...]
    ignore_literals: frozenset[str]
    """Ignore entries that are not JSONPath: header names, ``status``, ``latency``."""
    secondary_paths: frozenset[str]
    learner: NoiseLearner | None
    route: str
    rules: NoiseRules

    def is_noise(self, found: Found) -> bool:
        """True when ``found`` is covered by an ignore rule, the secondary, or learning."""
        if found.segments is None:
            if found.path in self.ignore_literals:
                return True
        elif any(pattern.covers(found.segments) for pattern in self.ignore):
            return True
        if self.secondary_paths and any(
            key in self.secondary_paths for key in noise_keys(found, wildcard_indices=False)
        ):
            return True
        return self.learner is not None and self.learner.is_noisy(
            self.route, noise_keys(found, wildcard_indices=True), self.rules
        )

"""Automatic rollback: sliding windows over the traffic the candidate answers, and their triggers.

Per route, two windows of ``window_s`` seconds: every candidate-answered
request (was it a 5xx or no answer?) and every candidate-answered exchange
that was compared (structural divergence? both latencies). Once a window
holds ``min_samples``, a rate above its threshold or a candidate/legacy p99
ratio above ``max_p99_ratio`` is a ``Trigger``. A window belongs to one
assignment: when the route's mode or percent changes, it starts empty.
Pure code; the caller passes a monotonic ``now``.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from shadowproxy.settings import RollbackSettings

__all__ = ["RollbackWindows", "Trigger", "p99"]

_MAX_SAMPLES = 4096
"""Per window; at high rates the newest samples are the ones that matter."""
_LATENCY_EVERY_S = 0.1
"""The p99 check sorts the window, so it runs at most this often per route."""


@dataclass(frozen=True, slots=True)
class Trigger:
    """Why a route rolls back (``structural``, ``errors``, ``latency``) and the numbers."""

    reason: str
    numbers: dict[str, float]


def p99(values: list[float]) -> float:
    """Nearest-rank 99th percentile of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(math.ceil(0.99 * len(ordered)) - 1, 0)]


@dataclass
class _Window:
    owner: object
    """The assignment the samples were collected under."""
    answered: deque[tuple[float, bool]] = field(default_factory=lambda: deque(maxlen=_MAX_SAMPLES))
    compared: deque[tuple[float, bool, float | None, float | None]] = field(
        default_factory=lambda: deque(maxlen=_MAX_SAMPLES)
    )
    latency_checked: float = -math.inf

    def evict(self, now: float, window_s: float) -> None:
        horizon = now - window_s
        while self.answered and self.answered[0][0] < horizon:
            self.answered.popleft()
        while self.compared and self.compared[0][0] < horizon:
            self.compared.popleft()


class RollbackWindows:
    """The sliding windows of every route the candidate answers."""

    def __init__(self, settings: RollbackSettings) -> None:
        self.settings = settings
        self._windows: dict[str, _Window] = {}

    def _window(self, route: str, owner: object, now: float) -> _Window:
        window = self._windows.get(route)
        if window is None or window.owner != owner:
            window = self._windows[route] = _Window(owner)
        window.evict(now, self.settings.window_s)
        return window

    def forget(self, route: str) -> None:
        """Drop ``route``'s samples (after it rolled back)."""
        self._windows.pop(route, None)

    def answered(self, route: str, owner: object, *, error: bool, now: float) -> Trigger | None:
        """A request the candidate answered; ``error`` for a 5xx or no answer at all."""
        window = self._window(route, owner, now)
        window.answered.append((now, error))
        return self._errors(window)

    def compared(
        self,
        route: str,
        owner: object,
        *,
        structural: bool,
        candidate_s: float | None,
        legacy_s: float | None,
        now: float,
    ) -> Trigger | None:
        """A compared exchange the candidate answered; latencies None when a side failed."""
        window = self._window(route, owner, now)
        window.compared.append((now, structural, candidate_s, legacy_s))
        return self._structural(window) or self._latency(window, now)

    def _base(self, window: _Window) -> dict[str, float]:
        return {
            "window_s": self.settings.window_s,
            "samples": len(window.answered),
            "compared": len(window.compared),
        }

    def _errors(self, window: _Window) -> Trigger | None:
        total = len(window.answered)
        if total < self.settings.min_samples:
            return None
        errors = sum(1 for _, error in window.answered if error)
        rate = errors / total
        if rate <= self.settings.max_error_rate:
            return None
        numbers = {**self._base(window), "errors": errors, "error_rate": round(rate, 6)}
        return Trigger("errors", {**numbers, "max_error_rate": self.settings.max_error_rate})

    def _structural(self, window: _Window) -> Trigger | None:
        total = len(window.compared)
        if total < self.settings.min_samples:
            return None
        structural = sum(1 for _, s, _, _ in window.compared if s)
        rate = structural / total
        if rate <= self.settings.max_structural_rate:
            return None
        numbers = {**self._base(window), "structural": structural, "structural_rate": rate}
        return Trigger(
            "structural",
            {**numbers, "max_structural_rate": self.settings.max_structural_rate},
        )

    def _latency(self, window: _Window, now: float) -> Trigger | None:
        if now - window.latency_checked < _LATENCY_EVERY_S:
            return None
        pairs = [(c, leg) for _, _, c, leg in window.compared if c is not None and leg is not None]
        if len(pairs) < self.settings.min_samples:
            return None
        window.latency_checked = now
        candidate = p99([c for c, _ in pairs])
        legacy = p99([leg for _, leg in pairs])
        ratio = candidate / legacy if legacy > 0 else math.inf
        if ratio <= self.settings.max_p99_ratio:
            return None
        return Trigger(
            "latency",
            {
                **self._base(window),
                "candidate_p99_ms": round(candidate * 1000, 3),
                "legacy_p99_ms": round(legacy * 1000, 3),
                "p99_ratio": round(ratio, 3) if math.isfinite(ratio) else 1e9,
                "max_p99_ratio": self.settings.max_p99_ratio,
            },
        )

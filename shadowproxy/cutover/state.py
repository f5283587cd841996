"""Route ownership as values: modes, precedence, canary steps, sticky assignment, transitions.

Owns who answers each route. A ``CutoverState`` holds every route's
``Assignment`` (mode and canary percent), the default for routes without
one, and the force-legacy switch. Precedence, highest first: force-legacy,
then the route's own assignment, then the default. Every transition returns
the new state and the ``Change`` it made, which becomes an ``ownership``
record (docs/evidence.md). Canary assignment hashes a sticky key with
blake2b into [0, 100), so a key lands on the same side in every worker and
after every restart, and stays on the candidate as the percentage grows.
Pure code: no I/O, no clock (callers pass ``now``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from shadowproxy.model import Upstream
from shadowproxy.records import OWNERSHIP, SCHEMA_VERSION
from shadowproxy.settings import RouteSpec, Settings
from shadowproxy.timestamps import rfc3339

__all__ = [
    "ALL_ROUTES",
    "CANARY_STEPS",
    "FORCE_LEGACY",
    "Assignment",
    "Change",
    "CutoverState",
    "Decision",
    "Mode",
    "canary_bucket",
    "configured",
    "decide",
    "in_canary",
    "next_step",
    "reconcile",
    "shown_routes",
    "sticky_key",
]

ALL_ROUTES = "*"
"""The route name of the default assignment and of force-legacy records."""
FORCE_LEGACY = "force-legacy"
"""The effective mode of a canary or candidate route while force-legacy is on."""
CANARY_STEPS = (1.0, 5.0, 25.0, 50.0, 100.0)
"""Canary percentages ``promote`` walks through before ``candidate``."""
_HISTORY = 50
_BUCKETS = 2**64


class Mode(StrEnum):
    """Who answers a route and who is mirrored."""

    SHADOW = "shadow"
    """Legacy answers; the candidate is mirrored and compared."""
    CANARY = "canary"
    """The candidate answers a sticky share of requests; the other side is mirrored."""
    CANDIDATE = "candidate"
    """The candidate answers; legacy is mirrored and compared (reverse shadow)."""
    LEGACY_ONLY = "legacy-only"
    """Legacy answers; nothing is mirrored."""


_ANSWERING = frozenset({Mode.CANARY, Mode.CANDIDATE})


@dataclass(frozen=True, slots=True)
class Assignment:
    """A route's mode; ``percent`` is the candidate's share (100 in candidate, 0 unless canary)."""

    mode: Mode
    percent: float = 0.0

    @classmethod
    def of(cls, mode: Mode | str, percent: float | None = None) -> Assignment:
        """``mode`` with its percent made consistent (canary keeps ``percent``, default 1)."""
        mode = Mode(mode)
        if mode is Mode.CANARY:
            return cls(mode, float(CANARY_STEPS[0] if percent is None else percent))
        return cls(mode, 100.0 if mode is Mode.CANDIDATE else 0.0)

    def to_json(self) -> dict[str, object]:
        """The state file's form."""
        return {"mode": str(self.mode), "percent": self.percent}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Assignment:
        """Inverse of ``to_json``; raises ValueError or KeyError on a malformed entry."""
        return cls.of(data["mode"], float(data["percent"]))


def next_step(current: Assignment) -> Assignment | None:
    """One promotion step: shadow -> canary 1 -> 5 -> 25 -> 50 -> 100 -> candidate.

    A ``legacy-only`` route first returns to ``shadow``; ``candidate`` is the end (None).
    """
    if current.mode is Mode.LEGACY_ONLY:
        return Assignment.of(Mode.SHADOW)
    if current.mode is Mode.SHADOW:
        return Assignment.of(Mode.CANARY, CANARY_STEPS[0])
    if current.mode is Mode.CANARY:
        higher = [step for step in CANARY_STEPS if step > current.percent]
        return Assignment.of(Mode.CANARY, higher[0]) if higher else Assignment.of(Mode.CANDIDATE)
    return None


@dataclass(frozen=True, slots=True)
class Change:
    """One ownership change; ``record()`` is its ``ownership`` JSONL record."""

    route: str
    before: str
    after: str
    percent: float
    reason: str
    source: str
    ts: float
    numbers: Mapping[str, float] | None = None

    def record(self) -> dict[str, object]:
        """The ``ownership`` record (docs/evidence.md)."""
        record: dict[str, object] = {
            "v": SCHEMA_VERSION,
            "type": OWNERSHIP,
            "ts": rfc3339(self.ts),
            "route": self.route,
            "from": self.before,
            "to": self.after,
            "percent": self.percent,
            "reason": self.reason,
            "source": self.source,
        }
        if self.numbers is not None:
            record["numbers"] = dict(self.numbers)
        return record


@dataclass(frozen=True, slots=True)
class Decision:
    """Who answers one request, whether the other side gets a copy, and the effective mode."""

    answered_by: Upstream
    mirror: bool
    mode: str


@dataclass(frozen=True, slots=True)
class CutoverState:
    """Every route's assignment, the default, force-legacy and the recent changes."""

    default: Assignment = Assignment(Mode.SHADOW)
    routes: Mapping[str, Assignment] = field(default_factory=dict)
    force_legacy: bool = False
    history: tuple[Mapping[str, object], ...] = ()
    """The latest ``ownership`` records, oldest first (at most 50)."""

    def assignment(self, route: str) -> Assignment:
        """The route's own assignment, or the default (``*`` names the default)."""
        if route == ALL_ROUTES:
            return self.default
        return self.routes.get(route, self.default)

    def effective(self, route: str) -> str:
        """The mode in force after precedence: force-legacy, the route, the default."""
        mode = self.assignment(route).mode
        return FORCE_LEGACY if self.force_legacy and mode in _ANSWERING else str(mode)

    def with_route(
        self,
        route: str,
        target: Assignment,
        *,
        reason: str,
        source: str,
        now: float,
        numbers: Mapping[str, float] | None = None,
    ) -> tuple[CutoverState, Change | None]:
        """``route`` (``*``: the default) moved to ``target``; no change when already there."""
        current = self.assignment(route)
        if current == target:
            return self, None
        change = Change(
            route, str(current.mode), str(target.mode), target.percent, reason, source, now, numbers
        )
        if route == ALL_ROUTES:
            state = replace(self, default=target)
        else:
            state = replace(self, routes={**self.routes, route: target})
        return state._remember(change), change

    def with_force_legacy(
        self, on: bool, *, reason: str, source: str, now: float
    ) -> tuple[CutoverState, Change | None]:
        """Force-legacy switched ``on`` or off; no change when it already is."""
        if self.force_legacy == on:
            return self, None
        before, after = ("routes", FORCE_LEGACY) if on else (FORCE_LEGACY, "routes")
        change = Change(ALL_ROUTES, before, after, 0.0, reason, source, now)
        return replace(self, force_legacy=on)._remember(change), change

    def _remember(self, change: Change) -> CutoverState:
        return replace(self, history=(*self.history, change.record())[-_HISTORY:])

    def to_json(self) -> dict[str, object]:
        """The state file's form."""
        return {
            "default": self.default.to_json(),
            "routes": {name: a.to_json() for name, a in sorted(self.routes.items())},
            "force_legacy": self.force_legacy,
            "history": list(self.history),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CutoverState:
        """Inverse of ``to_json``; raises ValueError, KeyError or TypeError when malformed."""
        return cls(
            default=Assignment.from_json(data["default"]),
            routes={str(k): Assignment.from_json(v) for k, v in dict(data["routes"]).items()},
            force_legacy=bool(data["force_legacy"]),
            history=tuple(dict(r) for r in data.get("history", ())),
        )


def _configured(spec: RouteSpec) -> Assignment | None:
    if spec.mode is None:
        return None
    return Assignment.of(spec.mode, spec.canary_percent)


def configured(settings: Settings) -> CutoverState:
    """The state the configuration describes (force-legacy from the environment)."""
    return CutoverState(
        default=Assignment.of(settings.cutover.default_mode),
        routes={
            spec.name: assignment
            for spec in settings.routes
            if (assignment := _configured(spec)) is not None
        },
        force_legacy=settings.cutover.force_legacy,
    )


def reconcile(
    state: CutoverState, old: Settings, new: Settings, now: float
) -> tuple[CutoverState, list[Change]]:
    """Apply what a reloaded configuration changed (source ``sighup``); the rest stays as is.

    A route whose configured mode or percent differs from the previous
    configuration takes the new one, whatever the API or a rollback set
    since; routes whose configuration did not change keep their current mode.
    """
    changes: list[Change] = []
    before = {spec.name: _configured(spec) for spec in old.routes}
    old_default = Assignment.of(old.cutover.default_mode)
    new_default = Assignment.of(new.cutover.default_mode)
    if new_default != old_default:
        state, change = state.with_route(
            ALL_ROUTES, new_default, reason="configuration reloaded", source="sighup", now=now
        )
        changes.extend([change] if change else [])
    for spec in new.routes:
        wanted = _configured(spec)
        if spec.name in before and before[spec.name] == wanted:
            continue
        target = wanted if wanted is not None else state.default
        state, change = state.with_route(
            spec.name, target, reason="configuration reloaded", source="sighup", now=now
        )
        if wanted is None and spec.name in state.routes:
            # Back to following the default, as the configuration now says.
            state = replace(state, routes={k: v for k, v in state.routes.items() if k != spec.name})
        changes.extend([change] if change else [])
    return state, changes


def canary_bucket(key: str) -> float:
    """Where ``key`` falls in [0, 100): blake2b of the key, the same in every process."""
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest) * 100.0 / _BUCKETS


def in_canary(key: str, percent: float) -> bool:
    """True when ``key`` is answered by the candidate at ``percent``; monotone in ``percent``."""
    if percent <= 0:
        return False
    return percent >= 100 or canary_bucket(key) < percent


def sticky_key(
    sticky: str, headers: Mapping[str, str], cookies: Mapping[str, str], client: str
) -> str:
    """The canary key a route's ``sticky`` setting picks; the client address when it is absent."""
    kind, _, name = sticky.partition(":")
    value: str | None = None
    if kind == "header":
        value = headers.get(name)
    elif kind == "cookie":
        value = cookies.get(name)
    return f"{kind}:{value}" if value else f"client:{client}"


def decide(state: CutoverState, route: str, key: Callable[[], str]) -> Decision:
    """Who answers a request of ``route``; ``key`` (the sticky key) is read only in canary."""
    mode = state.effective(route)
    if mode == Mode.CANARY:
        answered_by = (
            Upstream.CANDIDATE
            if in_canary(key(), state.assignment(route).percent)
            else Upstream.LEGACY
        )
        return Decision(answered_by, True, mode)
    return _FIXED[mode]


# Every mode but canary decides the same way for every request: one value each.
_FIXED: dict[str, Decision] = {
    Mode.SHADOW: Decision(Upstream.LEGACY, True, Mode.SHADOW),
    FORCE_LEGACY: Decision(Upstream.LEGACY, True, FORCE_LEGACY),
    Mode.CANDIDATE: Decision(Upstream.CANDIDATE, True, Mode.CANDIDATE),
    Mode.LEGACY_ONLY: Decision(Upstream.LEGACY, False, Mode.LEGACY_ONLY),
}


def shown_routes(state: CutoverState, configured_names: Iterable[str]) -> list[str]:
    """Route names to show: configured ones, ``*`` and any with an assignment of its own."""
    return sorted({*configured_names, *state.routes, ALL_ROUTES})

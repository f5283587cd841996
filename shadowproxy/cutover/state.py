"""Route ownership as values: modes, canary steps, precedence, transitions.

Owns who answers each route. A ``CutoverState`` holds every route's
``Placement`` (its ``Assignment``: mode and canary percent, since when and
who put it there), the default for routes without one, and the
force-legacy switch. Precedence, highest first: force-legacy, then the
route's own placement, then the default. Every transition returns the new
state and the ``Change`` it made, which becomes an ``ownership`` record
(docs/evidence.md); ``restore`` (its own module) decides the state at
start. Pure code: no I/O, no clock (callers pass ``now``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from shadowproxy.model import Phase
from shadowproxy.records import OWNERSHIP, SCHEMA_VERSION
from shadowproxy.settings import GrpcMethodSpec, RouteSpec, Settings
from shadowproxy.timestamps import rfc3339

__all__ = [
    "ALL_ROUTES",
    "CANARY_STEPS",
    "FORCE_LEGACY",
    "RUNTIME_SOURCES",
    "Assignment",
    "Change",
    "CutoverState",
    "Mode",
    "Placement",
    "configured",
    "next_step",
    "reconcile",
    "shown_routes",
]

ALL_ROUTES = "*"
"""The route name of the default assignment and of force-legacy records."""
FORCE_LEGACY = "force-legacy"
"""The effective mode of a canary or candidate route while force-legacy is on."""
CANARY_STEPS = (1.0, 5.0, 25.0, 50.0, 100.0)
"""Canary percentages ``promote`` walks through before ``candidate``."""
RUNTIME_SOURCES = frozenset({"api", "promote", "drill", "rollback"})
"""Sources of changes made while running: saved in the state file and restored at start."""
_HISTORY = 50


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
    """A route's mode; ``percent`` is the candidate's share (100 in candidate, 0 unless canary).

    A canary at 0 % answers only the route's allowlisted keys (``canary_allow``).
    """

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
        """The state file's and the admin API's form."""
        return {"mode": str(self.mode), "percent": self.percent}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Assignment:
        """Inverse of ``to_json``; raises ValueError or KeyError on a malformed entry."""
        return cls.of(data["mode"], float(data["percent"]))

    def describe(self) -> str:
        """``canary 5%``, ``shadow``, ...: how messages name it."""
        if self.mode is Mode.CANARY:
            return f"canary {self.percent:g}%"
        return str(self.mode)


def next_step(current: Assignment) -> Assignment | None:
    """One promotion step: shadow -> canary 1 -> 5 -> 25 -> 50 -> 100 -> candidate.

    A ``legacy-only`` route first returns to ``shadow``; a canary on its
    allowlist alone (0 %) goes to 1 %; ``candidate`` is the end (None).
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
class Placement:
    """Where a route is, since when, and who put it there."""

    assignment: Assignment
    since: float = 0.0
    """When the route entered this assignment (a drill's flips keep the time before them)."""
    source: str = "config"
    """``config`` (at start), ``sighup``, ``restored`` or one of ``RUNTIME_SOURCES``."""
    configured: Assignment | None = None
    """For a runtime change: what the configuration said for the route when it was made."""

    @property
    def runtime(self) -> bool:
        """True for a change made while running (kept across restarts)."""
        return self.source in RUNTIME_SOURCES

    def to_json(self) -> dict[str, object]:
        """The state file's form."""
        return {
            **self.assignment.to_json(),
            "since": self.since,
            "source": self.source,
            "configured": None if self.configured is None else self.configured.to_json(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Placement:
        """Inverse of ``to_json``; raises ValueError, KeyError or TypeError when malformed."""
        configured = data.get("configured")
        return cls(
            Assignment.from_json(data),
            float(data["since"]),
            str(data["source"]),
            None if configured is None else Assignment.from_json(configured),
        )


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
class CutoverState:
    """Every route's placement, the default, force-legacy and the recent changes."""

    default: Placement = Placement(Assignment(Mode.SHADOW))
    routes: Mapping[str, Placement] = field(default_factory=dict)
    force_legacy: bool = False
    force_legacy_since: float = 0.0
    force_legacy_source: str = "config"
    """``env`` when ``SHADOWPROXY_FORCE_LEGACY`` set it; ``api`` when the admin API did."""
    history: tuple[Mapping[str, object], ...] = ()
    """The latest ``ownership`` records, oldest first (at most 50)."""

    def placement(self, route: str) -> Placement:
        """The route's own placement, or the default's (``*`` names the default)."""
        if route == ALL_ROUTES:
            return self.default
        return self.routes.get(route, self.default)

    def assignment(self, route: str) -> Assignment:
        """The route's own assignment, or the default (``*`` names the default)."""
        return self.placement(route).assignment

    def effective(self, route: str) -> str:
        """The mode in force after precedence: force-legacy, the route, the default."""
        mode = self.assignment(route).mode
        return FORCE_LEGACY if self.force_legacy and mode in _ANSWERING else str(mode)

    def share(self, route: str) -> float:
        """The candidate's share of the route's requests in percent, after precedence."""
        mode = self.effective(route)
        if mode == Mode.CANARY:
            return self.assignment(route).percent
        return 100.0 if mode == Mode.CANDIDATE else 0.0

    def phase(self, route: str) -> Phase:
        """What a request of ``route`` is filed under: effective mode, percent, since when."""
        placement = self.placement(route)
        mode = self.effective(route)
        if mode == FORCE_LEGACY:
            return Phase(mode, None, max(placement.since, self.force_legacy_since))
        percent = placement.assignment.percent if mode == Mode.CANARY else None
        return Phase(mode, percent, placement.since)

    def with_route(
        self,
        route: str,
        target: Assignment,
        *,
        reason: str,
        source: str,
        now: float,
        numbers: Mapping[str, float] | None = None,
        configured: Assignment | None = None,
    ) -> tuple[CutoverState, Change | None]:
        """``route`` (``*``: the default) moved to ``target``; no change when already there.

        ``configured`` is what the configuration says for the route (kept with a
        runtime change). A drill's flips keep the time the route entered its
        assignment, so the evidence of a canary step runs on across a drill.
        """
        current = self.placement(route)
        if current.assignment == target:
            return self, None
        change = Change(
            route,
            str(current.assignment.mode),
            str(target.mode),
            target.percent,
            reason,
            source,
            now,
            numbers,
        )
        since = current.since if source == "drill" else now
        placed = Placement(target, since, source, configured if source in RUNTIME_SOURCES else None)
        if route == ALL_ROUTES:
            state = replace(self, default=placed)
        else:
            state = replace(self, routes={**self.routes, route: placed})
        return state.remember(change), change

    def with_force_legacy(
        self, on: bool, *, reason: str, source: str, now: float
    ) -> tuple[CutoverState, Change | None]:
        """Force-legacy switched ``on`` or off; no change when it already is."""
        if self.force_legacy == on:
            return self, None
        before, after = ("routes", FORCE_LEGACY) if on else (FORCE_LEGACY, "routes")
        change = Change(ALL_ROUTES, before, after, 0.0, reason, source, now)
        state = replace(self, force_legacy=on, force_legacy_since=now, force_legacy_source=source)
        return state.remember(change), change

    def remember(self, change: Change) -> CutoverState:
        """This state with ``change``'s record at the end of its history."""
        return replace(self, history=(*self.history, change.record())[-_HISTORY:])

    def to_json(self) -> dict[str, object]:
        """The state file's form."""
        return {
            "v": 2,
            "default": self.default.to_json(),
            "routes": {name: p.to_json() for name, p in sorted(self.routes.items())},
            "force_legacy": self.force_legacy,
            "force_legacy_since": self.force_legacy_since,
            "force_legacy_source": self.force_legacy_source,
            "history": list(self.history),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CutoverState:
        """Inverse of ``to_json``; raises ValueError, KeyError or TypeError when malformed."""
        if data.get("v") != 2:
            raise ValueError("unknown state file version")
        return cls(
            default=Placement.from_json(data["default"]),
            routes={str(k): Placement.from_json(v) for k, v in dict(data["routes"]).items()},
            force_legacy=bool(data["force_legacy"]),
            force_legacy_since=float(data["force_legacy_since"]),
            force_legacy_source=str(data["force_legacy_source"]),
            history=tuple(dict(r) for r in data.get("history", ())),
        )


def _configured(spec: RouteSpec | GrpcMethodSpec) -> Assignment | None:
    if spec.mode is None:
        return None
    return Assignment.of(spec.mode, spec.canary_percent)


def configured(settings: Settings, now: float = 0.0) -> CutoverState:
    """The state the configuration describes (force-legacy from the environment), as of ``now``."""
    force = settings.cutover.force_legacy
    return CutoverState(
        default=Placement(Assignment.of(settings.cutover.default_mode), now),
        routes={
            spec.name: Placement(assignment, now)
            for spec in settings.owned
            if (assignment := _configured(spec)) is not None
        },
        force_legacy=force,
        force_legacy_since=now if force else 0.0,
        force_legacy_source="env" if force else "config",
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
    before = {spec.name: _configured(spec) for spec in old.owned}
    old_default = Assignment.of(old.cutover.default_mode)
    new_default = Assignment.of(new.cutover.default_mode)
    if new_default != old_default:
        state, change = state.with_route(
            ALL_ROUTES, new_default, reason="configuration reloaded", source="sighup", now=now
        )
        changes.extend([change] if change else [])
    for spec in new.owned:
        wanted = _configured(spec)
        if spec.name in before and before[spec.name] == wanted:
            continue
        target = wanted if wanted is not None else state.default.assignment
        state, change = state.with_route(
            spec.name, target, reason="configuration reloaded", source="sighup", now=now
        )
        if wanted is None and spec.name in state.routes:
            # Back to following the default, as the configuration now says.
            state = replace(state, routes={k: v for k, v in state.routes.items() if k != spec.name})
        changes.extend([change] if change else [])
    return state, changes


def shown_routes(state: CutoverState, configured_names: Iterable[str]) -> list[str]:
    """Route names to show: configured ones, ``*`` and any with an assignment of its own."""
    return sorted({*configured_names, *state.routes, ALL_ROUTES})

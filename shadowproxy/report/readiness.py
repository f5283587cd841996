"""Cutover readiness: each route's phase, the gates of its next step, drills, ready for cutover.

Owns what the phases of the evidence decide (docs/cutover.md):

- a route's **current phase**: the phase of its latest rollup, unless a later
  ``ownership`` record moved it (then it has no evidence in that phase yet);
- the gates of a **canary step**, judged on the step's own episode (the
  evidence since the route last entered it, ``phases``): ``canary_min_compared``
  and ``canary_bake`` (per step, ``gates.<domain>.canary``), then structural,
  semantic, p99 and errors as the parity gates judge them. Fewer than
  ``min_compared`` makes every other step gate insufficient; so does a domain
  whose window is not covered or holds unreadable lines;
- ``drill``: a passed ``shadow drill`` of the route within ``drill_within``
  (a failed latest drill fails it, none is insufficient);
- a route is **ready for cutover** when its domain's parity gates, its
  canary gates at 100 % (or in ``candidate`` mode, that mode's episode) and
  its drill all pass. The domain's readiness gates sum its routes up;
  routes never compared by design have no canary evidence to give and are
  left out of ``canary_100`` (listed as not shadowed), not out of ``drill``.

Imports the report's values, thresholds and gate rules.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from shadowproxy.report.gates import (
    GateResult,
    GateStatus,
    error_gate,
    held,
    insufficient,
    p99_conclusive,
    p99_gate,
    structural_gate,
)
from shadowproxy.report.summary import (
    DrillSummary,
    Findings,
    OwnershipChange,
    PhaseSummary,
    RouteSummary,
)
from shadowproxy.report.thresholds import GatesConfig, GateSpec
from shadowproxy.report.timeparse import format_duration, format_instant

__all__ = ["STEPS", "RouteStage", "combine", "next_step_gates", "readiness", "step_gates"]

STEPS = (1.0, 5.0, 25.0, 50.0, 100.0)
"""The canary percentages a route walks through (``cutover.state.CANARY_STEPS``)."""


@dataclass(frozen=True, slots=True)
class RouteStage:
    """Where a route stands in its cutover and what its next step waits for."""

    route: str
    domain: str
    mode: str
    """The current mode (``unknown`` when the records do not say)."""
    percent: float | None
    since: float | None
    """When the route entered its current phase (its episode), when known."""
    not_shadowed: bool
    next_step: str | None
    """``canary 1%``, ``candidate``, ...; None at the end or under force-legacy."""
    gates: tuple[GateResult, ...]
    """The gates the next step waits for (``shadow promote`` checks these)."""
    canary_100: GateResult
    """The canary gates at 100 % (or of ``candidate`` mode), together."""
    drill: GateResult
    ready: GateResult
    """Ready for cutover: parity, canary at 100 % and a recent drill, together."""
    last_drill: DrillSummary | None

    @property
    def phase(self) -> str:
        """``canary 5%``, ``shadow``, ...: the current phase's name."""
        return f"canary {self.percent:g}%" if self.percent is not None else self.mode

    @property
    def status(self) -> GateStatus:
        """How the next step's gates come out together."""
        return combine(self.gates)


def combine(gates: Iterable[GateResult]) -> GateStatus:
    """``fail`` when one failed, else ``insufficient`` when one did not pass, else ``pass``."""
    listed = list(gates)
    if any(g.status is GateStatus.FAIL for g in listed):
        return GateStatus.FAIL
    if not listed or any(g.status is not GateStatus.PASS for g in listed):
        return GateStatus.INSUFFICIENT
    return GateStatus.PASS


def _next(mode: str, percent: float | None) -> str | None:
    if mode in ("shadow", "unknown"):
        return f"canary {STEPS[0]:g}%"
    if mode == "legacy-only":
        return "shadow"
    if mode == "canary":
        higher = [step for step in STEPS if step > (percent or 0.0)]
        return f"canary {higher[0]:g}%" if higher else "candidate"
    return None


def _current(
    route: RouteSummary, changes: Sequence[OwnershipChange]
) -> tuple[str, float | None, PhaseSummary | None]:
    """The route's current phase and its evidence (None: moved since its last rollup).

    A drill's flips are left out: the drill always restores the route, and its
    step's evidence runs on across it.
    """
    latest = route.phases[0] if route.phases else None
    moved = [
        c
        for c in changes
        if c.route == route.route and c.source != "drill" and (latest is None or c.ts > latest.last)
    ]
    if moved and moved[-1].to_mode in ("shadow", "canary", "candidate", "legacy-only"):
        change = moved[-1]
        percent = change.percent if change.to_mode == "canary" else None
        match = next(
            (p for p in route.phases if (p.mode, p.percent) == (change.to_mode, percent)), None
        )
        return (
            change.to_mode,
            percent,
            match if match is not None and match.last >= change.ts else None,
        )
    if latest is None:
        return "unknown", None, None
    return latest.mode, latest.percent, latest


def step_gates(
    route: RouteSummary,
    phase: PhaseSummary | None,
    percent: float,
    spec: GateSpec,
    hold: str | None,
    entered: float | None = None,
) -> tuple[GateResult, ...]:
    """The canary gates of ``route`` at ``percent`` on the episode of ``phase``.

    ``phase`` None, or an episode that ended before ``entered`` (when the
    route last entered the step), means no evidence at the step yet.
    """
    step = spec.canary.step(percent)
    label = phase.label if phase is not None else f"canary {percent:g}%"
    if phase is not None and entered is not None and phase.episode.end < entered:
        phase = None
    domain, name = route.domain, route.route

    def tag(gate: GateResult) -> GateResult:
        return replace(gate, name=f"canary_{gate.name}", route=name, phase=label)

    if phase is None:
        return (
            tag(
                GateResult(
                    "min_compared",
                    domain,
                    GateStatus.INSUFFICIENT,
                    f"insufficient evidence: no evidence at {label} yet",
                    0,
                    step.min_compared,
                )
            ),
        )
    episode = phase.episode
    counts = episode.counts
    enough = counts.compared >= step.min_compared
    since = "unknown" if episode.since is None else format_instant(episode.since)
    gates = [
        GateResult(
            "min_compared",
            domain,
            GateStatus.PASS if enough else GateStatus.INSUFFICIENT,
            f"{counts.compared} compared at {label} since {since}"
            + ("" if enough else f", fewer than {step.min_compared}"),
            counts.compared,
            step.min_compared,
        ),
        _bake(domain, episode.since, episode.duration_s, step.bake_s, label),
        structural_gate(domain, counts, spec, episode.structural_documented),
        _semantic(domain, phase, spec),
        p99_gate(domain, episode.latency, spec, conclusive=p99_conclusive(counts, enough)),
        error_gate(domain, counts, spec),
    ]
    if not enough:
        gates[2:] = [insufficient(g) for g in gates[2:]]
    if hold is not None:
        gates = [insufficient(g, hold) for g in gates]
    return tuple(tag(g) for g in gates)


def _bake(domain: str, since: float | None, duration: float, bake: float, label: str) -> GateResult:
    if since is None:
        reason = f"insufficient evidence: the records do not say when the route entered {label}"
        return GateResult("bake", domain, GateStatus.INSUFFICIENT, reason, None, bake)
    done = duration >= bake
    reason = f"at {label} for {format_duration(duration)} of {format_duration(bake)}"
    return GateResult(
        "bake",
        domain,
        GateStatus.PASS if done else GateStatus.INSUFFICIENT,
        reason if done else f"insufficient evidence: {reason}",
        round(duration, 3),
        bake,
    )


def _semantic(domain: str, phase: PhaseSummary, spec: GateSpec) -> GateResult:
    name, episode = "semantic_documented", phase.episode
    if not spec.require_documented_semantic:
        return GateResult(name, domain, GateStatus.PASS, "not required", None, False)
    semantic = episode.counts.semantic
    if episode.semantic_undocumented:
        reason = f"{episode.semantic_undocumented} exchanges with undocumented semantic differences"
        return GateResult(name, domain, GateStatus.FAIL, reason, episode.semantic_undocumented, 0)
    if semantic > episode.semantic_described:
        undescribed = semantic - episode.semantic_described
        reason = (
            f"{undescribed} semantic divergences in rollups but no exchange record describes them"
        )
        return GateResult(name, domain, GateStatus.FAIL, reason, undescribed, 0)
    return GateResult(
        name, domain, GateStatus.PASS, "every semantic difference is documented", 0, 0
    )


def drill_gate(
    route: RouteSummary, drills: Sequence[DrillSummary], spec: GateSpec, until: float
) -> GateResult:
    """A passed drill of the route within ``drill_within``; a failed latest one fails."""
    within = spec.drill_within_s
    recent = [d for d in drills if d.route == route.route and until - d.ts <= within]
    window = format_duration(within)
    if not recent:
        status, reason, value = (
            GateStatus.INSUFFICIENT,
            f"no shadow drill in the last {window}",
            None,
        )
    elif recent[-1].passed:
        status, reason = GateStatus.PASS, f"drill passed at {format_instant(recent[-1].ts)}"
        value = round(until - recent[-1].ts, 3)
    else:
        status, reason = (
            GateStatus.FAIL,
            f"the latest drill, at {format_instant(recent[-1].ts)}, failed",
        )
        value = round(until - recent[-1].ts, 3)
    return GateResult("drill", route.domain, status, reason, value, within, route.route)


def _together(name: str, domain: str, gates: Sequence[GateResult], route: str | None) -> GateResult:
    """One gate standing for ``gates``; its reason names the first that did not pass."""
    status = combine(gates)
    passing = sum(1 for g in gates if g.passed)
    first = next((g for g in gates if not g.passed), None)
    if first is None:
        reason = f"all {len(gates)} pass" if gates else "nothing to judge"
    else:
        who = f"{first.route}: " if first.route and first.route != route else ""
        reason = f"{passing} of {len(gates)} pass; {who}{first.name}: {first.reason}"
    return GateResult(name, domain, status, reason, passing, len(gates), route)


def _phase_of(route: RouteSummary, mode: str, percent: float | None) -> PhaseSummary | None:
    return next((p for p in route.phases if (p.mode, p.percent) == (mode, percent)), None)


def _hold(evidence: Findings, parity: Sequence[GateResult], domain: str) -> str | None:
    """Why no gate of the domain's routes may pass, whatever their own evidence says."""
    if evidence.source != "files":
        return "insufficient evidence: fleet mode has no phases or drills; report on the files"
    coverage = next((g for g in parity if g.name == "coverage"), None)
    if coverage is not None and coverage.status is not GateStatus.PASS:
        return f"insufficient evidence: the window is not covered: {coverage.reason}"
    if held(evidence, domain):
        return "insufficient evidence: unreadable lines in the window"
    return None


def _at_100(
    route: RouteSummary, mode: str, spec: GateSpec, hold: str | None
) -> tuple[GateResult, ...]:
    """The canary gates at 100 %: on ``candidate`` mode's episode while the route is there."""
    hundred = _phase_of(route, "candidate", None) if mode == "candidate" else None
    hundred = hundred or _phase_of(route, "canary", STEPS[-1])
    return step_gates(route, hundred, STEPS[-1], spec, hold)


def _drill(route: RouteSummary, evidence: Findings, spec: GateSpec, hold: str | None) -> GateResult:
    drill = drill_gate(route, evidence.drills, spec, evidence.until)
    return drill if hold is None else insufficient(drill, hold)


def next_step_gates(
    evidence: Findings,
    config: GatesConfig,
    parity: Sequence[GateResult],
    route: RouteSummary,
    mode: str,
    percent: float | None,
    entered: float | None = None,
) -> tuple[GateResult, ...]:
    """The gates that must pass before ``route``, in ``mode`` at ``percent``, moves one step.

    Shadow (and legacy-only): the domain's parity gates. A canary step: that
    step's gates on its own evidence since ``entered`` (when the route last
    entered it). From 100 % and in candidate mode: ready for cutover, that is
    parity, the canary gates at 100 % and a recent drill.
    """
    spec = config.spec_for(route.domain)
    mine = [g for g in parity if g.domain == route.domain]
    hold = _hold(evidence, mine, route.domain)
    if mode == "canary":
        step = percent or 0.0
        steps = step_gates(route, _phase_of(route, "canary", step), step, spec, hold, entered)
        if step < STEPS[-1]:
            return steps
        return (*mine, *steps, _drill(route, evidence, spec, hold))
    if mode == "candidate":
        return (*mine, *_at_100(route, mode, spec, hold), _drill(route, evidence, spec, hold))
    return tuple(mine)


def _stage(
    route: RouteSummary,
    evidence: Findings,
    config: GatesConfig,
    parity: Sequence[GateResult],
) -> RouteStage:
    spec = config.spec_for(route.domain)
    mode, percent, phase = _current(route, evidence.ownership)
    hold = _hold(evidence, parity, route.domain)
    at_100 = _at_100(route, mode, spec, hold)
    drill = _drill(route, evidence, spec, hold)
    canary_100 = _together("canary_100", route.domain, at_100, route.route)
    shadowed = not route.counts.not_shadowed
    ready = _together(
        "ready_for_cutover",
        route.domain,
        [*parity, *([canary_100] if shadowed else []), drill],
        route.route,
    )
    gates = next_step_gates(evidence, config, parity, route, mode, percent)
    mine = [d for d in evidence.drills if d.route == route.route]
    return RouteStage(
        route=route.route,
        domain=route.domain,
        mode=mode,
        percent=percent,
        since=phase.episode.since if phase is not None else None,
        not_shadowed=not shadowed,
        next_step=_next(mode, percent),
        gates=gates,
        canary_100=canary_100,
        drill=drill,
        ready=ready,
        last_drill=mine[-1] if mine else None,
    )


def readiness(
    evidence: Findings, config: GatesConfig, parity: Sequence[GateResult]
) -> tuple[dict[tuple[str, str], RouteStage], tuple[GateResult, ...]]:
    """Every route's stage, and per domain its routes' canary step gates and readiness gates."""
    stages: dict[tuple[str, str], RouteStage] = {}
    listed: list[GateResult] = []
    for domain in sorted({r.domain for r in evidence.routes}):
        mine = [g for g in parity if g.domain == domain]
        routes = [r for r in evidence.routes if r.domain == domain]
        for route in routes:
            stage = stages[(domain, route.route)] = _stage(route, evidence, config, mine)
            if stage.mode == "canary":
                listed.extend(g for g in stage.gates if g.phase is not None)
        judged = [stages[(domain, r.route)] for r in routes]
        canary_100 = _together(
            "canary_100", domain, [s.canary_100 for s in judged if not s.not_shadowed], None
        )
        drill = _together("drill", domain, [s.drill for s in judged], None)
        ready = _together("ready_for_cutover", domain, [*mine, canary_100, drill], None)
        listed.extend([canary_100, drill, ready])
    return stages, tuple(listed)

"""The JSON form of the cutover parts of a report: gates, phases, stages and drills.

Owns how the contract (``report.schema.json``, docs/report.md) spells a gate
(``gate_json``, parity and readiness alike), a route's phases and their
episodes, a route's cutover stage (phase, next step, the gates it waits for,
readiness, its latest drill), a domain's evidence per phase, and a drill
run. Imports the report's values and the document's number formats.
"""

from __future__ import annotations

from typing import Any

from shadowproxy.report.gate_result import GateResult
from shadowproxy.report.numbers import counts_json, latency_json
from shadowproxy.report.readiness import RouteStage
from shadowproxy.report.summary import COUNTED, Counts, DrillSummary, Findings, PhaseSummary
from shadowproxy.report.timeparse import format_instant

__all__ = ["domain_phases_json", "drill_json", "gate_json", "phase_json", "stage_json"]


def gate_json(g: GateResult) -> dict[str, Any]:
    return {
        "name": g.name,
        "domain": g.domain,
        "route": g.route,
        "phase": g.phase,
        "passed": g.passed,
        "status": g.status.value,
        "reason": g.reason,
        "value": g.value,
        "threshold": g.threshold,
    }


def drill_json(d: DrillSummary | None) -> dict[str, Any] | None:
    if d is None:
        return None
    return {
        "ts": format_instant(d.ts),
        "route": d.route,
        "id": d.drill_id,
        "passed": d.passed,
        "replicas": d.replicas,
    }


def stage_json(stage: RouteStage) -> dict[str, Any]:
    """A route's cutover standing: its phase, next step, the gates it waits for, readiness."""
    return {
        "mode": stage.mode,
        "canary_percent": stage.percent,
        "mode_since": format_instant(stage.since),
        "next_step": stage.next_step,
        "gate_status": stage.status.value,
        "waiting_for": [g.name for g in stage.gates if not g.passed],
        "ready_for_cutover": stage.ready.passed,
        "ready_reason": stage.ready.reason,
        "drill": drill_json(stage.last_drill),
    }


def phase_json(p: PhaseSummary) -> dict[str, Any]:
    episode = p.episode
    return {
        "mode": p.mode,
        "canary_percent": p.percent,
        "first": format_instant(p.first),
        "last": format_instant(p.last),
        **counts_json(p.counts),
        "latency": latency_json(p.latency),
        "episode": {
            "since": format_instant(episode.since),
            "end": format_instant(episode.end),
            "seconds": round(episode.duration_s, 3),
            "compared": episode.counts.compared,
            "structural": episode.counts.structural,
            "structural_documented": episode.structural_documented,
            "semantic": episode.counts.semantic,
            "semantic_undocumented": episode.semantic_undocumented,
            "errors": episode.counts.errors,
            "p99_ratio": latency_json(episode.latency)["p99_ratio"],
        },
    }


def domain_phases_json(evidence: Findings, domain: str) -> list[dict[str, Any]]:
    """The domain's evidence summed per phase (mode and canary percent), the latest first."""
    sums: dict[tuple[str, float | None], tuple[Counts, set[str], float]] = {}
    for route in (r for r in evidence.routes if r.domain == domain):
        for p in route.phases:
            counts, routes, last = sums.get((p.mode, p.percent), (Counts(), set(), p.last))
            sums[(p.mode, p.percent)] = (
                counts + p.counts,
                routes | {route.route},
                max(last, p.last),
            )
    ordered = sorted(sums.items(), key=lambda item: (-item[1][2], item[0][0], item[0][1] or 0.0))
    return [
        {
            "mode": mode,
            "canary_percent": percent,
            "routes": len(routes),
            "last": format_instant(last),
            **{name: getattr(counts, name) for name in COUNTED},
            "skipped": counts.skipped_total,
        }
        for (mode, percent), (counts, routes, last) in ordered
    ]

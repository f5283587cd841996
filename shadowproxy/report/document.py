"""The report as one value, and its JSON form (the documented contract).

Owns assembling evidence, gate results, route statuses and cutover
readiness (``readiness``) into a ``Report`` and turning it into the JSON
document that ``--format json`` prints and
``shadowproxy/schemas/report.schema.json`` describes. Every other format
renders from the same ``Report``. ``passed`` is the parity gates'; readiness
is reported beside them. Imports the report's values only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shadowproxy.report.cutover_json import (
    domain_phases_json,
    drill_json,
    gate_json,
    phase_json,
    stage_json,
)
from shadowproxy.report.gates import GateResult, RouteStatus, evaluate_gates
from shadowproxy.report.inputs import InputStats
from shadowproxy.report.known import KnownSet
from shadowproxy.report.numbers import counts_json, latency_json
from shadowproxy.report.readiness import RouteStage, readiness
from shadowproxy.report.status import route_status
from shadowproxy.report.summary import (
    Coverage,
    Findings,
)
from shadowproxy.report.thresholds import GatesConfig
from shadowproxy.report.timeparse import format_instant

__all__ = ["SCHEMA_VERSION", "Report", "build_report", "to_json"]

SCHEMA_VERSION = 1


@dataclass(frozen=True, slots=True)
class Report:
    """Findings judged by gates, ready to render."""

    generated_at: float
    since: float
    until: float
    evidence: Findings
    gates: tuple[GateResult, ...]
    statuses: dict[tuple[str, str], RouteStatus]
    known: KnownSet
    top: int
    stages: dict[tuple[str, str], RouteStage]
    """Each route's phase, next step and readiness."""
    readiness: tuple[GateResult, ...]
    """Canary step gates of the routes in canary, and each domain's readiness gates."""
    owners: dict[str, str]
    """Each domain's owner from the gates file, where it names one."""

    @property
    def passed(self) -> bool:
        """True when every gate passed."""
        return bool(self.gates) and all(g.passed for g in self.gates)

    def domain_passed(self, domain: str) -> bool:
        """True when every gate of ``domain`` passed."""
        return all(g.passed for g in self.gates if g.domain == domain)

    def domain_ready(self, domain: str) -> bool:
        """True when the domain is ready for cutover (parity, canary at 100 %, drills)."""
        return any(
            g.passed for g in self.readiness if g.domain == domain and g.name == "ready_for_cutover"
        )

    def clean_for_s(self, domain: str) -> float | None:
        """Seconds since the domain's last structural divergence (or its first evidence)."""
        summary = next((d for d in self.evidence.domains if d.domain == domain), None)
        if summary is None:
            return None
        start = (
            summary.last_structural if summary.last_structural is not None else (summary.first_seen)
        )
        return None if start is None else max(0.0, self.until - start)


def build_report(
    evidence: Findings,
    config: GatesConfig,
    known: KnownSet,
    generated_at: float,
    since: float,
    top: int = 50,
) -> Report:
    """Evaluate the gates, statuses and readiness over ``evidence``."""
    gates = evaluate_gates(evidence, config, known)
    stages, ready = readiness(evidence, config, gates)
    owners = {d.domain: config.spec_for(d.domain).owner for d in evidence.domains}
    return Report(
        generated_at=generated_at,
        since=since,
        until=evidence.until,
        evidence=evidence,
        gates=gates,
        statuses=route_status(evidence, config, known),
        known=known,
        top=top,
        stages=stages,
        readiness=ready,
        owners={domain: owner for domain, owner in owners.items() if owner},
    )


def to_json(report: Report) -> dict[str, Any]:
    """The JSON contract (see docs/report.md and report.schema.json)."""
    evidence = report.evidence
    inputs = evidence.inputs
    domains = []
    for d in evidence.domains:
        domains.append(
            {
                "domain": d.domain,
                "passed": report.domain_passed(d.domain),
                "ready_for_cutover": report.domain_ready(d.domain),
                "owner": report.owners.get(d.domain),
                "since": format_instant(d.since),
                **counts_json(d.counts),
                "latency": latency_json(d.latency),
                "last_structural": format_instant(d.last_structural),
                "first_seen": format_instant(d.first_seen),
                "clean_for_s": report.clean_for_s(d.domain),
                "coverage": _coverage(d.coverage),
                "phases": domain_phases_json(evidence, d.domain),
                "not_shadowed": [
                    {
                        "route": r.route,
                        "reasons": dict(sorted(r.counts.skipped.items())),
                        "requests": r.counts.skipped_total,
                    }
                    for r in evidence.routes
                    if r.domain == d.domain and r.counts.not_shadowed
                ],
                "timeline": [
                    {
                        "start": format_instant(p.start),
                        "compared": p.compared,
                        "diverged": p.diverged,
                    }
                    for p in d.timeline
                ],
            }
        )
    routes = [
        {
            "route": r.route,
            "domain": r.domain,
            "status": report.statuses[(r.domain, r.route)].value,
            **counts_json(r.counts),
            "structural_documented": r.structural_documented,
            "latency": latency_json(r.latency),
            **stage_json(report.stages[(r.domain, r.route)]),
            "phases": [phase_json(p) for p in r.phases],
        }
        for r in evidence.routes
    ]
    fingerprints = []
    for fp in evidence.fingerprints[: report.top]:
        explained = report.known.explain(fp)
        fingerprints.append(
            {
                "route": fp.route,
                "domain": fp.domain,
                "class": fp.cls,
                "kind": fp.kind,
                "path": fp.path,
                "key": fp.key,
                "count": fp.count,
                "first_seen": format_instant(fp.first_seen),
                "last_seen": format_instant(fp.last_seen),
                "example": fp.example,
                "documented": explained is not None,
                "reason": explained.reason if explained else None,
                "owner": explained.owner if explained else None,
            }
        )
    return {
        "v": SCHEMA_VERSION,
        "passed": report.passed,
        "generated_at": format_instant(report.generated_at),
        "source": evidence.source,
        "window": {
            "since": format_instant(report.since),
            "until": format_instant(report.until),
            "seconds": round(report.until - report.since, 3),
        },
        "inputs": _inputs(inputs, evidence),
        "domains": domains,
        "routes": routes,
        "fingerprints": fingerprints,
        "fingerprints_total": len(evidence.fingerprints),
        "gates": [gate_json(g) for g in report.gates],
        "readiness": [gate_json(g) for g in report.readiness],
        "ready_for_cutover": bool(report.readiness)
        and all(report.domain_ready(d.domain) for d in evidence.domains),
        "drills": [drill_json(d) for d in evidence.drills],
        "ownership": [
            {
                "ts": format_instant(c.ts),
                "route": c.route,
                "from": c.from_mode,
                "to": c.to_mode,
                "percent": c.percent,
                "reason": c.reason,
                "source": c.source,
                "numbers": dict(c.numbers),
            }
            for c in evidence.ownership
        ],
        "modes": _modes(evidence),
        "notes": list(evidence.notes),
    }


def _coverage(coverage: Coverage | None) -> dict[str, Any] | None:
    if coverage is None:
        return None
    return {
        "covered": coverage.covered,
        "max_gap_s": coverage.max_gap_s,
        "first": format_instant(coverage.first),
        "last": format_instant(coverage.last),
        "covered_s": round(coverage.covered_s, 3),
        "gaps": [
            {
                "start": format_instant(g.start),
                "end": format_instant(g.end),
                "seconds": round(g.end - g.start, 3),
                "where": g.where,
                "worker": g.worker,
            }
            for g in coverage.gaps
        ],
        "gaps_total": coverage.gaps_total,
        "workers": [
            {
                "worker": w.worker,
                "first": format_instant(w.first),
                "last": format_instant(w.last),
                "rollups": w.rollups,
                "gaps": w.gaps,
                "fragmented": w.fragmented,
            }
            for w in coverage.workers
        ],
        "workers_total": coverage.workers_total,
        "fragmented": coverage.fragmented,
    }


def _inputs(inputs: InputStats, evidence: Findings) -> dict[str, Any]:
    return {
        "files": inputs.files,
        "records": inputs.records,
        "malformed_lines": inputs.malformed_lines,
        "unknown_types": inputs.unknown_types,
        "outside_window": inputs.outside_window,
        "fingerprints_overflow": inputs.fingerprints_overflow,
        "oversized_lines": inputs.oversized_lines,
        "uncounted_records": inputs.uncounted_records,
        "duplicate_files": [{"file": f, "same_as": same} for f, same in inputs.duplicate_files],
        "problems": [
            {
                "file": p.file,
                "malformed": p.malformed,
                "oversized": p.oversized,
                "uncounted": p.uncounted,
                "truncated": p.truncated,
                "cut": p.cut,
                "first_line": p.first_line,
                "first_problem": p.first_problem,
            }
            for p in inputs.problems
        ],
        "unreadable": [
            {"file": u.file, "domain": u.domain, "gates": u.gates, "count": u.count}
            for u in evidence.unreadable
        ],
    }


def _modes(evidence: Findings) -> list[dict[str, Any]]:
    """Each route's mode after its latest ``ownership`` record (``*``: default, force-legacy)."""
    latest: dict[str, Any] = {}
    for change in sorted(evidence.ownership, key=lambda c: c.ts):
        latest[change.route] = change
    return [
        {
            "route": route,
            "mode": c.to_mode,
            "percent": c.percent,
            "since": format_instant(c.ts),
            "source": c.source,
        }
        for route, c in sorted(latest.items())
    ]

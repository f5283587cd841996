"""Parity gates: evaluating each gate per domain over its whole window.

Owns evaluating every parity gate per domain against a ``Findings``
(thresholds from ``thresholds``), and the gate functions the canary steps
reuse on a step's own evidence (``readiness``). A gate that would pass on
too little evidence, or with evidence in its window that could not be read,
reports ``insufficient`` and does not pass; a conclusive failure stays a
failure whatever the evidence. Routes never compared by design (only skips
such as ``method`` or ``mirror_off``) are left out of ``min_compared``.
Structural divergences a known entry documents (class ``structural``) do
not count against ``max_structural``. Imports the report's values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from shadowproxy.report.gate_result import GateResult, GateStatus, RouteStatus
from shadowproxy.report.inputs import Unreadable
from shadowproxy.report.known import KnownSet
from shadowproxy.report.summary import (
    ALL_GATES,
    ANY_DOMAIN,
    Counts,
    Findings,
    LatencySummary,
)
from shadowproxy.report.thresholds import GatesConfig, GateSpec
from shadowproxy.report.window_gates import coverage_gate, min_duration_gate

__all__ = [
    "GateResult",
    "GateStatus",
    "RouteStatus",
    "error_gate",
    "evaluate_gates",
    "held",
    "insufficient",
    "p99_conclusive",
    "p99_gate",
    "structural_gate",
    "undocumented_semantic",
]


def evaluate_gates(
    evidence: Findings, config: GatesConfig, known: KnownSet
) -> tuple[GateResult, ...]:
    """Every gate for every domain seen in the evidence or named in the gates file."""
    summaries = {d.domain: d for d in evidence.domains}
    damaged = {u.domain for u in evidence.unreadable} - {ANY_DOMAIN}
    names = sorted(set(summaries) | set(config.domains) | damaged)
    if not names:
        return (
            GateResult(
                "evidence",
                "*",
                GateStatus.INSUFFICIENT,
                "no records in the window",
                0,
                config.default.min_compared,
            ),
        )
    results: list[GateResult] = []
    for domain in names:
        spec = config.spec_for(domain)
        summary = summaries.get(domain)
        counts = summary.counts if summary else Counts()
        latency = summary.latency if summary else LatencySummary()
        documented = sum(r.structural_documented for r in evidence.routes if r.domain == domain)
        evidence_gate = _evidence_gate(evidence, domain, spec)
        enough = evidence_gate.status is GateStatus.PASS
        coverage = coverage_gate(domain, summary, spec)
        gates = [
            evidence_gate,
            structural_gate(domain, counts, spec, documented),
            _semantic_gate(evidence, domain, counts, spec, known),
            p99_gate(domain, latency, spec, conclusive=p99_conclusive(counts, enough)),
            error_gate(domain, counts, spec),
            *([min_duration_gate(domain, summary, spec)] if spec.min_duration_s > 0 else []),
            coverage,
        ]
        if not enough:
            gates[1:] = [insufficient(g) for g in gates[1:]]
        if coverage.status is not GateStatus.PASS:
            why = f"insufficient evidence: the window is not covered: {coverage.reason}"
            gates[:-1] = [insufficient(g, why) for g in gates[:-1]]
        unread = held(evidence, domain)
        results.extend(_unread(g, unread) for g in gates)
    return tuple(results)


def insufficient(gate: GateResult, why: str = "insufficient evidence") -> GateResult:
    """``gate``, insufficient for ``why`` unless it did not pass anyway."""
    if gate.status is not GateStatus.PASS:
        return gate
    return replace(gate, status=GateStatus.INSUFFICIENT, reason=f"{why} ({gate.reason})")


def held(evidence: Findings, domain: str) -> list[Unreadable]:
    """Unreadable evidence in the window that concerns ``domain``."""
    return [u for u in evidence.unreadable if u.domain in (domain, ANY_DOMAIN)]


def _unread(gate: GateResult, held: Sequence[Unreadable]) -> GateResult:
    """``gate``, insufficient when lines it would read could not be read."""
    mine = [u for u in held if u.gates in (ALL_GATES, gate.name)]
    if not mine:
        return gate
    by_file: dict[str, int] = {}
    for u in mine:
        by_file[u.file] = by_file.get(u.file, 0) + u.count
    files = sorted(by_file.items(), key=lambda fc: (-fc[1], fc[0]))
    shown = ", ".join(f"{file}: {n}" for file, n in files[:3])
    more = f" and {len(files) - 3} more files" if len(files) > 3 else ""
    total = sum(by_file.values())
    return insufficient(
        gate, f"insufficient evidence: {total} unreadable lines in the window ({shown}{more})"
    )


def p99_conclusive(counts: Counts, enough: bool) -> bool:
    """Whether a p99 ratio over the maximum is a failure rather than thin evidence.

    With fewer than ``min_compared`` exchanges the p99 ratio alone proves
    nothing (a p99 of a few dozen samples is about their maximum, and one slow
    sample moves it a bucket); exchanges that broke ``compare.timing`` do.
    """
    return enough or counts.timing > 0


def _evidence_gate(evidence: Findings, domain: str, spec: GateSpec) -> GateResult:
    present = [r for r in evidence.routes if r.domain == domain]
    routes = [r for r in present if not r.counts.not_shadowed]
    if not routes:
        why = (
            f"every route is not shadowed by design ({', '.join(r.route for r in present[:3])})"
            if present
            else "no rollup records in the window"
        )
        return GateResult(
            "min_compared",
            domain,
            GateStatus.INSUFFICIENT,
            f"insufficient evidence: {why}",
            0,
            spec.min_compared,
        )
    low = sorted(
        (r for r in routes if r.counts.compared < spec.min_compared),
        key=lambda r: r.counts.compared,
    )
    least = min(r.counts.compared for r in routes)
    if not low:
        return GateResult(
            "min_compared",
            domain,
            GateStatus.PASS,
            f"every route has at least {spec.min_compared} compared",
            least,
            spec.min_compared,
        )
    shown = ", ".join(f"{r.route}: {r.counts.compared}" for r in low[:3])
    more = f" and {len(low) - 3} more" if len(low) > 3 else ""
    return GateResult(
        "min_compared",
        domain,
        GateStatus.INSUFFICIENT,
        f"insufficient evidence: {len(low)} of {len(routes)} routes below "
        f"{spec.min_compared} compared ({shown}{more})",
        least,
        spec.min_compared,
    )


def structural_gate(
    domain: str, counts: Counts, spec: GateSpec, documented: int, name: str = "structural"
) -> GateResult:
    """Undocumented structural divergences at most ``max_structural``.

    ``documented`` exchanges (every structural difference explained by a
    known entry of class ``structural``) do not count; a structural
    divergence without an exchange record describing it always does.
    """
    undocumented = max(0, counts.structural - documented)
    ok = undocumented <= spec.max_structural
    explained = f", {counts.structural - undocumented} documented" if documented else ""
    reason = (
        f"{counts.structural} structural of {counts.compared} compared{explained}"
        f" (95% upper bound {counts.rate('structural').upper95:.2%})"
    )
    return GateResult(
        name,
        domain,
        GateStatus.PASS if ok else GateStatus.FAIL,
        reason,
        undocumented,
        spec.max_structural,
    )


def undocumented_semantic(evidence: Findings, known: KnownSet, domain: str) -> list[str]:
    """Keys of the domain's semantic fingerprints no known difference explains."""
    return [
        fp.key
        for fp in evidence.fingerprints
        if fp.domain == domain and fp.cls == "semantic" and known.explain(fp) is None
    ]


def _semantic_gate(
    evidence: Findings, domain: str, counts: Counts, spec: GateSpec, known: KnownSet
) -> GateResult:
    name = "semantic_documented"
    if not spec.require_documented_semantic:
        return GateResult(name, domain, GateStatus.PASS, "not required", None, False)
    if evidence.source == "prometheus":
        ok = counts.semantic == 0
        reason = (
            "no semantic divergences"
            if ok
            else f"{counts.semantic} semantic divergences; fleet mode has no fingerprints, "
            "run the report on the JSONL files to check them against --known"
        )
        return GateResult(
            name, domain, GateStatus.PASS if ok else GateStatus.FAIL, reason, counts.semantic, 0
        )
    missing = undocumented_semantic(evidence, known, domain)
    overflow = evidence.semantic_overflow.get(domain, 0)
    seen = any(fp.domain == domain and fp.cls == "semantic" for fp in evidence.fingerprints)
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        reason = (
            f"{len(missing)} undocumented semantic fingerprints: {'; '.join(missing[:3])}{more}"
        )
        return GateResult(name, domain, GateStatus.FAIL, reason, len(missing), 0)
    if overflow:
        return GateResult(
            name,
            domain,
            GateStatus.FAIL,
            f"{overflow} semantic differences beyond the fingerprint cap were not checked",
            overflow,
            0,
        )
    if counts.semantic and not seen:
        return GateResult(
            name,
            domain,
            GateStatus.FAIL,
            f"{counts.semantic} semantic divergences in rollups but no exchange "
            "record describes them",
            counts.semantic,
            0,
        )
    return GateResult(
        name, domain, GateStatus.PASS, "every semantic fingerprint is documented", 0, 0
    )


def p99_gate(
    domain: str,
    latency: LatencySummary,
    spec: GateSpec,
    *,
    conclusive: bool,
    name: str = "p99_ratio",
) -> GateResult:
    """Candidate p99 at most ``max_p99_ratio`` times legacy's; thin evidence is insufficient."""
    ratio = latency.p99_ratio
    if ratio is None:
        return GateResult(
            name,
            domain,
            GateStatus.INSUFFICIENT,
            "insufficient evidence: no latency observations",
            None,
            spec.max_p99_ratio,
        )
    ok = ratio <= spec.max_p99_ratio + 1e-9
    reason = (
        f"candidate p99 {latency.candidate.p99:.3f} ms vs legacy p99 {latency.legacy.p99:.3f} ms"
    )
    status = GateStatus.PASS if ok else GateStatus.FAIL
    if not ok and not conclusive:
        status, reason = GateStatus.INSUFFICIENT, f"insufficient evidence ({reason})"
    return GateResult(
        name,
        domain,
        status,
        reason,
        round(ratio, 4),
        spec.max_p99_ratio,
    )


def error_gate(domain: str, counts: Counts, spec: GateSpec, name: str = "error_rate") -> GateResult:
    """Candidate errors at most ``max_error_rate`` of compared."""
    rate = counts.rate("errors")
    if rate.value is None:
        return GateResult(
            name,
            domain,
            GateStatus.INSUFFICIENT,
            "insufficient evidence: nothing compared",
            None,
            spec.max_error_rate,
        )
    ok = rate.value <= spec.max_error_rate
    reason = (
        f"{counts.errors} errors of {counts.compared} compared (95% upper bound {rate.upper95:.3%})"
    )
    return GateResult(
        name,
        domain,
        GateStatus.PASS if ok else GateStatus.FAIL,
        reason,
        round(rate.value, 6),
        spec.max_error_rate,
    )

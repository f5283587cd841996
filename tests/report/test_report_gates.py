"""Gates: loading the gates and known-differences files, evaluating each gate, route status."""

from __future__ import annotations

from pathlib import Path

import pytest

from shadowproxy.report.errors import ReportInputError
from shadowproxy.report.gates import (
    GateResult,
    GateStatus,
    RouteStatus,
    evaluate_gates,
)
from shadowproxy.report.known import KnownSet, load_known
from shadowproxy.report.status import route_status
from shadowproxy.report.summary import (
    Counts,
    Coverage,
    DomainSummary,
    Findings,
    FingerprintSummary,
    LatencySummary,
    Quantiles,
    RouteSummary,
)
from shadowproxy.report.thresholds import GatesConfig, GateSpec, load_gates

CLEAN = Counts.of({"compared": 5000, "match": 5000})
FAST = LatencySummary(Quantiles(1, 2, 10), Quantiles(1, 2, 10))
SLOW = LatencySummary(Quantiles(1, 2, 10), Quantiles(1, 2, 25))


def fingerprint(cls: str = "semantic", path: str = "$.total") -> FingerprintSummary:
    return FingerprintSummary("/orders/{id}", "orders", cls, "value", path, 3, 0.0, 1.0, "ex")


COVERED = Coverage(0.0, 1.0, 900.0, True, 0.0, 1.0, 1.0)


def evidence(
    counts: Counts = CLEAN,
    latency: LatencySummary = FAST,
    fingerprints: tuple[FingerprintSummary, ...] = (),
    source: str = "files",
    coverage: Coverage = COVERED,
) -> Findings:
    route = RouteSummary("/orders/{id}", "orders", counts, latency)
    domain = DomainSummary("orders", 0.0, counts, latency, None, 0.0, coverage=coverage)
    return Findings(source, 1.0, (route,), (domain,), fingerprints)


def gate(results: tuple[GateResult, ...], name: str, domain: str = "orders") -> GateResult:
    return next(g for g in results if g.name == name and g.domain == domain)


def write(tmp_path: Path, text: str, name: str = "f.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


class TestLoadGates:
    def test_defaults_and_per_domain_overrides(self, tmp_path: Path) -> None:
        """``*`` changes the defaults; a domain overrides only the keys it names."""
        config = load_gates(
            write(
                tmp_path,
                """
gates:
  "*": {window: 7d, max_error_rate: 0.01}
  payments: {min_compared: 10000}
""",
            )
        )
        assert config.spec_for("orders") == GateSpec(window_s=7 * 86400, max_error_rate=0.01)
        assert config.spec_for("payments").min_compared == 10000
        assert config.spec_for("payments").max_error_rate == 0.01
        assert config.spec_for("payments").window_s == 7 * 86400

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("gates:\n  '*': {max_structual: 0}\n", "gates.*.max_structual: unknown key"),
            ("gates:\n  orders: {min_compared: many}\n", "gates.orders.min_compared: must be"),
            ("gates:\n  orders: {window: fortnight}\n", "gates.orders.window:"),
            ("gates:\n  orders: {require_documented_semantic: 1}\n", "require_documented_semantic"),
            ("gates: [1]\n", "gates: missing"),
            ("gates: {a: 1\n", "line 2: expected ','"),
            ("gates: {orders: {}, orders: {}}\n", "gates.orders: given twice (lines 1 and 1)"),
            ("gates: " + "[" * 100 + "]" * 100 + "\n", "line 1: nested deeper than 64 levels"),
        ],
    )
    def test_invalid_files_name_the_key(self, tmp_path: Path, text: str, message: str) -> None:
        """Every invalid gates file is an input error naming the file and key."""
        path = write(tmp_path, text)
        with pytest.raises(ReportInputError) as caught:
            load_gates(path)
        assert message in str(caught.value)
        assert caught.value.source == path


class TestLoadKnown:
    def test_both_fingerprint_spellings(self, tmp_path: Path) -> None:
        """A mapping and a ``route|class|kind|path`` string both match; ``*`` matches anything."""
        known = load_known(
            write(
                tmp_path,
                """
- fingerprint: {route: "/orders/{id}", class: semantic, kind: value, path: $.total}
  reason: rounding differs in the rewrite
  owner: team-orders
- fingerprint: "*|semantic|value|$.updated"
  reason: clock
  owner: team-core
""",
            )
        )
        assert known.explain(fingerprint()) is not None
        updated = known.explain(fingerprint(path="$.updated"))
        assert updated is not None
        assert updated.owner == "team-core"
        assert known.explain(fingerprint(path="$.other")) is None

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("- fingerprint: 'a|b|c|d'\n  owner: me\n", "[0].reason: missing"),
            ("- fingerprint: 'a|b|c|d'\n  reason: why\n", "[0].owner: missing"),
            ("- fingerprint: 'a|b|c'\n  reason: why\n  owner: me\n", "[0].fingerprint: must be"),
            (
                "- fingerprint: {route: a, class: b, kind: c}\n  reason: y\n  owner: m\n",
                "[0].fingerprint.path: missing",
            ),
            ("known: 3\n", "must be a list"),
        ],
    )
    def test_incomplete_entries_are_input_errors(
        self, tmp_path: Path, text: str, message: str
    ) -> None:
        """A missing reason, owner or fingerprint part names the entry and key."""
        with pytest.raises(ReportInputError) as caught:
            load_known(write(tmp_path, text))
        assert message in str(caught.value)


class TestEvaluateGates:
    def test_all_pass_on_clean_evidence(self) -> None:
        """Enough clean, fast, error-free evidence passes every gate."""
        results = evaluate_gates(evidence(), GatesConfig(), KnownSet())
        assert [g.name for g in results] == [
            "min_compared",
            "structural",
            "semantic_documented",
            "p99_ratio",
            "error_rate",
            "coverage",
        ]
        assert all(g.passed for g in results)

    def test_structural_fails(self) -> None:
        """Any structural divergence over the allowed maximum fails the gate."""
        counts = Counts.of({"compared": 5000, "match": 4999, "diverged": 1, "structural": 1})
        result = gate(evaluate_gates(evidence(counts), GatesConfig(), KnownSet()), "structural")
        assert (result.status, result.value, result.threshold) == (GateStatus.FAIL, 1, 0)

    def test_semantic_undocumented_fails_and_documented_passes(self, tmp_path: Path) -> None:
        """A semantic fingerprint fails the gate until the known file explains it."""
        counts = Counts.of({"compared": 5000, "match": 4997, "diverged": 3, "semantic": 3})
        found = evidence(counts, fingerprints=(fingerprint(),))
        failed = gate(evaluate_gates(found, GatesConfig(), KnownSet()), "semantic_documented")
        assert failed.status is GateStatus.FAIL
        assert "/orders/{id}|semantic|value|$.total" in failed.reason
        known = load_known(
            write(
                tmp_path,
                "- {fingerprint: '/orders/{id}|semantic|value|$.total',"
                " reason: rounding, owner: me}\n",
            )
        )
        assert gate(evaluate_gates(found, GatesConfig(), known), "semantic_documented").passed

    def test_semantic_in_rollups_without_exchange_records_fails(self) -> None:
        """Semantic counts nobody can inspect are not documented."""
        counts = Counts.of({"compared": 5000, "match": 4997, "diverged": 3, "semantic": 3})
        result = gate(
            evaluate_gates(evidence(counts), GatesConfig(), KnownSet()), "semantic_documented"
        )
        assert result.status is GateStatus.FAIL

    def test_p99_ratio_fails_when_candidate_slower(self) -> None:
        """Candidate p99 above legacy p99 x max_p99_ratio fails; a looser ratio passes."""
        results = evaluate_gates(evidence(latency=SLOW), GatesConfig(), KnownSet())
        assert gate(results, "p99_ratio").value == 2.5
        assert not gate(results, "p99_ratio").passed
        loose = GatesConfig(GateSpec(max_p99_ratio=3.0))
        assert gate(evaluate_gates(evidence(latency=SLOW), loose, KnownSet()), "p99_ratio").passed

    def test_error_rate_fails_above_threshold(self) -> None:
        """More candidate errors than max_error_rate fails the gate."""
        counts = Counts.of({"compared": 5000, "match": 4990, "errors": 10})
        result = gate(evaluate_gates(evidence(counts), GatesConfig(), KnownSet()), "error_rate")
        assert (result.status, result.value) == (GateStatus.FAIL, 0.002)

    def test_insufficient_evidence_never_passes(self) -> None:
        """Below min_compared, would-be passes become insufficient; failures stay failures."""
        counts = Counts.of({"compared": 40, "match": 39, "diverged": 1, "structural": 1})
        results = evaluate_gates(evidence(counts), GatesConfig(), KnownSet())
        assert gate(results, "min_compared").status is GateStatus.INSUFFICIENT
        assert gate(results, "structural").status is GateStatus.FAIL
        assert gate(results, "error_rate").status is GateStatus.INSUFFICIENT
        assert not any(g.passed for g in results)

    def test_thin_p99_fails_only_with_slow_exchanges(self) -> None:
        """Below min_compared, a p99 over the maximum fails only if some exchange was slow."""
        quick = Counts.of({"compared": 40, "match": 40})
        slow = Counts.of({"compared": 40, "match": 39, "diverged": 1, "timing": 1})
        unbacked = gate(
            evaluate_gates(evidence(quick, SLOW), GatesConfig(), KnownSet()), "p99_ratio"
        )
        backed = gate(evaluate_gates(evidence(slow, SLOW), GatesConfig(), KnownSet()), "p99_ratio")
        assert (unbacked.status, unbacked.value) == (GateStatus.INSUFFICIENT, 2.5)
        assert unbacked.reason.startswith("insufficient evidence (candidate p99")
        assert (backed.status, backed.value) == (GateStatus.FAIL, 2.5)

    def test_domain_named_in_gates_without_records(self) -> None:
        """A domain the gates file names but the evidence lacks is insufficient, not passed."""
        config = GatesConfig(domains={"payments": GateSpec(min_compared=10)})
        results = evaluate_gates(evidence(), config, KnownSet())
        payments = [g for g in results if g.domain == "payments"]
        assert payments
        assert not any(g.passed for g in payments)

    def test_fleet_mode_cannot_document_semantic(self) -> None:
        """From Prometheus any semantic divergence fails: there are no fingerprints."""
        counts = Counts.of({"compared": 5000, "match": 4999, "diverged": 1, "semantic": 1})
        result = gate(
            evaluate_gates(evidence(counts, source="prometheus"), GatesConfig(), KnownSet()),
            "semantic_documented",
        )
        assert result.status is GateStatus.FAIL
        assert "fleet mode" in result.reason

    def test_no_evidence_at_all(self) -> None:
        """With no domains the single evidence gate is insufficient."""
        empty = Findings("files", 1.0, (), ())
        (result,) = evaluate_gates(empty, GatesConfig(), KnownSet())
        assert (result.name, result.passed) == ("evidence", False)


class TestRouteStatus:
    @pytest.mark.parametrize(
        ("counts", "latency", "status"),
        [
            ({"compared": 5000, "match": 5000}, FAST, RouteStatus.PARITY_OK),
            (
                {"compared": 5000, "match": 4999, "diverged": 1, "structural": 1},
                SLOW,
                RouteStatus.BLOCKED_STRUCTURAL,
            ),
            ({"compared": 5000, "match": 4900, "errors": 100}, FAST, RouteStatus.BLOCKED_ERRORS),
            (
                {"compared": 5000, "match": 4999, "diverged": 1, "semantic": 1},
                FAST,
                RouteStatus.SEMANTIC_UNDOCUMENTED,
            ),
            ({"compared": 5000, "match": 5000}, SLOW, RouteStatus.TIMING_REGRESSION),
            ({"compared": 10, "match": 10}, FAST, RouteStatus.INSUFFICIENT_EVIDENCE),
            # A slow p99 of ten samples is one slow sample, unless exchanges were slow too.
            ({"compared": 10, "match": 10}, SLOW, RouteStatus.INSUFFICIENT_EVIDENCE),
            (
                {"compared": 10, "match": 9, "diverged": 1, "timing": 1},
                SLOW,
                RouteStatus.TIMING_REGRESSION,
            ),
        ],
    )
    def test_status_order(
        self, counts: dict[str, int], latency: LatencySummary, status: RouteStatus
    ) -> None:
        """Each problem maps to its status; conclusive problems outrank thin evidence."""
        statuses = route_status(evidence(Counts.of(counts), latency), GatesConfig(), KnownSet())
        assert statuses[("orders", "/orders/{id}")] is status

"""The report by phase: phases and episodes, canary step gates, drills, readiness, the tracker.

Each new gate is shown passing, failing and insufficient; each decision is
read back from the JSON contract (validated against the schema).
"""

from __future__ import annotations

import csv
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from shadowproxy.report.aggregate import Aggregator
from shadowproxy.report.known import load_known
from shadowproxy.report.windows import Windows
from tests.report.report_factories import (
    UNTIL,
    as_json,
    difference,
    drill,
    exchange,
    healthy,
    phased,
    rollup,
    run,
    write_jsonl,
)

ROUTE = "/orders/{id}"
GATES = """
gates:
  "*":
    owner: team-orders
    canary: {bake: 2h, min_compared: 100, steps: {"100": {bake: 3h}}}
"""
H = timedelta(hours=1)


def _gates(tmp_path: Path, text: str = GATES) -> str:
    path = tmp_path / "gates.yaml"
    path.write_text(text)
    return str(path)


def _shadow(until_ago: timedelta = timedelta(0), compared: int = 2000) -> dict[str, Any]:
    """Shadow evidence from the window's start to ``until_ago`` before its end."""
    span = timedelta(days=14) - until_ago
    record = rollup(
        ROUTE,
        "orders",
        timedelta(days=14),
        match=compared,
        legacy_ms=[5.0] * 100,
        candidate_ms=[5.0] * 100,
        span=span,
    )
    return phased(record, "shadow", since=timedelta(days=20))


def _canary(
    percent: float,
    since: timedelta,
    *,
    compared: int = 500,
    errors: int = 0,
    structural: int = 0,
    span: timedelta | None = None,
) -> dict[str, Any]:
    """Evidence at canary ``percent`` from ``since`` ago to the window's end."""
    record = rollup(
        ROUTE,
        "orders",
        since,
        match=compared - errors - structural,
        errors=errors,
        structural=structural,
        legacy_ms=[5.0] * 100,
        candidate_ms=[5.0] * 100,
        span=span or since,
    )
    return phased(record, "canary", percent, since)


def _doc(capsys: pytest.CaptureFixture[str], tmp_path: Path, *records: Any, **files: str) -> Any:
    evidence = write_jsonl(tmp_path / "e.jsonl", records)
    extra = [arg for key, value in files.items() for arg in (f"--{key}", value)]
    return as_json(capsys, str(evidence), "--gates", _gates(tmp_path), *extra)[1]


def _route(doc: Any) -> Any:
    return next(r for r in doc["routes"] if r["route"] == ROUTE)


def _readiness(doc: Any, name: str, route: str | None = None) -> Any:
    return next(g for g in doc["readiness"] if g["name"] == name and g["route"] == route)


class TestPhases:
    """Each record's phase files its evidence; a step is judged on its own episode."""

    def test_phases_are_reported_apart(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        """Shadow and canary 5 % evidence are two phases; the domain sums them per phase."""
        doc = _doc(capsys, tmp_path, _shadow(3 * H), _canary(5, 3 * H))
        phases = [(p["mode"], p["canary_percent"], p["compared"]) for p in _route(doc)["phases"]]
        assert phases == [("canary", 5.0, 500), ("shadow", None, 2000)]
        domain = doc["domains"][0]
        assert [(p["mode"], p["compared"], p["routes"]) for p in domain["phases"]] == [
            ("canary", 500, 1),
            ("shadow", 2000, 1),
        ]
        route = _route(doc)
        assert (route["mode"], route["canary_percent"], route["next_step"]) == (
            "canary",
            5.0,
            "canary 25%",
        )

    def test_episode_is_the_stretch_since_the_route_last_entered(self, tmp_path: Path) -> None:
        """Two replicas entering a step a moment apart are one episode; a return after leaving
        it is a new one, so evidence from the earlier visit does not count."""
        end = UNTIL.timestamp()
        earlier = _canary(5, 10 * H, compared=900, errors=300, span=2 * H)  # left after 2 h
        replica_a = _canary(5, 3 * H, compared=300)
        replica_b = phased(
            _canary(5, 3 * H, compared=200), "canary", 5, 3 * H - timedelta(seconds=2)
        )
        aggregator = Aggregator(Windows(end, end - 14 * 86400))
        aggregator.feed(
            write_jsonl(tmp_path / "e.jsonl", [earlier, replica_a, replica_b])
            .read_bytes()
            .splitlines()
        )
        (route,) = aggregator.evidence().routes
        (phase,) = route.phases
        assert phase.counts.compared == 1400 and phase.counts.errors == 300
        episode = phase.episode
        assert (episode.counts.compared, episode.counts.errors) == (500, 0)
        assert episode.since == end - 3 * 3600 and episode.duration_s == 3 * 3600

    def test_a_phase_before_its_first_rollup(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        """Promoted a minute ago: the step's exchanges are written before its first rollup.
        The route is at the step with nothing compared there yet, the exchange's time is the
        phase's, and what it recorded counts at the step."""
        minute = timedelta(minutes=1)
        diverged = exchange(ROUTE, "orders", minute / 2, [difference()])
        doc = _doc(capsys, tmp_path, _shadow(2 * minute), phased(diverged, "canary", 5, minute))
        route = _route(doc)
        assert (route["mode"], route["canary_percent"]) == ("canary", 5.0)
        step = route["phases"][0]
        assert (step["canary_percent"], step["compared"]) == (5.0, 0)
        assert step["first"] == step["last"] == diverged["ts"]
        assert step["episode"]["semantic_undocumented"] == 1
        assert _readiness(doc, "canary_min_compared", ROUTE)["status"] == "insufficient"
        assert _readiness(doc, "canary_semantic_documented", ROUTE)["status"] == "fail"

    def test_records_without_a_phase_are_unknown(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        """Records older than phases are ``unknown``: never a canary step's evidence."""
        doc = _doc(capsys, tmp_path, healthy())
        route = _route(doc)
        assert [p["mode"] for p in route["phases"]] == ["unknown"]
        assert (route["mode"], route["next_step"]) == ("unknown", "canary 1%")


class TestCanaryStepGates:
    """Promotion from step N waits for step N's own evidence: its bake time and min_compared."""

    def test_pass(self, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
        """Enough compared at the step for longer than its bake time: every step gate passes."""
        doc = _doc(capsys, tmp_path, _shadow(3 * H), _canary(5, 3 * H))
        gates = {g["name"]: g for g in doc["readiness"] if g["route"] == ROUTE}
        assert {n: g["status"] for n, g in gates.items()} == {
            "canary_min_compared": "pass",
            "canary_bake": "pass",
            "canary_structural": "pass",
            "canary_semantic_documented": "pass",
            "canary_p99_ratio": "pass",
            "canary_error_rate": "pass",
        }
        assert gates["canary_bake"]["phase"] == "canary 5%"
        assert _route(doc)["gate_status"] == "pass"

    def test_insufficient_on_the_step_alone(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        """Plenty of shadow evidence, thin step evidence: the step waits (bake, min_compared)."""
        doc = _doc(capsys, tmp_path, _shadow(H / 2), _canary(5, H / 2, compared=40))
        bake = _readiness(doc, "canary_bake", ROUTE)
        least = _readiness(doc, "canary_min_compared", ROUTE)
        assert (bake["status"], least["status"]) == ("insufficient", "insufficient")
        assert bake["value"] == 1800 and bake["threshold"] == 7200
        # Thin step evidence proves nothing either way: a clean step is not a pass yet.
        assert _readiness(doc, "canary_structural", ROUTE)["status"] == "insufficient"
        assert doc["passed"] is True  # parity over the whole window is not the step's business
        route = _route(doc)
        assert route["gate_status"] == "insufficient"
        assert {"canary_bake", "canary_min_compared"} <= set(route["waiting_for"])

    def test_fail_on_the_step(self, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
        """Errors at the step beyond the maximum fail it, whatever the shadow phase showed."""
        doc = _doc(capsys, tmp_path, _shadow(3 * H, compared=200_000), _canary(5, 3 * H, errors=50))
        assert _readiness(doc, "canary_error_rate", ROUTE)["status"] == "fail"
        assert _route(doc)["gate_status"] == "fail"


class TestMinDuration:
    """``min_duration``: the rollups must cover at least that much of the window."""

    @pytest.mark.parametrize(
        ("setting", "status"),
        [("10d", "pass"), ("335h", "pass"), ("20d", "fail")],
    )
    def test_covered(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path, setting: str, status: str
    ) -> None:
        """Fourteen days covered pass 10d; a min_duration beyond the 14d window fails."""
        gates = _gates(tmp_path, f'gates: {{"*": {{min_duration: "{setting}"}}}}')
        evidence = write_jsonl(tmp_path / "e.jsonl", [healthy()])
        doc = as_json(capsys, str(evidence), "--gates", gates)[1]
        (gate,) = [g for g in doc["gates"] if g["name"] == "min_duration"]
        assert gate["status"] == status

    def test_insufficient(self, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
        """With --since 7d, six days of evidence (gaps under max_gap) do not cover 7d."""
        gates = _gates(tmp_path, 'gates: {"*": {min_duration: 7d, max_gap: 2d}}')
        records = [healthy(ago=timedelta(days=6))]
        evidence = write_jsonl(tmp_path / "e.jsonl", records)
        doc = as_json(capsys, str(evidence), "--gates", gates, "--since", "2026-11-16T12:00:00Z")[1]
        (gate,) = [g for g in doc["gates"] if g["name"] == "min_duration"]
        assert gate["status"] == "insufficient" and gate["value"] == 6 * 86400

    def test_absent_unless_set(self, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
        """Without min_duration there is no such gate: coverage alone judges the window."""
        evidence = write_jsonl(tmp_path / "e.jsonl", [healthy()])
        doc = as_json(capsys, str(evidence))[1]
        assert "min_duration" not in {g["name"] for g in doc["gates"]}


class TestDrill:
    """A passed ``shadow drill`` of the route within ``drill_within`` (default 14 days)."""

    @pytest.mark.parametrize(
        ("drills", "status"),
        [
            ([drill(ago=timedelta(days=1))], "pass"),
            (
                [
                    drill(ago=timedelta(days=2)),
                    drill(ago=timedelta(days=1), passed=False, drill_id="d2"),
                ],
                "fail",
            ),
            ([drill(ago=timedelta(days=20))], "insufficient"),
            ([], "insufficient"),
        ],
    )
    def test_drill_gate(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path, drills: list[Any], status: str
    ) -> None:
        """A recent pass passes, a failed latest drill fails, none in time is insufficient."""
        doc = _doc(capsys, tmp_path, healthy(), *drills)
        assert _readiness(doc, "drill")["status"] == status

    def test_replicas_count_once(self, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
        """Three replicas' records of one drill run are one run, with three replicas."""
        records = [drill(ago=timedelta(days=1, seconds=n)) for n in range(3)]
        doc = _doc(capsys, tmp_path, healthy(), *records)
        assert [(d["id"], d["replicas"], d["passed"]) for d in doc["drills"]] == [("d1", 3, True)]
        assert _route(doc)["drill"]["replicas"] == 3


class TestReadyForCutover:
    """Parity, the canary gates at 100 % and a recent drill, all passing."""

    def test_pass(self, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
        """Covered parity, four hours at 100 % and a drill yesterday: ready."""
        doc = _doc(capsys, tmp_path, _shadow(4 * H), _canary(100, 4 * H), drill())
        assert _readiness(doc, "ready_for_cutover")["status"] == "pass"
        assert doc["ready_for_cutover"] is True and doc["domains"][0]["ready_for_cutover"] is True
        route = _route(doc)
        assert (route["ready_for_cutover"], route["next_step"], route["gate_status"]) == (
            True,
            "candidate",
            "pass",
        )

    def test_fail(self, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
        """A failed drill fails readiness."""
        doc = _doc(capsys, tmp_path, _shadow(4 * H), _canary(100, 4 * H), drill(passed=False))
        assert _readiness(doc, "ready_for_cutover")["status"] == "fail"
        assert doc["ready_for_cutover"] is False

    @pytest.mark.parametrize(("errors", "status"), [(0, "pass"), (50, "fail")])
    def test_canary_100(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path, errors: int, status: str
    ) -> None:
        """The domain's canary_100 stands for its routes' canary gates at 100 %."""
        at_100 = _canary(100, 4 * H, errors=errors)
        doc = _doc(capsys, tmp_path, _shadow(4 * H, compared=200_000), at_100, drill())
        assert _readiness(doc, "canary_100")["status"] == status

    def test_insufficient(self, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
        """Without evidence at 100 %, a clean parity and a drill are not enough."""
        doc = _doc(capsys, tmp_path, _shadow(4 * H), _canary(50, 4 * H), drill())
        ready = _readiness(doc, "ready_for_cutover")
        assert ready["status"] == "insufficient" and "canary_100" in ready["reason"]
        assert _readiness(doc, "canary_100")["status"] == "insufficient"


class TestNotShadowed:
    """Routes never compared by design are listed, not held against min_compared."""

    def test_write_route_does_not_hold_its_domain(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        """The demo's case: POST /api/orders is skipped as a method, its domain still passes."""
        posts = rollup("/api/orders", "orders", timedelta(days=1), skipped={"method": 120})
        doc = _doc(capsys, tmp_path, healthy(), posts)
        (gate,) = [g for g in doc["gates"] if g["name"] == "min_compared"]
        assert gate["status"] == "pass" and doc["passed"] is True
        assert doc["domains"][0]["not_shadowed"] == [
            {"route": "/api/orders", "reasons": {"method": 120}, "requests": 120}
        ]
        statuses = {r["route"]: r["status"] for r in doc["routes"]}
        assert statuses["/api/orders"] == "NOT_SHADOWED"

    def test_skips_by_chance_still_count(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        """A route skipped by sampling or load is not 'by design': it holds the domain."""
        sampled = rollup(
            "/api/orders", "orders", timedelta(days=1), skipped={"method": 5, "sampled_out": 1}
        )
        doc = _doc(capsys, tmp_path, healthy(), sampled)
        (gate,) = [g for g in doc["gates"] if g["name"] == "min_compared"]
        assert gate["status"] == "insufficient" and doc["domains"][0]["not_shadowed"] == []


class TestDocumentedStructural:
    """A known entry of class ``structural`` documents an intended change of shape."""

    KNOWN = """
- fingerprint: {route: "/orders/{id}", class: structural, kind: extra, path: "$.currency"}
  reason: the rewrite adds the currency (API v2, ORD-7)
  owner: team-orders
"""

    def _records(self, extra_structural: bool = False) -> list[Any]:
        added = difference("structural", "extra", "$.currency", None, "EUR")
        window = timedelta(days=14)
        fast = [5.0] * 100
        shadow = rollup(ROUTE, "orders", window, match=2000, structural=3, legacy_ms=fast,
                        candidate_ms=fast, span=window)  # fmt: skip
        records: list[Any] = [shadow, *[exchange(ROUTE, "orders", H, [added]) for _ in range(3)]]
        if extra_structural:
            records[-1] = exchange(
                ROUTE, "orders", H, [added, difference("structural", "type", "$.qty", 1, "1")]
            )
        return records

    def test_documented_change_passes(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        """Three structural exchanges, each only the documented new field: the gate passes."""
        known = tmp_path / "known.yaml"
        known.write_text(self.KNOWN)
        doc = _doc(capsys, tmp_path, *self._records(), known=str(known))
        (gate,) = [g for g in doc["gates"] if g["name"] == "structural"]
        assert (gate["status"], gate["value"]) == ("pass", 0) and "3 documented" in gate["reason"]
        assert _route(doc)["structural_documented"] == 3 and _route(doc)["status"] == "PARITY_OK"

    def test_an_undocumented_difference_still_fails(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        """One exchange with another structural difference as well: it counts."""
        known = tmp_path / "known.yaml"
        known.write_text(self.KNOWN)
        doc = _doc(capsys, tmp_path, *self._records(extra_structural=True), known=str(known))
        (gate,) = [g for g in doc["gates"] if g["name"] == "structural"]
        assert (gate["status"], gate["value"]) == ("fail", 1)

    def test_a_wildcard_class_documents_no_structural(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        """``*`` as the class documents semantic differences, never a change of shape."""
        known = tmp_path / "known.yaml"
        known.write_text(self.KNOWN.replace("class: structural", 'class: "*"'))
        doc = _doc(capsys, tmp_path, *self._records(), known=str(known))
        (gate,) = [g for g in doc["gates"] if g["name"] == "structural"]
        assert (gate["status"], gate["value"]) == ("fail", 3)
        assert load_known(str(known)).entries[0].cls == "*"


def _row(tracker: Path) -> dict[str, str]:
    with tracker.open(newline="") as handle:
        return next(csv.DictReader(handle))


class TestTracker:
    """The tracker gets mode, canary step, owner, gate status, last passed at and evidence."""

    def test_columns(self, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
        """A passing step stamps last_passed_at; a later failing run keeps it; hand columns stay."""
        tracker = tmp_path / "tracker.csv"
        tracker.write_text(f"route,domain,notes,owner\n{ROUTE},orders,keep me,\n")
        evidence = write_jsonl(tmp_path / "e.jsonl", [_shadow(3 * H), _canary(5, 3 * H)])
        url = "https://ci.example/report.html#{route}"
        args = ["--gates", _gates(tmp_path), "--tracker", str(tracker), "--evidence-url", url]
        assert run(capsys, str(evidence), *args)[0] == 0
        first = _row(tracker)
        failing = write_jsonl(tmp_path / "e.jsonl", [_shadow(3 * H), _canary(5, 3 * H, errors=50)])
        run(capsys, str(failing), "--gates", _gates(tmp_path), "--tracker", str(tracker))
        second = _row(tracker)
        assert (first["mode"], first["canary_step"], first["gate_status"]) == (
            "canary",
            "5",
            "pass",
        )
        assert first["owner"] == "team-orders" and first["notes"] == "keep me"
        assert first["last_passed_at"].startswith("20") and first["last_passed_at"].endswith("Z")
        assert first["evidence"] == "https://ci.example/report.html#%2Forders%2F%7Bid%7D"
        assert second["gate_status"] == "fail"
        assert second["last_passed_at"] == first["last_passed_at"]
        assert second["evidence"] == first["evidence"] and second["notes"] == "keep me"


class TestGatesFile:
    """The new keys are validated like the others: one line naming the key."""

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ('gates: {"*": {canary: {bake: soon}}}', "gates.*.canary.bake:"),
            (
                'gates: {"*": {canary: {steps: {"150": {bake: 1h}}}}}',
                "gates.*.canary.steps.150: must be a percent",
            ),
            ('gates: {"*": {canary: {colour: 1}}}', "gates.*.canary.colour: unknown key"),
            (
                'gates: {"*": {canary: {min_compared: -1}}}',
                "gates.*.canary.min_compared: must be a non-negative int",
            ),
            ('gates: {"*": {owner: ""}}', "gates.*.owner: must be a name"),
            ('gates: {"*": {drill_within: never}}', "gates.*.drill_within:"),
        ],
    )
    def test_bad(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str, message: str
    ) -> None:
        """Exit 2, one line naming the file and the key."""
        evidence = write_jsonl(tmp_path / "e.jsonl", [healthy()])
        code, _, err = run(capsys, str(evidence), "--gates", _gates(tmp_path, text))
        assert code == 2 and err.count("\n") == 1 and message in err

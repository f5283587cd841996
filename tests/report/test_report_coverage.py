"""Sustained means covered: a gate passes only when rollups cover its whole window."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from shadowproxy.report import coverage as coverage_module
from shadowproxy.report.coverage import CoverageLog, Spans
from shadowproxy.report.fleet import steps_coverage
from shadowproxy.report.sources import worker_of
from tests.report.report_factories import (
    as_json,
    healthy,
    rollup,
    run,
    ts,
    write_jsonl,
)

DAY = timedelta(days=1)


def daily(
    days: Iterable[int], *, compared: int = 400, structural: int = 0, route: str = "/orders/{id}"
) -> list[dict[str, Any]]:
    """A rollup per day ``d`` days ago (from d+1 to d days ago), as a quiet worker writes."""
    return [
        rollup(
            route,
            ago=(d + 1) * DAY,
            span=DAY,
            match=compared - structural,
            structural=structural,
            legacy_ms=[5.0] * 20,
            candidate_ms=[5.0] * 20,
        )
        for d in days
    ]


def gates_of(doc: dict[str, Any], domain: str = "orders") -> dict[str, dict[str, Any]]:
    return {g["name"]: g for g in doc["gates"] if g["domain"] == domain}


def coverage_of(doc: dict[str, Any], domain: str = "orders") -> dict[str, Any]:
    coverage: dict[str, Any] = next(d for d in doc["domains"] if d["domain"] == domain)["coverage"]
    return coverage


class TestSpans:
    def test_joins_within_tolerance_in_any_order(self) -> None:
        """Stretches closer than the join merge whatever order they arrive in."""
        spans = Spans(join=10)
        for start, end in [(100, 200), (0, 50), (205, 300), (55, 60), (400, 500), (61, 99)]:
            spans.add(start, end)
        assert list(zip(spans.starts, spans.ends, strict=True)) == [(0, 300), (400, 500)]
        assert spans.holes(10) == [(300, 400)]
        assert spans.holes(100) == []
        assert spans.rollups == 6

    def test_a_stretch_bridging_several_merges_them(self) -> None:
        """A late rollup covering the holes between stretches joins them into one."""
        spans = Spans(join=0)
        for start in (0, 20, 40, 60):
            spans.add(start, start + 10)
        spans.add(5, 65)
        assert (spans.starts, spans.ends) == ([0], [70])

    def test_too_many_stretches_is_fragmented_not_unbounded(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Past the cap a worker keeps its stretches and is marked fragmented."""
        monkeypatch.setattr(coverage_module, "MAX_STRETCHES", 3)
        spans = Spans(join=0)
        for start in (0, 20, 40, 60, 10_000):
            spans.add(start, start + 1)
        spans.add(-100, -99)
        assert len(spans.starts) == 3
        assert spans.fragmented

    def test_workers_from_every_layout_are_one_series(self) -> None:
        """Active, rotated, compressed, rollup and shipped files of a worker share its name."""
        names = [
            "shadow-web1-42.jsonl",
            "shadow-web1-42.jsonl.3",
            "/archive/shadow-web1-42.jsonl.7.gz",
            "shadow-web1-42.rollups.jsonl",
            "/archive/shadow-web1-42.rollups.jsonl.2.gz",
        ]
        assert {worker_of(name) for name in names} == {"shadow-web1-42"}

    def test_a_hole_one_worker_misses_is_reported_even_when_others_cover_it(self) -> None:
        """Another worker covering the time does not make up for this worker's lost rollups."""
        log = CoverageLog(join=60)
        for start in range(0, 10_000, 100):
            log.add("orders", "b", start, start + 100)
            if not 3000 <= start < 5000:
                log.add("orders", "a", start, start + 100)
        coverage = log.coverage("orders", 0, 10_000, max_gap=900)
        assert not coverage.covered
        ((gap),) = coverage.gaps
        assert (gap.where, gap.worker, gap.start, gap.end) == ("worker", "a", 3000, 5000)
        assert [(w.worker, w.gaps) for w in coverage.workers] == [("a", 1), ("b", 0)]


class TestFleetSteps:
    @pytest.mark.parametrize(
        ("present", "first", "last", "where"),
        [
            (20, 5.0, 100.0, None),
            (11, 50.0, 100.0, "start"),
            (10, 5.0, 50.0, "end"),
            (15, 5.0, 100.0, "missing"),
            (0, None, None, "window"),
        ],
        ids=["covered", "late-start", "early-end", "holes", "nothing"],
    )
    def test_steps_with_samples_locate_or_add_up_the_gaps(
        self, present: int, first: float | None, last: float | None, where: str | None
    ) -> None:
        """Prometheus steps of 5 s over a 100 s window, 10 s tolerated: what is missing shows."""
        coverage = steps_coverage(0.0, 100.0, 5.0, 10.0, present, first, last)
        assert coverage.covered is (where is None)
        assert [gap.where for gap in coverage.gaps] == ([where] if where else [])


class TestSustainedMeansCovered:
    def test_clean_rollups_over_part_of_the_window_do_not_pass(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        """Zero structural over the last ten days is not zero structural over fourteen."""
        path = write_jsonl(tmp_path / "shadow-a-1.rollups.jsonl", daily(range(10)))
        code, doc = as_json(capsys, str(path))
        gates = gates_of(doc)
        assert code == 1
        assert {g["status"] for g in gates.values()} == {"insufficient"}
        assert gates["coverage"]["reason"] == (
            f"no evidence in the window's first 4d 0h (it starts at {ts(10 * DAY)})"
        )
        assert gates["structural"]["reason"].startswith(
            "insufficient evidence: the window is not covered: no evidence in the window's first"
        )
        assert gates["coverage"]["value"] == 4 * 86400
        covered = coverage_of(doc)
        assert (covered["covered"], covered["covered_s"]) == (False, 10 * 86400)
        assert covered["gaps"][0]["where"] == "start"
        assert doc["routes"][0]["status"] == "INSUFFICIENT_EVIDENCE"

    def test_the_same_rollups_over_the_whole_window_pass(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        """Fourteen days of daily rollups cover the default window."""
        path = write_jsonl(tmp_path / "shadow-a-1.rollups.jsonl", daily(range(14)))
        code, doc = as_json(capsys, str(path))
        assert code == 0
        assert gates_of(doc)["coverage"]["reason"] == (
            "the evidence covers the 14d 0h window with no gap over 15m 0s"
        )
        assert coverage_of(doc)["workers"] == [
            {
                "worker": "shadow-a-1",
                "first": ts(14 * DAY),
                "last": ts(timedelta()),
                "rollups": 14,
                "gaps": 0,
                "fragmented": False,
            }
        ]

    @pytest.mark.parametrize(
        ("days", "where"),
        [(range(3, 14), "end"), ([*range(0, 5), *range(8, 14)], "between")],
        ids=["ends-early", "hole"],
    )
    def test_a_gap_anywhere_in_the_window_keeps_it_from_passing(
        self,
        capsys: pytest.CaptureFixture[str],
        tmp_path: Path,
        days: list[int],
        where: str,
    ) -> None:
        """Evidence that stops three days early, or misses three days, is insufficient."""
        path = write_jsonl(tmp_path / "shadow-a-1.rollups.jsonl", daily(days))
        code, doc = as_json(capsys, str(path))
        assert code == 1
        ((gap),) = coverage_of(doc)["gaps"]
        assert (gap["where"], gap["seconds"]) == (where, 3 * 86400)
        assert gates_of(doc)["structural"]["status"] == "insufficient"

    def test_a_worker_missing_its_middle_is_a_gap_even_when_another_covers_it(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        """Worker a lost days 8 to 5 (a rotated file not shipped); worker b ran throughout."""
        write_jsonl(tmp_path / "a" / "shadow-a-1.rollups.jsonl", daily(range(5)))
        write_jsonl(tmp_path / "a" / "shadow-a-1.rollups.jsonl.2.gz", daily(range(8, 14)), gz=True)
        write_jsonl(tmp_path / "b" / "shadow-b-2.rollups.jsonl", daily(range(14), compared=10))
        code, doc = as_json(capsys, str(tmp_path))
        assert code == 1
        coverage = gates_of(doc)["coverage"]
        assert coverage["status"] == "insufficient"
        assert coverage["reason"] == (
            f"worker shadow-a-1 has no rollups from {ts(8 * DAY)} to {ts(5 * DAY)} (3d 0h)"
        )
        assert [(w["worker"], w["gaps"]) for w in coverage_of(doc)["workers"]] == [
            ("shadow-a-1", 1),
            ("shadow-b-2", 0),
        ]

    def test_old_mixed_files_and_new_rollup_files_of_a_worker_are_one_series(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        """Rollups in a shipped mixed file and in the local rollups file join up."""
        write_jsonl(tmp_path / "archive" / "shadow-a-1.jsonl.4.gz", daily(range(7, 14)), gz=True)
        write_jsonl(tmp_path / "logs" / "shadow-a-1.rollups.jsonl", daily(range(7)))
        code, doc = as_json(capsys, str(tmp_path / "logs"), str(tmp_path / "archive"))
        assert code == 0
        assert [w["worker"] for w in coverage_of(doc)["workers"]] == ["shadow-a-1"]
        code, doc = as_json(capsys, str(tmp_path / "logs"))
        assert code == 1
        assert coverage_of(doc)["gaps"][0]["where"] == "start"

    def test_gap_tolerance_is_max_gap(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        """Ten quiet minutes (or a restart) pass under the default 15m; not under max_gap: 5m."""
        quiet = [
            healthy(compared=1500, ago=14 * DAY),
            healthy(compared=1500, ago=timedelta(days=7)),
        ]
        quiet[0]["ts_end"] = ts(timedelta(days=7, minutes=10))
        path = write_jsonl(tmp_path / "shadow-a-1.rollups.jsonl", quiet)
        code, doc = as_json(capsys, str(path))
        assert code == 0
        gates = tmp_path / "gates.yaml"
        gates.write_text("gates:\n  orders: {max_gap: 5m}\n")
        code, doc = as_json(capsys, str(path), "--gates", str(gates))
        assert code == 1
        assert gates_of(doc)["coverage"]["threshold"] == 300
        assert coverage_of(doc)["gaps"][0]["seconds"] == 600

    def test_a_structural_failure_on_partial_evidence_stays_a_failure(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        """More evidence cannot undo a structural divergence: it fails, covered or not."""
        path = write_jsonl(tmp_path / "a.jsonl", daily(range(5), structural=2))
        code, doc = as_json(capsys, str(path))
        gates = gates_of(doc)
        assert (code, gates["structural"]["status"], gates["coverage"]["status"]) == (
            1,
            "fail",
            "insufficient",
        )

    def test_since_sets_the_window_to_cover(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        """With --since five days back, five days of rollups cover the window."""
        path = write_jsonl(tmp_path / "a.jsonl", daily(range(5), compared=400))
        code, doc = as_json(capsys, str(path), "--since", ts(5 * DAY))
        assert code == 0
        assert coverage_of(doc)["covered"] is True

    def test_the_summary_says_why_a_route_with_enough_compared_is_insufficient(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        """The terminal names the coverage gap rather than a count the route has."""
        path = write_jsonl(tmp_path / "a.jsonl", daily(range(10)))
        _, out, _ = run(capsys, str(path))
        lines = out.splitlines()
        assert (
            lines[0]
            == "shadow report INSUFFICIENT: 1 route needs more evidence, 0 routes at parity"
        )
        assert lines[4].split()[:5] == ["INSUFFICIENT", "/orders/{id}", "orders", "coverage:", "no"]

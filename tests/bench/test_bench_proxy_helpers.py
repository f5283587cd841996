"""The side-by-side benchmark's pure helpers: generated bodies, percentiles and targets."""

from __future__ import annotations

import json

import pytest

from bench.bench_proxy import (
    _PROBE_BODIES,
    Result,
    _document,
    _median_results,
    _percentiles,
    _ratios,
    _verdicts,
)


def _result(
    target: str, rps: float, body: str = "1kb", load: str = "saturation", cpu: float = 100.0
) -> Result:
    return Result(target, body, load, int(rps * 5), rps, 1.0, 1.5, 2.0, 3.0, 0, 0, cpu, 10.0)


class TestDocument:
    """``_document`` builds the JSON order the backends serve."""

    @pytest.mark.parametrize("body", sorted(_PROBE_BODIES))
    def test_exact_size_and_one_changed_price(self, body: str) -> None:
        """Both variants are valid JSON of exactly the size asked and differ in one price."""
        size = _PROBE_BODIES[body][1]
        same, changed = _document(size, changed=False), _document(size, changed=True)
        assert len(same) == len(changed) == size
        left, right = json.loads(same)["items"], json.loads(changed)["items"]
        assert len(left) == len(right)
        differing = [i for i, (a, b) in enumerate(zip(left, right, strict=True)) if a != b]
        assert len(differing) == 1
        assert right[differing[0]]["price"] == round(left[differing[0]]["price"] - 0.5, 2)
        # The bytes differ in that one number only: padding and the rest line up.
        unequal = [i for i, (a, b) in enumerate(zip(same, changed, strict=True)) if a != b]
        assert unequal[-1] - unequal[0] < 4


class TestPercentiles:
    """``_percentiles`` summarises samples under a prefix."""

    def test_values_and_empty(self) -> None:
        """p50/p99/max of the samples; None for each when there are none."""
        samples = [float(v) for v in range(100, 0, -1)]
        assert _percentiles(samples, "x_") == {
            "x_p50_ms": 51.0,
            "x_p99_ms": 100.0,
            "x_max_ms": 100.0,
        }
        assert _percentiles([], "") == {"p50_ms": None, "p99_ms": None, "max_ms": None}


class TestVerdicts:
    """The loop-lag targets count only comparisons that ran on the loop."""

    def test_inline_stalls_per_body(self) -> None:
        """A threaded-only run meets the stall target; an inline 6 ms stall does not."""
        lag = {"50kb": {"inline_compare_max_ms": 6.0}, "1mb": {"inline_compare_max_ms": None}}
        targets = _verdicts([], {"loop_lag": lag})
        assert targets["inline_compare_stall_max_ms_50kb_diff"]["met"] is False
        assert targets["inline_compare_stall_max_ms_1mb_diff"] == {
            "value": 0.0,
            "target": "<= 5.0",
            "met": True,
        }


class TestTargets:
    """The issue's targets: differing bodies at 0.8x, CPU per request at 1.2x nginx + mirror."""

    def test_differing_bodies_and_cpu(self) -> None:
        """0.8x when one field differs at 50 KB meets its target; 1.3x the CPU does not."""
        results = [
            _result("nginx-mirror", 100.0, "50kb", cpu=80.0),
            _result("shadowproxy", 100.0, "50kb", cpu=104.0),
            _result("shadowproxy-diff", 80.0, "50kb"),
        ]
        targets = _verdicts(results, {})
        assert targets["throughput_vs_nginx_mirror_50kb_diff"] == {
            "value": 0.8,
            "target": ">= 0.8",
            "met": True,
        }
        assert targets["cpu_vs_nginx_mirror_50kb"] == {
            "value": 1.3,
            "target": "<= 1.2",
            "met": False,
        }


class TestFloor:
    """Every run prints the fraction of the raw forwarder (Python's floor) shadowproxy reaches."""

    def test_fraction_of_the_floor_per_round(self) -> None:
        """Median of the per-round ratios, with the floor against nginx + mirror beside it."""
        rounds = [
            [_result("nginx-mirror", 100.0), _result("floor", 150.0), _result("shadowproxy", 60.0)],
            [_result("nginx-mirror", 100.0), _result("floor", 120.0), _result("shadowproxy", 90.0)],
            [_result("nginx-mirror", 100.0), _result("floor", 200.0), _result("shadowproxy", 80.0)],
        ]
        ratios = _ratios(rounds)
        assert ratios["shadowproxy/floor"]["1kb"] == {"median": 0.4, "rounds": [0.4, 0.75, 0.4]}
        assert ratios["floor/nginx-mirror"]["1kb"]["median"] == 1.5
        assert "shadowproxy-diff/floor-diff" not in ratios


class TestRounds:
    """With ``--rounds``, each contender reports its median round and ratios their median."""

    def test_median_round_per_contender(self) -> None:
        """Three rounds: the middle throughput is kept, whole, per target, body and load."""
        rounds = [
            [_result("nginx-mirror", 100.0), _result("shadowproxy", 60.0)],
            [_result("nginx-mirror", 140.0), _result("shadowproxy", 50.0)],
            [_result("nginx-mirror", 120.0), _result("shadowproxy", 70.0)],
        ]
        picked = {r.target: r for r in _median_results(rounds)}
        assert (picked["nginx-mirror"].rps, picked["shadowproxy"].rps) == (120.0, 60.0)
        assert picked["shadowproxy"].requests == 300

    def test_even_rounds_keep_the_lower_middle(self) -> None:
        """Two rounds: the slower one is reported, so a lucky run never sets the figure."""
        rounds = [[_result("shadowproxy", 80.0)], [_result("shadowproxy", 60.0)]]
        assert [r.rps for r in _median_results(rounds)] == [60.0]

    def test_ratio_is_the_median_of_side_by_side_ratios(self) -> None:
        """Each round's ratio pairs that round's runs; the target is their median."""
        rounds = [
            [_result("nginx-mirror", 100.0), _result("shadowproxy", 60.0)],
            [_result("nginx-mirror", 140.0), _result("shadowproxy", 49.0)],
            [_result("nginx-mirror", 120.0), _result("shadowproxy", 66.0)],
        ]
        targets = _verdicts(_median_results(rounds), {}, rounds)
        assert targets["throughput_vs_nginx_mirror_1kb"] == {
            "value": 0.55,
            "target": ">= 1.0",
            "met": False,
            "rounds": [0.6, 0.35, 0.55],
        }

    def test_one_round_has_no_rounds_list(self) -> None:
        """A single run reports its ratio as before, without a ``rounds`` list."""
        results = [_result("nginx-mirror", 100.0), _result("shadowproxy", 120.0)]
        assert _verdicts(results, {})["throughput_vs_nginx_mirror_1kb"] == {
            "value": 1.2,
            "target": ">= 1.0",
            "met": True,
        }

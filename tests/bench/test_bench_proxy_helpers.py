"""The side-by-side benchmark's pure helpers: generated bodies, percentiles and targets."""

from __future__ import annotations

import json

import pytest

from bench.bench_proxy import _PROBE_BODIES, _document, _percentiles, _verdicts


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
        assert right[differing[0]]["price"] == 0.5


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

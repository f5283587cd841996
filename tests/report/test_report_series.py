"""The chart series: they span the evidence present, day by day over the window, bounded."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from shadowproxy.report.parallel import aggregate_files
from shadowproxy.report.series import DAY_S, MAX_POINTS, ChartSeries
from shadowproxy.report.windows import Windows
from tests.report.report_factories import UNTIL, rollup, write_jsonl

END = UNTIL.timestamp()
_ONE = (10, 9, 1, 1, 0, 0, 0, 0)
"""COUNTED values of one rollup: 10 compared, 1 structural divergence."""


class TestActivity:
    def test_spans_the_evidence_not_the_window(self, tmp_path: Path) -> None:
        """Evidence in the last seconds of a 14-day window gives a series over those seconds."""
        evidence = write_jsonl(
            tmp_path / "e.jsonl",
            [
                rollup(ago=timedelta(seconds=90), match=10),
                rollup(ago=timedelta(seconds=80), match=5, structural=5),
            ],
        )
        windows = Windows(END, END - 14 * DAY_S)
        domain = aggregate_files([evidence], windows).evidence().domains[0]
        first, last = domain.activity[0], domain.activity[-1]
        assert first.start == END - 90
        assert last.end == END - 80 + 60
        assert sum(p.counts.compared for p in domain.activity) == 20
        assert sum(p.counts.structural for p in domain.activity) == 5
        assert len(domain.days) == 14
        assert domain.days[-1].counts.compared == 20
        assert [d.counts.compared for d in domain.days[:-1]] == [0] * 13

    def test_bounded_and_merged_exactly(self) -> None:
        """Fourteen days of minute rollups fit MAX_POINTS buckets, and merging workers' series
        (one saw minutes, at a fine resolution, the other days) equals one pass, either way."""
        whole = ChartSeries(END)
        parts = [ChartSeries(END), ChartSeries(END), ChartSeries(END), ChartSeries(END)]
        for minute in range(14 * 24 * 60):
            start = END - 14 * DAY_S + minute * 60
            whole.add("d", _ONE, start, start + 60)
            few = minute < 30
            parts[0 if few else 1].add("d", _ONE, start, start + 60)
            parts[3 if few else 2].add("d", _ONE, start, start + 60)
        parts[0].merge(parts[1])
        parts[2].merge(parts[3])
        points = whole.activity("d")
        assert MAX_POINTS // 2 < len(points) <= MAX_POINTS
        assert parts[0].activity("d") == points
        assert parts[2].activity("d") == points
        since = END - 14 * DAY_S
        assert parts[0].days("d", since) == parts[2].days("d", since) == whole.days("d", since)
        assert sum(p.counts.compared for p in points) == 10 * 14 * 24 * 60
        assert points[0].start == since
        assert points[-1].end == END
        assert [p.start for p in points] == sorted({p.start for p in points})

    def test_days_cover_the_window_oldest_first(self) -> None:
        """A 36-hour window has two days, the oldest 12 hours long; a rollup lands on its day."""
        series = ChartSeries(END)
        series.add("d", _ONE, END - 30 * 3600, END - 30 * 3600 + 60)
        days = series.days("d", END - 36 * 3600)
        assert [(d.start, d.end) for d in days] == [
            (END - 36 * 3600, END - DAY_S),
            (END - DAY_S, END),
        ]
        assert [d.counts.compared for d in days] == [10, 0]

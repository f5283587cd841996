"""Aggregation of evidence records: counts, fingerprints, windows, sources."""

from __future__ import annotations

import gzip
from datetime import timedelta
from pathlib import Path

import pytest

from shadowproxy.report.aggregate import Aggregator
from shadowproxy.report.errors import ReportInputError
from shadowproxy.report.records import RollupRecord
from shadowproxy.report.sources import expand_paths, iter_lines
from shadowproxy.report.stats import Rate, wilson_upper
from shadowproxy.report.summary import COUNTED, Findings
from shadowproxy.report.timeparse import format_instant, parse_duration, parse_instant
from shadowproxy.report.windows import Windows
from tests.report.report_factories import UNTIL, difference, exchange, rollup, write_jsonl

END = UNTIL.timestamp()
DAY = 86400.0


def aggregate(*files: Path, since: float = END - 14 * DAY, cap: int = 10_000) -> Findings:
    aggregator = Aggregator(Windows(END, since), max_fingerprints=cap)
    for path in files:
        aggregator.feed(iter_lines(path))
    return aggregator.evidence()


class TestAggregator:
    def test_sums_rollups_across_shards(self, tmp_path: Path) -> None:
        """Counters and skip reasons of every shard's rollups add up per route and domain."""
        a = write_jsonl(
            tmp_path / "a.jsonl",
            [
                rollup(match=100, semantic=3, noise=2, errors=1, skipped={"sampled_out": 5}),
                rollup("/orders", match=10),
            ],
        )
        b = write_jsonl(
            tmp_path / "b.jsonl",
            [
                rollup(match=50, structural=2, semantic=1, skipped={"sampled_out": 1, "method": 2}),
            ],
        )
        evidence = aggregate(a, b)
        route = next(r for r in evidence.routes if r.route == "/orders/{id}")
        assert (route.counts.compared, route.counts.match, route.counts.diverged) == (158, 150, 5)
        assert (route.counts.structural, route.counts.semantic, route.counts.noise) == (2, 4, 2)
        assert route.counts.errors == 1
        assert dict(route.counts.skipped) == {"sampled_out": 6, "method": 2}
        (domain,) = evidence.domains
        assert domain.counts.compared == 168
        assert domain.counts.skipped_total == 8

    def test_merges_latency_histograms(self, tmp_path: Path) -> None:
        """Quantiles come from the merged histograms of every rollup."""
        path = write_jsonl(
            tmp_path / "a.jsonl",
            [
                rollup(match=1, legacy_ms=[1.0] * 98, candidate_ms=[2.0] * 98),
                rollup(match=1, legacy_ms=[100.0] * 2, candidate_ms=[400.0] * 2),
            ],
        )
        latency = aggregate(path).routes[0].latency
        assert latency.legacy.p50 == pytest.approx(1.0, rel=0.1)
        assert latency.legacy.p99 == pytest.approx(100.0, rel=0.1)
        assert latency.candidate.p99 == pytest.approx(400.0, rel=0.1)
        assert latency.p99_ratio == pytest.approx(4.0, rel=0.1)

    def test_counts_fingerprints_with_first_last_and_example(self, tmp_path: Path) -> None:
        """Non-noise differences group by (route, class, kind, path) with time bounds."""
        path = write_jsonl(
            tmp_path / "a.jsonl",
            [
                exchange(ago=timedelta(hours=2), differences=[difference(legacy=1, candidate=2)]),
                exchange(
                    ago=timedelta(hours=5),
                    differences=[difference(legacy="x" * 500)],
                    path="/orders/7",
                ),
                exchange(
                    ago=timedelta(hours=1),
                    differences=[difference(), difference("structural", "missing", "$.id")],
                ),
            ],
        )
        evidence = aggregate(path)
        top = evidence.fingerprints[0]
        assert (top.key, top.count) == ("/orders/{id}|semantic|value|$.total", 3)
        assert format_instant(top.first_seen) == "2026-11-23T07:00:00.000Z"
        assert format_instant(top.last_seen) == "2026-11-23T11:00:00.000Z"
        assert top.example.startswith('GET /orders/7: "xxx')
        assert len(top.example) == 160
        assert evidence.fingerprints[1].cls == "structural"

    def test_noise_is_kept_apart_from_fingerprints(self, tmp_path: Path) -> None:
        """Noise differences feed noise paths (indices generalised), never fingerprints."""
        path = write_jsonl(
            tmp_path / "a.jsonl",
            [
                exchange(differences=[difference(path="$.items[3].at", noise=True)]),
                exchange(
                    differences=[
                        difference(path="$.items[12].at", noise=True),
                        difference(path="date", noise=True),
                    ]
                ),
            ],
        )
        evidence = aggregate(path)
        assert evidence.fingerprints == ()
        assert [(p.path, p.count) for p in evidence.noise_paths] == [("$.items[*].at", 2)]

    def test_fingerprint_cap_counts_overflow(self, tmp_path: Path) -> None:
        """Beyond the cap new fingerprints are counted as overflow, semantic ones per domain."""
        path = write_jsonl(
            tmp_path / "a.jsonl",
            [exchange(differences=[difference(path=f"$.f{i}")]) for i in range(5)],
        )
        evidence = aggregate(path, cap=2)
        assert len(evidence.fingerprints) == 2
        assert evidence.inputs.fingerprints_overflow == 3
        assert evidence.semantic_overflow == {"orders": 3}

    def test_malformed_lines_are_counted_not_fatal(self, tmp_path: Path) -> None:
        """Broken JSON, non-objects and records missing keys are counted; the rest is read."""
        bad_rollup = rollup(match=5)
        del bad_rollup["route"]
        bad_buckets = rollup(match=9)
        bad_buckets["latency"]["legacy"]["buckets"] = {"999": 1}
        path = write_jsonl(
            tmp_path / "a.jsonl",
            [
                b"{not json",
                b"[1, 2]",
                b"",
                bad_rollup,
                rollup(match=7),
                {**rollup(), "match": -1},
                bad_buckets,
            ],
        )
        evidence = aggregate(path)
        assert evidence.inputs.malformed_lines == 5
        assert evidence.inputs.records == 1
        assert evidence.routes[0].counts.match == 7
        assert "5 malformed lines skipped" in evidence.notes

    def test_typed_rollups_carry_every_counter(self) -> None:
        """The typed rollup declares each counter the report sums, so none reads as absent."""
        assert set(COUNTED) <= set(RollupRecord.__struct_fields__)

    def test_malformed_exchanges_count_nothing(self, tmp_path: Path) -> None:
        """An exchange with a wrongly typed field is malformed as a whole: none of it counts."""
        no_route = exchange(differences=[difference()])
        del no_route["route"]
        path = write_jsonl(
            tmp_path / "a.jsonl",
            [
                no_route,
                {**exchange(differences=[difference()]), "route": 7},
                {**exchange(differences=[difference()]), "ts": 1700000000},
                {**exchange(), "differences": {"class": "semantic"}},
                {**exchange(), "differences": [difference(), {**difference(), "class": 3}]},
                {**exchange(), "differences": [{"kind": "value", "path": "$.a"}]},
                exchange(differences=[difference(path="$.ok")]),
            ],
        )
        evidence = aggregate(path)
        assert evidence.inputs.malformed_lines == 6
        assert [fp.path for fp in evidence.fingerprints] == ["$.ok"]

    def test_exchange_fields_read_as_loosely_as_written(self, tmp_path: Path) -> None:
        """Truthy noise flags, absent values and integers beyond 64 bits are all read."""
        path = write_jsonl(
            tmp_path / "a.jsonl",
            [
                {**exchange(), "differences": [{**difference(path="$.n"), "noise": 1}]},
                {
                    **exchange(),
                    "differences": [{"class": "semantic", "kind": "value", "path": "$.x"}],
                },
                b'{"type":"exchange","route":"/r","domain":"d","ts":"2026-11-23T11:00:00.000Z",'
                b'"differences":[{"class":"semantic","kind":"value","path":"$.big",'
                b'"legacy":123456789012345678901234567890,"candidate":1}]}',
            ],
        )
        evidence = aggregate(path)
        assert evidence.inputs.malformed_lines == 0
        assert [p.path for p in evidence.noise_paths] == ["$.n"]
        examples = {fp.path: fp.example for fp in evidence.fingerprints}
        assert examples["$.x"].endswith(": null -> null")
        assert examples["$.big"] == "? ?: 123456789012345678901234567890 -> 1"

    def test_unknown_types_count_nothing(self, tmp_path: Path) -> None:
        """Records of an unknown type are read, counted as such and otherwise ignored."""
        path = write_jsonl(
            tmp_path / "a.jsonl", [{"v": 1, "type": "future", "route": "/x"}, rollup(match=3)]
        )
        evidence = aggregate(path)
        assert evidence.inputs.unknown_types == 1
        assert [r.route for r in evidence.routes] == ["/orders/{id}"]

    def test_window_filters_by_record_time(self, tmp_path: Path) -> None:
        """Only records with time in [since, until) count; the rest are tallied outside."""
        path = write_jsonl(
            tmp_path / "a.jsonl",
            [
                rollup(match=1, ago=timedelta(days=3)),
                rollup(match=10, ago=timedelta(hours=3)),
                rollup(match=100, ago=timedelta(hours=-1)),
                exchange(ago=timedelta(days=3), differences=[difference()]),
            ],
        )
        evidence = aggregate(path, since=END - DAY)
        assert evidence.routes[0].counts.match == 10
        assert evidence.inputs.outside_window == 3
        assert evidence.fingerprints == ()

    def test_first_in_window_record_after_an_outside_one(self, tmp_path: Path) -> None:
        """An exchange outside the window does not spoil the next one inside it."""
        path = write_jsonl(
            tmp_path / "a.jsonl",
            [
                exchange(ago=timedelta(days=30), differences=[difference()]),
                exchange(ago=timedelta(hours=1), differences=[difference()]),
            ],
        )
        evidence = aggregate(path)
        assert evidence.inputs.malformed_lines == 0
        assert [f.count for f in evidence.fingerprints] == [1]

    def test_last_structural_from_exchanges_and_rollups(self, tmp_path: Path) -> None:
        """The latest structural divergence, from an exchange ts or a rollup's ts_end."""
        path = write_jsonl(
            tmp_path / "a.jsonl",
            [
                exchange(ago=timedelta(hours=30), differences=[difference("structural")]),
                rollup(match=1, structural=1, ago=timedelta(hours=20)),
                rollup(match=5, ago=timedelta(hours=2)),
            ],
        )
        (domain,) = aggregate(path).domains
        assert format_instant(domain.last_structural) == "2026-11-22T16:01:00.000Z"

    def test_sampled_matches_are_records_that_count_nothing(self, tmp_path: Path) -> None:
        """A sampled match exchange is a record but adds no route, fingerprint or noise."""
        path = write_jsonl(tmp_path / "a.jsonl", [exchange(verdict="match"), rollup(match=1)])
        evidence = aggregate(path)
        assert evidence.inputs.records == 2
        assert evidence.fingerprints == ()

    def test_ownership_history(self, tmp_path: Path) -> None:
        """Ownership records become a time-ordered mode history."""
        record = {
            "v": 1,
            "type": "ownership",
            "route": "/orders/{id}",
            "from": "shadow",
            "to": "candidate",
            "percent": 5,
            "reason": "canary",
            "source": "admin",
        }
        path = write_jsonl(
            tmp_path / "a.jsonl",
            [
                {**record, "ts": "2026-11-23T10:00:00.000Z", "percent": 50},
                {**record, "ts": "2026-11-22T10:00:00.000Z"},
            ],
        )
        history = aggregate(path).ownership
        assert [(c.percent, c.to_mode) for c in history] == [
            (5.0, "candidate"),
            (50.0, "candidate"),
        ]

    def test_timeline_buckets_divergence(self, tmp_path: Path) -> None:
        """Each domain's timeline sums compared and diverged into fixed time buckets."""
        path = write_jsonl(
            tmp_path / "a.jsonl",
            [
                rollup(match=90, semantic=10, ago=timedelta(hours=1)),
                rollup(match=100, ago=timedelta(days=13)),
            ],
        )
        timeline = aggregate(path).domains[0].timeline
        assert len(timeline) == 60
        assert sum(p.compared for p in timeline) == 200
        assert (timeline[-1].compared, timeline[-1].diverged) == (100, 10)


class TestSources:
    def test_directories_include_rotated_and_gzip(self, tmp_path: Path) -> None:
        """A directory yields .jsonl, rotated .jsonl.N and .gz files, nothing else."""
        write_jsonl(tmp_path / "p1" / "shadow-a-1.jsonl", [rollup(match=1)])
        write_jsonl(tmp_path / "p1" / "shadow-a-1.jsonl.1", [rollup(match=2)])
        write_jsonl(tmp_path / "p2" / "shadow-b-2.jsonl.2.gz", [rollup(match=4)], gz=True)
        (tmp_path / "p1" / "notes.txt").write_text("ignore me")
        files = expand_paths([str(tmp_path)])
        assert sorted(f.name for f in files) == [
            "shadow-a-1.jsonl",
            "shadow-a-1.jsonl.1",
            "shadow-b-2.jsonl.2.gz",
        ]
        assert aggregate(*files).routes[0].counts.match == 7

    def test_globs_and_duplicates(self, tmp_path: Path) -> None:
        """Globs expand, and a file named twice is read once."""
        one = write_jsonl(tmp_path / "shadow-1.jsonl", [rollup(match=1)])
        write_jsonl(tmp_path / "shadow-2.jsonl.gz", [rollup(match=1)], gz=True)
        files = expand_paths([str(tmp_path / "shadow-*"), str(one)])
        assert len(files) == 2

    def test_missing_path_and_empty_glob_are_input_errors(self, tmp_path: Path) -> None:
        """A missing file or a glob matching nothing names the argument."""
        with pytest.raises(ReportInputError, match="no such file"):
            expand_paths([str(tmp_path / "absent.jsonl")])
        with pytest.raises(ReportInputError, match="no file matches"):
            expand_paths([str(tmp_path / "*.jsonl")])

    def test_truncated_gzip_counts_as_malformed(self, tmp_path: Path) -> None:
        """A gzip file cut short yields its readable lines and one malformed marker."""
        data = gzip.compress(b"".join(b'{"v":1,"type":"future","n":%d}\n' % i for i in range(2000)))
        path = tmp_path / "cut.jsonl.gz"
        path.write_bytes(data[: len(data) // 2])
        evidence = aggregate(path)
        assert evidence.inputs.malformed_lines >= 1
        assert 0 < evidence.inputs.unknown_types < 2000


class TestWilson:
    def test_small_and_large_samples_differ(self) -> None:
        """0 of 40 has a far higher upper bound than 0 of 4 million."""
        assert wilson_upper(0, 40) == pytest.approx(0.0876, abs=1e-4)
        assert wilson_upper(0, 4_000_000) == pytest.approx(9.6e-7, rel=0.01)

    def test_known_value_and_empty(self) -> None:
        """10 of 100 gives the textbook bound; no denominator gives 1."""
        assert wilson_upper(10, 100) == pytest.approx(0.1744, abs=1e-4)
        assert Rate(0, 0).value is None
        assert Rate(0, 0).upper95 == 1.0


class TestTimeparse:
    def test_relative_and_absolute(self) -> None:
        """``14d``/``36h`` count back from now; RFC 3339 with Z or offset is absolute."""
        assert parse_duration("36h") == 36 * 3600
        assert parse_instant("14d", now=END) == END - 14 * DAY
        assert parse_instant("2026-11-23T13:00:00+01:00", now=0) == END
        assert format_instant(END) == "2026-11-23T12:00:00.000Z"

    def test_rejects_nonsense(self) -> None:
        """Anything else is a ValueError naming the text."""
        with pytest.raises(ValueError, match="yesterday"):
            parse_instant("yesterday", now=END)

"""Retention: rollups in files of their own, kept for the gate window; exchange records go first."""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable
from pathlib import Path

import orjson

from shadowproxy.model import Outcome
from shadowproxy.settings import EvidenceSettings
from shadowproxy.sinks import Evidence, Metrics, configure_logging
from shadowproxy.sinks.writer import JsonlWriter, Stream
from tests.sinks.sinks_factories import (
    FakeClock,
    make_exchange,
    make_verdict,
    of_type,
    read_records,
    wait_until,
)

MakeEvidence = Callable[..., Evidence]
PAD = "p" * 60
DAY_S = 86_400.0


def rollup(i: int) -> dict[str, object]:
    """A small stand-in rollup (about 100 bytes as JSON)."""
    return {"v": 1, "type": "rollup", "seq": i, "pad": PAD}


def exchange(i: int) -> dict[str, object]:
    """A small stand-in exchange record."""
    return {"v": 1, "type": "exchange", "seq": i, "pad": PAD}


def sample(metrics: Metrics, name: str, reason: str) -> float:
    """A counter by reason (0 when absent)."""
    return metrics.registry.get_sample_value(name, {"reason": reason}) or 0.0


def make_writer(log_dir: Path, metrics: Metrics, **limits: float) -> JsonlWriter:
    """A writer of worker ``w1`` with ``limits`` overriding the defaults."""
    return JsonlWriter(EvidenceSettings(log_dir=str(log_dir), **limits), "w1", metrics)  # type: ignore[arg-type]


def lines(path: Path) -> list[dict[str, object]]:
    """The records of one file."""
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line]


class TestOwnFiles:
    def test_rollups_and_other_records_have_their_own_file(
        self, make_evidence: MakeEvidence, clock: FakeClock, tmp_path: Path
    ) -> None:
        """Exchanges go to ``shadow-<w>.jsonl``; rollups and ownership to ``.rollups.jsonl``."""
        ev = make_evidence(rollup_interval_s=60.0)
        ev.on_verdict(make_exchange("e1"), make_verdict(Outcome.DIVERGED))
        ev.write_record({"type": "ownership", "route": "/a"})
        clock.now += 61
        ev.tick()
        assert ev.close(5.0)
        logs = tmp_path / "logs"
        assert sorted(p.name for p in logs.iterdir()) == [
            "shadow-test-1.jsonl",
            "shadow-test-1.rollups.jsonl",
        ]
        assert {r["type"] for r in lines(logs / "shadow-test-1.jsonl")} == {"exchange"}
        assert {r["type"] for r in lines(logs / "shadow-test-1.rollups.jsonl")} == {
            "rollup",
            "ownership",
        }


class TestDiskCap:
    def test_young_rollups_are_never_deleted(self, tmp_path: Path, metrics: Metrics) -> None:
        """Over the cap, rotated exchange files go; rotated rollup files of the window stay."""
        w = make_writer(tmp_path, metrics, rotate_bytes=1000, keep_files=2, max_total_bytes=9000)
        w.start()
        for i in range(60):
            w.submit(rollup(i), Stream.ROLLUPS)
        for i in range(200):
            w.submit(exchange(i), Stream.EXCHANGES, ("/r", "d"))
        assert w.close(5.0)
        rollups = of_type(read_records(tmp_path), "rollup")
        assert sorted(int(r["seq"]) for r in rollups) == list(range(60))  # type: ignore[call-overload]
        assert len(list(tmp_path.glob("shadow-w1.rollups.jsonl.*"))) > 2  # beyond keep_files
        assert sample(metrics, "shadowproxy_rollups_dropped_total", "disk_cap") == 0
        exchanges = [int(r["seq"]) for r in of_type(read_records(tmp_path), "exchange")]  # type: ignore[call-overload]
        assert len(exchanges) < 200 and max(exchanges) == 199
        assert sum(p.stat().st_size for p in tmp_path.iterdir()) <= 9000

    def test_rollups_older_than_the_window_make_room(
        self, tmp_path: Path, metrics: Metrics
    ) -> None:
        """A rotated rollup file older than ``keep_rollups_days`` is deleted when room is needed."""
        old = tmp_path / "shadow-w0.rollups.jsonl.1"
        old.write_bytes(b"x" * 3000)
        stale = time.time() - 17 * DAY_S
        os.utime(old, (stale, stale))
        young = tmp_path / "shadow-w9.rollups.jsonl.1"
        young.write_bytes(b"y" * 500)
        w = make_writer(tmp_path, metrics, max_total_bytes=4000)
        w.start()
        for i in range(20):
            w.submit(rollup(i), Stream.ROLLUPS)
        assert w.close(5.0)
        assert not old.exists() and young.exists()
        assert len(lines(tmp_path / "shadow-w1.rollups.jsonl")) == 20

    def test_exchange_records_go_first(self, tmp_path: Path, metrics: Metrics) -> None:
        """When rollups need the room, this worker's own exchange file is given up for them."""
        w = make_writer(tmp_path, metrics, max_total_bytes=3000)
        w.start()
        for i in range(25):
            w.submit(exchange(i), Stream.EXCHANGES, ("/r", "d"))
        wait_until(lambda: w.stats()["records_written"] == 25, "exchange records written")
        for i in range(25):
            w.submit(rollup(i), Stream.ROLLUPS)
        assert w.close(5.0)
        assert [r["seq"] for r in of_type(read_records(tmp_path), "rollup")] == list(range(25))
        assert sample(metrics, "shadowproxy_rollups_dropped_total", "disk_cap") == 0
        assert not of_type(read_records(tmp_path), "exchange")

    def test_a_window_that_cannot_be_kept_is_loud(self, tmp_path: Path, metrics: Metrics) -> None:
        """Rollups that do not fit are counted in their own metric and logged as an error."""
        (tmp_path / "shadow-w0.rollups.jsonl.1").write_bytes(b"x" * 1900)
        out = io.StringIO()
        configure_logging(json=True, stream=out)
        try:
            w = make_writer(tmp_path, metrics, max_total_bytes=2000)
            w.start()
            for i in range(10):
                w.submit(rollup(i), Stream.ROLLUPS)
            assert w.close(5.0)
        finally:
            configure_logging()
        assert (tmp_path / "shadow-w0.rollups.jsonl.1").stat().st_size == 1900
        lost = sample(metrics, "shadowproxy_rollups_dropped_total", "disk_cap")
        assert lost >= 9 and w.stats()["rollups_dropped"] == lost
        events = [orjson.loads(line) for line in out.getvalue().splitlines()]
        loud = [e for e in events if e["event"] == "evidence_window_not_kept"]
        assert loud and loud[0]["level"] == "error" and loud[0]["reason"] == "disk_cap"
        # Bounded: the first loss and each power of two, not one line per record.
        assert len(loud) <= 5


class TestQueues:
    def test_a_full_exchange_queue_leaves_room_for_rollups(
        self, tmp_path: Path, metrics: Metrics
    ) -> None:
        """Each stream has its own bound: exchange records dropped at it, rollups still queued."""
        w = make_writer(tmp_path, metrics, queue_size=3)
        assert [w.submit(exchange(i), route=("/r", "d")) for i in range(5)] == [True] * 3 + [
            False
        ] * 2
        assert w.submit(rollup(1), Stream.ROLLUPS)
        assert sample(metrics, "shadowproxy_rollups_dropped_total", "queue_full") == 0
        assert w.take_route_drops() == {("/r", "d"): {"queue_full": 2}}
        assert w.take_route_drops() == {}
        assert w.close(5.0)


class TestDropsInRollups:
    def test_exchange_drops_are_counted_in_the_routes_rollup(
        self, make_evidence: MakeEvidence, clock: FakeClock, tmp_path: Path
    ) -> None:
        """Exchange records dropped by the writer show in the next rollup of their route."""
        ev = make_evidence(queue_size=2, rollup_interval_s=60.0)
        for i in range(5):
            ev.on_verdict(make_exchange(f"e{i}"), make_verdict(Outcome.DIVERGED))
        clock.now += 61
        ev.tick()
        assert ev.close(5.0)
        (record,) = of_type(read_records(tmp_path / "logs"), "rollup")
        assert record["diverged"] == 5
        assert record["exchanges_dropped"] == {"queue_full": 3}

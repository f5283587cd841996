"""The Evidence facade: hooks, rollups, guards, close, and secrets kept out of every output."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import structlog

from shadowproxy.model import DiffClass, Difference, ErrorKind, Observation, Outcome, SkipReason
from shadowproxy.settings import RedactSettings
from shadowproxy.sinks import Evidence, Metrics, configure_logging, render_metrics
from shadowproxy.sinks.writer import JsonlWriter
from tests.sinks.sinks_factories import (
    FakeClock,
    all_bytes,
    make_exchange,
    make_verdict,
    of_type,
    read_records,
)

MakeEvidence = Callable[..., Evidence]


class TestHooks:
    def test_request_upstream_skip_and_inflight_metrics(
        self, make_evidence: MakeEvidence, metrics: Metrics
    ) -> None:
        """Client-facing hooks update their metrics with bounded labels."""
        ev = make_evidence()
        ev.on_request("/a", "get", 200)
        ev.on_request("/a", "BREW", None)
        ev.on_upstream("candidate", "/a", Observation.failed(ErrorKind.REFUSED, 0.01))
        ev.on_skip("/a", "orders", SkipReason.METHOD)
        ev.set_inflight(4)
        get = metrics.registry.get_sample_value
        assert (
            get("shadowproxy_requests_total", {"route": "/a", "method": "GET", "code_class": "2xx"})
            == 1
        )
        assert (
            get(
                "shadowproxy_requests_total",
                {"route": "/a", "method": "OTHER", "code_class": "error"},
            )
            == 1
        )
        assert (
            get("shadowproxy_upstream_errors_total", {"upstream": "candidate", "reason": "refused"})
            == 1
        )
        assert get("shadowproxy_shadow_skipped_total", {"reason": "method"}) == 1
        assert get("shadowproxy_shadow_inflight") == 4

    def test_verdicts_count_and_record(
        self, make_evidence: MakeEvidence, metrics: Metrics, tmp_path: Path
    ) -> None:
        """A diverged verdict is counted and recorded; an unsampled match only counted."""
        ev = make_evidence()
        ev.on_verdict(make_exchange("e1"), make_verdict(Outcome.DIVERGED))
        ev.on_verdict(make_exchange("e2"), make_verdict(Outcome.MATCH))
        assert ev.close(5.0)
        get = metrics.registry.get_sample_value
        labels = {"route": "/orders/{id}", "domain": "orders"}
        assert get("shadowproxy_comparisons_total", {**labels, "verdict": "diverged"}) == 1
        assert get("shadowproxy_comparisons_total", {**labels, "verdict": "match"}) == 1
        assert get("shadowproxy_divergences_total", {**labels, "class": "semantic"}) == 1
        exchanges = of_type(read_records(tmp_path / "logs"), "exchange")
        assert [r["id"] for r in exchanges] == ["e1"]

    def test_sampled_matches_are_recorded(
        self, make_evidence: MakeEvidence, tmp_path: Path
    ) -> None:
        """``sample_matches_percent=100`` records matching exchanges too."""
        ev = make_evidence(sample_matches_percent=100.0)
        ev.on_verdict(make_exchange("m1"), make_verdict(Outcome.MATCH))
        assert ev.close(5.0)
        assert [r["verdict"] for r in of_type(read_records(tmp_path / "logs"), "exchange")] == [
            "match"
        ]

    def test_write_record_adds_version_and_timestamp(
        self, make_evidence: MakeEvidence, tmp_path: Path
    ) -> None:
        """Generic records get ``v`` and ``ts``; a record without a type is refused and counted."""
        ev = make_evidence()
        ev.write_record({"type": "ownership", "route": "/a", "owner": "legacy"})
        ev.write_record({"route": "/a"})
        assert ev.close(5.0)
        (record,) = read_records(tmp_path / "logs")
        assert record == {
            "type": "ownership",
            "route": "/a",
            "owner": "legacy",
            "v": 1,
            "ts": "2026-11-23T13:40:00.000Z",
        }
        assert ev.stats()["hook_errors"] == {"write_record": 1}


class TestRollups:
    def test_tick_emits_due_rollups_per_route(
        self, make_evidence: MakeEvidence, clock: FakeClock, tmp_path: Path
    ) -> None:
        """Rollups appear once the interval ends, one per active route, and again at close."""
        ev = make_evidence(rollup_interval_s=60.0)
        ev.on_verdict(make_exchange(route="/a", domain="d"), make_verdict(Outcome.MATCH))
        ev.on_skip("/b", "d", SkipReason.SAMPLED_OUT)
        clock.now += 30
        ev.tick()
        clock.now += 30
        ev.tick()
        ev.on_verdict(make_exchange(route="/a", domain="d"), make_verdict(Outcome.DIVERGED))
        clock.now += 5
        assert ev.close(5.0)
        rollups = of_type(read_records(tmp_path / "logs"), "rollup")
        assert [(r["route"], r["compared"], r["skipped"]) for r in rollups] == [
            ("/a", 1, {}),
            ("/b", 0, {"sampled_out": 1}),
            ("/a", 1, {}),
        ]
        assert rollups[0]["ts_end"] == rollups[2]["ts_start"] == "2026-11-23T13:41:00.000Z"
        assert rollups[2]["ts_end"] == "2026-11-23T13:41:05.000Z"
        assert rollups[2]["diverged"] == 1 and rollups[2]["semantic"] == 1


class TestGuards:
    def test_a_failing_hook_is_counted_not_raised(
        self, make_evidence: MakeEvidence, metrics: Metrics, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """An exception inside a hook never escapes; it is counted per hook."""
        ev = make_evidence()

        def explode(*args: object) -> None:
            raise RuntimeError("broken sink")

        monkeypatch.setattr(metrics.upstream_errors, "labels", explode)
        monkeypatch.setattr(JsonlWriter, "submit", explode)
        ev.on_upstream("legacy", "/a", Observation.failed(ErrorKind.TIMEOUT, 5.0))
        ev.on_verdict(make_exchange(), make_verdict(Outcome.DIVERGED))
        assert (
            metrics.registry.get_sample_value(
                "shadowproxy_evidence_errors_total", {"hook": "on_upstream"}
            )
            == 1
        )
        assert ev.stats()["hook_errors"] == {"on_upstream": 1, "on_verdict": 1}

    def test_stats_report_writer_state(self, make_evidence: MakeEvidence) -> None:
        """stats() names the file and counts written and dropped records."""
        ev = make_evidence()
        ev.on_verdict(make_exchange(), make_verdict())
        assert ev.close(5.0)
        stats = ev.stats()
        assert stats["records_written"] == 2  # the exchange and the final rollup
        assert str(stats["file"]).endswith("shadow-test-1.jsonl")
        assert stats["queue_depth"] == 0 and "queue_full" not in stats["dropped"]  # type: ignore[operator]


CANARIES = ("CANARY-hdr-1", "CANARY-ck-2", "CANARY-q-3", "CANARY-body-4", "CANARY-sub-5")


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """Logging configured to a captured stream, restored afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    out = io.StringIO()
    configure_logging(stream=out, level="debug")
    yield out
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


class TestCanaries:
    def test_planted_secrets_never_reach_any_output(
        self,
        make_evidence: MakeEvidence,
        metrics: Metrics,
        tmp_path: Path,
        log_stream: io.StringIO,
    ) -> None:
        """Secrets in headers, cookies, query and body paths reach no file, metric or log."""
        ev = make_evidence(
            RedactSettings(body_paths=("$.card.cvv", "$..password")),
            include_query=True,
            sample_matches_percent=100.0,
        )
        exchange = make_exchange(query="page=1&access_token=CANARY-q-3")
        verdict = make_verdict(
            Outcome.DIVERGED,
            Difference(DiffClass.SEMANTIC, "value", "authorization", "Bearer CANARY-hdr-1", "x"),
            Difference(DiffClass.SEMANTIC, "value", "set-cookie", "sid=CANARY-ck-2", None),
            Difference(DiffClass.SEMANTIC, "value", "$.card.cvv", "CANARY-body-4", "000"),
            Difference(
                DiffClass.STRUCTURAL,
                "missing",
                "$.user",
                {"name": "ann", "password": "CANARY-sub-5"},
                None,
            ),
        )
        ev.on_verdict(exchange, verdict)
        ev.write_record({"type": "ownership", "authorization": "Bearer CANARY-hdr-1"})
        structlog.get_logger("t").warning(
            "upstream", cookie="sid=CANARY-ck-2", url="/p?token=CANARY-q-3"
        )
        assert ev.close(5.0)
        outputs = {
            "jsonl": all_bytes(tmp_path / "logs"),
            "metrics": render_metrics(metrics.registry)[0],
            "logs": log_stream.getvalue().encode(),
        }
        for name, data in outputs.items():
            for canary in CANARIES:
                assert canary.encode() not in data, f"{canary} leaked into {name}"
        (record,) = of_type(read_records(tmp_path / "logs"), "exchange")
        assert record["path"] == "/orders/42?page=1&access_token=[REDACTED]"
        assert record["differences"][3]["legacy"] == {"name": "ann", "password": "[REDACTED]"}  # type: ignore[index]

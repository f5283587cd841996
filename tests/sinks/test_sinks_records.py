"""The exchange record layout, validated against the JSON Schema."""

from __future__ import annotations

import json
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from shadowproxy.model import (
    SHADOW_PHASE,
    DiffClass,
    Difference,
    ErrorKind,
    Observation,
    Outcome,
    Phase,
    StreamEvent,
    StreamKind,
    StreamWindow,
    WindowEnd,
)
from shadowproxy.settings import EvidenceSettings, RedactSettings
from shadowproxy.sinks.records import exchange_record, sampled, wanted
from shadowproxy.sinks.redact import REDACTED, Redactor
from shadowproxy.sinks.rollup import RouteTally
from shadowproxy.timestamps import rfc3339
from tests.sinks.sinks_factories import T0, make_exchange, make_observation, make_verdict


def schema(name: str) -> dict[str, Any]:
    """A packaged JSON Schema."""
    text = resources.files("shadowproxy").joinpath("schemas", f"{name}.schema.json").read_text()
    loaded: dict[str, Any] = json.loads(text)
    jsonschema.Draft202012Validator.check_schema(loaded)
    return loaded


def validate(record: dict[str, object], name: str) -> None:
    """Fail unless ``record`` conforms to schema ``name``."""
    jsonschema.Draft202012Validator(schema(name)).validate(record)


def build(**evidence: Any) -> dict[str, object]:
    """The record of a default diverged exchange under ``evidence`` settings."""
    return exchange_record(
        make_exchange(),
        make_verdict(),
        Redactor(RedactSettings()),
        EvidenceSettings(log_dir=str(Path("unused")), **evidence),
    )


def _stream(events: int, ended: WindowEnd) -> Observation:
    window = StreamWindow(
        StreamKind.SSE,
        tuple(StreamEvent("tick", b"{}", str(n), n / 100) for n in range(events)),
        ended,
        closed_s=0.5,
        size=40,
    )
    return Observation(status=200, elapsed_s=0.0, body_size=40, stream=window)


class TestStreamRecord:
    def test_a_stream_is_marked_with_both_windows(self) -> None:
        """A stream's record says its kind and each side's window; it validates."""
        exchange = make_exchange(candidate=_stream(3, WindowEnd.TIME))
        exchange = replace(exchange, legacy=_stream(2, WindowEnd.EVENTS))
        record = exchange_record(
            exchange, make_verdict(), Redactor(RedactSettings()), EvidenceSettings()
        )
        validate(record, "exchange")
        assert record["stream"] == {
            "kind": "sse",
            "legacy": {"events": 2, "ended": "events", "closed_ms": 500.0, "bytes": 40},
            "candidate": {"events": 3, "ended": "time", "closed_ms": 500.0, "bytes": 40},
        }

    def test_a_side_that_was_no_stream_is_null(self) -> None:
        """A candidate that failed, against legacy's stream, has a null window."""
        exchange = replace(
            make_exchange(candidate=make_observation(error=ErrorKind.INCOMPLETE)),
            legacy=_stream(1, WindowEnd.END),
        )
        record = exchange_record(
            exchange, make_verdict(Outcome.ERROR), Redactor(RedactSettings()), EvidenceSettings()
        )
        validate(record, "exchange")
        assert record["stream"]["candidate"] is None  # type: ignore[index]

    def test_other_exchanges_have_no_stream_field(self) -> None:
        """The field is absent from exchanges that are not streams."""
        assert "stream" not in build()

    def test_rollups_count_streams(self) -> None:
        """A rollup counts the compared exchanges that were streams; it validates."""
        tally = RouteTally()
        tally.add_verdict(make_exchange(), make_verdict())
        stream = replace(make_exchange(), legacy=_stream(1, WindowEnd.END))
        tally.add_verdict(stream, make_verdict())
        record = tally.record("/orders/{id}", "orders", SHADOW_PHASE, T0, T0 + 60)
        validate(record, "rollup")
        assert (record["compared"], record["streams"]) == (2, 1)


class TestExchangeRecord:
    def test_phase_is_recorded(self) -> None:
        """The route's mode, canary percent and since when are in the record (docs/evidence.md)."""
        exchange = make_exchange()
        facts = replace(exchange.request, phase=Phase("candidate", None, T0 - 3600))
        record = exchange_record(
            replace(exchange, request=facts),
            make_verdict(),
            Redactor(RedactSettings()),
            EvidenceSettings(log_dir="unused"),
        )
        validate(record, "exchange")
        assert (record["mode"], record["canary_percent"], record["mode_since"]) == (
            "candidate",
            None,
            rfc3339(T0 - 3600),
        )
        assert build()["mode"] == "shadow" and build()["mode_since"] is None

    def test_layout_matches_the_contract(self) -> None:
        """Field names and values follow docs/evidence.md and validate."""
        record = build()
        validate(record, "exchange")
        assert record["ts"] == "2026-11-23T13:40:00.123Z"
        assert record["legacy"] == {"status": 200, "ms": 3.0, "bytes": 10}
        assert record["candidate"] == {"status": 200, "ms": 4.0, "bytes": 12, "error": None}
        assert record["differences"] == [
            {
                "class": "semantic",
                "kind": "value",
                "path": "$.total",
                "legacy": 10.0,
                "candidate": 10.01,
                "noise": False,
            }
        ]
        assert "secondary" not in record

    def test_secondary_and_candidate_error_are_recorded(self) -> None:
        """A configured secondary appears; a failed candidate carries its error kind."""
        exchange = make_exchange(
            candidate=make_observation(error=ErrorKind.TIMEOUT, ms=5000),
            secondary=make_observation(ms=2.0),
        )
        record = exchange_record(
            exchange,
            make_verdict(Outcome.ERROR),
            Redactor(RedactSettings()),
            EvidenceSettings(),
        )
        validate(record, "exchange")
        assert record["candidate"] == {"status": None, "ms": 5000.0, "bytes": 0, "error": "timeout"}
        assert record["secondary"] == {"status": 200, "ms": 2.0, "bytes": 10, "error": None}

    def test_differences_are_capped_and_counted(self) -> None:
        """Beyond ``max_differences`` entries the rest are only counted."""
        many = [Difference(DiffClass.STRUCTURAL, "missing", f"$.f{i}", i, None) for i in range(7)]
        record = exchange_record(
            make_exchange(),
            make_verdict(Outcome.DIVERGED, *many),
            Redactor(RedactSettings()),
            EvidenceSettings(max_differences=3),
        )
        validate(record, "exchange")
        assert len(record["differences"]) == 3  # type: ignore[arg-type]
        assert record["differences_omitted"] == 4

    def test_values_are_truncated(self) -> None:
        """Difference values are cut to ``max_value_chars``."""
        long = Difference(DiffClass.SEMANTIC, "value", "$.s", "a" * 500, "b" * 500)
        record = exchange_record(
            make_exchange(),
            make_verdict(Outcome.DIVERGED, long),
            Redactor(RedactSettings()),
            EvidenceSettings(max_value_chars=16),
        )
        diff = record["differences"][0]  # type: ignore[index]
        assert diff["legacy"] == "a" * 16 + "…"

    def test_non_utf8_value_yields_a_valid_record(self) -> None:
        """A bytes value that is not UTF-8 becomes base64 and the record validates."""
        binary = Difference(DiffClass.SEMANTIC, "value", "$", b"\xff\xd8\xff", b"\x89PNG")
        record = exchange_record(
            make_exchange(),
            make_verdict(Outcome.DIVERGED, binary),
            Redactor(RedactSettings()),
            EvidenceSettings(),
        )
        validate(record, "exchange")
        assert record["differences"][0]["legacy"] == {"base64": "/9j/", "bytes": 3}  # type: ignore[index]

    @pytest.mark.parametrize(("include", "expected"), [(False, "/orders/42"), (True, None)])
    def test_query_left_out_or_redacted(self, include: bool, expected: str | None) -> None:
        """The query string is dropped by default and redacted when included."""
        record = exchange_record(
            make_exchange(query="page=2&access_token=abc"),
            make_verdict(),
            Redactor(RedactSettings()),
            EvidenceSettings(include_query=include),
        )
        assert record["path"] == (expected or f"/orders/42?page=2&access_token={REDACTED}")


class TestSampling:
    def test_non_matches_are_always_recorded(self) -> None:
        """Diverged, noise and error verdicts always get a record."""
        settings = EvidenceSettings(sample_matches_percent=0)
        for outcome in (Outcome.DIVERGED, Outcome.NOISE, Outcome.ERROR):
            assert wanted(make_verdict(outcome), "id", settings)
        assert not wanted(make_verdict(Outcome.MATCH), "id", settings)

    def test_sampling_is_deterministic_and_proportional(self) -> None:
        """The same id always gets the same answer; about the configured share is kept."""
        ids = [f"req-{i}" for i in range(4000)]
        kept = [i for i in ids if sampled(i, 25.0)]
        assert kept == [i for i in ids if sampled(i, 25.0)]
        assert 0.2 < len(kept) / len(ids) < 0.3
        assert all(sampled(i, 100.0) for i in ids[:10])


class TestRollupRecord:
    def test_rollup_validates_and_counts(self) -> None:
        """A tally's record follows the contract; compared sums the outcomes."""
        tally = RouteTally()
        tally.add_verdict(make_exchange(), make_verdict(Outcome.MATCH))
        tally.add_verdict(make_exchange(), make_verdict(Outcome.DIVERGED))
        failed = make_exchange(candidate=make_observation(error=ErrorKind.RESET))
        tally.add_verdict(failed, make_verdict(Outcome.ERROR))
        tally.add_skip("sampled_out")
        record = tally.record("/orders/{id}", "orders", Phase("canary", 5.0, T0 - 60), T0, T0 + 60)
        validate(record, "rollup")
        assert record["ts_end"] == rfc3339(T0 + 60) == "2026-11-23T13:41:00.000Z"
        assert (record["mode"], record["canary_percent"], record["mode_since"]) == (
            "canary",
            5.0,
            rfc3339(T0 - 60),
        )
        assert (record["compared"], record["match"], record["diverged"], record["errors"]) == (
            3,
            1,
            1,
            1,
        )
        assert record["semantic"] == 1 and record["skipped"] == {"sampled_out": 1}
        latency = record["latency"]
        assert latency["legacy"]["count"] == 3  # type: ignore[index]
        assert latency["candidate"]["count"] == 2  # type: ignore[index]

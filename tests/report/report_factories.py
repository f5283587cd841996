"""Factories for evidence records (docs/evidence.md), and running the report command."""

from __future__ import annotations

import argparse
import gzip
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest

from shadowproxy.histogram import LatencyHistogram
from shadowproxy.report.command import add_report_arguments, run_report
from shadowproxy.report.document import Report, build_report
from shadowproxy.report.known import KnownSet
from shadowproxy.report.summary import Counts, DomainSummary, Findings, LatencySummary, RouteSummary
from shadowproxy.report.thresholds import GatesConfig

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "shadowproxy/schemas/report.schema.json").read_text()
)
"""The report's JSON contract."""

UNTIL = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
"""Every test evaluates at this instant (``--until``)."""
UNTIL_TEXT = "2026-11-23T12:00:00.000Z"


def ts(ago: timedelta) -> str:
    """``UNTIL - ago`` in the evidence files' timestamp format."""
    moment = UNTIL - ago
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def rollup(
    route: str = "/orders/{id}",
    domain: str = "orders",
    ago: timedelta = timedelta(hours=1),
    *,
    match: int = 0,
    structural: int = 0,
    semantic: int = 0,
    timing: int = 0,
    diverged: int | None = None,
    noise: int = 0,
    errors: int = 0,
    skipped: Mapping[str, int] | None = None,
    legacy_ms: Sequence[float] = (),
    candidate_ms: Sequence[float] = (),
    span: timedelta = timedelta(minutes=1),
    streams: int = 0,
) -> dict[str, Any]:
    """A rollup of ``span`` from ``ago``; ``diverged`` defaults to the largest class count.

    ``streams`` (how many compared were streams) is written only when set, as
    records from before streams were compared have none.
    """
    if diverged is None:
        diverged = max(structural, semantic, timing)
    return {
        "v": 1,
        "type": "rollup",
        "ts_start": ts(ago),
        "ts_end": ts(ago - span),
        "route": route,
        "domain": domain,
        "compared": match + diverged + noise + errors,
        "match": match,
        "diverged": diverged,
        "structural": structural,
        "semantic": semantic,
        "timing": timing,
        "noise": noise,
        "errors": errors,
        "skipped": dict(skipped or {}),
        "latency": {
            "legacy": LatencyHistogram.of(legacy_ms).to_json(),
            "candidate": LatencyHistogram.of(candidate_ms).to_json(),
        },
        **({"streams": streams} if streams else {}),
    }


def difference(
    cls: str = "semantic",
    kind: str = "value",
    path: str = "$.total",
    legacy: object = 10.0,
    candidate: object = 10.01,
    noise: bool = False,
) -> dict[str, Any]:
    """One entry of an exchange's ``differences``."""
    return {
        "class": cls,
        "kind": kind,
        "path": path,
        "legacy": legacy,
        "candidate": candidate,
        "noise": noise,
    }


def exchange(
    route: str = "/orders/{id}",
    domain: str = "orders",
    ago: timedelta = timedelta(hours=1),
    differences: Iterable[dict[str, Any]] = (),
    verdict: str | None = None,
    path: str = "/orders/42",
) -> dict[str, Any]:
    """An exchange record whose classes and verdict follow from ``differences``."""
    diffs = list(differences)
    classes = sorted({d["class"] for d in diffs if not d["noise"]})
    if verdict is None:
        verdict = "diverged" if classes else ("noise" if diffs else "match")
    return {
        "v": 1,
        "type": "exchange",
        "ts": ts(ago),
        "id": "9f2c",
        "route": route,
        "domain": domain,
        "method": "GET",
        "path": path,
        "verdict": verdict,
        "classes": classes,
        "legacy": {"status": 200, "ms": 3.21, "bytes": 512},
        "candidate": {"status": 200, "ms": 4.1, "bytes": 515, "error": None},
        "differences": diffs,
        "differences_omitted": 0,
        "equivalences": {},
        "note": None,
    }


def phased(
    record: dict[str, Any], mode: str, percent: float | None = None, since: timedelta | None = None
) -> dict[str, Any]:
    """``record`` filed under a phase (docs/evidence.md, Phases), entered ``since`` ago."""
    return {
        **record,
        "mode": mode,
        "canary_percent": percent,
        "mode_since": None if since is None else ts(since),
    }


def drill(
    route: str = "/orders/{id}",
    ago: timedelta = timedelta(days=1),
    passed: bool = True,
    drill_id: str | None = "d1",
) -> dict[str, Any]:
    """A ``drill`` record of ``route`` from ``ago``."""
    return {
        "v": 1,
        "type": "drill",
        "ts": ts(ago),
        "route": route,
        "id": drill_id,
        "passed": passed,
        "reason": "shadow drill",
        "steps": [],
    }


def write_jsonl(path: Path, records: Iterable[dict[str, Any] | bytes], gz: bool = False) -> Path:
    """Write records (dicts, or raw bytes lines) as JSONL; gzip when ``gz``."""
    data = b"".join((r if isinstance(r, bytes) else orjson.dumps(r)) + b"\n" for r in records)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def parse(*argv: str, until: str | None = UNTIL_TEXT) -> argparse.Namespace:
    """Parse report arguments the way the CLI will; ``--until`` is pinned to ``UNTIL``."""
    parser = argparse.ArgumentParser(prog="shadow report")
    add_report_arguments(parser)
    return parser.parse_args([*argv, *(["--until", until] if until else [])])


def healthy(
    route: str = "/orders/{id}",
    domain: str = "orders",
    compared: int = 2000,
    ago: timedelta = timedelta(days=14),
) -> dict[str, Any]:
    """A rollup from ``ago`` to ``UNTIL``: it passes every default gate, covering their window."""
    return rollup(
        route,
        domain,
        ago,
        match=compared,
        legacy_ms=[5.0] * 100,
        candidate_ms=[5.0] * 100,
        span=ago,
    )


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run ``shadow report`` in-process: exit code, stdout, stderr."""
    code = run_report(parse(*argv))
    out, err = capsys.readouterr()
    return code, out, err


def as_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    """Run the report with ``--format json``; the document is checked against the schema."""
    code, out, _ = run(capsys, *argv, "--format", "json")
    doc = json.loads(out)
    jsonschema.validate(doc, SCHEMA)
    return code, doc


def fleet_report() -> Report:
    """A report from Prometheus totals (fleet mode): one clean domain, no series, no phases."""
    end = UNTIL.timestamp()
    counts = Counts.of({"compared": 5000, "match": 5000})
    evidence = Findings(
        source="prometheus",
        until=end,
        routes=(RouteSummary("/pay", "payments", counts, LatencySummary()),),
        domains=(DomainSummary("payments", end - 86400, counts, LatencySummary(), None, None),),
    )
    return build_report(evidence, GatesConfig(), KnownSet(), end, end - 86400)

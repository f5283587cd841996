"""Fleet mode against a real Prometheus scraping a real exporter, all on 127.0.0.1."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from shadowproxy.report.command import run_report
from shadowproxy.timestamps import rfc3339
from tests.report.report_factories import parse

PROMETHEUS = Path("/usr/bin/prometheus")
HERE = Path(__file__).resolve().parent
SCHEMA = json.loads((HERE.parents[1] / "shadowproxy/schemas/report.schema.json").read_text())
WAIT_S = 60.0
_LISTENING = re.compile(r'msg="Listening on" address=(127\.0\.0\.1:\d+)')


def listening_address(log: Path) -> str | None:
    """The address Prometheus says it listens on, once its log says so."""
    found = _LISTENING.search(log.read_text(errors="replace")) if log.exists() else None
    return found.group(1) if found else None


def query(base: str, promql: str) -> list[dict[str, Any]]:
    url = f"{base}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            result: list[dict[str, Any]] = json.load(response)["data"]["result"]
            return result
    except OSError:
        return []


def wait_until(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` with a bound; each poll is a real request, not a sleep."""
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        # A short pause between HTTP polls keeps the loop from spinning a core.
        time.sleep(0.2)


def total(base: str) -> float | None:
    found = query(base, "sum(shadowproxy_comparisons_total)")
    return float(found[0]["value"][1]) if found else None


def sampled_at(base: str) -> float:
    """When Prometheus last scraped the counters (0 before it has)."""
    found = query(base, "max(timestamp(shadowproxy_comparisons_total))")
    return float(found[0]["value"][1]) if found else 0.0


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """A running exporter and a Prometheus scraping it every 500 ms."""
    exporter = subprocess.Popen(
        [sys.executable, str(HERE / "fleet_exporter.py")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert exporter.stdout is not None
    port = int(exporter.stdout.readline())
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 500ms, evaluation_interval: 500ms}\n"
        "scrape_configs:\n"
        f"  - job_name: shadow\n    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n"
    )
    # Port 0, then its own log line for the port: a port picked here and
    # released could be taken by anyone before Prometheus binds it.
    log = tmp_path / "prometheus.log"
    with log.open("w") as log_file:
        prometheus = subprocess.Popen(
            [
                str(PROMETHEUS),
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                "--web.listen-address=127.0.0.1:0",
                "--log.level=info",
            ],
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )
    try:
        wait_until(lambda: listening_address(log) is not None, "Prometheus to listen")
        yield f"http://{listening_address(log)}", exporter
    finally:
        prometheus.terminate()
        exporter.terminate()
        prometheus.wait(timeout=30)
        exporter.wait(timeout=30)
        assert exporter.stdin is not None and exporter.stdout is not None
        exporter.stdin.close()
        exporter.stdout.close()


@pytest.mark.slow
@pytest.mark.skipif(not PROMETHEUS.exists(), reason="prometheus is not installed")
class TestFleetMode:
    def test_gates_from_prometheus(
        self,
        fleet: tuple[str, subprocess.Popen[str]],
        capsys: pytest.CaptureFixture[str],
        tmp_path: Path,
    ) -> None:
        """The same gates evaluate from PromQL: clean orders pass, broken payments fail."""
        base, exporter = fleet
        assert exporter.stdin is not None and exporter.stdout is not None
        wait_until(lambda: total(base) == 0.0, "a scrape of the zeroed counters")
        # The window starts after Prometheus holds samples (so it is covered) and
        # before a zero sample inside it (so increase() sees the whole workload).
        since = time.time()
        wait_until(lambda: sampled_at(base) > since, "a scrape inside the window")
        exporter.stdin.write("go\n")
        exporter.stdin.flush()
        assert exporter.stdout.readline().strip() == "done"
        wait_until(lambda: total(base) == 4501.0, "a scrape of the recorded workload")
        gates = tmp_path / "gates.yaml"
        gates.write_text("gates:\n  '*': {max_gap: 4s}\n")
        code = run_report(
            parse(
                "--prometheus",
                base,
                "--format",
                "json",
                "--since",
                rfc3339(since),
                "--gates",
                str(gates),
                until=None,
            )
        )
        doc = json.loads(capsys.readouterr().out)
        jsonschema.validate(doc, SCHEMA)
        assert code == 1
        assert doc["source"] == "prometheus"
        assert doc["fingerprints"] == []
        gates = {(g["domain"], g["name"]): g for g in doc["gates"]}
        orders = [g for (domain, _), g in gates.items() if domain == "orders"]
        assert all(g["passed"] for g in orders), [(g["name"], g["reason"]) for g in orders]
        assert gates[("payments", "structural")]["status"] == "fail"
        assert gates[("payments", "p99_ratio")]["status"] == "fail"
        assert gates[("payments", "p99_ratio")]["value"] > 5
        routes = {r["route"]: r for r in doc["routes"]}
        assert routes["/orders/{id}"]["status"] == "PARITY_OK"
        assert routes["/pay"]["status"] == "BLOCKED_STRUCTURAL"
        # increase() extrapolates a little; ratios survive it, raw counts only roughly.
        assert routes["/pay"]["structural"] / routes["/pay"]["compared"] == pytest.approx(
            3 / 1500, rel=0.2
        )
        assert any("fleet mode" in note for note in doc["notes"])
        assert any("candidate/timeout" in note for note in doc["notes"])
        orders_coverage = next(d for d in doc["domains"] if d["domain"] == "orders")["coverage"]
        assert orders_coverage["covered"] is True

    def test_a_window_prometheus_holds_part_of_is_not_covered(
        self, fleet: tuple[str, subprocess.Popen[str]], capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Fourteen days asked of a Prometheus holding seconds: every gate insufficient."""
        base, exporter = fleet
        wait_until(lambda: total(base) == 0.0, "a scrape of the zeroed counters")
        assert exporter.stdin is not None and exporter.stdout is not None
        exporter.stdin.write("go\n")
        exporter.stdin.flush()
        assert exporter.stdout.readline().strip() == "done"
        wait_until(lambda: total(base) == 4501.0, "a scrape of the recorded workload")
        assert run_report(parse("--prometheus", base, "--format", "json", until=None)) == 1
        doc = json.loads(capsys.readouterr().out)
        orders = {g["name"]: g for g in doc["gates"] if g["domain"] == "orders"}
        assert {g["status"] for g in orders.values()} == {"insufficient"}
        assert orders["coverage"]["reason"].startswith("no evidence in the window")

    def test_unreachable_prometheus_is_bad_input(
        self, capsys: pytest.CaptureFixture[str], closed_port: int
    ) -> None:
        """A Prometheus nobody answers on exits 2 with one line naming the URL."""
        url = f"http://127.0.0.1:{closed_port}"
        assert run_report(parse("--prometheus", url)) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"shadow report: {url}: cannot query Prometheus")
        assert err.count("\n") == 1

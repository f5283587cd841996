"""deploy/prometheus: rules and scrape config accepted by promtool, rules unit-tested
with ``promtool test rules``, every metric they use in the exported contract, and
every alert tested and documented in the runbook."""

from __future__ import annotations

import re
import subprocess
from typing import Any

import pytest
import yaml

from tests.deploy.deploy_support import (
    CONTRACT_METRICS,
    DEPLOY,
    PROMETHEUS_BUILTIN,
    REPO,
    promql_metric_names,
)

PROM = DEPLOY / "prometheus"
REQUIRED_ALERTS = {
    "ShadowproxyDown",
    "ShadowproxyStructuralDivergence",
    "ShadowproxyDivergenceSpike",
    "ShadowproxyCandidateErrors",
    "ShadowproxyShadowDrops",
}


@pytest.fixture(scope="module")
def rules() -> list[dict[str, Any]]:
    """Every rule in rules.yml."""
    data = yaml.safe_load((PROM / "rules.yml").read_text(encoding="utf-8"))
    return [r for g in data["groups"] for r in g["rules"]]


@pytest.fixture(scope="module")
def alerts(rules: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Alerting rules by name."""
    return {r["alert"]: r for r in rules if "alert" in r}


def promtool_run(promtool: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run promtool in deploy/prometheus (rule files are relative to it)."""
    return subprocess.run(
        [promtool, *args], cwd=PROM, capture_output=True, text=True, timeout=120, check=False
    )


class TestPromqlMetricNames:
    def test_skips_functions_labels_and_durations(self) -> None:
        """Only selected metric names come out, not functions, labels, keywords or numbers."""
        expr = (
            'histogram_quantile(0.99, sum by (le, route) (rate(a_bucket{route=~"x|y"}[5m])))'
            ' / on (route) group_left () b:rec offset 1h > 2 and c unless d{le="+Inf"} > 1e3'
        )
        assert promql_metric_names(expr) == {"a_bucket", "b:rec", "c", "d"}

    def test_skips_grafana_variables(self) -> None:
        """Grafana's $variables are not metric names."""
        assert promql_metric_names("rate(x[$__rate_interval]) * $scale") == {"x"}


class TestPrometheusRules:
    def test_promtool_check_rules(self, promtool: str) -> None:
        """promtool accepts rules.yml."""
        result = promtool_run(promtool, "check", "rules", "rules.yml")
        assert result.returncode == 0, result.stdout + result.stderr

    def test_promtool_unit_tests_pass(self, promtool: str) -> None:
        """promtool test rules passes rules_test.yml."""
        result = promtool_run(promtool, "test", "rules", "rules_test.yml")
        assert result.returncode == 0, result.stdout + result.stderr

    def test_promtool_check_scrape_config(self, promtool: str) -> None:
        """promtool accepts the example prometheus.yml (which loads rules.yml)."""
        result = promtool_run(promtool, "check", "config", "prometheus.yml")
        assert result.returncode == 0, result.stdout + result.stderr

    def test_example_scrape_job_is_shadowproxy(self) -> None:
        """The example scrapes /metrics as job shadowproxy, which ShadowproxyDown selects."""
        prom = yaml.safe_load((PROM / "prometheus.yml").read_text(encoding="utf-8"))
        jobs = {j["job_name"]: j for j in prom["scrape_configs"]}
        assert jobs["shadowproxy"].get("metrics_path", "/metrics") == "/metrics"

    def test_required_alerts_exist(self, alerts: dict[str, dict[str, Any]]) -> None:
        """Structural divergence, spike, candidate errors, drops and proxy-down alerts exist."""
        assert set(alerts) >= REQUIRED_ALERTS

    def test_down_alert_watches_the_shadowproxy_job(
        self, alerts: dict[str, dict[str, Any]]
    ) -> None:
        """ShadowproxyDown is up == 0 for the shadowproxy job."""
        expr = re.sub(r"\s+", "", alerts["ShadowproxyDown"]["expr"])
        assert expr == 'up{job="shadowproxy"}==0'

    def test_required_recording_rules_exist(self, recorded_metrics: frozenset[str]) -> None:
        """Divergence ratio per domain and class and candidate/legacy p99 per route are recorded."""
        assert "domain_class:shadowproxy_divergence_ratio:rate5m" in recorded_metrics
        assert "route:shadowproxy_candidate_legacy_p99:ratio5m" in recorded_metrics

    def test_rules_use_only_exported_metrics(
        self, rules: list[dict[str, Any]], recorded_metrics: frozenset[str]
    ) -> None:
        """Every metric a rule reads is exported by shadowproxy or recorded here."""
        known = CONTRACT_METRICS | PROMETHEUS_BUILTIN | recorded_metrics
        for rule in rules:
            unknown = promql_metric_names(rule["expr"]) - known
            assert not unknown, f"{rule.get('record') or rule.get('alert')}: {unknown}"

    def test_recording_rule_names_follow_convention(self, recorded_metrics: frozenset[str]) -> None:
        """Recorded names are level:metric:operations and mention shadowproxy."""
        for name in recorded_metrics:
            assert re.fullmatch(r"[a-z_]+:shadowproxy_[a-z0-9_]+:[a-z0-9_]+", name), name

    def test_every_alert_has_a_firing_unit_test(self, alerts: dict[str, dict[str, Any]]) -> None:
        """rules_test.yml expects each alert to fire at least once and stay quiet at least once."""
        tests = yaml.safe_load((PROM / "rules_test.yml").read_text(encoding="utf-8"))["tests"]
        cases = [c for t in tests for c in t.get("alert_rule_test", [])]
        for name in alerts:
            mine = [c for c in cases if c["alertname"] == name]
            assert any(c["exp_alerts"] for c in mine), f"{name} never expected to fire"
            assert any(not c["exp_alerts"] for c in mine), f"{name} never expected quiet"

    def test_every_alert_has_a_runbook_section(self, alerts: dict[str, dict[str, Any]]) -> None:
        """Each alert links to its own heading in docs/operations.md."""
        headings = {
            line.lstrip("#").strip()
            for line in (REPO / "docs" / "operations.md").read_text(encoding="utf-8").splitlines()
            if line.startswith("#")
        }
        for name, alert in alerts.items():
            assert name in headings, f"docs/operations.md has no heading {name}"
            assert alert["annotations"]["runbook"] == f"docs/operations.md#{name.lower()}"
            assert alert["labels"]["severity"] in {"critical", "warning", "info"}

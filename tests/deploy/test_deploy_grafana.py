"""deploy/grafana: the dashboard's panels, and every PromQL expression in it
parsing (through promtool) and reading only metrics shadowproxy exports."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.deploy_support import (
    CONTRACT_METRICS,
    DEPLOY,
    PROMETHEUS_BUILTIN,
    grafana_to_promql,
    promql_metric_names,
)

LABEL_VALUES = re.compile(r"^label_values\((?:(?P<metric>[\w:]+)\s*,\s*)?(?P<label>\w+)\)$")


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    """deploy/grafana/dashboard.json."""
    data: dict[str, Any] = json.loads((DEPLOY / "grafana" / "dashboard.json").read_text("utf-8"))
    return data


def expressions(dashboard: dict[str, Any]) -> list[str]:
    """Every target expression in every panel."""
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def panel(dashboard: dict[str, Any], words: str) -> dict[str, Any]:
    """The one panel whose title contains ``words`` (case-insensitive)."""
    (found,) = [p for p in dashboard["panels"] if words.lower() in p["title"].lower()]
    result: dict[str, Any] = found
    return result


class TestDashboard:
    def test_has_the_required_panels(self, dashboard: dict[str, Any]) -> None:
        """Verdicts, divergences by class and domain, latency, drops and errors are shown."""
        verdicts = panel(dashboard, "verdicts over time")["targets"][0]["expr"]
        assert "by (verdict)" in verdicts
        divergences = panel(dashboard, "divergences by class and domain")["targets"][0]["expr"]
        assert "by (domain, class)" in divergences
        assert (
            "shadowproxy_shadow_skipped_total"
            in panel(dashboard, "shadow skipped")["targets"][0]["expr"]
        )
        assert "upstream_errors_total" in panel(dashboard, "upstream errors")["targets"][0]["expr"]

    def test_latency_panel_compares_p50_and_p99(self, dashboard: dict[str, Any]) -> None:
        """Latency shows legacy and candidate p50 and p99 from the histogram buckets."""
        exprs = [t["expr"] for t in panel(dashboard, "legacy vs candidate")["targets"]]
        for quantile in ("0.5", "0.99"):
            (expr,) = [e for e in exprs if e.startswith(f"histogram_quantile({quantile},")]
            assert "shadowproxy_upstream_latency_seconds_bucket" in expr
            assert "by (upstream, le)" in expr
            assert "legacy|candidate" in expr

    def test_metrics_are_exported_ones(
        self, dashboard: dict[str, Any], recorded_metrics: frozenset[str]
    ) -> None:
        """Every metric a panel or variable reads is exported or recorded by rules.yml."""
        known = CONTRACT_METRICS | PROMETHEUS_BUILTIN | recorded_metrics
        used: set[str] = set()
        for expr in expressions(dashboard):
            used |= promql_metric_names(grafana_to_promql(expr))
        for variable in dashboard["templating"]["list"]:
            if variable["type"] == "query":
                match = LABEL_VALUES.match(variable["query"]["query"])
                assert match, variable["query"]
                used.add(match["metric"])
        assert used, "no metric found: the extractor is broken"
        assert used <= known, used - known
        assert {"shadowproxy_comparisons_total", "shadowproxy_divergences_total"} <= used

    def test_expressions_parse(
        self, dashboard: dict[str, Any], promtool: str, tmp_path: Path
    ) -> None:
        """promtool parses every expression (as a recording rule), Grafana's variables filled."""
        rules = [
            {"record": f"dashboard:expr_{i}:check", "expr": grafana_to_promql(e)}
            for i, e in enumerate(expressions(dashboard))
        ]
        path = tmp_path / "dashboard_rules.yml"
        path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
        result = subprocess.run(
            [promtool, "check", "rules", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr

    def test_panels_are_well_formed(self, dashboard: dict[str, Any]) -> None:
        """Panel ids are unique, each panel is placed, and all query the datasource variable."""
        ids = [p["id"] for p in dashboard["panels"]]
        assert len(ids) == len(set(ids))
        (source,) = [v for v in dashboard["templating"]["list"] if v["type"] == "datasource"]
        assert source["query"] == "prometheus"
        for p in dashboard["panels"]:
            assert {"x", "y", "w", "h"} <= p["gridPos"].keys()
            assert p["datasource"]["uid"] == f"${{{source['name']}}}"
            assert all(t["refId"] for t in p["targets"])

    def test_dashboard_identity_is_stable(self, dashboard: dict[str, Any]) -> None:
        """A fixed uid keeps links stable when the dashboard is re-provisioned."""
        assert dashboard["uid"] == "shadowproxy"
        assert dashboard["schemaVersion"] >= 36

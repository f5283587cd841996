"""docs/deploy.md and docs/operations.md: every artefact documented, and the
runbook covering each step from the first request to cutover."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.deploy.deploy_support import DEPLOY, REPO

DEPLOY_DOC = (REPO / "docs" / "deploy.md").read_text(encoding="utf-8")
RUNBOOK = (REPO / "docs" / "operations.md").read_text(encoding="utf-8")


class TestDeployDoc:
    @pytest.mark.parametrize(
        "path",
        sorted(p for p in DEPLOY.rglob("*") if p.is_file()),
        ids=lambda p: str(p.relative_to(DEPLOY)),
    )
    def test_every_artefact_is_documented(self, path: Path) -> None:
        """Each file is named in docs/deploy.md, or sits in a directory named there."""
        relative = path.relative_to(REPO)
        ancestors = [f"{p.as_posix()}/" for p in relative.parents if len(p.parts) >= 3]
        assert relative.name in DEPLOY_DOC or any(a in DEPLOY_DOC for a in ancestors), relative

    def test_warns_against_the_unrelated_index_package(self) -> None:
        """Installing means from source; the index's shadowproxy is another project."""
        assert "pip install ." in DEPLOY_DOC
        assert "Never `pip install shadowproxy`" in DEPLOY_DOC


class TestRunbook:
    @pytest.mark.parametrize(
        "needle",
        [
            "sample_percent: 1",
            "shadow report shadow-logs/ --format html --out report.html",
            "--known known-differences.yaml",
            "curl -X POST",
            "/shadow/pause",
            "/shadow/resume",
            "## 5. Cut a route over, on every replica",
            "shadow promote --route $R $REPLICAS $EVIDENCE",
            "shadow drill --route $R",
            "## 7. Roll back",
            "SIGHUP",
            "systemctl reload shadowproxy",
            "max_total_bytes",
            "rotate_bytes",
            "## Alerts",
        ],
    )
    def test_covers_the_step(self, needle: str) -> None:
        """The runbook covers sampling, report, known differences, cutting a route over on
        every replica, kill switch, rollback, reload, disk caps and alerts."""
        assert needle in RUNBOOK

    def test_known_differences_example_has_the_loaders_keys(self) -> None:
        """The example entries use exactly fingerprint, reason and owner."""
        block = RUNBOOK.split("known:\n", 1)[1].split("```", 1)[0]
        keys = {
            line.strip().lstrip("- ").split(":", 1)[0]
            for line in block.splitlines()
            if line.strip()
        }
        assert keys == {"fingerprint", "reason", "owner"}

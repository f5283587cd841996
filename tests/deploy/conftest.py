"""Fixtures for the deployment-artefact tests: the parsed Dockerfile, recorded
metric names, and the external checkers (promtool, hadolint, systemd-analyze,
``shadowproxy check-config``), each skipped when absent from the machine."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.deploy.deploy_support import DEPLOY, REPO, Dockerfile, parse_dockerfile


def _tool(name: str) -> str | None:
    """A command from PATH or from the running interpreter's bin directory (the venv)."""
    return shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))


@pytest.fixture(scope="session")
def repo() -> Path:
    """The repository root."""
    return REPO


@pytest.fixture(scope="session")
def dockerfile() -> Dockerfile:
    """deploy/docker/Dockerfile, parsed."""
    return parse_dockerfile((DEPLOY / "docker" / "Dockerfile").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def recorded_metrics() -> frozenset[str]:
    """Names the recording rules in deploy/prometheus/rules.yml define."""
    rules = yaml.safe_load((DEPLOY / "prometheus" / "rules.yml").read_text(encoding="utf-8"))
    return frozenset(r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r)


@pytest.fixture(scope="session")
def promtool() -> str:
    """The promtool binary (Debian's ``prometheus`` package), or skip."""
    found = _tool("promtool")
    if found is None:
        pytest.skip("promtool not installed (apt-get install prometheus)")
    return found


@pytest.fixture(scope="session")
def tool() -> Callable[[str], str | None]:
    """Look a command up on PATH and beside the interpreter."""
    return _tool


@pytest.fixture
def check_config(tmp_path: Path) -> Callable[[str], subprocess.CompletedProcess[str]]:
    """Run ``shadowproxy check-config`` on YAML text; skip until the CLI exists."""
    if importlib.util.find_spec("shadowproxy.cli") is None:
        pytest.skip("shadowproxy.cli not available yet")

    def run(text: str) -> subprocess.CompletedProcess[str]:
        path = tmp_path / "config.yaml"
        path.write_text(text, encoding="utf-8")
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            # Any value: the deployments take the token from a secret at run time.
            "SHADOWPROXY_ADMIN_TOKEN": "test-token-not-a-secret",
        }
        return subprocess.run(
            [sys.executable, "-m", "shadowproxy", "check-config", str(path)],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )

    return run

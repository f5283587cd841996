"""deploy/systemd: the unit's hardening and lifecycle directives, parsed, and
``systemd-analyze verify`` / ``security`` where systemd is installed."""

from __future__ import annotations

import re
import shlex
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.deploy_support import DEPLOY, flag_value

SYSTEMD = DEPLOY / "systemd"
UNIT = SYSTEMD / "shadowproxy.service"
MAX_EXPOSURE = 2.0
"""systemd-analyze security's exposure score (0 best, 10 worst) the unit must stay under."""


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """Section -> directive -> values in order (a directive may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        assert current is not None, f"directive outside a section: {line}"
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def seconds(value: str) -> float:
    """A systemd time span such as ``30s``, ``1min 30s`` or ``90``."""
    units = {"": 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", value):
        total += float(number) * units[unit]
    return total


@pytest.fixture(scope="module")
def service() -> dict[str, list[str]]:
    """The [Service] section."""
    return parse_unit(UNIT.read_text(encoding="utf-8"))["Service"]


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    """The example config the unit reads."""
    data: dict[str, Any] = yaml.safe_load((SYSTEMD / "config.yaml").read_text(encoding="utf-8"))
    return data


def one(service: dict[str, list[str]], key: str) -> str:
    """The single value of a directive."""
    (value,) = service[key]
    return value


@pytest.fixture
def verifiable_unit(tmp_path: Path) -> Path:
    """The unit with ExecStart's binary swapped for one that exists here.

    verify insists the binary exists; /opt/shadowproxy is only there once installed."""
    text = UNIT.read_text(encoding="utf-8")
    argv = shlex.split(one(parse_unit(text)["Service"], "ExecStart"))
    path = tmp_path / "shadowproxy.service"
    path.write_text(text.replace(argv[0], "/bin/true"), encoding="utf-8")
    return path


class TestUnitParser:
    def test_repeated_directives_and_sections(self) -> None:
        """Repeated directives keep every value; comments are dropped."""
        parsed = parse_unit("[Unit]\n# c\nA=1\n[Service]\nB=x\nB=~y\n")
        assert parsed == {"Unit": {"A": ["1"]}, "Service": {"B": ["x", "~y"]}}

    def test_time_spans(self) -> None:
        """Time spans convert with their units."""
        assert seconds("1min 30s") == 90
        assert seconds("45") == 45


class TestSystemdUnit:
    @pytest.mark.parametrize(
        ("key", "value"),
        [
            ("DynamicUser", "yes"),
            ("ProtectSystem", "strict"),
            ("StateDirectory", "shadowproxy"),
            ("NoNewPrivileges", "yes"),
            ("Restart", "on-failure"),
            ("ExecReload", "/bin/kill -HUP $MAINPID"),
            ("KillSignal", "SIGTERM"),
            ("PrivateTmp", "yes"),
            ("ProtectHome", "yes"),
            ("CapabilityBoundingSet", ""),
            ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
            ("PrivateDevices", "yes"),
            ("ProtectKernelTunables", "yes"),
            ("ProtectControlGroups", "yes"),
            ("RestrictNamespaces", "yes"),
            ("LockPersonality", "yes"),
            ("SystemCallArchitectures", "native"),
        ],
    )
    def test_required_directive(self, service: dict[str, list[str]], key: str, value: str) -> None:
        """Each lifecycle and hardening directive is set to the required value."""
        assert one(service, key) == value

    def test_system_calls_limited_to_services(self, service: dict[str, list[str]]) -> None:
        """The syscall allow-list is @system-service; later lines only take more away."""
        filters = service["SystemCallFilter"]
        assert filters[0] == "@system-service"
        assert all(f.startswith("~") for f in filters[1:])

    def test_evidence_goes_to_the_state_directory(
        self, service: dict[str, list[str]], config: dict[str, Any]
    ) -> None:
        """ExecStart runs the documented command with --log-dir the StateDirectory."""
        argv = shlex.split(one(service, "ExecStart"))
        state = f"/var/lib/{one(service, 'StateDirectory')}"
        assert Path(argv[0]).name == "shadowproxy"
        assert argv[1:4] == ["run", "--config", "/etc/shadowproxy/config.yaml"]
        assert flag_value(argv, "--log-dir") == state == config["log_dir"]

    def test_stop_timeout_exceeds_the_drain(
        self, service: dict[str, list[str]], config: dict[str, Any]
    ) -> None:
        """systemd waits longer than drain_s + shadow.grace_s before SIGKILL."""
        drain = config["drain_s"] + config["shadow"]["grace_s"]
        assert seconds(one(service, "TimeoutStopSec")) > drain

    def test_token_file_is_required_and_outside_the_unit(
        self, service: dict[str, list[str]]
    ) -> None:
        """The admin token comes from a required root-only environment file, not the unit."""
        assert one(service, "EnvironmentFile").startswith("/etc/shadowproxy/")
        assert "Environment" not in service
        assert "TOKEN" not in UNIT.read_text(encoding="utf-8").split("[Service]")[1]

    def test_systemd_analyze_verify(
        self, tool: Callable[[str], str | None], verifiable_unit: Path
    ) -> None:
        """systemd-analyze verify reports nothing."""
        analyze = tool("systemd-analyze")
        if analyze is None:
            pytest.skip("systemd-analyze not installed")
        result = subprocess.run(
            [analyze, "verify", str(verifiable_unit)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert result.stderr.strip() == ""

    def test_systemd_analyze_security_exposure(
        self, tool: Callable[[str], str | None], verifiable_unit: Path
    ) -> None:
        """systemd-analyze security rates the unit's exposure below MAX_EXPOSURE."""
        analyze = tool("systemd-analyze")
        if analyze is None:
            pytest.skip("systemd-analyze not installed")
        result = subprocess.run(
            [analyze, "security", "--offline=yes", "--no-pager", str(verifiable_unit)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
        if match is None:
            pytest.skip(f"systemd-analyze security --offline unsupported: {result.stderr[:200]}")
        assert float(match[1]) < MAX_EXPOSURE

    def test_config_passes_check_config(
        self, check_config: Callable[[str], subprocess.CompletedProcess[str]]
    ) -> None:
        """shadowproxy check-config accepts the example config."""
        result = check_config((SYSTEMD / "config.yaml").read_text(encoding="utf-8"))
        assert result.returncode == 0, result.stderr

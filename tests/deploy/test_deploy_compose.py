"""deploy/compose: the demo stack's wiring (ports, upstreams, mounts, scrape
target, Grafana provisioning) agrees with the mounted configs and the image."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

import shadowproxy
from tests.deploy.deploy_support import (
    DEPLOY,
    Dockerfile,
    flag_value,
    host_port,
)

COMPOSE = DEPLOY / "compose"


def load(path: Path) -> Any:
    """One YAML document."""
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """docker-compose.yml with its anchors resolved (YAML merge keys)."""
    data: dict[str, Any] = load(COMPOSE / "docker-compose.yml")
    return data


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    """The shadowproxy config the compose file mounts."""
    data: dict[str, Any] = load(COMPOSE / "shadowproxy.yaml")
    return data


def bind_mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> host path (resolved from the compose directory) of bind mounts."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            mounts[target] = (COMPOSE / source).resolve()
    return mounts


def published(service: dict[str, Any]) -> dict[int, str]:
    """Container port -> host address it is published on."""
    ports = {}
    for spec in service.get("ports", []):
        host_ip, host_port_, container = spec.split(":")
        assert host_port_ == container
        ports[int(container)] = host_ip
    return ports


def backend_listen_port(service: dict[str, Any]) -> int:
    """The port a demo-backend service listens on, from its command."""
    return host_port(flag_value(service["command"], "--listen"))[1]


class TestComposeStack:
    def test_has_the_demo_services(self, compose: dict[str, Any]) -> None:
        """Legacy, candidate, shadowproxy, Prometheus and Grafana are all defined."""
        assert {"legacy", "candidate", "shadowproxy", "prometheus", "grafana"} <= set(
            compose["services"]
        )

    def test_backends_are_bundled_demo_backends(self, compose: dict[str, Any]) -> None:
        """Each backend runs shadowproxy demo-backend of its kind from the same image."""
        image = compose["services"]["shadowproxy"]["image"]
        for name, kind in (("legacy", "legacy"), ("candidate", "candidate")):
            service = compose["services"][name]
            assert service["image"] == image
            assert service["command"][:2] == ["demo-backend", kind]
            assert host_port(flag_value(service["command"], "--listen"))[0] == "0.0.0.0"

    def test_image_tag_is_the_package_version(self, compose: dict[str, Any]) -> None:
        """The image built and run is tagged with shadowproxy's version."""
        assert (
            compose["services"]["shadowproxy"]["image"] == f"shadowproxy:{shadowproxy.__version__}"
        )
        build = compose["services"]["shadowproxy"]["build"]
        assert (COMPOSE / build["context"] / build["dockerfile"]).resolve() == (
            DEPLOY / "docker" / "Dockerfile"
        ).resolve()

    def test_config_is_mounted_where_the_image_reads_it(
        self, compose: dict[str, Any], dockerfile: Dockerfile
    ) -> None:
        """shadowproxy.yaml is mounted at the image's --config path and the volume at --log-dir."""
        service = compose["services"]["shadowproxy"]
        argv = dockerfile.entry_command()
        assert "command" not in service, "the stack runs the image's documented command"
        assert bind_mounts(service)[flag_value(argv, "--config")] == COMPOSE / "shadowproxy.yaml"
        named = {v.split(":")[1]: v.split(":")[0] for v in service["volumes"]}
        assert named[flag_value(argv, "--log-dir")] in compose["volumes"]

    def test_published_ports_match_config(
        self, compose: dict[str, Any], config: dict[str, Any], dockerfile: Dockerfile
    ) -> None:
        """Published proxy and admin ports are the config's and the image's, on host loopback."""
        argv = dockerfile.entry_command()
        listen, admin = host_port(config["listen"])[1], host_port(config["admin"])[1]
        assert listen == host_port(flag_value(argv, "--listen"))[1]
        assert admin == host_port(flag_value(argv, "--admin"))[1]
        assert published(compose["services"]["shadowproxy"]) == {
            listen: "127.0.0.1",
            admin: "127.0.0.1",
        }

    def test_upstreams_point_at_compose_services(
        self, compose: dict[str, Any], config: dict[str, Any]
    ) -> None:
        """Every upstream URL names a compose service and the port that service listens on."""
        upstreams = {k: v for k, v in config["upstreams"].items() if k != "host_header" and v}
        assert {"legacy", "candidate"} <= set(upstreams)
        for url in upstreams.values():
            parts = urlsplit(url)
            assert parts.hostname in compose["services"], url
            assert parts.port == backend_listen_port(compose["services"][parts.hostname]), url

    def test_bind_mounted_files_exist(self, compose: dict[str, Any]) -> None:
        """Every file or directory the stack bind-mounts is in the repository."""
        for service in compose["services"].values():
            for host_path in bind_mounts(service).values():
                assert host_path.exists(), host_path

    def test_prometheus_scrapes_the_admin_port(
        self, compose: dict[str, Any], config: dict[str, Any]
    ) -> None:
        """Prometheus' shadowproxy job targets the shadowproxy service's admin port."""
        mounts = bind_mounts(compose["services"]["prometheus"])
        prom = load(mounts["/etc/prometheus/prometheus.yml"])
        (job,) = [j for j in prom["scrape_configs"] if j["job_name"] == "shadowproxy"]
        targets = [t for sc in job["static_configs"] for t in sc["targets"]]
        assert targets == [f"shadowproxy:{host_port(config['admin'])[1]}"]
        assert job.get("metrics_path", "/metrics") == "/metrics"
        for rule_file in prom["rule_files"]:
            assert mounts[rule_file] == (DEPLOY / "prometheus" / "rules.yml").resolve()

    def test_prometheus_config_is_valid(self, promtool: str, tmp_path: Path) -> None:
        """promtool accepts the compose Prometheus config, rule file included."""
        prom = load(COMPOSE / "prometheus.yml")
        prom["rule_files"] = [str(DEPLOY / "prometheus" / "rules.yml")]
        path = tmp_path / "prometheus.yml"
        path.write_text(yaml.safe_dump(prom), encoding="utf-8")
        result = subprocess.run(
            [promtool, "check", "config", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr

    def test_grafana_provisions_the_dashboard(self, compose: dict[str, Any]) -> None:
        """Grafana's dashboard provider reads the directory the dashboard JSON is mounted in."""
        mounts = bind_mounts(compose["services"]["grafana"])
        provisioning = mounts["/etc/grafana/provisioning"]
        assert provisioning == (COMPOSE / "grafana" / "provisioning").resolve()
        (provider,) = load(provisioning / "dashboards" / "shadowproxy.yml")["providers"]
        dashboards = {t: p for t, p in mounts.items() if p.suffix == ".json"}
        assert list(dashboards.values()) == [(DEPLOY / "grafana" / "dashboard.json").resolve()]
        assert all(t.startswith(provider["options"]["path"] + "/") for t in dashboards)

    def test_grafana_datasource_is_the_prometheus_service(self, compose: dict[str, Any]) -> None:
        """The provisioned datasource reaches the prometheus service on its port."""
        (source,) = load(COMPOSE / "grafana" / "provisioning" / "datasources" / "prometheus.yml")[
            "datasources"
        ]
        url = urlsplit(source["url"])
        assert source["type"] == "prometheus"
        assert url.hostname == "prometheus"
        assert url.port in published(compose["services"]["prometheus"])

    def test_stop_grace_exceeds_the_drain(
        self, compose: dict[str, Any], config: dict[str, Any]
    ) -> None:
        """Compose waits longer than drain_s + shadow.grace_s before SIGKILL."""
        grace = compose["services"]["shadowproxy"]["stop_grace_period"]
        seconds = int(re.fullmatch(r"(\d+)s", grace)[1])  # type: ignore[index]
        assert seconds > config["drain_s"] + config["shadow"]["grace_s"]

    def test_admin_token_comes_from_the_environment(self, compose: dict[str, Any]) -> None:
        """The token is an interpolated variable that must be set, never a literal."""
        value = compose["services"]["shadowproxy"]["environment"]["SHADOWPROXY_ADMIN_TOKEN"]
        assert re.fullmatch(r"\$\{SHADOWPROXY_ADMIN_TOKEN:\?[^}]*\}", value)
        assert "admin_token" not in load(COMPOSE / "shadowproxy.yaml")

    def test_config_passes_check_config(
        self, check_config: Callable[[str], subprocess.CompletedProcess[str]]
    ) -> None:
        """shadowproxy check-config accepts the mounted config."""
        result = check_config((COMPOSE / "shadowproxy.yaml").read_text(encoding="utf-8"))
        assert result.returncode == 0, result.stderr

"""deploy/kubernetes: manifests valid against the Kubernetes schemas, and the
sidecar wiring (ports, probes, upstreams, volumes) consistent with the ConfigMap."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import jsonschema  # type: ignore[import-untyped]  # no stubs among the project's deps
import pytest
import yaml

import shadowproxy
from tests.deploy.deploy_support import (
    DEPLOY,
    Dockerfile,
    assert_probes_on_admin,
    container,
    flag_value,
    host_port,
    load_yaml_documents,
    pod_spec,
    port_number,
)

KUBE = DEPLOY / "kubernetes"
MANIFESTS = sorted(p for p in KUBE.glob("*.yaml") if p.name != "kustomization.yaml")
KUBERNETES_VERSION = "1.30.0"

SERVICE_MONITOR_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": {
            "type": "object",
            "required": ["name"],
            "properties": {"name": {"type": "string"}, "labels": {"type": "object"}},
        },
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["selector", "endpoints"],
            "properties": {
                "jobLabel": {"type": "string"},
                "selector": {
                    "type": "object",
                    "properties": {
                        "matchLabels": {
                            "type": "object",
                            "additionalProperties": {"type": "string"},
                        }
                    },
                },
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["port"],
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"type": "string"},
                            "interval": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"},
                            "scheme": {"enum": ["http", "https"]},
                        },
                    },
                },
            },
        },
    },
}
"""The subset of the Prometheus Operator's ServiceMonitor CRD schema the manifest uses."""


@pytest.fixture(scope="module")
def objects() -> dict[tuple[str, str], dict[str, Any]]:
    """Every manifest object by (kind, name)."""
    found = {}
    for path in MANIFESTS:
        for doc in load_yaml_documents(path):
            found[(doc["kind"], doc["metadata"]["name"])] = doc
    return found


@pytest.fixture(scope="module")
def config(objects: dict[tuple[str, str], dict[str, Any]]) -> dict[str, Any]:
    """The shadowproxy config embedded in the ConfigMap."""
    data: dict[str, Any] = yaml.safe_load(
        objects[("ConfigMap", "orders-shadowproxy")]["data"]["config.yaml"]
    )
    return data


class TestKubernetesSchemas:
    @pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
    def test_manifest_is_valid(self, path: Any) -> None:
        """Each object validates strictly against its schema (bundled, offline)."""
        kv = pytest.importorskip("kubernetes_validate")
        for doc in load_yaml_documents(path):
            if doc["kind"] == "ServiceMonitor":
                jsonschema.validate(doc, SERVICE_MONITOR_SCHEMA)
                continue
            try:
                kv.validate(doc, KUBERNETES_VERSION, strict=True)
            except kv.ValidationError as exc:
                pytest.fail(f"{path.name}: {doc['kind']}: {exc.message} at {list(exc.path)}")

    def test_schema_check_rejects_unknown_fields(self) -> None:
        """The strict check is live: a misspelt field fails it."""
        kv = pytest.importorskip("kubernetes_validate")
        (doc,) = load_yaml_documents(KUBE / "deployment.yaml")
        doc["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {}
        with pytest.raises(kv.ValidationError):
            kv.validate(doc, KUBERNETES_VERSION, strict=True)

    def test_kustomization_lists_every_manifest(self) -> None:
        """kubectl apply -k applies every manifest in the directory."""
        kustomization = yaml.safe_load((KUBE / "kustomization.yaml").read_text(encoding="utf-8"))
        assert sorted(kustomization["resources"]) == [p.name for p in MANIFESTS]


class TestSidecarWiring:
    def test_service_targets_the_proxy_port(
        self, objects: dict[tuple[str, str], dict[str, Any]], config: dict[str, Any]
    ) -> None:
        """The application Service sends traffic to shadowproxy's listen port, not the app's."""
        spec = pod_spec(objects, "orders")
        (port,) = objects[("Service", "orders")]["spec"]["ports"]
        proxy = container(spec, "shadowproxy")
        assert port_number(proxy, port["targetPort"]) == host_port(config["listen"])[1]

    def test_app_listens_on_localhost_behind_the_proxy(
        self, objects: dict[tuple[str, str], dict[str, Any]], config: dict[str, Any]
    ) -> None:
        """The app binds 127.0.0.1, exposes no port, and is the config's legacy upstream."""
        app = container(pod_spec(objects, "orders"), "app")
        host, port = host_port(flag_value(app["args"], "--listen"))
        assert host == "127.0.0.1"
        assert "ports" not in app
        assert config["upstreams"]["legacy"] == f"http://127.0.0.1:{port}"

    def test_probes_hit_admin_endpoints(
        self, objects: dict[tuple[str, str], dict[str, Any]], config: dict[str, Any]
    ) -> None:
        """Readiness is /readyz and liveness /healthz, both on the config's admin port."""
        proxy = container(pod_spec(objects, "orders"), "shadowproxy")
        assert_probes_on_admin(proxy, host_port(config["admin"])[1])

    def test_args_match_config_and_image(
        self,
        objects: dict[tuple[str, str], dict[str, Any]],
        config: dict[str, Any],
        dockerfile: Dockerfile,
    ) -> None:
        """The sidecar runs the image's documented command, which agrees with the ConfigMap."""
        spec = pod_spec(objects, "orders")
        proxy = container(spec, "shadowproxy")
        assert ["shadowproxy", *proxy["args"]] == dockerfile.entry_command()
        assert flag_value(proxy["args"], "--listen") == config["listen"]
        assert flag_value(proxy["args"], "--admin") == config["admin"]
        assert flag_value(proxy["args"], "--log-dir") == config["log_dir"]
        mounts = {m["mountPath"]: m["name"] for m in proxy["volumeMounts"]}
        (volume,) = [v for v in spec["volumes"] if v["name"] == mounts["/etc/shadowproxy"]]
        assert volume["configMap"]["name"] == "orders-shadowproxy"
        config_path = flag_value(proxy["args"], "--config")
        assert config_path == "/etc/shadowproxy/config.yaml"

    def test_images_are_the_released_version(
        self, objects: dict[tuple[str, str], dict[str, Any]]
    ) -> None:
        """Every container runs shadowproxy's current version tag, never :latest."""
        for name in ("orders", "orders-candidate"):
            for c in pod_spec(objects, name)["containers"]:
                assert c["image"] == f"shadowproxy:{shadowproxy.__version__}"

    def test_candidate_upstream_is_the_candidate_service(
        self, objects: dict[tuple[str, str], dict[str, Any]], config: dict[str, Any]
    ) -> None:
        """The candidate URL names the candidate Service on a port reaching its container."""
        url = urlsplit(config["upstreams"]["candidate"])
        service = objects[("Service", str(url.hostname))]
        (port,) = [p for p in service["spec"]["ports"] if p["port"] == url.port]
        spec = pod_spec(objects, "orders-candidate")
        candidate = container(spec, "candidate")
        target = port_number(candidate, port["targetPort"])
        assert target == host_port(flag_value(candidate["args"], "--listen"))[1]
        labels = objects[("Deployment", "orders-candidate")]["spec"]["template"]["metadata"]
        assert service["spec"]["selector"].items() <= labels["labels"].items()

    def test_scrape_annotations_and_service_monitor(
        self, objects: dict[tuple[str, str], dict[str, Any]], config: dict[str, Any]
    ) -> None:
        """Annotations and the ServiceMonitor scrape admin /metrics as job shadowproxy."""
        admin = host_port(config["admin"])[1]
        template = objects[("Deployment", "orders")]["spec"]["template"]
        annotations = template["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/port"] == str(admin)
        assert annotations["prometheus.io/path"] == "/metrics"
        monitor = objects[("ServiceMonitor", "orders-shadowproxy")]["spec"]
        selected = [
            s
            for (kind, _), s in objects.items()
            if kind == "Service"
            and monitor["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()
        ]
        assert len(selected) == 1
        service = selected[0]
        assert service["spec"]["selector"].items() <= template["metadata"]["labels"].items()
        (endpoint,) = monitor["endpoints"]
        (port,) = [p for p in service["spec"]["ports"] if p["name"] == endpoint["port"]]
        proxy = container(template["spec"], "shadowproxy")
        assert port_number(proxy, port["targetPort"]) == admin
        assert endpoint["path"] == "/metrics"
        assert service["metadata"]["labels"][monitor["jobLabel"]] == "shadowproxy"

    def test_containers_are_locked_down(
        self, objects: dict[tuple[str, str], dict[str, Any]]
    ) -> None:
        """Every container: non-root, read-only root, no escalation, no capabilities, bounded."""
        for name in ("orders", "orders-candidate"):
            spec = pod_spec(objects, name)
            assert spec["securityContext"]["runAsNonRoot"] is True
            for c in spec["containers"]:
                context = c["securityContext"]
                assert context["runAsNonRoot"] is True
                assert context["readOnlyRootFilesystem"] is True
                assert context["allowPrivilegeEscalation"] is False
                assert context["capabilities"]["drop"] == ["ALL"]
                assert {"cpu", "memory"} <= c["resources"]["requests"].keys()
                assert {"cpu", "memory"} <= c["resources"]["limits"].keys()

    def test_evidence_fits_its_empty_dir(
        self, objects: dict[tuple[str, str], dict[str, Any]], config: dict[str, Any]
    ) -> None:
        """The JSONL goes to an emptyDir whose sizeLimit exceeds the evidence cap plus one file."""
        spec = pod_spec(objects, "orders")
        mounts = {m["mountPath"]: m["name"] for m in container(spec, "shadowproxy")["volumeMounts"]}
        (volume,) = [v for v in spec["volumes"] if v["name"] == mounts[config["log_dir"]]]
        limit = volume["emptyDir"]["sizeLimit"]
        assert limit.endswith("Mi")
        evidence = config["evidence"]
        assert evidence["max_total_bytes"] + evidence["rotate_bytes"] < int(limit[:-2]) * 2**20

    def test_grace_period_exceeds_the_drain(
        self, objects: dict[tuple[str, str], dict[str, Any]], config: dict[str, Any]
    ) -> None:
        """The pod gets longer than drain_s + shadow.grace_s before SIGKILL."""
        grace = pod_spec(objects, "orders")["terminationGracePeriodSeconds"]
        assert grace > config["drain_s"] + config["shadow"]["grace_s"]

    def test_admin_token_comes_from_a_secret(
        self, objects: dict[tuple[str, str], dict[str, Any]], config: dict[str, Any]
    ) -> None:
        """The admin binds beyond loopback, so its token comes from a Secret, never the manifest."""
        assert host_port(config["admin"])[0] == "0.0.0.0"
        assert "admin_token" not in config
        proxy = container(pod_spec(objects, "orders"), "shadowproxy")
        (env,) = [e for e in proxy["env"] if e["name"] == "SHADOWPROXY_ADMIN_TOKEN"]
        assert set(env) == {"name", "valueFrom"}
        assert "secretKeyRef" in env["valueFrom"]
        assert not any(kind == "Secret" for kind, _ in objects)

    def test_config_passes_check_config(
        self,
        objects: dict[tuple[str, str], dict[str, Any]],
        check_config: Callable[[str], subprocess.CompletedProcess[str]],
    ) -> None:
        """shadowproxy check-config accepts the ConfigMap's config."""
        result = check_config(objects[("ConfigMap", "orders-shadowproxy")]["data"]["config.yaml"])
        assert result.returncode == 0, result.stderr

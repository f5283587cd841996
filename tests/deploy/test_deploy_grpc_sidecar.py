"""deploy/kubernetes/grpc-sidecar: a gRPC-only sidecar, valid against the Kubernetes schemas,
its wiring (ports, probes, the gRPC legacy, the descriptor set) consistent with its config."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

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

SIDECAR = DEPLOY / "kubernetes" / "grpc-sidecar"
MANIFESTS = sorted(p for p in SIDECAR.glob("*.yaml") if p.name != "kustomization.yaml")
KUBERNETES_VERSION = "1.30.0"
CONTEXT_PROTO = """
syntax = "proto3";
package context.v1;
message Request { string session = 1; }
message Reply { string payload = 1; }
service Context {
  rpc GetContext(Request) returns (Reply);
  rpc RehydrateSession(Request) returns (Reply);
  rpc ValidateScope(Request) returns (Reply);
}
"""
"""The service the example names, to build the descriptor set its ConfigMap stands for."""


@pytest.fixture(scope="module")
def objects() -> dict[tuple[str, str], dict[str, Any]]:
    """Every manifest object by (kind, name)."""
    return {
        (doc["kind"], doc["metadata"]["name"]): doc
        for path in MANIFESTS
        for doc in load_yaml_documents(path)
    }


@pytest.fixture(scope="module")
def config(objects: dict[tuple[str, str], dict[str, Any]]) -> dict[str, Any]:
    """The shadowproxy config embedded in the ConfigMap."""
    data: dict[str, Any] = yaml.safe_load(
        objects[("ConfigMap", "context-shadowproxy")]["data"]["config.yaml"]
    )
    return data


class TestSchemas:
    @pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
    def test_manifest_is_valid(self, path: Path) -> None:
        """Each object validates strictly against its schema (bundled, offline)."""
        kv = pytest.importorskip("kubernetes_validate")
        for doc in load_yaml_documents(path):
            try:
                kv.validate(doc, KUBERNETES_VERSION, strict=True)
            except kv.ValidationError as exc:
                pytest.fail(f"{path.name}: {doc['kind']}: {exc.message} at {list(exc.path)}")

    def test_kustomization_lists_every_manifest(self) -> None:
        """kubectl apply -k applies every manifest in the directory."""
        kustomization = yaml.safe_load((SIDECAR / "kustomization.yaml").read_text("utf-8"))
        assert sorted(kustomization["resources"]) == [p.name for p in MANIFESTS]


class TestGrpcSidecar:
    def test_config_is_grpc_only(self, config: dict[str, Any]) -> None:
        """No HTTP upstreams: the sidecar serves gRPC alone."""
        assert "upstreams" not in config
        assert "listen" not in config

    def test_service_targets_the_grpc_port(
        self, objects: dict[tuple[str, str], dict[str, Any]], config: dict[str, Any]
    ) -> None:
        """The application Service sends calls to shadowproxy's gRPC listener (h2c)."""
        (port,) = objects[("Service", "context")]["spec"]["ports"]
        proxy = container(pod_spec(objects, "context"), "shadowproxy")
        assert port_number(proxy, port["targetPort"]) == host_port(config["grpc"]["listen"])[1]
        assert port["appProtocol"] == "kubernetes.io/h2c"

    def test_app_is_the_grpc_legacy_on_localhost(
        self, objects: dict[tuple[str, str], dict[str, Any]], config: dict[str, Any]
    ) -> None:
        """The app binds 127.0.0.1, exposes no port, and is the config's gRPC legacy."""
        app = container(pod_spec(objects, "context"), "app")
        address = flag_value(app["args"], "--listen")
        assert host_port(address)[0] == "127.0.0.1"
        assert "ports" not in app
        assert config["grpc"]["legacy"] == address

    def test_candidate_is_the_candidate_service(
        self, objects: dict[tuple[str, str], dict[str, Any]], config: dict[str, Any]
    ) -> None:
        """The gRPC candidate names the candidate Service on a port reaching its container."""
        host, port_no = host_port(config["grpc"]["candidate"])
        service = objects[("Service", host)]
        (port,) = [p for p in service["spec"]["ports"] if p["port"] == port_no]
        candidate = container(pod_spec(objects, "context-candidate"), "candidate")
        target = port_number(candidate, port["targetPort"])
        assert target == host_port(flag_value(candidate["args"], "--listen"))[1]

    def test_readiness_is_the_grpc_legacy(
        self, objects: dict[tuple[str, str], dict[str, Any]], config: dict[str, Any]
    ) -> None:
        """Readiness is /readyz (the gRPC legacy reachable), liveness /healthz, on admin."""
        proxy = container(pod_spec(objects, "context"), "shadowproxy")
        assert_probes_on_admin(proxy, host_port(config["admin"])[1])

    def test_image_command_and_mounted_files(
        self,
        objects: dict[tuple[str, str], dict[str, Any]],
        config: dict[str, Any],
        dockerfile: Dockerfile,
    ) -> None:
        """The image's own command; config and descriptor set side by side in one volume."""
        spec = pod_spec(objects, "context")
        proxy = container(spec, "shadowproxy")
        assert ["shadowproxy", *proxy["args"]] == dockerfile.entry_command()
        assert flag_value(proxy["args"], "--admin") == config["admin"]
        assert flag_value(proxy["args"], "--log-dir") == config["log_dir"]
        mounts = {m["mountPath"]: m["name"] for m in proxy["volumeMounts"]}
        (volume,) = [v for v in spec["volumes"] if v["name"] == mounts["/etc/shadowproxy"]]
        names = [source["configMap"]["name"] for source in volume["projected"]["sources"]]
        assert names == ["context-shadowproxy", "context-descriptors"]
        assert Path(config["grpc"]["descriptors"]).parent == Path("/etc/shadowproxy")
        assert flag_value(proxy["args"], "--config") == "/etc/shadowproxy/config.yaml"

    def test_admin_token_comes_from_a_secret(
        self, objects: dict[tuple[str, str], dict[str, Any]], config: dict[str, Any]
    ) -> None:
        """The admin binds beyond loopback, so its token comes from a Secret."""
        assert host_port(config["admin"])[0] == "0.0.0.0"
        assert "admin_token" not in config
        proxy = container(pod_spec(objects, "context"), "shadowproxy")
        (env,) = [e for e in proxy["env"] if e["name"] == "SHADOWPROXY_ADMIN_TOKEN"]
        assert "secretKeyRef" in env["valueFrom"]

    def test_config_passes_check_config(
        self,
        objects: dict[tuple[str, str], dict[str, Any]],
        config: dict[str, Any],
        check_config: Callable[[str], subprocess.CompletedProcess[str]],
        tmp_path: Path,
    ) -> None:
        """check-config accepts the config, with a descriptor set of the service it names."""
        from grpc_tools import protoc

        (tmp_path / "context.proto").write_text(CONTEXT_PROTO)
        descriptors = tmp_path / "context.pb"
        assert (
            protoc.main(
                [
                    "protoc",
                    f"-I{tmp_path}",
                    f"--descriptor_set_out={descriptors}",
                    str(tmp_path / "context.proto"),
                ]
            )
            == 0
        )
        text = objects[("ConfigMap", "context-shadowproxy")]["data"]["config.yaml"]
        text = text.replace(config["grpc"]["descriptors"], str(descriptors))
        result = check_config(text)
        assert result.returncode == 0, result.stderr

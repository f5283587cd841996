"""The process: CLI errors exit 2 with one line; SIGTERM drains in-flight requests and exits 0."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from shadowproxy.cli import main
from tests.support import backend, config_error, json_ok, proxy_process

REPO = Path(__file__).resolve().parents[2]
UPSTREAMS = "upstreams: {legacy: 'http://a:1', candidate: 'http://b:2'}\n"


class TestGracefulStop:
    """SIGTERM stops accepting, finishes in-flight requests, flushes, exits 0."""

    async def test_sigterm_drains_in_flight_request(self, tmp_path: Path) -> None:
        """A request in flight when SIGTERM arrives is still answered; the exit code is 0."""
        arrived = asyncio.Event()
        release = asyncio.Event()

        async def slow(request: web.Request) -> web.Response:
            arrived.set()
            await release.wait()
            return web.json_response({"done": True})

        async with backend(slow) as legacy, backend(json_ok) as candidate:
            async with (
                proxy_process(
                    "--legacy", legacy.url, "--candidate", candidate.url, "--log-dir", str(tmp_path)
                ) as proxy,
                aiohttp.ClientSession() as session,
            ):
                pending = asyncio.gather(session.get(proxy.url + "/slow"))
                await asyncio.wait_for(arrived.wait(), 10)
                proxy.process.send_signal(signal.SIGTERM)
                # The proxy is draining; only now may legacy finish.
                await _wait_until_refusing(proxy.url)
                release.set()
                (response,) = await pending
                async with response:
                    assert response.status == 200
                    assert await response.json() == {"done": True}
                assert await proxy.terminate() == 0
        assert list(tmp_path.glob("*.jsonl*")), "evidence flushed"  # noqa: ASYNC240 - after the run


async def _wait_until_refusing(url: str) -> None:
    """New connections are refused once the listener has closed (bounded polling).

    Only TCP connects, never requests: a request on a connection accepted just
    before the listener closed would wait for the drain, which waits for us.
    """
    host, port = URL(url).host, URL(url).port
    async with asyncio.timeout(10):
        while True:
            try:
                _, writer = await asyncio.open_connection(host, port)
            except OSError:
                return
            writer.close()
            await writer.wait_closed()
            await asyncio.sleep(0.02)


class TestCliErrors:
    """Anything a user can get wrong exits 2 with one line."""

    @pytest.mark.parametrize(
        ("document", "expected"),
        [
            (
                "upstreams: {legacy: 'http://a:1', candidate: 'http://b:2'}\nshadw: {}\n",
                "shadw: unknown key",
            ),
            (
                UPSTREAMS + "shadow: {timeout_s: -1}\n",
                "shadow.timeout_s: must be > 0",
            ),
            ("upstreams: {legacy: 'http://a:1'}\n", "upstreams.candidate: is required"),
            (
                "upstreams: {legacy: 'ftp://a', candidate: 'http://b:2'}\n",
                "upstreams.legacy: must be an http",
            ),
            (
                UPSTREAMS + "routes: [{domain: x}]\n",
                "routes[0].match: is required",
            ),
            (
                "upstreams: {legacy: 'http://a:1', candidate: 'http://b:2'}\nadmin: 0.0.0.0:9901\n",
                "admin: binds beyond loopback",
            ),
            ("upstreams: [\n", "line 2"),
            (UPSTREAMS + "max_client_connections: 0\n", "max_client_connections: must be >= 1"),
            (
                UPSTREAMS + "clients: {header_timeout_s: 0}\n",
                "clients.header_timeout_s: must be > 0",
            ),
            (
                UPSTREAMS + "clients: {keepalive_timeout_s: -1}\n",
                "clients.keepalive_timeout_s: must be > 0",
            ),
            (
                UPSTREAMS + "clients: {address_share_percent: 0}\n",
                "clients.address_share_percent: must be > 0",
            ),
            (
                UPSTREAMS + "clients: {address_share_percent: 101}\n",
                "clients.address_share_percent: must be >= 0 and <= 100",
            ),
            (UPSTREAMS + "clients: {idle_s: 5}\n", "clients.idle_s: unknown key"),
            (
                UPSTREAMS + "evidence: {rollup_interval_s: 0}\n",
                "evidence.rollup_interval_s: must be > 0",
            ),
            (
                UPSTREAMS + "evidence: {keep_rollups_days: 0}\n",
                "evidence.keep_rollups_days: must be > 0",
            ),
            (
                UPSTREAMS + "redact: {patterns: ['(']}\n",
                "redact.patterns: '(' is not a regular expression",
            ),
            (UPSTREAMS + "redact: {body_paths: ['user']}\n", "redact.body_paths: JSONPath"),
            (UPSTREAMS + "redact: {keys: [1]}\n", "redact.keys: must be a list"),
        ],
    )
    def test_bad_config_exits_2_with_one_line(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], document: str, expected: str
    ) -> None:
        """check-config names the file and the key in a single line and exits 2."""
        assert expected in config_error(document, tmp_path, capsys)

    def test_missing_file(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A missing config file is one line, exit 2."""
        assert main(["check-config", str(tmp_path / "nope.yaml")]) == 2
        assert capsys.readouterr().err.strip().endswith("cannot read: No such file or directory")

    def test_bad_flag_value(self, capsys: pytest.CaptureFixture[str]) -> None:
        """A malformed flag is named in one line, exit 2."""
        assert (
            main(["run", "--legacy", "http://a:1", "--candidate", "http://b:2", "--listen", "nope"])
            == 2
        )
        assert capsys.readouterr().err.strip() == "--listen: must be HOST:PORT, got 'nope'"

    def test_unknown_flag(self, capsys: pytest.CaptureFixture[str]) -> None:
        """An unknown flag is a one-line usage error, exit 2."""
        with pytest.raises(SystemExit) as exc:
            main(["run", "--nope"])
        assert exc.value.code == 2
        assert capsys.readouterr().err.count("\n") == 1

    def test_good_config(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A valid file is reported ok with its route count."""
        path = tmp_path / "good.yaml"
        path.write_text(
            "upstreams: {legacy: 'http://a:1', candidate: 'http://b:2'}\n"
            "routes: [{match: '/orders/{id}', domain: orders}]\n"
        )
        assert main(["check-config", str(path)]) == 0
        assert "ok (1 routes" in capsys.readouterr().out

    def test_example_configs_are_valid(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Every example config shipped in config/ passes check-config."""
        examples = sorted((REPO / "config").glob("*.yaml"))
        assert examples
        for example in examples:
            assert main(["check-config", str(example)]) == 0, capsys.readouterr().err

    def test_no_traceback_from_subprocess(self, tmp_path: Path) -> None:
        """The real process prints one line, no traceback, for a bad config."""
        import subprocess

        path = tmp_path / "bad.yaml"
        path.write_text("listen: 1\n")
        result = subprocess.run(
            [sys.executable, "-m", "shadowproxy", "check-config", str(path)],
            capture_output=True,
            text=True,
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            check=False,
        )
        assert result.returncode == 2
        assert "Traceback" not in result.stderr
        assert result.stderr.count("\n") == 1

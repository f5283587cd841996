"""Configuration a user can get wrong, or an attacker can plant: one line, exit 2, never a hang.

``check-config`` (and ``run``, which reads the file the same way) refuses
non-finite and out-of-range numbers, keys given twice, deep nesting, huge
numbers, files that are not regular or too large, and upstreams that carry
credentials, naming the file and the key, without echoing a password.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from shadowproxy.cli import main
from shadowproxy.yamlfile import MAX_BYTES
from tests.support import REPO, config_error

UPSTREAMS = "upstreams: {legacy: 'http://a:1', candidate: 'http://b:2'}\n"
GRPC = "grpc: {listen: '127.0.0.1:0', legacy: 'l:1', candidate: 'c:2', "


def _check_config(path: Path) -> subprocess.CompletedProcess[str]:
    """``shadowproxy check-config PATH`` as a process, bounded (a hang is the bug under test)."""
    return subprocess.run(
        [sys.executable, "-m", "shadowproxy", "check-config", str(path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=60,
        check=False,
    )


class TestNumbers:
    """NaN, infinities and values out of range are refused, naming the key."""

    @pytest.mark.parametrize(
        ("document", "expected"),
        [
            (
                UPSTREAMS + "shadow: {timeout_s: .nan}\n",
                "shadow.timeout_s: must be a finite number",
            ),
            (
                UPSTREAMS + "legacy: {timeout_s: .inf}\n",
                "legacy.timeout_s: must be a finite number",
            ),
            (UPSTREAMS + "drain_s: -.inf\n", "drain_s: must be a finite number"),
            (
                UPSTREAMS + "shadow: {sample_percent: .nan}\n",
                "shadow.sample_percent: must be a finite number",
            ),
            (
                UPSTREAMS + "compare: {tolerance: {absolute: .nan}}\n",
                "compare.tolerance.absolute: must be a finite number",
            ),
            (UPSTREAMS + GRPC + "timeout_s: .inf}\n", "grpc.timeout_s: must be a finite number"),
            (
                UPSTREAMS + "workers: 100000\n",
                "workers: must be an integer from 1 to 256, or 'auto'",
            ),
            (
                UPSTREAMS + "shadow: {timeout_s: 86401}\n",
                "shadow.timeout_s: must be > 0 and <= 86400",
            ),
            (
                UPSTREAMS + "shadow: {max_loop_lag_ms: 100000000000}\n",
                "shadow.max_loop_lag_ms: must be > 0 and <= 86400000",
            ),
            (
                UPSTREAMS + "shadow: {compare_max_bytes: 2000000000}\n",
                "shadow.compare_max_bytes: must be >= 1 and <= 1073741824",
            ),
            (
                UPSTREAMS + "evidence: {max_total_bytes: 10000000000000}\n",
                "evidence.max_total_bytes: must be >= 1 and <= 1099511627776",
            ),
            (
                UPSTREAMS + "shadow: {max_inflight: 100000000}\n",
                "shadow.max_inflight: must be >= 1 and <= 10000000",
            ),
            (
                UPSTREAMS + "evidence: {sample_matches_percent: 101}\n",
                "evidence.sample_matches_percent: must be >= 0 and <= 100",
            ),
            (
                UPSTREAMS + "evidence: {keep_rollups_days: 100000}\n",
                "evidence.keep_rollups_days: must be > 0 and <= 3650",
            ),
            (
                UPSTREAMS + "max_client_connections: 100000000\n",
                "max_client_connections: must be >= 1 and <= 10000000",
            ),
        ],
    )
    def test_refused(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], document: str, expected: str
    ) -> None:
        """One line naming the file and the key, exit 2."""
        assert config_error(document, tmp_path, capsys) == expected + "\n"


class TestDocument:
    """The file is bounded and checked before YAML builds anything from it."""

    @pytest.mark.parametrize(
        ("document", "expected"),
        [
            (
                UPSTREAMS + "shadow:\n  timeout_s: 1\n  timeout_s: 2\n",
                "shadow.timeout_s: given twice (lines 3 and 4)",
            ),
            (
                UPSTREAMS + "upstreams: {legacy: 'http://c:3'}\n",
                "upstreams: given twice (lines 1 and 2)",
            ),
            (
                UPSTREAMS + "routes:\n  - {match: /a, match: /b}\n",
                "routes[0].match: given twice (lines 3 and 3)",
            ),
            (
                UPSTREAMS + "x: " + "[" * 3000 + "]" * 3000 + "\n",
                "line 2: nested deeper than 64 levels",
            ),
            (
                UPSTREAMS + "".join(" " * i + "a:\n" for i in range(100)),
                "line 66: nested deeper than 64 levels",
            ),
            (
                UPSTREAMS + "workers: " + "9" * 5000 + "\n",
                "workers: a number of 5000 characters is too long",
            ),
            (UPSTREAMS + "a: 2001-13-45\n", "(parse): invalid value: month must be in 1..12"),
        ],
    )
    def test_refused(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], document: str, expected: str
    ) -> None:
        """One line naming the file and the key (or the line), exit 2, no traceback."""
        assert config_error(document, tmp_path, capsys) == expected + "\n"

    def test_three_thousand_block_levels(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """3,000 block levels are over the size bound before anyone parses them."""
        document = UPSTREAMS + "".join(" " * i + "a:\n" for i in range(3000))
        assert config_error(document, tmp_path, capsys) == (
            f"cannot read: larger than {MAX_BYTES} bytes\n"
        )

    def test_too_large(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A file one byte over the bound is refused unread."""
        document = UPSTREAMS + "#" * (MAX_BYTES - len(UPSTREAMS)) + "\n"
        assert config_error(document, tmp_path, capsys) == (
            f"cannot read: larger than {MAX_BYTES} bytes\n"
        )

    def test_dev_zero_is_refused_at_once(self) -> None:
        """check-config /dev/zero exits 2 at once instead of reading forever."""
        result = _check_config(Path("/dev/zero"))
        assert (result.returncode, result.stderr) == (
            2,
            "/dev/zero: cannot read: not a regular file\n",
        )

    def test_fifo_is_refused_without_waiting_for_a_writer(self, tmp_path: Path) -> None:
        """A FIFO is refused at once: opening it for reading does not wait for a writer."""
        fifo = tmp_path / "config.yaml"
        os.mkfifo(fifo)
        result = _check_config(fifo)
        assert (result.returncode, result.stderr) == (
            2,
            f"{fifo}: cannot read: not a regular file\n",
        )

    def test_directory_is_refused(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A directory is not a configuration file."""
        assert main(["check-config", str(tmp_path)]) == 2
        assert capsys.readouterr().err == f"{tmp_path}: cannot read: not a regular file\n"


class TestAddresses:
    """Hosts, ports, worker counts and paths that urllib or int() would refuse with a traceback."""

    @pytest.mark.parametrize(
        ("document", "expected"),
        [
            (
                "upstreams: {legacy: 'http://[::1', candidate: 'http://b:2'}\n",
                "upstreams.legacy: Invalid IPv6 URL",
            ),
            (
                UPSTREAMS + "listen: '127.0.0.1:\u00b2'\n",
                "listen: must be HOST:PORT, got '127.0.0.1:\u00b2'",
            ),
            (
                UPSTREAMS + "listen: '127.0.0.1:\u0663'\n",
                "listen: must be HOST:PORT, got '127.0.0.1:\u0663'",
            ),
            (
                UPSTREAMS + "workers: '\u00b2'\n",
                "workers: must be an integer from 1 to 256, or 'auto'",
            ),
            (UPSTREAMS + 'log_dir: "a\\0b"\n', "log_dir: must not contain a NUL character"),
            (
                UPSTREAMS + 'capture: {dir: "a\\0b", percent: 1}\n',
                "capture.dir: must not contain a NUL character",
            ),
            (
                UPSTREAMS + 'redact: {headers: ["x-a\\0"]}\n',
                "redact.headers: must not contain a NUL character",
            ),
            (
                "nats: {server: {url: 'nats://[::1'}, requests: []}\n",
                "nats.server.url: Invalid IPv6 URL",
            ),
        ],
    )
    def test_refused(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], document: str, expected: str
    ) -> None:
        """One line naming the file and the key, exit 2, no traceback."""
        assert config_error(document, tmp_path, capsys) == expected + "\n"

    @pytest.mark.parametrize(
        ("flags", "expected"),
        [
            (
                ["--legacy", "http://[::1", "--candidate", "http://b:2"],
                "--legacy: Invalid IPv6 URL",
            ),
            (
                ["--listen", "127.0.0.1:\u00b2"],
                "--listen: must be HOST:PORT, got '127.0.0.1:\u00b2'",
            ),
            (["--workers", "\u00b2"], "--workers: must be an integer from 1 to 256, or 'auto'"),
        ],
    )
    def test_flags(
        self, capsys: pytest.CaptureFixture[str], flags: list[str], expected: str
    ) -> None:
        """The same from the command line: exit 2 before anything starts."""
        upstreams = ["--legacy", "http://a:1", "--candidate", "http://b:2"]
        assert main(["run", *upstreams, *flags]) == 2
        assert capsys.readouterr().err == expected + "\n"


class TestCredentials:
    """Upstreams with user:password@ are refused in one line that never shows the password."""

    REFUSAL = "must not carry credentials (user:password@); the proxy never sends them\n"

    @pytest.mark.parametrize(
        ("flags", "where"),
        [
            (["--legacy", "http://svc:PW-s3cr3t@l:80", "--candidate", "http://b:2"], "--legacy"),
            (["--legacy", "http://a:1", "--candidate", "https://PW-s3cr3t@c:443"], "--candidate"),
            (["--legacy", "svc:PW-s3cr3t@l:80", "--candidate", "http://b:2"], "--legacy"),
            (
                [
                    "--legacy",
                    "http://a:1",
                    "--candidate",
                    "http://b:2",
                    "--grpc-listen",
                    "127.0.0.1:0",
                    "--grpc-legacy",
                    "svc:PW-s3cr3t@l:50051",
                    "--grpc-candidate",
                    "c:2",
                ],
                "--grpc-legacy",
            ),
        ],
    )
    def test_flags(self, capsys: pytest.CaptureFixture[str], flags: list[str], where: str) -> None:
        """``run --legacy http://svc:PW@host`` exits 2 before anything starts."""
        assert main(["run", *flags]) == 2
        err = capsys.readouterr().err
        assert err == f"{where}: {self.REFUSAL}"
        assert "s3cr3t" not in err

    @pytest.mark.parametrize(
        ("document", "where"),
        [
            (
                "upstreams: {legacy: 'http://svc:PW-s3cr3t@a:1', candidate: 'http://b:2'}\n",
                "upstreams.legacy",
            ),
            (
                UPSTREAMS.replace("}", ", secondary: 'http://u:PW-s3cr3t@s:3'}"),
                "upstreams.secondary",
            ),
            (UPSTREAMS + GRPC.replace("c:2", "u:PW-s3cr3t@c:2") + "}\n", "grpc.candidate"),
        ],
    )
    def test_config(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], document: str, where: str
    ) -> None:
        """The same in the file, naming the file and the key."""
        err = config_error(document, tmp_path, capsys)
        assert err == f"{where}: {self.REFUSAL}"
        assert "s3cr3t" not in err

    def test_nats_url_with_another_scheme(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A NATS URL with credentials and a wrong scheme is refused for its credentials."""
        document = "nats: {server: {url: 'natz://u:PW-s3cr3t@a:1'}, requests: []}\n"
        err = config_error(document, tmp_path, capsys)
        assert err == "nats.server.url: must not carry credentials; use user and password_env\n"
        assert "s3cr3t" not in err

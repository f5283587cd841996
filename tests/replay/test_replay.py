"""``shadow replay``: captured requests replayed to two real backends, judged, with exit codes."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import pty
import sys
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from shadowproxy.cli import main
from shadowproxy.settings import RedactSettings
from shadowproxy.sinks import Redactor
from shadowproxy.sinks.capture import capture_record
from tests.support import REPO, Backend, backend, held_port, make_settings, running_proxy

TOKEN = "CNRYreplaytoken42"


def write_capture(path: Path, requests: list[tuple[str, str, dict[str, str], bytes]]) -> Path:
    """A capture file of ``requests`` (method, target, headers, body), redacted as captured."""
    redactor = Redactor(RedactSettings())
    with path.open("wb") as out:
        for n, (method, target, headers, body) in enumerate(requests):
            record = capture_record(
                id=str(n),
                ts=0.0,
                route="",
                domain="",
                method=method,
                target=target,
                headers=list(headers.items()),
                body=body,
                redactor=redactor,
            )
            out.write(orjson.dumps(record) + b"\n")
    return path


def shop(*, total: int = 30, name: str = "lamp") -> Any:
    """A small JSON API: items, a search, orders; ``total`` and ``name`` are what drift."""

    async def handle(request: web.Request) -> web.Response:
        if request.method == "POST":
            body = await request.json()
            return web.json_response({"ordered": body["item"], "total": total}, status=201)
        if request.path.startswith("/items/"):
            return web.json_response({"id": int(request.path.rsplit("/", 1)[1]), "name": name})
        return web.json_response({"results": [name], "auth": request.headers.get("Authorization")})

    return handle


async def replay(*args: str) -> tuple[int, str, str]:
    """``shadow replay ARGS`` in a thread (the backends run on this loop): code, out, err."""
    return await asyncio.to_thread(_run, ["replay", *args])


async def replay_to(
    capture: Path, legacy: Backend, candidate: Backend, log_dir: Path, *more: str
) -> tuple[int, str, str]:
    """``shadow replay CAPTURE`` to both backends, its evidence in ``log_dir``, with ``more``."""
    return await replay(
        str(capture),
        "--legacy",
        legacy.url,
        "--candidate",
        candidate.url,
        "--log-dir",
        str(log_dir),
        *more,
    )


def _run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


REQUESTS = [
    ("GET", "/items/1", {"Accept": "application/json"}, b""),
    ("GET", "/search?q=lamp", {"Authorization": f"Bearer {TOKEN}"}, b""),
    ("POST", "/orders", {"Content-Type": "application/json"}, b'{"item": "lamp"}'),
    ("GET", "/items/2", {}, b""),
]


class TestReplay:
    async def test_a_capture_made_by_the_proxy_replays_and_passes(self, tmp_path: Path) -> None:
        """Run captures, replay sends it to both sides; same answers exit 0 with a report."""
        captures = tmp_path / "captures"
        document = {"capture": {"dir": str(captures), "percent": 100, "per_second": 100}}
        async with backend(shop()) as legacy, backend(shop()) as candidate:
            settings = make_settings(legacy.url, candidate.url, tmp_path / "logs", document)
            async with running_proxy(settings) as proxy:
                async with aiohttp.ClientSession() as session:
                    for method, target, headers, body in REQUESTS:
                        await session.request(
                            method, proxy.url + target, headers=headers, data=body
                        )
            legacy.seen.clear()
            code, out, err = await replay_to(
                captures, legacy, candidate, tmp_path / "replay", "--dry-run"
            )
        assert code == 0, out + err
        assert out.startswith("shadow report PASS")
        assert "4 requests, 4 sent" in err
        assert sorted(s.path for s in legacy.seen) == [
            "/items/1",
            "/items/2",
            "/orders",
            "/search?q=lamp",
        ]
        assert all(("X-Shadow-Replay", "1") in s.headers for s in legacy.seen)
        # The same JSONL as the proxy's: shadow report reads it with gates unchanged.
        assert main(["report", str(tmp_path / "replay"), "--since", "1h"]) == 1
        assert "3 of 1000 compared" not in out

    async def test_a_drifting_candidate_fails_with_its_differences(self, tmp_path: Path) -> None:
        """A candidate renaming an item exits 1, and the report names the route and path."""
        capture = write_capture(tmp_path / "capture-a.jsonl", REQUESTS)
        async with backend(shop()) as legacy, backend(shop(name="Lamp")) as candidate:
            code, out, _ = await replay_to(
                capture, legacy, candidate, tmp_path / "replay", "--format", "json"
            )
        report = json.loads(out)
        assert code == 1
        assert {(f["route"], f["path"]) for f in report["fingerprints"]} >= {
            ("/items/{id}", "$.name"),
            ("/search", "$.results[0]"),
        }

    async def test_writes_only_with_dry_run_or_disposable(self, tmp_path: Path) -> None:
        """Without a flag a write is skipped; --dry-run sends it with the dry-run header."""
        capture = write_capture(tmp_path / "capture-a.jsonl", REQUESTS[2:3])
        async with backend(shop()) as legacy, backend(shop()) as candidate:
            skipped = await replay_to(capture, legacy, candidate, tmp_path / "one")
            assert (legacy.seen, candidate.seen) == ([], [])
            sent = await replay_to(capture, legacy, candidate, tmp_path / "two", "--dry-run")
        # Nothing compared: insufficient, never a pass.
        assert skipped[0] == 1
        assert "skipped: 1 method (writes need --dry-run or --disposable)" in skipped[2]
        assert sent[0] == 0, sent
        for side in (legacy, candidate):
            assert [(s.method, dict(s.headers)["X-Shadow-Dry-Run"]) for s in side.seen] == [
                ("POST", "1")
            ]

    async def test_credentials_are_put_back_and_never_recorded(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A redacted Authorization gets the credential from the environment; no file keeps it."""
        capture = write_capture(tmp_path / "capture-a.jsonl", REQUESTS[1:2])
        assert TOKEN not in capture.read_text()
        monkeypatch.setenv("REPLAY_CREDENTIALS", f"Authorization: Bearer {TOKEN}\n")
        async with backend(shop()) as legacy, backend(shop(name="other")) as candidate:
            code, out, err = await replay_to(
                capture,
                legacy,
                candidate,
                tmp_path / "replay",
                "--credentials-env",
                "REPLAY_CREDENTIALS",
            )
        assert code == 1
        assert dict(legacy.seen[0].headers)["Authorization"] == f"Bearer {TOKEN}"
        assert dict(candidate.seen[0].headers)["Authorization"] == f"Bearer {TOKEN}"
        written = b"".join(p.read_bytes() for p in (tmp_path / "replay").iterdir())
        assert TOKEN.encode() not in written and b"other" in written
        assert TOKEN not in out + err

    async def test_bounded_concurrency(self, tmp_path: Path) -> None:
        """No more than --concurrency requests reach a side at once."""
        active = peak = 0
        gate = asyncio.Event()

        async def slow(request: web.Request) -> web.Response:
            nonlocal active, peak
            active += 1
            peak = max(peak, active)
            if peak >= 2:
                gate.set()
            await asyncio.wait_for(gate.wait(), 5)
            active -= 1
            return web.json_response({"ok": True})

        capture = write_capture(
            tmp_path / "capture-a.jsonl", [("GET", f"/items/{n}", {}, b"") for n in range(8)]
        )
        async with backend(slow) as legacy, backend(json_ok_handler) as candidate:
            code, _, err = await replay_to(
                capture, legacy, candidate, tmp_path / "replay", "--concurrency", "2"
            )
        assert (code, peak, len(legacy.seen)) == (0, 2, 8), err


async def json_ok_handler(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


class TestReplayInput:
    @pytest.mark.parametrize(
        ("content", "expected"),
        [
            (
                b"not json\n",
                "line 1: not JSON (invalid literal, expected 'null': line 1 column 1 (char 0))",
            ),
            (b'{"v": 1, "type": "exchange"}\n', "line 1: not a capture record"),
            (
                b'{"v": 1, "type": "capture", "method": "GET", "target": "x", "headers": []}\n',
                "line 1: target: must be a printable path starting with /",
            ),
        ],
    )
    async def test_a_bad_capture_exits_2_naming_the_line(
        self, tmp_path: Path, content: bytes, expected: str
    ) -> None:
        """A hostile capture is one line on stderr, never a traceback, nothing sent."""
        capture = tmp_path / "capture-x.jsonl"
        capture.write_bytes(content)
        code, out, err = await replay(
            str(capture), "--legacy", "http://127.0.0.1:1", "--candidate", "http://127.0.0.1:2"
        )
        assert (code, out) == (2, "")
        assert err == f"shadow replay: {capture}: {expected}\n"

    async def test_flags_that_cannot_run_exit_2(self, tmp_path: Path) -> None:
        """A replay needs both sides; golden modes refuse the side they do not use."""
        capture = write_capture(tmp_path / "capture-a.jsonl", REQUESTS[:1])
        assert (await replay(str(capture), "--legacy", "http://127.0.0.1:1"))[2] == (
            "shadow replay: --candidate: required to replay\n"
        )
        assert (
            await replay(
                str(capture),
                "--golden",
                str(tmp_path),
                "--candidate",
                "http://127.0.0.1:2",
                "--legacy",
                "http://127.0.0.1:1",
            )
        )[2] == "shadow replay: --legacy: not used to check\n"

    async def test_a_side_refusing_everything_exits_2(self, tmp_path: Path) -> None:
        """Nothing listening on legacy is bad input for CI, not a divergence."""
        capture = write_capture(tmp_path / "capture-a.jsonl", REQUESTS[:1])
        with held_port() as sock:
            port = sock.getsockname()[1]
            async with backend(shop()) as candidate:
                code, _, err = await replay(
                    str(capture),
                    "--legacy",
                    f"http://127.0.0.1:{port}",
                    "--candidate",
                    candidate.url,
                    "--log-dir",
                    str(tmp_path / "r"),
                )
        assert code == 2
        assert err.endswith(
            f"shadow replay: --legacy http://127.0.0.1:{port}: refused every request"
            " (is it running?)\n"
        )


class TestImportHar:
    async def test_a_har_becomes_a_capture_without_its_secrets(self, tmp_path: Path) -> None:
        """import-har writes capture records (redacted); replay reads a HAR file directly too."""
        har = tmp_path / "session.har"
        entry = {
            "request": {
                "method": "GET",
                "url": f"https://shop.example/search?q=lamp&api_key={TOKEN}",
                "headers": [
                    {"name": ":authority", "value": "shop.example"},
                    {"name": "Cookie", "value": f"sid={TOKEN}"},
                    {"name": "Accept", "value": "application/json"},
                ],
            }
        }
        har.write_text(json.dumps({"log": {"version": "1.2", "entries": [entry]}}))
        out = tmp_path / "capture-har.jsonl"
        code, printed, _ = await asyncio.to_thread(
            _run, ["import-har", str(har), "--out", str(out)]
        )
        assert (code, printed) == (0, f"{har}: 1 requests written to {out}\n")
        text = out.read_text()
        assert TOKEN not in text
        record = orjson.loads(text)
        assert record["target"] == "/search?q=lamp&api_key=[REDACTED]"
        assert record["headers"] == [["Cookie", "[REDACTED]"], ["Accept", "application/json"]]
        assert out.stat().st_mode & 0o777 == 0o600
        async with backend(shop()) as legacy, backend(shop()) as candidate:
            code, _, err = await replay_to(har, legacy, candidate, tmp_path / "replay")
        assert code == 0, err
        assert [s.path for s in legacy.seen] == ["/search?q=lamp&api_key=[REDACTED]"]
        assert all(k != "Cookie" for k, _ in legacy.seen[0].headers)


class TestProgress:
    async def test_a_progress_bar_only_on_a_terminal(self, tmp_path: Path) -> None:
        """On a terminal stderr shows the bar; piped, only the summary line (clean CI logs)."""
        capture = write_capture(tmp_path / "capture-a.jsonl", REQUESTS[:2])
        async with backend(shop()) as legacy, backend(shop()) as candidate:
            argv = [
                sys.executable,
                "-m",
                "shadowproxy",
                "replay",
                str(capture),
                "--legacy",
                legacy.url,
                "--candidate",
                candidate.url,
                "--log-dir",
                str(tmp_path / "replay"),
            ]
            env = {**os.environ, "PYTHONPATH": str(REPO), "TERM": "xterm", "COLUMNS": "100"}
            main_fd, terminal = pty.openpty()
            process = await asyncio.create_subprocess_exec(
                *argv, stdout=asyncio.subprocess.PIPE, stderr=terminal, cwd=REPO, env=env
            )
            os.close(terminal)
            shown, _ = await asyncio.gather(asyncio.to_thread(_drain, main_fd), process.wait())
            piped = await asyncio.create_subprocess_exec(
                *argv,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=REPO,
                env=env,
            )
            _, err = await piped.communicate()
        assert process.returncode == piped.returncode == 0
        assert "replaying" in shown
        assert err.decode() == "shadow replay: 2 requests, 2 sent\n"


def _drain(fd: int) -> str:
    """Everything written to a pseudo-terminal until its other end closes."""
    chunks = []
    with contextlib.suppress(OSError):
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks).decode(errors="replace")

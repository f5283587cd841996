"""Capture: ``shadowproxy run`` samples requests into a capture file that holds no secret."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import orjson
import pytest

from shadowproxy.cli import main
from shadowproxy.settings import CaptureSettings, RedactSettings, RouteCapture
from shadowproxy.sinks import Redactor
from shadowproxy.sinks.capture import Capture
from tests.proxy.test_echoed_secrets import (
    BASIC,
    BEARER,
    CONTROL,
    COOKIE,
    HEADER,
    JWT,
    PASSWORD,
    PATTERN,
    PIN,
    QUERY,
    SSN,
    needles,
)
from tests.support import REPO, backend, config_error, json_ok, make_settings, running_proxy

SCHEMA = json.loads((REPO / "shadowproxy/schemas/capture.schema.json").read_text())
REDACT = {
    "headers": ["x-internal-ref"],
    "body_paths": ["$.user.ssn", "$.pin"],
    "patterns": ["CNRYpat[0-9]+"],
}


def captured(directory: Path) -> list[dict[str, Any]]:
    """Every record of every capture file in ``directory``."""
    return [
        orjson.loads(line)
        for path in sorted(directory.glob("capture-*.jsonl"))
        for line in path.read_bytes().splitlines()
    ]


class TestCapture:
    async def test_a_capture_holds_no_secret(self, tmp_path: Path) -> None:
        """Credentials, cookies, secret query values, body secrets, JWTs and patterns are gone."""
        captures = tmp_path / "captures"
        document = {
            "redact": REDACT,
            "capture": {"dir": str(captures), "percent": 100, "per_second": 1000},
            "routes": [{"match": "/submit/*", "mirror_writes": True}],
        }
        query = "&".join(f"{k}={v}" for k, v in QUERY.items()) + f"&q={CONTROL}"
        requests: list[tuple[str, str, dict[str, str], bytes]] = [
            ("GET", f"/items/1?{query}", {"Authorization": f"Bearer {BEARER}"}, b""),
            ("GET", f"/basic/{PASSWORD}", {"Authorization": BASIC, "X-Trace": JWT}, b""),
            (
                "POST",
                "/submit/json",
                {"Content-Type": "application/json", "Cookie": f"sid={COOKIE}; theme=dark"},
                orjson.dumps(
                    {
                        "user": {"ssn": SSN, "name": CONTROL},
                        "pin": PIN,
                        "password": BEARER,
                        "note": f"see {PATTERN}",
                        "echo": f"token {COOKIE}",
                    }
                ),
            ),
            (
                "POST",
                "/submit/form",
                {"Content-Type": "application/x-www-form-urlencoded", "X-Internal-Ref": HEADER},
                f"pin={PIN}&api_token={BEARER}&q={CONTROL}".encode(),
            ),
        ]
        async with backend(json_ok) as legacy, backend(json_ok) as candidate:
            settings = make_settings(legacy.url, candidate.url, tmp_path / "logs", document)
            async with running_proxy(settings) as proxy:
                async with aiohttp.ClientSession() as session:
                    for method, target, headers, body in requests:
                        async with session.request(
                            method, proxy.url + target, headers=headers, data=body
                        ) as response:
                            assert response.status == 200
        text = b"".join(p.read_bytes() for p in captures.iterdir()).decode()
        found = {what for needle, what in needles().items() if needle in text}
        assert found == set()
        assert JWT not in text and PATTERN not in text
        records = captured(captures)
        for record in records:
            jsonschema.validate(record, SCHEMA)
        assert [(r["method"], r["target"].partition("?")[0]) for r in records] == [
            ("GET", "/items/1"),
            ("GET", "/basic/[REDACTED]"),
            ("POST", "/submit/json"),
            ("POST", "/submit/form"),
        ]
        assert f"q={CONTROL}" in records[0]["target"]
        assert ["Authorization", "[REDACTED]"] in records[0]["headers"]
        assert orjson.loads(records[2]["body"])["user"] == {"ssn": "[REDACTED]", "name": CONTROL}
        assert f"q={CONTROL}" in records[3]["body"]
        assert all(name.lower() != "host" for r in records for name, _ in r["headers"])

    async def test_share_and_rate_bound_what_is_captured(self, tmp_path: Path) -> None:
        """per_second bounds a route's captures; a route with mirror: false is never captured."""
        captures = tmp_path / "captures"
        document = {
            "capture": {"dir": str(captures), "percent": 100, "per_second": 0.001},
            "routes": [
                {"match": "/claim", "mirror": False},
                {"match": "/off", "capture": {"percent": 0}},
            ],
        }
        async with backend(json_ok) as legacy, backend(json_ok) as candidate:
            settings = make_settings(legacy.url, candidate.url, tmp_path / "logs", document)
            async with running_proxy(settings) as proxy:
                async with aiohttp.ClientSession() as session:
                    for path in ["/a", "/a", "/a", "/b", "/claim", "/off"]:
                        async with session.get(proxy.url + path) as response:
                            assert response.status == 200
        assert [r["target"] for r in captured(captures)] == ["/a", "/b"]

    def test_full_file_and_large_bodies_are_dropped_and_counted(self, tmp_path: Path) -> None:
        """Past max_bytes nothing more is written; a body over max_body_bytes is never captured."""
        settings = CaptureSettings(dir=str(tmp_path), max_bytes=600, max_body_bytes=10)
        capture = Capture(settings, Redactor(RedactSettings()), "w1")
        capture.start()
        rule = RouteCapture(percent=100, per_second=1000)
        for n in range(10):
            capture.offer(
                rule,
                id=str(n),
                route="/a",
                domain="d",
                method="GET",
                target=f"/a/{n}",
                headers=[("Accept", "*/*")],
                body=b"",
            )
        capture.offer(
            rule,
            id="big",
            route="/a",
            domain="d",
            method="POST",
            target="/a",
            headers=[],
            body=b"x" * 11,
        )
        assert capture.close(5.0)
        stats = capture.stats()
        records = captured(tmp_path)
        assert 0 < len(records) < 10
        assert stats["written"] == len(records)
        assert stats["dropped"] == {
            "queue_full": 0,
            "body_too_large": 1,
            "file_full": 10 - len(records),
            "write_error": 0,
            "encode_error": 0,
        }
        assert (tmp_path / "capture-w1.jsonl").stat().st_size <= 600
        assert (tmp_path / "capture-w1.jsonl").stat().st_mode & 0o777 == 0o600

    def test_capture_dir_is_never_inside_the_evidence(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """``shadow report`` reads every .jsonl below log_dir: captures must live elsewhere."""
        document = (
            "upstreams: {legacy: 'http://127.0.0.1:1', candidate: 'http://127.0.0.1:2'}\n"
            f"log_dir: {tmp_path}/logs\ncapture: {{dir: {tmp_path}/logs/captures, percent: 1}}\n"
        )
        assert config_error(document, tmp_path, capsys) == (
            "capture.dir: must not be inside log_dir: shadow report reads every .jsonl below it\n"
        )
        # Capturing nothing, the default directory may sit anywhere (a working directory).
        (tmp_path / "ok.yaml").write_text(document.replace(", percent: 1", ""))
        assert main(["check-config", str(tmp_path / "ok.yaml")]) == 0

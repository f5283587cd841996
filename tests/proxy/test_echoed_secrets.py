"""Secrets that come back: echo backends return every planted secret, no output keeps one.

Real backends echo a request's credentials, cookies, query values, configured
headers, body values and path back in JSON, form, text and HTML bodies and in
response headers, raw, percent-encoded and in base64; legacy and the
candidate wrap them differently, so every echo is a recorded difference.
Every file, log line, ``/metrics``, ``/status``, every ``shadow report``
format and the tracker CSV are then searched for every form of every canary.
A control value echoed the same way must show up, so a clean result means
scrubbing worked, not that nothing was recorded.
"""

from __future__ import annotations

import base64
import html
import io
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import aiohttp
import orjson
from aiohttp import web
from yarl import URL

from shadowproxy.cli import main
from shadowproxy.sinks import configure_logging
from tests.support import backend, eventually, make_settings, running_proxy

BEARER = "CNRYbearer7f3a9e"
USER = "CNRYuser11"
PASSWORD = "CNRYpw2b8c"
DIGEST_USER = "CNRYdigu5e"
DIGEST_RESPONSE = "CNRYdigresp0a1"
COOKIE = "CNRYcookie5d"
HEADER = "CNRYhdr9x"
QUERY = {"token": "CNRYqtok1", "api_key": "CNRYqkey2", "code": "CNRYqcode3", "jwt": "CNRYqjwt4"}
SSN = "CNRYssn123"
PIN = "CNRYpin456"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.CNRYjwtSignature"
PATTERN = "CNRYpat987"
RESPONSE_TOKEN = "CNRYrsptok"
RESPONSE_SSN = "CNRYrspssn"
SET_COOKIE = "CNRYsetck"
CONTROL = "VISIBLEcontrol42"

REQUEST_CANARIES = (
    BEARER,
    USER,
    PASSWORD,
    DIGEST_USER,
    DIGEST_RESPONSE,
    COOKIE,
    HEADER,
    *QUERY.values(),
    SSN,
    PIN,
)
"""Secrets of the requests: no form of them (raw, encoded, base64) may be kept."""
RESPONSE_CANARIES = (JWT, PATTERN, RESPONSE_TOKEN, RESPONSE_SSN, SET_COOKIE)
"""Secrets only the answers hold (a JWT, a pattern, secret keys, a body path): kept nowhere."""
FORMATS = ("json", "form", "text", "html")
BASIC = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
DIGEST = (
    f'Digest username="{DIGEST_USER}", realm="r", nonce="n-1", uri="/x",'
    f' response="{DIGEST_RESPONSE}", qop=auth'
)


def needles() -> dict[str, str]:
    """Every form of every canary an output must not hold, by what it is."""
    found = {canary: f"{canary} (from an answer)" for canary in RESPONSE_CANARIES}
    for canary in REQUEST_CANARIES:
        raw = canary.encode()
        found[canary] = f"{canary} (raw)"
        found[quote(canary, safe="")] = f"{canary} (percent-encoded)"
        for offset in range(3):
            # Inside a base64 text the canary sits at one of three alignments; these
            # characters carry only its bits (the first few carry the text before it).
            encoded = base64.b64encode(bytes(offset) + raw).decode()
            core = encoded[offset + 1 if offset else 0 : len(encoded) - 4]
            found[core] = f"{canary} (base64 at offset {offset})"
            found[core.replace("+", "-").replace("/", "_")] = f"{canary} (base64url)"
    found[BASIC.split()[1]] = "Basic credentials"
    return found


def echo(side: str) -> Any:
    """A backend echoing the ``echo`` query key's value in the ``fmt`` it names."""

    async def handler(request: web.Request) -> web.Response:
        body = (await request.read()).decode("utf-8", "replace")
        values = {
            **{name.lower(): value for name, value in request.headers.items()},
            **request.query,
            "body": body,
            "path": request.path,
            "jwt_out": JWT,
            "pattern_out": PATTERN,
        }
        if request.query.get("fmt") == "reset" and request.transport is not None:
            # Legacy failing makes the proxy log a line about this request.
            request.transport.abort()
        value = values.get(request.query.get("echo", ""), "")
        content = f"{value} {quote(value, safe='')} {base64.b64encode(value.encode()).decode()}"
        fmt = request.query.get("fmt", "json")
        if fmt == "json":
            user = {"ssn": f"{RESPONSE_SSN}-{side}", "name": side}
            document = {
                f"{side}_echo": content,
                "access_token": f"{RESPONSE_TOKEN}-{side}",
                # The candidate's user is a JSON document inside a string.
                "user": user if side == "legacy" else orjson.dumps(user).decode(),
                "q": request.query.get("q"),
            }
            response = web.json_response(document)
        elif fmt == "form":
            text = f"side={side}&echo={quote_plus(content)}&password={RESPONSE_TOKEN}"
            response = web.Response(text=text, content_type="application/x-www-form-urlencoded")
        elif fmt == "text":
            response = web.Response(text=f"{side} said: {content}\nbye\n")
        else:
            escaped = html.escape(content)
            response = web.Response(
                text=f"<html><body><p>{side}: {escaped}</p></body></html>",
                content_type="text/html",
            )
        response.headers["X-Echo"] = f"{side} {content}"[:400]
        response.headers["X-Session-Token"] = f"{RESPONSE_TOKEN}-{side}"
        response.headers["Set-Cookie"] = f"sid={SET_COOKIE}-{side}"
        return response

    return handler


def report_outputs(log_dir: Path, out_dir: Path) -> dict[str, str]:
    """Every ``shadow report`` format and the tracker CSV over ``log_dir``, by name."""
    outputs = {}
    for fmt in ("table", "markdown", "json", "html"):
        target = out_dir / f"report.{fmt}"
        assert main(["report", str(log_dir), "--format", fmt, "--out", str(target)]) in (0, 1)
        outputs[f"report {fmt}"] = target.read_text(encoding="utf-8")
    tracker = out_dir / "tracker.csv"
    assert main(
        ["report", str(log_dir), "--tracker", str(tracker), "--out", str(out_dir / "t")]
    ) in (
        0,
        1,
    )
    outputs["tracker"] = tracker.read_text(encoding="utf-8")
    return outputs


def evidence_text(log_dir: Path) -> str:
    """Every file the proxy wrote, as text."""
    return b"".join(p.read_bytes() for p in sorted(log_dir.rglob("*")) if p.is_file()).decode(
        "utf-8", "replace"
    )


def exchange_records(log_dir: Path) -> list[dict[str, Any]]:
    """The complete exchange records written so far (a line being written is skipped)."""
    records = []
    for path in sorted(log_dir.glob("shadow-*.jsonl*")):
        for line in path.read_bytes().splitlines():
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if record.get("type") == "exchange":
                records.append(record)
    return records


class TestEchoedSecrets:
    """No planted secret survives in any output, whichever way a backend echoes it."""

    async def test_no_canary_in_any_output(self, tmp_path: Path) -> None:
        """Files, log lines, metrics, status, every report format and the tracker stay clean."""
        log_dir, out_dir = tmp_path / "logs", tmp_path / "out"
        out_dir.mkdir()
        document = {
            "redact": {
                "headers": ["x-internal-ref"],
                "body_paths": ["$.user.ssn", "$.pin"],
                "patterns": ["CNRYpat[0-9]+"],
            },
            "evidence": {"include_query": True, "max_value_chars": 4000},
            "compare": {"headers": ["x-echo", "x-session-token", "set-cookie"]},
            "routes": [{"match": "/submit/*", "mirror_writes": True}],
        }
        query = "&".join(f"{k}={v}" for k, v in QUERY.items()) + f"&q={CONTROL}"
        common = {
            "Cookie": f"sid={COOKIE}; theme=dark",
            "X-Internal-Ref": HEADER,
            "X-Request-Id": f"rid-{COOKIE}",
        }
        keys = ["authorization", "cookie", "x-internal-ref", "x-request-id", *QUERY]
        requests: list[tuple[str, str, dict[str, str], bytes | None]] = []
        for fmt in FORMATS:
            for key in [*keys, "jwt_out", "pattern_out"]:
                target = f"/echo/{key}?{query}&echo={key}&fmt={fmt}"
                requests.append(("GET", target, {"Authorization": f"Bearer {BEARER}"}, None))
            for key in ("authorization", "path"):
                target = f"/basic-auth/{USER}/{PASSWORD}?echo={key}&fmt={fmt}"
                requests.append(("GET", target, {"Authorization": BASIC}, None))
            requests.append(
                ("GET", f"/d?echo=authorization&fmt={fmt}", {"Authorization": DIGEST}, None)
            )
            json_body = orjson.dumps({"user": {"ssn": SSN, "name": "ann"}})
            form_body = f"pin={PIN}&name=ann".encode()
            requests.append(
                (
                    "POST",
                    f"/submit/j?echo=body&fmt={fmt}",
                    {"Content-Type": "application/json"},
                    json_body,
                )
            )
            requests.append(
                (
                    "POST",
                    f"/submit/f?echo=body&fmt={fmt}",
                    {"Content-Type": "application/x-www-form-urlencoded"},
                    form_body,
                )
            )
        reset = ("GET", f"/basic-auth/{USER}/{PASSWORD}?fmt=reset", {"Authorization": BASIC}, None)
        logs = io.StringIO()
        configure_logging(json=True, stream=logs, level="debug")
        try:
            async with backend(echo("legacy")) as legacy, backend(echo("candidate")) as candidate:
                settings = make_settings(legacy.url, candidate.url, log_dir, document)
                async with running_proxy(settings) as proxy, aiohttp.ClientSession() as session:
                    for method, target, headers, body in requests:
                        async with session.request(
                            method,
                            URL(proxy.url + target, encoded=True),
                            headers={**common, **headers},
                            data=body,
                        ) as response:
                            assert response.status == 200
                    async with session.request(
                        reset[0], URL(proxy.url + reset[1], encoded=True), headers=reset[2]
                    ) as response:
                        assert response.status == 502
                    await eventually(lambda: len(exchange_records(log_dir)) == len(requests))
                    async with session.get(proxy.admin + "/metrics") as response:
                        metrics = await response.text()
                    async with session.get(proxy.admin + "/status") as response:
                        status = await response.text()
        finally:
            configure_logging()
        files = evidence_text(log_dir)
        records = exchange_records(log_dir)
        assert CONTROL in files, "echoed values are recorded (the control shows)"
        assert "/basic-auth/{secret}/{secret}" in logs.getvalue(), "the failure was logged"
        assert {r["route"] for r in records} >= {"/basic-auth/{secret}/{secret}"}
        outputs = {
            "evidence files": files,
            "log lines": logs.getvalue(),
            "/metrics": metrics,
            "/status": status,
            **report_outputs(log_dir, out_dir),
        }
        for needle, what in needles().items():
            for where, text in outputs.items():
                assert needle not in text, f"{what} leaked into {where}"


class TestClientRequestIds:
    """A client's X-Request-Id is kept apart; the evidence id is the proxy's own."""

    async def test_client_ids_never_become_evidence_ids(self, tmp_path: Path) -> None:
        """Repeated or long client ids: unique ids, the client's value cut in its own field."""

        def answer(side: str) -> Any:
            async def handler(request: web.Request) -> web.Response:
                return web.json_response({"side": side})

            return handler

        long_id = "L" * 300
        async with backend(answer("a")) as legacy, backend(answer("b")) as candidate:
            settings = make_settings(legacy.url, candidate.url, tmp_path)
            async with running_proxy(settings) as proxy, aiohttp.ClientSession() as session:
                for given in ("same-id", "same-id", long_id, None):
                    headers = {"X-Request-Id": given} if given else {}
                    async with session.get(f"{proxy.url}/x", headers=headers) as response:
                        assert response.status == 200
                await eventually(lambda: len(exchange_records(tmp_path)) == 4)
        forwarded = [v for s in legacy.seen for k, v in s.headers if k.lower() == "x-request-id"]
        assert forwarded == ["same-id", "same-id", long_id], "forwarded unchanged"
        records = exchange_records(tmp_path)
        ids = [r["id"] for r in records]
        assert len(set(ids)) == 4 and "same-id" not in ids
        # Sixteen hex digits: a per-process random prefix, then a counter.
        assert all(re.fullmatch("[0-9a-f]{16}", record_id) for record_id in ids), ids
        assert len({record_id[:8] for record_id in ids}) == 1
        assert [r["client_request_id"] for r in records] == [
            "same-id",
            "same-id",
            "L" * 128 + "…",
            None,
        ]

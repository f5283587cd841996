"""Golden mode: legacy's answers recorded (twice, learning noise), a candidate checked alone."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import jsonschema
import orjson
from aiohttp import web

from tests.replay.test_replay import TOKEN, replay, write_capture
from tests.support import REPO, backend

SCHEMA = json.loads((REPO / "shadowproxy/schemas/golden.schema.json").read_text())
SESSION = "CNRYgoldensession9"
REQUESTS = [
    ("GET", "/items/1", {}, b""),
    ("GET", "/search?q=lamp", {"Authorization": f"Bearer {TOKEN}"}, b""),
    ("POST", "/orders", {"Content-Type": "application/json"}, b'{"item": "lamp"}'),
]


def service(*, name: str = "lamp", first_call: int = 0) -> Any:
    """An API whose answers carry a trace id that changes on every call, and a session."""
    calls = itertools.count(first_call)

    async def handle(request: web.Request) -> web.Response:
        trace = f"t-{next(calls)}"
        if request.method == "POST":
            body = await request.json()
            answer = {"ordered": body["item"], "trace": trace, "access_token": SESSION}
            return web.json_response(answer, status=201)
        if request.path.startswith("/items/"):
            response = web.json_response({"name": name, "trace": trace})
            response.headers["Set-Cookie"] = f"sid={SESSION}"
            return response
        auth = request.headers.get("Authorization", "")
        return web.json_response({"results": [name], "trace": trace, "echo": auth})

    return handle


class TestGolden:
    async def test_record_twice_then_check_with_no_legacy(self, tmp_path: Path) -> None:
        """Recorded twice, noise is kept; a faithful candidate passes, a drifting one fails."""
        capture = write_capture(tmp_path / "capture-a.jsonl", REQUESTS)
        golden = tmp_path / "golden"
        async with backend(service()) as legacy:
            for _ in range(2):
                code, out, err = await replay(
                    str(capture),
                    "--record-golden",
                    str(golden),
                    "--legacy",
                    legacy.url,
                    "--dry-run",
                )
                assert (code, out) == (0, f"recorded 3 answers in {golden}\n"), err
        files = sorted(golden.iterdir())
        assert [f.name for f in files] == [
            "0001-get-items-1.json",
            "0002-get-search.json",
            "0003-post-orders.json",
        ]
        documents = [orjson.loads(f.read_bytes()) for f in files]
        for document in documents:
            jsonschema.validate(document, SCHEMA)
            assert (document["recordings"], document["noise"]) == (2, ["$.trace"])
        stored = b"".join(f.read_bytes() for f in files)
        assert TOKEN.encode() not in stored and SESSION.encode() not in stored
        assert ["Set-Cookie", "[REDACTED]"] in documents[0]["answer"]["headers"]

        async with backend(service(first_call=100)) as faithful:
            code, out, err = await replay(
                str(capture),
                "--golden",
                str(golden),
                "--candidate",
                faithful.url,
                "--log-dir",
                str(tmp_path / "ok"),
                "--dry-run",
            )
        assert code == 0, out + err
        assert out.startswith("shadow report PASS")

        async with backend(service(name="Lamp", first_call=200)) as drifting:
            code, out, err = await replay(
                str(capture),
                "--golden",
                str(golden),
                "--candidate",
                drifting.url,
                "--log-dir",
                str(tmp_path / "drift"),
                "--dry-run",
                "--format",
                "json",
            )
        assert code == 1, err
        paths = {(f["route"], f["path"]) for f in json.loads(out)["fingerprints"]}
        assert paths == {("/items/{id}", "$.name"), ("/search", "$.results[0]")}

    async def test_a_request_without_a_golden_answer_fails(self, tmp_path: Path) -> None:
        """A captured request nobody recorded is never a pass."""
        golden = tmp_path / "golden"
        async with backend(service()) as legacy:
            code, _, _ = await replay(
                str(write_capture(tmp_path / "capture-a.jsonl", REQUESTS[:1])),
                "--record-golden",
                str(golden),
                "--legacy",
                legacy.url,
            )
        assert code == 0
        more = write_capture(tmp_path / "capture-b.jsonl", REQUESTS[:2])
        async with backend(service()) as candidate:
            code, _, err = await replay(
                str(more),
                "--golden",
                str(golden),
                "--candidate",
                candidate.url,
                "--log-dir",
                str(tmp_path / "r"),
            )
        assert code == 1
        assert f"1 requests have no golden answer in {golden}" in err

    async def test_an_empty_golden_directory_is_bad_input(self, tmp_path: Path) -> None:
        """Checking against nothing exits 2 naming the directory."""
        capture = write_capture(tmp_path / "capture-a.jsonl", REQUESTS[:1])
        code, _, err = await replay(
            str(capture), "--golden", str(tmp_path), "--candidate", "http://127.0.0.1:1"
        )
        assert (code, err) == (
            2,
            f"shadow replay: {tmp_path}: no golden files: record them with --record-golden\n",
        )

    async def test_a_broken_golden_file_is_bad_input(self, tmp_path: Path) -> None:
        """A golden file that is not one exits 2 naming it, before anything is sent."""
        capture = write_capture(tmp_path / "capture-a.jsonl", REQUESTS[:1])
        golden = tmp_path / "golden"
        golden.mkdir()
        (golden / "0001-get-items-1.json").write_text('{"v": 1, "type": "golden", "key": 3}')
        code, _, err = await replay(
            str(capture), "--golden", str(golden), "--candidate", "http://127.0.0.1:1"
        )
        assert (code, err) == (
            2,
            f"shadow replay: {golden}/0001-get-items-1.json: key and request: missing\n",
        )

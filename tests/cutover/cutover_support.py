"""Helpers for the cutover tests: side-named backends, probes, admin calls and evidence records."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import orjson
from aiohttp import web

from shadowproxy.cli import main
from shadowproxy.histogram import LatencyHistogram
from shadowproxy.timestamps import rfc3339

SCHEMAS = Path(__file__).resolve().parents[2] / "shadowproxy" / "schemas"

TOKEN = "cutover-admin-token"
"""The admin token of the cutover tests' proxies: probes carry it to learn who answered."""
PROBE = {"X-Shadow-Probe": TOKEN}


def side(name: str, status: int = 200) -> Any:
    """A handler answering ``{"side": name}`` with ``status``."""

    async def answer(request: web.Request) -> web.Response:
        return web.json_response({"side": name, "path": request.path}, status=status)

    return answer


async def probe(
    url: str, method: str = "GET", headers: Mapping[str, str] | None = None
) -> tuple[int, str | None, dict[str, Any]]:
    """One request on a fresh connection: status, ``X-Shadow-Answered-By`` and the JSON body."""
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url, headers={**PROBE, **(headers or {})}) as response,
    ):
        return (
            response.status,
            response.headers.get("X-Shadow-Answered-By"),
            await response.json(content_type=None),
        )


async def admin(
    base: str, method: str, path: str, body: Mapping[str, Any] | None = None
) -> tuple[int, dict[str, Any]]:
    """Call the admin API with the bearer token; returns the status and the JSON body."""
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, base + path, json=body, headers=auth) as response,
    ):
        return response.status, await response.json()


def shown(listing: Mapping[str, Any], route: str) -> tuple[Any, ...]:
    """A route's ``(mode, percent, effective, source)`` in a ``GET /cutover`` answer."""
    entry = listing["routes"][route]
    return (entry["mode"], entry["percent"], entry["effective"], entry["source"])


def records(log_dir: Path, kind: str) -> list[dict[str, Any]]:
    """Every record of type ``kind`` written so far, in file order."""
    found = []
    for path in sorted(log_dir.glob("shadow-*.jsonl")):
        for line in path.read_bytes().splitlines():
            if line.strip():
                record = orjson.loads(line)
                if record.get("type") == kind:
                    found.append(record)
    return found


def valid(record: Mapping[str, Any], schema: str) -> bool:
    """True when ``record`` passes ``shadowproxy/schemas/<schema>.schema.json``."""
    document = orjson.loads((SCHEMAS / f"{schema}.schema.json").read_bytes())
    jsonschema.validate(record, document)
    return True


def passing_evidence(
    path: Path, *, route: str = "/a", structural: int = 0, match: int = 1200
) -> Path:
    """One rollup of ``route`` (domain orders) over the default gate window (14 days to now).

    It starts a minute into the window, so it stays inside it whenever the command runs.
    """
    now = time.time()
    latency = LatencyHistogram.of([5.0] * 10).to_json()
    rollup = {
        "v": 1,
        "type": "rollup",
        "ts_start": rfc3339(now - 14 * 86400 + 60),
        "ts_end": rfc3339(now),
        "route": route,
        "domain": "orders",
        "compared": match + structural,
        "match": match,
        "diverged": structural,
        "structural": structural,
        "semantic": 0,
        "timing": 0,
        "noise": 0,
        "errors": 0,
        "skipped": {},
        "latency": {"legacy": latency, "candidate": latency},
    }
    path.write_bytes(orjson.dumps(rollup) + b"\n")
    return path


def step_evidence(
    path: Path, *, percent: float, since_s: float, compared: int, route: str = "/a"
) -> Path:
    """Shadow rollups over the default window up to ``since_s`` ago, then canary ``percent``.

    Written as the proxy writes them: with their phase, the step's entered
    ``since_s`` ago (docs/evidence.md, Phases).
    """
    now = time.time()
    latency = LatencyHistogram.of([5.0] * 10).to_json()

    def rollup(start: float, end: float, n: int, phase: dict[str, object]) -> bytes:
        record = {
            "v": 1, "type": "rollup", "ts_start": rfc3339(start), "ts_end": rfc3339(end),
            "route": route, "domain": "orders", "compared": n, "match": n, "diverged": 0,
            "structural": 0, "semantic": 0, "timing": 0, "noise": 0, "errors": 0, "skipped": {},
            "latency": {"legacy": latency, "candidate": latency}, **phase,
        }  # fmt: skip
        return orjson.dumps(record) + b"\n"

    entered = now - since_s
    shadow = {"mode": "shadow", "canary_percent": None, "mode_since": rfc3339(now - 20 * 86400)}
    canary = {"mode": "canary", "canary_percent": percent, "mode_since": rfc3339(entered)}
    path.write_bytes(
        rollup(now - 14 * 86400 + 60, entered, 5000, shadow)
        + rollup(entered, now, compared, canary)
    )
    return path


def phase_rollup(
    route: str,
    domain: str,
    start: float,
    end: float,
    compared: int,
    phase: tuple[str, float | None, float],
) -> bytes:
    """One clean rollup line of ``route`` from ``start`` to ``end`` in ``phase``.

    ``phase`` is ``(mode, canary_percent, mode_since)``, as the proxy writes it.
    """
    latency = LatencyHistogram.of([5.0] * 10).to_json()
    mode, percent, since = phase
    record = {
        "v": 1, "type": "rollup", "ts_start": rfc3339(start), "ts_end": rfc3339(end),
        "route": route, "domain": domain, "compared": compared, "match": compared,
        "diverged": 0, "structural": 0, "semantic": 0, "timing": 0, "noise": 0, "errors": 0,
        "skipped": {}, "latency": {"legacy": latency, "candidate": latency},
        "mode": mode, "canary_percent": percent, "mode_since": rfc3339(since),
    }  # fmt: skip
    return orjson.dumps(record) + b"\n"


async def cli(*argv: str) -> int:
    """Run the CLI in a thread: it blocks on HTTP to proxies this loop may serve."""
    return await asyncio.to_thread(main, list(argv))

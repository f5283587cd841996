"""Upstream client cost: shadowproxy's HTTP/1.1 pool next to aiohttp's client, per request.

Run from the repository root (needs ``nginx`` on PATH)::

    make bench-client                      # or:
    PYTHONPATH=. python bench/bench_client.py --requests 5000 --rounds 3

Starts the benchmark's nginx backends (``bench/nginx/backends.conf``) and,
in this process under uvloop, sends sequential GETs of the 1 KB and 50 KB
files on one kept-alive connection through each client, the way the proxy
sends an upstream request: inside ``asyncio.timeout``, the body read whole.

* ``aiohttp``: an ``aiohttp.ClientSession`` set up as ``open_session`` does
  (the proxy's upstream client before ``shadowproxy/http/h1.py``);
* ``h1``: ``shadowproxy.http.h1.Pool``.

CPU per request is this process's user + system time (``time.process_time``)
over the run, divided by the requests; system calls count, nginx's work does
not. Rounds alternate the clients; the minimum per client is reported.
Writes ``bench/results/client.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import uvloop

from bench.bench_proxy import _backend_root, _free_port, _nginx, _versions
from shadowproxy.http.h1 import Pool
from shadowproxy.http.websocket import open_session
from shadowproxy.settings import UpstreamTLS
from shadowproxy.tls import client_context

__all__ = ["main"]

_RESULTS = Path(__file__).resolve().parent / "results" / "client.json"
_FILES = {"1kb": ("small.json", 1024), "50kb": ("large.json", 50 * 1024)}
_HEADERS = [("Accept", "*/*"), ("User-Agent", "wrk"), ("X-Forwarded-For", "127.0.0.1")]
_TIMEOUT_S = 5.0

Get = Callable[[str], Awaitable[int]]


async def _measure(get: Get, path: str, requests: int) -> dict[str, float]:
    for _ in range(min(200, requests)):
        await get(path)
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(requests):
        await get(path)
    return {
        "cpu_us_per_request": round((time.process_time() - cpu) / requests * 1e6, 1),
        "wall_us_per_request": round((time.perf_counter() - wall) / requests * 1e6, 1),
    }


async def _bench(port: int, requests: int, rounds: int) -> dict[str, dict[str, dict[str, float]]]:
    base = f"http://127.0.0.1:{port}"
    headers = [*_HEADERS, ("Host", f"127.0.0.1:{port}")]
    session = open_session(
        connect_timeout_s=_TIMEOUT_S,
        read_timeout_s=_TIMEOUT_S,
        limit=4,
        tls=client_context(UpstreamTLS()),  # the proxy's default; these targets are plain http
    )
    pool = Pool(
        "127.0.0.1",
        port,
        tls=None,
        limit=4,
        connect_timeout_s=_TIMEOUT_S,
        read_timeout_s=_TIMEOUT_S,
    )

    async def with_aiohttp(path: str) -> int:
        async with asyncio.timeout(_TIMEOUT_S):
            async with session.request(
                "GET", base + path, headers=headers, allow_redirects=False
            ) as response:
                return len(await response.read())

    async def with_h1(path: str) -> int:
        async with asyncio.timeout(_TIMEOUT_S):
            async with await pool.request("GET", path, headers) as response:
                return len(await response.read())

    clients: dict[str, Get] = {"aiohttp": with_aiohttp, "h1": with_h1}
    best: dict[str, dict[str, dict[str, float]]] = {name: {} for name in clients}
    try:
        for body, (name, size) in _FILES.items():
            for client, get in clients.items():
                if await get("/" + name) != size:
                    raise RuntimeError(f"{client}: /{name} is not {size} bytes")
            for _ in range(rounds):
                for client, get in clients.items():
                    figures = await _measure(get, "/" + name, requests)
                    kept = best[client].get(body)
                    if kept is None or figures["cpu_us_per_request"] < kept["cpu_us_per_request"]:
                        best[client][body] = figures
    finally:
        await session.close()
        await pool.close()
    return best


def _run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="shadowproxy-bench-client-") as tmp:
        run = Path(tmp)
        _backend_root(run, _FILES.values())
        ports = {name: _free_port() for name in ("LEGACY_PORT", "CANDIDATE_PORT", "DIFFERENT_PORT")}
        with _nginx(run, "backends.conf", {**ports, "WORKERS": 1}, [ports["LEGACY_PORT"]]):
            best = uvloop.run(_bench(ports["LEGACY_PORT"], args.requests, args.rounds))
    return {
        "versions": _versions(),
        "requests_per_round": args.requests,
        "rounds": args.rounds,
        "results": best,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Measure both clients, print the figures, write the results file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=5000, help="requests per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per client")
    parser.add_argument("--output", type=Path, default=_RESULTS, help="results JSON file")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    results = _run(args)
    for client, bodies in results["results"].items():
        for body, figures in bodies.items():
            print(
                f"{client:8} {body:5} cpu {figures['cpu_us_per_request']:7.1f} us/req"
                f"  wall {figures['wall_us_per_request']:7.1f} us/req"
            )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

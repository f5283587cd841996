"""Bounded soak of a proxy process against a flapping candidate (a script, not a test).

Run from the repository root::

    PYTHONPATH=. python bench/soak.py --duration 600

Everything runs on 127.0.0.1: a legacy and a candidate backend in this
process, a fault relay (``tests/relay.py``) in front of the candidate that
cycles healthy -> slow -> down every ``--flap-s`` seconds, and the proxy as a
subprocess (``python -m shadowproxy run``). A steady load of ``--rate``
requests per second goes through the proxy. Every ``--sample-s`` seconds the
script samples the proxy's RSS (``/proc/PID/status``), its open file
descriptors (``/proc/PID/fd``) and its shadow tasks in flight (admin
``/status`` ``inflight``). It stops by itself after ``--duration`` seconds,
lets the shadow work drain, and prints (and with ``--out`` writes) a JSON
summary saying whether each series stayed flat.

Flat means: comparing the first and the last full flap cycle (healthy, slow,
down: like with like), the peak RSS grew by at most ``--rss-slack`` (a
fraction), the peak number of file descriptors by at most ``--fd-slack``, and
``inflight`` is back to 0 after the drain. Client latency is reported per
candidate phase.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import aiohttp
from aiohttp import web

from shadowproxy.demo.run import running_app
from tests.relay import Fault, Relay, Toxic, relay
from tests.support import proxy_process

__all__ = ["Sample", "main"]

_PHASES = (
    ("healthy", Toxic()),
    ("slow", Toxic(Fault.LATENCY, latency_s=0.5)),
    ("down", Toxic(Fault.REFUSE)),
)


@dataclass(frozen=True, slots=True)
class Sample:
    """One observation of the proxy process."""

    t_s: float
    phase: str
    rss_kib: int
    fds: int
    inflight: int
    proxy_lag_ms: float
    """The proxy's event-loop lag (admin ``/status`` ``loop_lag_ms``)."""
    driver_lag_ms: float
    """How late this script's own sampling tick ran: load-generator noise, not the proxy's."""
    requests: int
    errors: int


async def _legacy(request: web.Request) -> web.Response:
    return web.json_response({"id": request.match_info["tail"], "items": list(range(20))})


async def _candidate(request: web.Request) -> web.Response:
    # One field differs now and then, so the proxy writes evidence all along.
    tail = request.match_info["tail"]
    extra = {"note": "rewrite"} if zlib.crc32(tail.encode()) % 10 == 0 else {}
    return web.json_response({"id": tail, "items": list(range(20)), **extra})


@contextlib.asynccontextmanager
async def _serve(handler: Callable[[web.Request], Awaitable[web.Response]]) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    async with running_app(app) as url:
        yield url


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _fds(pid: int) -> int:
    return sum(1 for _ in Path(f"/proc/{pid}/fd").iterdir())


class _Load:
    """A steady request rate from a few clients; counts answers and failures."""

    def __init__(self, url: str, rate: float, clients: int) -> None:
        self._url = url
        self._interval = clients / rate
        self._clients = clients
        self.requests = 0
        self.errors = 0
        self.latencies: list[tuple[str, float]] = []
        self.phase = "healthy"
        """The candidate's phase, set by the flapper, recorded with each latency."""

    async def run(self, until: float) -> None:
        async with aiohttp.ClientSession() as session:
            await asyncio.gather(*(self._client(session, n, until) for n in range(self._clients)))

    async def _client(self, session: aiohttp.ClientSession, n: int, until: float) -> None:
        due = time.monotonic() + self._interval * n / self._clients
        seq = 0
        while due < until:
            await asyncio.sleep(max(0.0, due - time.monotonic()))  # pacing the load
            due += self._interval
            seq += 1
            started = time.perf_counter()
            try:
                async with session.get(f"{self._url}/items/{n}-{seq}") as response:
                    await response.read()
                    ok = response.status == 200
            except aiohttp.ClientError:
                ok = False
            self.latencies.append((self.phase, time.perf_counter() - started))
            self.requests += 1
            self.errors += 0 if ok else 1


async def _status(session: aiohttp.ClientSession, admin: str) -> dict[str, object]:
    async with session.get(f"{admin}/status") as response:
        status: dict[str, object] = await response.json()
        return status


async def _inflight(session: aiohttp.ClientSession, admin: str) -> int:
    return int(str((await _status(admin=admin, session=session))["inflight"]))


async def _flap(
    candidate: Relay, load: _Load, phases: list[str], flap_s: float, until: float
) -> None:
    n = 0
    while time.monotonic() < until:
        name, toxic = _PHASES[n % len(_PHASES)]
        await candidate.set(toxic)
        phases.append(name)
        load.phase = name
        n += 1
        await asyncio.sleep(min(flap_s, max(0.0, until - time.monotonic())))
    await candidate.set(Toxic())
    phases.append("healthy")


def _verdict(samples: list[Sample], cycle_s: float, args: argparse.Namespace) -> dict[str, object]:
    """Compare the first and the last full flap cycle: same phases, so like with like."""
    cycles: dict[int, list[Sample]] = {}
    for sample in samples:
        cycles.setdefault(int(sample.t_s // cycle_s), []).append(sample)
    complete = [n for n in sorted(cycles) if (n + 1) * cycle_s <= args.duration]
    if len(complete) < 2:
        return {"flat": None, "reason": "run at least two flap cycles (3 x --flap-s each)"}
    first, last = cycles[complete[0]], cycles[complete[-1]]
    rss_first, rss_last = max(s.rss_kib for s in first), max(s.rss_kib for s in last)
    fd_first, fd_last = max(s.fds for s in first), max(s.fds for s in last)
    return {
        "cycles": len(complete),
        "rss_kib_first_cycle_max": rss_first,
        "rss_kib_last_cycle_max": rss_last,
        "rss_growth": round(rss_last / rss_first - 1, 4),
        "rss_flat": rss_last <= rss_first * (1 + args.rss_slack),
        "fds_first_cycle_max": fd_first,
        "fds_last_cycle_max": fd_last,
        "fds_flat": fd_last <= fd_first + args.fd_slack,
        "inflight_max": max(s.inflight for s in samples),
    }


def _percentiles(values: list[float]) -> dict[str, float | None]:
    ordered = sorted(values)
    if not ordered:
        return {"count": 0, "p50_ms": None, "p99_ms": None}
    return {
        "count": len(ordered),
        "p50_ms": round(ordered[len(ordered) // 2] * 1000, 2),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 2),
    }


async def _soak(args: argparse.Namespace) -> dict[str, object]:
    samples: list[Sample] = []
    phases: list[str] = []
    with tempfile.TemporaryDirectory(prefix="soak-") as log_dir:
        async with _serve(_legacy) as legacy, _serve(_candidate) as origin:
            async with (
                relay(origin) as candidate,
                proxy_process(
                    "--legacy",
                    legacy,
                    "--candidate",
                    candidate.url,
                    "--log-dir",
                    log_dir,
                    shed_on_lag=True,
                ) as proxy,
            ):
                pid = proxy.process.pid
                load = _Load(proxy.url, args.rate, args.clients)
                started = time.monotonic()
                until = started + args.duration
                background = asyncio.gather(
                    load.run(until), _flap(candidate, load, phases, args.flap_s, until)
                )
                async with aiohttp.ClientSession() as admin:
                    while time.monotonic() < until:
                        due = time.monotonic() + args.sample_s
                        await asyncio.sleep(args.sample_s)  # the sampling period
                        driver_lag_ms = (time.monotonic() - due) * 1000
                        status = await _status(admin, proxy.admin)
                        samples.append(
                            Sample(
                                t_s=round(time.monotonic() - started, 1),
                                phase=phases[-1] if phases else "healthy",
                                rss_kib=_rss_kib(pid),
                                fds=_fds(pid),
                                inflight=int(str(status["inflight"])),
                                proxy_lag_ms=float(str(status["loop_lag_ms"])),
                                driver_lag_ms=round(driver_lag_ms, 2),
                                requests=load.requests,
                                errors=load.errors,
                            )
                        )
                        print(json.dumps(asdict(samples[-1])), flush=True)
                    await background
                    # Shadow work still running against a slow candidate ends within its timeout.
                    drained_at = time.monotonic() + 30
                    inflight = await _inflight(admin, proxy.admin)
                    while inflight and time.monotonic() < drained_at:
                        await asyncio.sleep(0.2)  # polling the admin API, bounded
                        inflight = await _inflight(admin, proxy.admin)
                    final = {"rss_kib": _rss_kib(pid), "fds": _fds(pid), "inflight": inflight}
    verdict = _verdict(samples, args.flap_s * len(_PHASES), args)
    verdict["inflight_drained"] = final["inflight"] == 0
    if "rss_flat" in verdict:
        verdict["flat"] = bool(
            verdict["rss_flat"] and verdict["fds_flat"] and verdict["inflight_drained"]
        )
    return {
        "duration_s": args.duration,
        "rate": args.rate,
        "flap_s": args.flap_s,
        "requests": load.requests,
        "client_errors": load.errors,
        "client_latency_by_phase": {
            name: _percentiles([t for phase, t in load.latencies if phase == name])
            for name, _ in _PHASES
        },
        "final": final,
        "verdict": verdict,
        "samples": [asdict(s) for s in samples],
    }


def main(argv: list[str] | None = None) -> int:
    """Run one soak; exit 0 when every series stayed flat, 1 otherwise."""
    parser = argparse.ArgumentParser(
        prog="python bench/soak.py", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--duration", type=float, default=600.0, help="seconds (default 600)")
    parser.add_argument("--rate", type=float, default=100.0, help="requests per second")
    parser.add_argument("--clients", type=int, default=8, help="concurrent client loops")
    parser.add_argument("--flap-s", type=float, default=20.0, help="seconds per candidate phase")
    parser.add_argument("--sample-s", type=float, default=5.0, help="seconds between samples")
    # 1 %: a 100 KiB-per-minute creep (a reference cycle, found this way) is 1.4 % in ten minutes.
    parser.add_argument("--rss-slack", type=float, default=0.01, help="allowed RSS growth")
    parser.add_argument("--fd-slack", type=int, default=8, help="allowed extra descriptors")
    parser.add_argument("--out", type=Path, help="also write the JSON summary here")
    args = parser.parse_args(argv)
    if args.duration <= 0 or args.rate <= 0 or args.clients <= 0:
        parser.error("--duration, --rate and --clients must be > 0")
    summary = asyncio.run(_soak(args))
    text = json.dumps({k: v for k, v in summary.items() if k != "samples"}, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(json.dumps(summary, indent=2) + "\n")
    verdict = summary["verdict"]
    assert isinstance(verdict, dict)
    return 0 if verdict["flat"] else 1


if __name__ == "__main__":
    sys.exit(main())

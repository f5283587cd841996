"""Side-by-side benchmark: shadowproxy against nginx proxy_pass and nginx mirroring.

Run from the repository root (needs ``nginx`` and ``wrk`` on PATH)::

    make bench-proxy                       # or:
    PYTHONPATH=. python bench/bench_proxy.py --duration 5

Starts nginx backends on loopback (legacy, an identical candidate and a
candidate differing in one field; 1 KB and 50 KB JSON) and every contender,
then drives them with the same wrk load, one after another for each load and
body size, so the runs compared with each other are back to back:

* ``direct``: wrk against legacy itself;
* ``nginx``: nginx ``proxy_pass`` to legacy;
* ``nginx-mirror``: the same plus ``mirror`` to the candidate;
* ``shadowproxy``: ``python -m shadowproxy run --workers auto``, 100 % mirrored
  and compared, against the identical candidate;
* ``shadowproxy-diff``: the same against the candidate that differs in one
  field, so every exchange is fully parsed, diffed and written as evidence;
* ``floor`` and ``floor-diff``: ``bench/raw_forwarder.py``, the least a
  mirroring proxy in Python does (forward the head's bytes to both upstreams,
  relay legacy's answer, compare the bodies as bytes), one process per core,
  against the identical and the differing candidate: what Python on this
  machine can reach, so every run prints the fraction of it shadowproxy reaches.

Two loads: ``saturation`` (wrk, several threads and connections) and
``light`` (one connection, sequential requests on one keep-alive
connection). CPU per request is the growth of the contender's processes'
utime + stime (``/proc/PID/stat``) over the run, divided by the requests. A
last step runs one shadowproxy worker in a probe process that samples its
own event-loop lag every millisecond under the 50 KB and the 1 MB diff load,
and times the comparisons that run inline on the loop (larger ones run in the
comparison worker process).

``--rounds N`` repeats all of that N times: each contender then reports its
median round, and each throughput ratio is the median of the N ratios of
runs made side by side. Prints one table and writes
``bench/results/proxy.json``. Not part of the test suite; numbers on a
shared machine are noisy, the ratios less so.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib.metadata
import json
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["main"]

_HERE = Path(__file__).resolve().parent
_ROOT = _HERE.parent
_RESULTS = _HERE / "results" / "proxy.json"
_BODIES = {"1kb": ("small.json", 1024), "50kb": ("large.json", 50 * 1024)}
# Only the loop-lag probe uses it: just under the default compare_max_bytes (1 MiB),
# so every answer is compared, in the comparison worker process (above 32 KiB inline).
_PROBE_BODIES = {**_BODIES, "1mb": ("huge.json", 1_000_000)}
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_READY_S = 30.0
_T = TypeVar("_T")
_STEPS = ("direct", "nginx", "floor", "shadowproxy", "shadowproxy-diff", "lag-probe")

# wrk prints this line from its `done` hook; latencies are in microseconds.
_WRK_REPORT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"errors":%d,"non2xx":%d,' ..
    '"p50":%d,"p90":%d,"p99":%d,"max":%d}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout,
    e.status, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max))
end
"""


@dataclass(frozen=True, slots=True)
class Result:
    """One contender under one load and body size."""

    target: str
    body: str
    load: str
    requests: int
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    non2xx: int
    cpu_us_per_request: float
    """CPU (user + system) of the contender's own processes per request; 0 for direct."""
    backend_cpu_us_per_request: float


# ---------------------------------------------------------------------------
# processes


_HELD: list[socket.socket] = []
"""Sockets holding the ports ``_free_port`` gave out, open until the benchmark exits."""


def _free_port() -> int:
    """A fresh loopback port, held (bound, never listening) for as long as the benchmark runs.

    SO_REUSEADDR lets nginx and shadowproxy listen on it while it is held, and
    nobody else is given it meanwhile (a port bound and released could be).
    """
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    _HELD.append(sock)
    return int(sock.getsockname()[1])


def _tree(root: int) -> list[int]:
    """``root`` and every descendant process, from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat[stat.rindex(")") + 2 :].split()[1])
    found = [root]
    for pid in found:
        found.extend(child for child, parent in parents.items() if parent == pid)
    return found


def _cpu_seconds(pids: Sequence[int]) -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = Path(f"/proc/{pid}/stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            total += int(fields[11]) + int(fields[12])
    return total / _CLOCK_TICKS


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _listeners(port: int) -> int:
    """How many sockets listen on 127.0.0.1:``port`` (one per SO_REUSEPORT worker)."""
    local = f"0100007F:{port:04X}"
    lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return sum(1 for line in lines if line.split()[1] == local and line.split()[3] == "0A")


def _http_ok(port: int, path: str) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(
                f"GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n".encode()
            )
            return sock.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def _wait(
    check: Callable[[], bool],
    what: str,
    process: subprocess.Popen[bytes],
    ready_s: float = _READY_S,
) -> None:
    deadline = time.monotonic() + ready_s
    while not check():
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode} before it was ready")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not ready after {ready_s:.0f}s")
        time.sleep(0.05)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# ---------------------------------------------------------------------------
# bodies and nginx


def _document(size: int, changed: bool) -> bytes:
    """A JSON order of ``size`` bytes; ``changed`` alters one price in the middle.

    The changed price keeps its length (49 cents instead of 99), so the two
    texts differ in that one number and nowhere else, padding included.
    """
    items: list[dict[str, object]] = []
    doc: dict[str, object] = {"order": 42, "currency": "EUR", "items": items}
    # Track the encoded length item by item: re-encoding the whole document per
    # item is quadratic, minutes for 1 MB.
    length = len(json.dumps(doc, separators=(",", ":")))
    while length < size - 120:
        index = len(items)
        item: dict[str, object] = {
            "id": index,
            "sku": f"SKU-{index:06d}",
            "name": f"Item number {index}",
            "price": round(9.99 + index, 2),
            "available": index % 3 != 0,
        }
        items.append(item)
        length += len(json.dumps(item, separators=(",", ":"))) + (1 if index else 0)
    if changed:
        index = len(items) // 2
        items[index]["price"] = round(9.49 + index, 2)
    text = json.dumps(doc, separators=(",", ":"))
    return (text + " " * (size - len(text))).encode()


def _backend_root(run: Path, bodies: Iterable[tuple[str, int]]) -> None:
    """nginx's directories under ``run``, and each body for legacy, candidate and differing."""
    run.chmod(0o755)
    for sub in ("tmp", "www/legacy", "www/candidate", "www/different"):
        (run / sub).mkdir(parents=True)
    for name, size in bodies:
        (run / "www/legacy" / name).write_bytes(_document(size, changed=False))
        (run / "www/candidate" / name).write_bytes(_document(size, changed=False))
        (run / "www/different" / name).write_bytes(_document(size, changed=True))


def _render(template: str, run: Path, values: dict[str, object]) -> Path:
    text = (_HERE / "nginx" / template).read_text()
    values = {"RUN": run, "USER": "user root;" if os.geteuid() == 0 else "", **values}
    for name, value in values.items():
        text = text.replace("{{" + name + "}}", str(value))
    if "{{" in text:
        raise RuntimeError(f"unfilled placeholder in {template}")
    path = run / template
    path.write_text(text)
    return path


@contextlib.contextmanager
def _nginx(run: Path, template: str, values: dict[str, object], ports: list[int]) -> Iterator[int]:
    """Run nginx with ``template`` until the block ends; yields the master's pid once all
    ``ports`` answer."""
    conf = _render(template, run, values)
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    argv = [nginx, "-p", str(run), "-c", str(conf), "-e", str(run / f"{template}.error.log")]
    with (run / f"{template}.out").open("wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait(lambda: all(_http_ok(port, "/small.json") for port in ports), "nginx", process)
        yield process.pid
    finally:
        _stop(process)


# ---------------------------------------------------------------------------
# load


def _wrk(
    port: int, path: str, *, threads: int, connections: int, seconds: float, script: Path
) -> dict[str, int]:
    argv = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "5s",
        "-s",
        str(script),
        f"http://127.0.0.1:{port}{path}",
    ]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    match = re.search(r"^WRKJSON (\{.*\})$", out, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"wrk printed no report:\n{out}")
    report: dict[str, int] = json.loads(match.group(1))
    return report


@dataclass(frozen=True, slots=True)
class Load:
    """One wrk configuration."""

    name: str
    threads: int
    connections: int
    seconds: float


def _measure(
    target: str,
    body: str,
    load: Load,
    port: int,
    contender: int | None,
    backends: int,
    script: Path,
) -> Result:
    path = "/" + _BODIES[body][0]
    # A short warm-up: connection pools, allocator arenas and caches settle first.
    _wrk(port, path, threads=load.threads, connections=load.connections, seconds=1, script=script)
    own = _tree(contender) if contender is not None else []
    back = _tree(backends)
    own_before, back_before = _cpu_seconds(own), _cpu_seconds(back)
    report = _wrk(
        port,
        path,
        threads=load.threads,
        connections=load.connections,
        seconds=load.seconds,
        script=script,
    )
    own_cpu, back_cpu = _cpu_seconds(own) - own_before, _cpu_seconds(back) - back_before
    requests = max(report["requests"], 1)
    result = Result(
        target=target,
        body=body,
        load=load.name,
        requests=report["requests"],
        rps=round(report["requests"] / (report["duration_us"] / 1e6), 1),
        p50_ms=report["p50"] / 1000,
        p90_ms=report["p90"] / 1000,
        p99_ms=report["p99"] / 1000,
        max_ms=report["max"] / 1000,
        errors=report["errors"],
        non2xx=report["non2xx"],
        cpu_us_per_request=round(own_cpu / requests * 1e6, 1),
        backend_cpu_us_per_request=round(back_cpu / requests * 1e6, 1),
    )
    print(
        f"{target:17} {body:5} {load.name:10} {result.rps:9.0f} req/s"
        f"  p50 {result.p50_ms:7.3f} ms  p99 {result.p99_ms:7.3f} ms"
        f"  cpu {result.cpu_us_per_request:7.1f} us/req"
        + (
            f"  errors {result.errors} non2xx {result.non2xx}"
            if result.errors or result.non2xx
            else ""
        ),
        flush=True,
    )
    return result


# ---------------------------------------------------------------------------
# shadowproxy


_ADMIN_TOKEN = secrets.token_hex(16)
"""The admin token of the proxies this benchmark runs (their kill switch needs it)."""


def _post(port: int, path: str) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        request = (
            f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Length: 0\r\n"
            f"Authorization: Bearer {_ADMIN_TOKEN}\r\n\r\n"
        )
        sock.sendall(request.encode())
        if not sock.recv(64).startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"POST {path} failed")


def _metrics(admin_port: int) -> dict[str, float]:
    """The admin listener's metric samples, summed over labels we do not split by."""
    with socket.create_connection(("127.0.0.1", admin_port), timeout=5) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    text = b"".join(chunks).decode(errors="replace")
    wanted = {
        "shadowproxy_requests_total": None,
        "shadowproxy_comparisons_total": "verdict",
        "shadowproxy_shadow_skipped_total": "reason",
        "shadowproxy_jsonl_records_total": None,
        "shadowproxy_jsonl_dropped_total": "reason",
    }
    out: dict[str, float] = {}
    for line in text.splitlines():
        match = re.match(r"^(\w+)(?:\{(.*)\})? (\S+)$", line)
        if match is None or match.group(1) not in wanted:
            continue
        name, labels, value = match.groups()
        label = wanted[name]
        key = name
        if label is not None:
            found = re.search(label + r'="([^"]*)"', labels or "")
            key = f"{name}{{{label}={found.group(1) if found else ''}}}"
        out[key] = out.get(key, 0.0) + float(value)
    return {key: value for key, value in sorted(out.items()) if value}


@contextlib.contextmanager
def _shadowproxy(
    run: Path, legacy: int, candidate: int, workers: str, name: str
) -> Iterator[tuple[int, int, int]]:
    """Run ``shadowproxy run``; yields (pid, proxy port, admin port) once every worker listens."""
    port, admin = _free_port(), _free_port()
    log_dir = run / f"evidence-{name}"
    argv = [
        sys.executable,
        "-m",
        "shadowproxy",
        "run",
        "--listen",
        f"127.0.0.1:{port}",
        "--admin",
        f"127.0.0.1:{admin}",
        "--legacy",
        f"http://127.0.0.1:{legacy}",
        "--candidate",
        f"http://127.0.0.1:{candidate}",
        "--log-dir",
        str(log_dir),
        "--workers",
        workers,
        "--log-format",
        "json",
    ]
    env = {**os.environ, "PYTHONPATH": str(_ROOT), "SHADOWPROXY_ADMIN_TOKEN": _ADMIN_TOKEN}
    out = run / f"{name}.log"
    expected = os.cpu_count() or 1 if workers == "auto" else int(workers)
    with out.open("wb") as sink:
        process = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT, env=env, cwd=run)
    try:
        # Every worker must listen before load starts, or SO_REUSEPORT pins wrk's
        # connections to the first one.
        _wait(
            lambda: _listeners(port) >= expected and _http_ok(port, "/small.json"),
            "shadowproxy",
            process,
        )
        yield process.pid, port, admin
    finally:
        _stop(process)


@contextlib.contextmanager
def _floor(
    run: Path, legacy: int, candidate: int, workers: str, name: str
) -> Iterator[tuple[int, int]]:
    """Run ``bench/raw_forwarder.py``, a process per worker; yields (pid, port) once all listen."""
    port = _free_port()
    processes = os.cpu_count() or 1 if workers == "auto" else int(workers)
    argv = [sys.executable, str(_HERE / "raw_forwarder.py")]
    argv += [str(port), str(legacy), str(candidate), str(processes)]
    with (run / f"{name}.log").open("wb") as sink:
        process = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT, cwd=run)
    try:
        _wait(
            lambda: _listeners(port) >= processes and _http_ok(port, "/small.json"),
            name,
            process,
        )
        yield process.pid, port
    finally:
        _stop(process)


def _worker_rss(pid: int) -> list[float]:
    return [round(_rss_mb(child), 1) for child in _tree(pid)[1:] if _is_worker(child)]


def _is_worker(pid: int) -> bool:
    with contextlib.suppress(OSError):
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        return b"multiprocessing" in cmdline and b"resource_tracker" not in cmdline
    return False


# ---------------------------------------------------------------------------
# loop-lag probe: one worker in this script's own process tree, sampling its loop


def _clear(*samples: list[float]) -> None:
    for sample in samples:
        sample.clear()


def _percentiles(values: list[float], prefix: str) -> dict[str, float | None]:
    values = sorted(values)
    return {
        f"{prefix}p50_ms": round(values[len(values) // 2], 3) if values else None,
        f"{prefix}p99_ms": round(values[int(len(values) * 0.99)], 3) if values else None,
        f"{prefix}max_ms": round(values[-1], 3) if values else None,
    }


def _probe(argv: Sequence[str]) -> int:
    """``_probe LISTEN LEGACY CANDIDATE LOG_DIR OUT``: serve until SIGTERM, then write lag stats."""
    listen, legacy, candidate, log_dir, out = argv
    sys.path.insert(0, str(_ROOT))
    import uvloop

    from shadowproxy.config import Overrides, load_settings
    from shadowproxy.runtime.serve import serve

    settings = load_settings(
        None,
        Overrides(
            listen=listen, admin="127.0.0.1:0", legacy=legacy, candidate=candidate, log_dir=log_dir
        ),
    )
    from prometheus_client import CollectorRegistry

    from shadowproxy.compare import engine

    lags: list[float] = []
    inline: list[float] = []
    compare = engine.Comparator.compare

    def timed(self: engine.Comparator, exchange: Any, rules: Any) -> Any:
        # Only inline comparisons run in this process (larger ones run in the
        # comparison worker process), and each blocks the loop for its duration.
        started = time.perf_counter()
        try:
            return compare(self, exchange, rules)
        finally:
            inline.append((time.perf_counter() - started) * 1e3)

    engine.Comparator.compare = timed  # type: ignore[method-assign]

    # Collector pauses, by generation: a full collection over large parsed
    # documents is a loop stall the comparison timings would not show.
    gc_pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
    gc_started = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            gc_started[0] = time.perf_counter()
        else:
            gc_pauses[info["generation"]].append((time.perf_counter() - gc_started[0]) * 1e3)

    gc.callbacks.append(on_gc)

    registry = CollectorRegistry()

    async def sample(stop: asyncio.Event) -> None:
        # perf_counter, not loop.time(): uvloop's clock is cached per iteration in ms.
        while not stop.is_set():
            due = time.perf_counter() + 0.001
            await asyncio.sleep(0.001)
            lags.append(max(0.0, (time.perf_counter() - due) * 1000.0))

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGUSR1, _clear, lags, inline, *gc_pauses.values())
        sampler = asyncio.gather(sample(stop))
        await serve(settings, registry=registry, stop=stop)
        await sampler

    uvloop.run(main())
    skipped = {
        reason: registry.get_sample_value("shadowproxy_shadow_skipped_total", {"reason": reason})
        or 0
        for reason in ("overload", "queue_full")
    }
    compared = sum(
        sample.value
        for metric in registry.collect()
        if metric.name == "shadowproxy_comparisons"
        for sample in metric.samples
        if sample.name.endswith("_total")
    )
    stats = {
        "samples": len(lags),
        **_percentiles(lags, ""),
        "over_5ms": sum(1 for lag in lags if lag > 5.0),
        "over_50ms": sum(1 for lag in lags if lag > 50.0),
        "inline_compare_calls": len(inline),
        **_percentiles(inline, "inline_compare_"),
        "gc": {
            f"gen{generation}": {"count": len(pauses), "max_ms": round(max(pauses, default=0), 3)}
            for generation, pauses in gc_pauses.items()
        },
        "skipped": skipped,
        "compared": compared,
    }
    Path(out).write_text(json.dumps(stats))
    return 0


def _lag_probe(
    run: Path, legacy: int, candidate: int, load: Load, script: Path, body: str
) -> dict[str, Any]:
    """One worker under the diff load: its own loop-lag distribution and shedding."""
    port = _free_port()
    out = run / f"lag-{body}.json"
    argv = [
        sys.executable,
        str(Path(__file__).resolve()),
        "_probe",
        f"127.0.0.1:{port}",
        f"http://127.0.0.1:{legacy}",
        f"http://127.0.0.1:{candidate}",
        str(run / f"evidence-probe-{body}"),
        str(out),
    ]
    with (run / f"probe-{body}.log").open("wb") as sink:
        process = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT, cwd=run)
    try:
        path = "/" + _PROBE_BODIES[body][0]
        _wait(lambda: _http_ok(port, path), "lag probe", process)
        _wrk(
            port, path, threads=load.threads, connections=load.connections, seconds=1, script=script
        )
        process.send_signal(signal.SIGUSR1)
        report = _wrk(
            port,
            path,
            threads=load.threads,
            connections=load.connections,
            seconds=load.seconds,
            script=script,
        )
    finally:
        _stop(process)
    stats: dict[str, Any] = json.loads(out.read_text())
    stats["rps"] = round(report["requests"] / (report["duration_us"] / 1e6), 1)
    stats["requests_during_measure"] = report["requests"]
    return stats


def _versions() -> dict[str, str]:
    nginx = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip()
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.splitlines()
    try:
        loop = f"uvloop {importlib.metadata.version('uvloop')}"
    except importlib.metadata.PackageNotFoundError:
        loop = "asyncio"
    import aiohttp

    return {
        "python": sys.version.split()[0],
        "aiohttp": aiohttp.__version__,
        "httptools": importlib.metadata.version("httptools"),
        "event_loop": loop,
        "nginx": nginx.removeprefix("nginx version: "),
        "wrk": wrk[0] if wrk else "?",
        "machine": platform.machine(),
        "cpus": str(os.cpu_count()),
    }


def _find(results: Sequence[Result], target: str, body: str, load: str) -> Result | None:
    for result in results:
        if (result.target, result.body, result.load) == (target, body, load):
            return result
    return None


def _round_ratios(
    rounds: Sequence[Sequence[Result]], target: str, body: str, baseline: str
) -> list[float]:
    """``target``'s throughput over ``baseline``'s at saturation, one ratio per round."""
    ratios = []
    for measured in rounds:
        own = _find(measured, target, body, "saturation")
        base = _find(measured, baseline, body, "saturation")
        if own and base:
            ratios.append(own.rps / base.rps)
    return ratios


def _throughput_ratio(
    rounds: Sequence[Sequence[Result]], target: str, body: str, minimum: float = 1.0
) -> dict[str, Any] | None:
    """``target`` over nginx + mirror at saturation: the median of the per-round ratios."""
    ratios = _round_ratios(rounds, target, body, "nginx-mirror")
    if not ratios:
        return None
    ratio = _middle(ratios, float)
    verdict: dict[str, Any] = {
        "value": round(ratio, 2),
        "target": f">= {minimum}",
        "met": ratio >= minimum,
    }
    if len(ratios) > 1:
        verdict["rounds"] = [round(r, 2) for r in ratios]
    return verdict


_RATIOS = (
    ("floor", "nginx-mirror"),
    ("floor-diff", "nginx-mirror"),
    ("shadowproxy", "nginx-mirror"),
    ("shadowproxy-diff", "nginx-mirror"),
    ("shadowproxy", "floor"),
    ("shadowproxy-diff", "floor-diff"),
    ("shadowproxy-paused", "nginx-mirror"),
)
"""Throughput ratios every run prints: the floor and shadowproxy against nginx + mirror,
and the fraction of the floor shadowproxy reaches."""


def _ratios(rounds: Sequence[Sequence[Result]]) -> dict[str, dict[str, Any]]:
    """Every ratio of ``_RATIOS`` measured, per body: the median of its per-round ratios."""
    out: dict[str, dict[str, Any]] = {}
    for target, baseline in _RATIOS:
        for body in _BODIES:
            ratios = _round_ratios(rounds, target, body, baseline)
            if ratios:
                out.setdefault(f"{target}/{baseline}", {})[body] = {
                    "median": round(_middle(ratios, float), 2),
                    "rounds": [round(r, 2) for r in ratios],
                }
    return out


# The targets of issue 22 beyond identical bodies at >= 1.0x nginx + mirror.
_THROUGHPUT_MIN_DIFF = {"50kb": 0.8}
_CPU_MAX = 1.2
_ADDED_P50_MAX_MS = 0.25


def _verdicts(
    results: list[Result],
    extra: dict[str, Any],
    rounds: Sequence[Sequence[Result]] | None = None,
) -> dict[str, Any]:
    """The issue's targets, each with its measured value and whether it is met.

    Throughput ratios come from ``rounds`` (each round side by side) when given.
    """
    targets: dict[str, Any] = {}
    for body in _BODIES:
        verdict = _throughput_ratio(rounds or [results], "shadowproxy", body)
        if verdict is not None:
            targets[f"throughput_vs_nginx_mirror_{body}"] = verdict
        if body in _THROUGHPUT_MIN_DIFF:
            verdict = _throughput_ratio(
                rounds or [results], "shadowproxy-diff", body, _THROUGHPUT_MIN_DIFF[body]
            )
            if verdict is not None:
                targets[f"throughput_vs_nginx_mirror_{body}_diff"] = verdict
        sp = _find(results, "shadowproxy", body, "saturation")
        diff = _find(results, "shadowproxy-diff", body, "saturation")
        mirror = _find(results, "nginx-mirror", body, "saturation")
        if sp is not None and mirror is not None and mirror.cpu_us_per_request:
            ratio = sp.cpu_us_per_request / mirror.cpu_us_per_request
            targets[f"cpu_vs_nginx_mirror_{body}"] = {
                "value": round(ratio, 2),
                "target": f"<= {_CPU_MAX}",
                "met": ratio <= _CPU_MAX,
            }
        for result in (sp, diff):
            if result is not None:
                ratio = result.p99_ms / result.p50_ms
                targets[f"p99_over_p50_{result.target}_{body}"] = {
                    "value": round(ratio, 2),
                    "target": "<= 3.0",
                    "met": ratio <= 3.0,
                }
        light = _find(results, "shadowproxy", body, "light")
        direct = _find(results, "direct", body, "light")
        if light and direct:
            added = light.p50_ms - direct.p50_ms
            targets[f"added_p50_light_ms_{body}"] = {
                "value": round(added, 3),
                "target": f"<= {_ADDED_P50_MAX_MS}",
                "met": added <= _ADDED_P50_MAX_MS,
            }
    rss = extra.get("worker_rss_mb", [])
    if rss:
        targets["worker_rss_mb"] = {"value": max(rss), "target": "<= 80", "met": max(rss) <= 80}
    for body, lag in extra.get("loop_lag", {}).items():
        # Stalls caused by comparison: inline ones block the loop for their duration.
        worst = lag.get("inline_compare_max_ms") or 0.0
        targets[f"inline_compare_stall_max_ms_{body}_diff"] = {
            "value": worst,
            "target": "<= 5.0",
            "met": worst <= 5.0,
        }
    return targets


@dataclass(frozen=True, slots=True)
class _Contender:
    """Where one contender listens, whose CPU it is, and (paused) whose kill switch to use."""

    target: str
    port: int
    pid: int | None
    pause_admin: int | None = None
    """For ``shadowproxy-paused``: the admin port paused around each of its runs."""


def _median_results(rounds: Sequence[Sequence[Result]]) -> list[Result]:
    """Per (target, body, load), the round with the median throughput (the lower one of two)."""
    keyed: dict[tuple[str, str, str], list[Result]] = {}
    for measured in rounds:
        for result in measured:
            keyed.setdefault((result.target, result.body, result.load), []).append(result)
    return [_middle(results, lambda r: r.rps) for results in keyed.values()]


def _middle(items: Sequence[_T], key: Callable[[_T], float]) -> _T:
    """The median item by ``key``; of two in the middle, the lower one."""
    return sorted(items, key=key)[(len(items) - 1) // 2]


def _run(args: argparse.Namespace) -> dict[str, Any]:
    saturation = Load("saturation", args.threads, args.connections, args.duration)
    light = Load("light", 1, 1, max(1.0, args.duration / 2))
    rounds: list[list[Result]] = []
    extra: dict[str, Any] = {}
    with (
        tempfile.TemporaryDirectory(prefix="shadowproxy-bench-") as tmp,
        contextlib.ExitStack() as running,
    ):
        run = Path(tmp)
        _backend_root(run, _PROBE_BODIES.values())
        script = run / "report.lua"
        script.write_text(_WRK_REPORT)
        ports = {
            name: _free_port()
            for name in (
                "LEGACY_PORT",
                "CANDIDATE_PORT",
                "DIFFERENT_PORT",
                "PROXY_PORT",
                "MIRROR_PORT",
            )
        }
        values: dict[str, object] = {**ports, "WORKERS": "auto"}
        legacy, candidate, different = (
            ports["LEGACY_PORT"],
            ports["CANDIDATE_PORT"],
            ports["DIFFERENT_PORT"],
        )
        backends = running.enter_context(
            _nginx(run, "backends.conf", values, [legacy, candidate, different])
        )
        # Every contender runs from the start, idle until its turn, so one
        # (load, body) group measures them all back to back.
        only = set(args.only)
        contenders: list[_Contender] = []
        if "direct" in only:
            contenders.append(_Contender("direct", legacy, None))
        if "nginx" in only:
            nginx_ports = [ports["PROXY_PORT"], ports["MIRROR_PORT"]]
            proxies = running.enter_context(_nginx(run, "proxies.conf", values, nginx_ports))
            contenders.append(_Contender("nginx", ports["PROXY_PORT"], proxies))
            contenders.append(_Contender("nginx-mirror", ports["MIRROR_PORT"], proxies))
        if "floor" in only:
            for name, upstream in (("floor", candidate), ("floor-diff", different)):
                pid, port = running.enter_context(_floor(run, legacy, upstream, args.workers, name))
                contenders.append(_Contender(name, port, pid))
        proxied: dict[str, tuple[int, int]] = {}
        for name, upstream in (("shadowproxy", candidate), ("shadowproxy-diff", different)):
            if name not in only:
                continue
            pid, port, admin = running.enter_context(
                _shadowproxy(run, legacy, upstream, args.workers, name)
            )
            proxied[name] = (pid, admin)
            contenders.append(_Contender(name, port, pid))
            if name == "shadowproxy":
                # The hot path alone: the kill switch stops mirroring, nothing else.
                contenders.append(_Contender("shadowproxy-paused", port, pid, pause_admin=admin))
        for number in range(1, args.rounds + 1):
            if args.rounds > 1:
                print(f"round {number} of {args.rounds}", flush=True)
            measured: list[Result] = []
            for load in (saturation, light):
                for body in _BODIES:
                    for contender in contenders:
                        measured.append(_measure_one(contender, body, load, backends, script))
            rounds.append(measured)
        for name, (pid, admin) in proxied.items():
            extra.setdefault("worker_rss_mb", []).extend(_worker_rss(pid))
            extra.setdefault("metrics", {})[name] = _metrics(admin)
        if not args.skip_lag_probe and "lag-probe" in only:
            for body in ("50kb", "1mb"):
                lag = _lag_probe(run, legacy, different, saturation, script, body)
                extra.setdefault("loop_lag", {})[body] = lag
                print(f"loop lag (1 worker, {body} diff): {lag}", flush=True)
    results = _median_results(rounds)
    if args.rounds > 1:
        extra["rounds"] = [[asdict(result) for result in measured] for measured in rounds]
    return {
        "versions": _versions(),
        "load": {
            "duration_s": args.duration,
            "saturation": {"threads": args.threads, "connections": args.connections},
            "light": {"threads": 1, "connections": 1},
            "workers": args.workers,
            "rounds": args.rounds,
        },
        "results": [asdict(result) for result in results],
        "ratios": _ratios(rounds),
        **extra,
        "targets": _verdicts(results, extra, rounds),
    }


def _measure_one(
    contender: _Contender, body: str, load: Load, backends: int, script: Path
) -> Result:
    admin = contender.pause_admin
    if admin is not None:
        _post(admin, "/shadow/pause")
    try:
        return _measure(
            contender.target, body, load, contender.port, contender.pid, backends, script
        )
    finally:
        if admin is not None:
            _post(admin, "/shadow/resume")


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per saturation run")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads under saturation")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections")
    parser.add_argument("--workers", default="auto", help="shadowproxy --workers (default auto)")
    parser.add_argument("--skip-lag-probe", action="store_true", help="skip the loop-lag probe")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=_STEPS,
        default=list(_STEPS),
        help="run only these steps (nginx = proxy_pass and mirror; shadowproxy includes paused)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="repeat every run this many times; report the median round and ratio",
    )
    parser.add_argument("--output", type=Path, default=_RESULTS, help="results JSON file")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run every scenario, print the figures and targets, write the results file."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_probe":
        return _probe(argv[1:])
    args = _parse(argv)
    # SystemExit unwinds the context managers, so no nginx or proxy outlives the run.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    missing = [tool for tool in ("nginx", "wrk") if shutil.which(tool) is None]
    if missing:
        print(f"bench_proxy: {', '.join(missing)} not on PATH (apt-get install nginx-light wrk)")
        return 2
    result = _run(args)
    for name, bodies in result["ratios"].items():
        figures = ", ".join(f"{body} {ratio['median']}x" for body, ratio in bodies.items())
        print(f"{name:42} {figures}")
    for name, target in result["targets"].items():
        mark = "met" if target["met"] else "NOT met"
        print(f"{name:42} {target['value']:>9} (target {target['target']}): {mark}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

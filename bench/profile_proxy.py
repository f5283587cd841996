"""Load-independent cost of one proxied request: Python calls, CPU and instructions per request.

Run from the repository root (needs ``nginx``; ``valgrind`` for ``--tool callgrind``)::

    PYTHONPATH=. python bench/profile_proxy.py --tool calls --requests 1000
    PYTHONPATH=. python bench/profile_proxy.py --tool cpu --requests 5000
    PYTHONPATH=. python bench/profile_proxy.py --tool callgrind --requests 1000

Starts the benchmark's nginx backends and one shadowproxy worker (100 %
mirrored and compared, metrics in multiprocess mode as with ``--workers
auto``), warms it up, then sends ``--requests`` GETs over ``--connections``
kept-alive connections from a client process of its own and measures the
worker alone over exactly those requests:

* ``calls``: cProfile, switched on for the measured requests only: function
  calls (Python and C) per request, and per request the functions and the
  modules (C functions counted in their caller's) with the most calls and
  the most own time; cProfile's own overhead inflates the times, not the calls;
* ``cpu``: the worker's user + system CPU time per request (``/proc``);
* ``callgrind``: the worker runs under ``valgrind --tool=callgrind`` with
  instrumentation on for the measured requests only: user-space
  instructions per request, the same on a loaded machine as on an idle one.

``--mode paused`` measures the hot path alone (kill switch on), ``--mode
diff`` a candidate that differs in one field. These are A/B tools: run the
same command on two trees and compare. Prints the tables, then one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import pstats
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from bench.bench_proxy import _BODIES, _backend_root, _cpu_seconds, _free_port, _http_ok, _nginx
from bench.bench_proxy import _wait as _wait_for

__all__ = ["main"]

_HERE = Path(__file__).resolve().parent
_ROOT = _HERE.parent
_WARMUP = 500
_READY_S = 300.0
"""Starting under valgrind takes a while."""


async def _client(port: int, path: str, requests: int, connections: int) -> None:
    """Send ``requests`` GETs of ``path`` over ``connections`` kept-alive connections."""
    request = f"GET {path} HTTP/1.1\r\nHost: profile\r\n\r\n".encode()
    left = [requests]

    async def one_connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while left[0] > 0:
                left[0] -= 1
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                if not head.startswith(b"HTTP/1.1 200"):
                    raise RuntimeError(f"unexpected answer: {head[:40]!r}")
                match = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
                assert match is not None
                await reader.readexactly(int(match.group(1)))
        finally:
            writer.close()

    await asyncio.gather(*(one_connection() for _ in range(connections)))


def _drive(port: int, path: str, requests: int, connections: int) -> None:
    """Run the client in a process of its own, so its CPU is never the worker's."""
    code = (
        "import asyncio; from bench.profile_proxy import _client; "
        f"asyncio.run(_client({port}, {path!r}, {requests}, {connections}))"
    )
    env = {**os.environ, "PYTHONPATH": str(_ROOT)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def _serve(argv: Sequence[str]) -> int:
    """``_serve LISTEN LEGACY CANDIDATE LOG_DIR PAUSED STATS``: one worker; SIGUSR1 profiles.

    With STATS (not ``-``), the first SIGUSR1 starts cProfile and creates
    STATS.on, the second stops it and writes STATS; SIGTERM stops the worker.
    """
    listen, legacy, candidate, log_dir, paused, stats = argv
    # As under --workers N: every metric write goes to the multiprocess files.
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="profile-metrics-"))
    import cProfile

    import uvloop

    from shadowproxy.config import Overrides, load_settings
    from shadowproxy.runtime.serve import serve

    class Flag:
        value = int(paused == "1")

    overrides = Overrides(
        listen=listen, admin="127.0.0.1:0", legacy=legacy, candidate=candidate, log_dir=log_dir
    )
    settings = load_settings(None, overrides)
    profiler = cProfile.Profile()
    toggles = iter(("on", "off"))

    def toggle() -> None:
        if next(toggles, None) == "on":
            profiler.enable()
            Path(stats + ".on").touch()
        else:
            profiler.disable()
            profiler.dump_stats(stats + ".tmp")
            Path(stats + ".tmp").rename(stats)

    async def main() -> None:
        if stats != "-":
            asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, toggle)
        await serve(settings, pause_flag=Flag())

    uvloop.run(main())
    return 0


@contextlib.contextmanager
def _worker(
    run: Path, legacy: int, candidate: int, paused: bool, stats: str, prefix: Sequence[str]
) -> Iterator[tuple[int, int]]:
    """One worker (under ``prefix``, e.g. valgrind); yields its pid and port once it answers."""
    port = _free_port()
    argv = [*prefix, sys.executable, str(Path(__file__).resolve()), "_serve"]
    argv += [f"127.0.0.1:{port}", f"http://127.0.0.1:{legacy}", f"http://127.0.0.1:{candidate}"]
    argv += [str(run / "evidence"), "1" if paused else "0", stats]
    env = {**os.environ, "PYTHONPATH": str(_ROOT)}
    with (run / "worker.log").open("wb") as sink:
        process = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT, env=env, cwd=run)
    try:
        _wait_for(lambda: _http_ok(port, "/small.json"), "worker", process, _READY_S)
        yield process.pid, port
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(_READY_S)


def _appears(path: Path) -> None:
    deadline = time.monotonic() + _READY_S
    while not path.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{path.name} not written after {_READY_S:.0f}s")
        time.sleep(0.05)


def _calls(stats_file: Path, requests: int, top: int) -> dict[str, Any]:
    """Calls and own time per request: in total, by function and by module."""
    raw: dict[Any, Any] = pstats.Stats(str(stats_file)).stats  # type: ignore[attr-defined]
    functions = []
    modules: collections.Counter[str] = collections.Counter()
    module_us: collections.Counter[str] = collections.Counter()
    for (filename, line, name), (_, ncalls, tottime, _, callers) in raw.items():
        where = f"{Path(filename).name}:{line}({name})" if line else name
        functions.append((where, ncalls / requests, tottime / requests * 1e6))
        if line:
            owners = [(Path(filename).name, ncalls, tottime)]
        else:
            # A C function's calls count in the module that called it.
            owners = [
                (Path(file).name if number else function, calls, own)
                for (file, number, function), (_, calls, own, _) in callers.items()
            ]
        for owner, calls, own in owners:
            modules[owner] += calls / requests
            module_us[owner] += own / requests * 1e6
    rounded = [[where, round(calls, 2), round(own, 2)] for where, calls, own in functions]
    return {
        "calls_per_request": round(sum(row[1] for row in functions), 1),
        "by_module": [
            [m, round(c, 1), round(module_us[m], 1)] for m, c in modules.most_common(top)
        ],
        "by_calls": sorted(rounded, key=lambda row: -row[1])[:top],
        "by_own_us": sorted(rounded, key=lambda row: -row[2])[:top],
    }


def _instructions(out: Path) -> int:
    """The instructions callgrind counted, from its output files (one per dump)."""
    total = 0
    for path in out.parent.glob(out.name + "*"):
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith(("summary:", "totals:")):
                total = max(total, int(line.split()[1]))
    return total


def _measure(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="profile-proxy-") as tmp, contextlib.ExitStack() as on:
        run = Path(tmp)
        _backend_root(run, _BODIES.values())
        ports = {name: _free_port() for name in ("LEGACY_PORT", "CANDIDATE_PORT", "DIFFERENT_PORT")}
        on.enter_context(
            _nginx(run, "backends.conf", {**ports, "WORKERS": 1}, list(ports.values()))
        )
        candidate = ports["DIFFERENT_PORT" if args.mode == "diff" else "CANDIDATE_PORT"]
        stats, out = run / "calls.prof", run / "callgrind.out"
        prefix = []
        if args.tool == "callgrind":
            prefix = ["valgrind", "--tool=callgrind", "--instr-atstart=no"]
            prefix.append(f"--callgrind-out-file={out}")
        pid, port = on.enter_context(
            _worker(
                run,
                ports["LEGACY_PORT"],
                candidate,
                args.mode == "paused",
                str(stats) if args.tool == "calls" else "-",
                prefix,
            )
        )
        path = "/" + _BODIES[args.body][0]
        _drive(port, path, _WARMUP, args.connections)
        result: dict[str, Any] = {
            "tool": args.tool,
            "mode": args.mode,
            "body": args.body,
            "requests": args.requests,
            "connections": args.connections,
        }
        if args.tool == "cpu":
            before = _cpu_seconds([pid])
            _drive(port, path, args.requests, args.connections)
            spent = _cpu_seconds([pid]) - before
            result["cpu_us_per_request"] = round(spent / args.requests * 1e6, 1)
        elif args.tool == "calls":
            os.kill(pid, signal.SIGUSR1)
            _appears(Path(f"{stats}.on"))
            _drive(port, path, args.requests, args.connections)
            os.kill(pid, signal.SIGUSR1)
            _appears(stats)
            result.update(_calls(stats, args.requests, args.top))
            if args.keep:
                shutil.copy(stats, args.keep)
        else:
            subprocess.run(["callgrind_control", "-i", "on", str(pid)], check=True)
            _drive(port, path, args.requests, args.connections)
            subprocess.run(["callgrind_control", "-i", "off", str(pid)], check=True)
            subprocess.run(["callgrind_control", "-d", str(pid)], check=True)
            result["instructions_per_request"] = round(_instructions(out) / args.requests)
            if args.keep:
                for dump in out.parent.glob(out.name + "*"):
                    shutil.copy(dump, f"{args.keep}{dump.name.removeprefix(out.name)}")
        return result


def main(argv: Sequence[str] | None = None) -> int:
    """Measure one tool, mode and body; print the tables and one JSON line."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_serve":
        return _serve(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tool", choices=("calls", "cpu", "callgrind"), default="calls")
    parser.add_argument("--mode", choices=("mirrored", "paused", "diff"), default="mirrored")
    parser.add_argument("--body", choices=sorted(_BODIES), default="1kb")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--top", type=int, default=25, help="rows per table (calls)")
    parser.add_argument("--keep", type=Path, help="copy the pstats or callgrind file(s) here")
    args = parser.parse_args(argv)
    result = _measure(args)
    for table in ("by_module", "by_calls", "by_own_us"):
        if result.get(table):
            print(f"{table}: calls per request, own us per request")
        for where, calls, own in result.get(table, []):
            print(f"  {calls:8.2f} {own:8.2f}  {where}")
    print(json.dumps({k: v for k, v in result.items() if not k.startswith("by_")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Where a saturated proxy's CPU goes: per proxy worker and per comparison process.

Run from the repository root (needs ``nginx`` and ``wrk``; ``perf`` for ``--perf``)::

    PYTHONPATH=build/compiled python bench/cpu_split.py --mode diff --body 50kb

Starts the benchmark's nginx backends and ``shadowproxy run --workers auto``
against them (``--mode diff``: the candidate that differs in one field),
warms it up with wrk, then drives the benchmark's saturation load (2 wrk
threads, 64 connections) for ``--seconds`` and prints, for each process the
proxy started, its CPU time per request and its minor page faults per
request (``/proc/<pid>/stat``), then the proxy's counts of pairs compared
and dropped as ``queue_full``. ``--perf FILE`` also records the first
worker with ``perf record --call-graph dwarf`` over the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from bench import bench_proxy as bench

__all__ = ["main"]

_PORTS = ("LEGACY_PORT", "CANDIDATE_PORT", "DIFFERENT_PORT", "PROXY_PORT", "MIRROR_PORT")
_COUNTS = ('skipped_total{reason="queue_full"}', "comparisons_total{")


def _stat(pid: int) -> tuple[float, int]:
    """CPU seconds and minor page faults of ``pid`` so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return bench._cpu_seconds([pid]), int(fields[7])


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--mode", choices=("mirrored", "diff"), default="diff")
    parser.add_argument("--body", choices=tuple(bench._BODIES), default="50kb")
    parser.add_argument("--seconds", type=int, default=5, help="measured wrk run")
    parser.add_argument("--perf", type=Path, help="also record the first worker with perf here")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one measured load and print the split."""
    args = _parse(sys.argv[1:] if argv is None else argv)
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as running:
        run = Path(tmp)
        bench._backend_root(run, bench._PROBE_BODIES.values())
        script = run / "report.lua"
        script.write_text(bench._WRK_REPORT)
        ports = {name: bench._free_port() for name in _PORTS}
        backends = [ports["LEGACY_PORT"], ports["CANDIDATE_PORT"], ports["DIFFERENT_PORT"]]
        running.enter_context(
            bench._nginx(run, "backends.conf", {**ports, "WORKERS": "auto"}, backends)
        )
        candidate = ports["DIFFERENT_PORT" if args.mode == "diff" else "CANDIDATE_PORT"]
        pid, port, admin = running.enter_context(
            bench._shadowproxy(run, ports["LEGACY_PORT"], candidate, "auto", "split")
        )
        path = "/" + bench._BODIES[args.body][0]
        bench._wrk(port, path, threads=2, connections=64, seconds=2, script=script)
        children = [child for child in bench._tree(pid) if child != pid]
        perf = None
        if args.perf is not None:
            argv_perf = ["perf", "record", "--call-graph", "dwarf,16384", "-F", "400"]
            argv_perf += ["-o", str(args.perf), "-p", str(children[0])]
            perf = subprocess.Popen(argv_perf, stderr=subprocess.DEVNULL)
        before = {child: _stat(child) for child in children}
        report = bench._wrk(
            port, path, threads=2, connections=64, seconds=args.seconds, script=script
        )
        after = {child: _stat(child) for child in children}
        if perf is not None:
            perf.send_signal(2)
            perf.wait()
        requests = max(report["requests"], 1)
        rps = requests / (report["duration_us"] / 1e6)
        print(f"{args.mode} {args.body}: {rps:.0f} req/s")
        for child in children:
            command = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ")
            role = "proxy worker"
            if b"compare_worker" in command:
                role = "comparison process"
            elif b"resource_tracker" in command:
                role = "resource tracker"
            cpu = (after[child][0] - before[child][0]) / requests * 1e6
            faults = (after[child][1] - before[child][1]) / requests
            print(f"  {role:18} {child}: {cpu:6.1f} us/req, {faults:5.2f} minor faults/req")
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics").read().decode()
        for line in metrics.splitlines():
            if any(count in line for count in _COUNTS) and not line.endswith(" 0.0"):
                print(f"  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

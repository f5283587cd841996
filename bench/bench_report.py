"""Benchmark ``shadow report`` on generated evidence: records/s and peak RSS.

Generates JSONL shards (one of them gzip, one rotated) in a temporary
directory following docs/evidence.md, runs ``python -m shadowproxy.report``
on them in a child process, and writes bench/results/report.json. Runs at
two sizes so the output shows whether memory stays flat as records grow.

    PYTHONPATH=. python bench/bench_report.py [--records 1000000] [--small 250000]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from shadowproxy.histogram import LatencyHistogram

__all__ = ["main"]

ROOT = Path(__file__).resolve().parents[1]
UNTIL = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
SHARDS = ("shadow-a-1.jsonl", "shadow-a-1.jsonl.1", "shadow-b-2.jsonl.gz", "shadow-c-3.jsonl")
ROUTES = [(f"/d{d}/r{r}/{{id}}", f"domain{d}") for d in range(6) for r in range(8)]


def _ts(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _records(count: int, rng: random.Random) -> list[bytes]:
    """``count`` lines: one rollup in ten, the rest exchanges (a fifth sampled matches)."""
    lines: list[bytes] = []
    span = 13 * 86400
    latency = LatencyHistogram.of(rng.lognormvariate(1.5, 0.5) for _ in range(200)).to_json()
    for i in range(count):
        route, domain = ROUTES[i % len(ROUTES)]
        start = UNTIL - timedelta(seconds=span * (1 - i / count))
        if i % 10 == 0:
            record: dict[str, object] = {
                "v": 1,
                "type": "rollup",
                "ts_start": _ts(start),
                "ts_end": _ts(start + timedelta(minutes=1)),
                "route": route,
                "domain": domain,
                "compared": 120,
                "match": 100,
                "diverged": 15,
                "structural": 0,
                "semantic": 14,
                "timing": 1,
                "noise": 3,
                "errors": 2,
                "skipped": {"sampled_out": 40},
                "latency": {"legacy": latency, "candidate": latency},
            }
        else:
            roll = i % 5
            diffs = (
                []
                if roll == 0
                else [
                    {
                        "class": "semantic",
                        "kind": "value",
                        "path": f"$.items[{i % 7}].total",
                        "legacy": 10.0,
                        "candidate": 10.01,
                        "noise": False,
                    },
                    {
                        "class": "semantic",
                        "kind": "value",
                        "path": f"$.f{i % 300}",
                        "legacy": "a" * 40,
                        "candidate": "b" * 40,
                        "noise": roll == 1,
                    },
                ]
            )
            classes = sorted({str(d["class"]) for d in diffs if not d["noise"]})
            record = {
                "v": 1,
                "type": "exchange",
                "ts": _ts(start),
                "id": f"{i:016x}",
                "route": route,
                "domain": domain,
                "method": "GET",
                "path": f"/x/{i}",
                "verdict": "diverged" if classes else "match",
                "classes": classes,
                "legacy": {"status": 200, "ms": 3.21, "bytes": 512},
                "candidate": {"status": 200, "ms": 4.1, "bytes": 515, "error": None},
                "differences": diffs,
                "differences_omitted": 0,
                "equivalences": {},
                "note": None,
            }
        lines.append(orjson.dumps(record) + b"\n")
    return lines


def _generate(directory: Path, count: int) -> None:
    lines = _records(count, random.Random(7))
    per = len(lines) // len(SHARDS) + 1
    for n, name in enumerate(SHARDS):
        data = b"".join(lines[n * per : (n + 1) * per])
        (directory / name).write_bytes(gzip.compress(data, 1) if name.endswith(".gz") else data)


def _run(directory: Path, count: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = directory / "report.json"
    script = (
        "import resource, sys, time\n"
        "from shadowproxy.report.__main__ import main\n"
        "t = time.perf_counter(); code = main(); elapsed = time.perf_counter() - t\n"
        # VmHWM, not ru_maxrss: the latter keeps the forked parent's peak across exec.
        "from pathlib import Path\n"
        "status = Path('/proc/self/status').read_text().split('VmHWM:')[1]\n"
        "rss = int(status.split()[0])\n"
        "workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
        "print(elapsed, rss, workers, code, file=sys.stderr)\n"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            str(directory),
            "--until",
            _ts(UNTIL),
            "--format",
            "json",
            "--out",
            str(out),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed, rss_kib, workers_kib, code = done.stderr.split()[-4:]
    report = json.loads(out.read_text())
    assert report["inputs"]["records"] == count, report["inputs"]
    assert int(code) in (0, 1)
    seconds = float(elapsed)
    return {
        "records": count,
        "seconds": round(seconds, 3),
        "records_per_s": round(count / seconds),
        "peak_rss_mib": round(int(rss_kib) / 1024, 1),
        "largest_worker_rss_mib": round(int(workers_kib) / 1024, 1),
    }


def main() -> int:
    """Generate, run at two sizes, print and record the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=250_000)
    args = parser.parse_args()
    results = []
    for count in (args.small, args.records):
        with tempfile.TemporaryDirectory(prefix="shadow-bench-") as tmp:
            started = time.perf_counter()
            _generate(Path(tmp), count)
            generated = time.perf_counter() - started
            figures = _run(Path(tmp), count)
        results.append(figures)
        print(
            f"{count:>9} records: {figures['records_per_s']:>8} records/s, "
            f"{figures['seconds']} s, peak RSS {figures['peak_rss_mib']} MiB, "
            f"largest worker {figures['largest_worker_rss_mib']} MiB "
            f"(generated in {generated:.1f} s)"
        )
    target = ROOT / "bench" / "results" / "report.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(
        json.dumps(
            {
                "command": "PYTHONPATH=. python bench/bench_report.py",
                "python": sys.version.split()[0],
                "cpus": os.cpu_count(),
                "runs": results,
                "note": "one rollup in ten records; 4 shards incl. one gzip and one rotated file",
                "bench_rss_mib": round(
                    resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
                ),
            },
            indent=2,
        )
        + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

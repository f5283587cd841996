"""``shadow replay`` and ``shadow import-har``: flags, the run, the verdict, exit codes.

``shadow replay`` reads the captures, replays them (``runner``), writes the
proxy's JSONL evidence in ``--log-dir`` and judges it as ``shadow report``
does (its aggregation, gates and known differences), over exactly the
replay's own files and time. With ``--record-golden DIR`` it only records
legacy's answers; with ``--golden DIR`` the candidate is checked against
them. ``shadow import-har`` turns a HAR file into a capture file.

Exit codes: 0 every gate passed (or every answer recorded); 1 a gate failed
or lacked evidence, a request had no golden answer or could not be
completed; 2 bad input (flags, configuration, capture, golden or
credentials file, a side that refused every request), one line on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
from prometheus_client import CollectorRegistry

from shadowproxy.config import Overrides, load_settings
from shadowproxy.replay.captures import (
    Captured,
    ReplayInputError,
    capture_files,
    har_records,
    load_credentials,
    read_captured,
)
from shadowproxy.replay.golden import GoldenDir
from shadowproxy.replay.runner import Mode, Plan, Replayer, Tally
from shadowproxy.report.command import render_report
from shadowproxy.report.document import build_report
from shadowproxy.report.errors import ReportInputError
from shadowproxy.report.known import KnownSet, load_known
from shadowproxy.report.parallel import aggregate_files
from shadowproxy.report.thresholds import GatesConfig, GateSpec, load_gates
from shadowproxy.report.windows import Windows
from shadowproxy.runtime.worker import route_table
from shadowproxy.settings import Settings, UpstreamSettings
from shadowproxy.sinks import Evidence, Metrics, Redactor, default_worker_id
from shadowproxy.sinks.files import open_private, safe_worker_id

__all__ = [
    "REPLAY_GATES",
    "add_import_har_arguments",
    "add_replay_arguments",
    "run_import_har",
    "run_replay",
]

REPLAY_GATES = GatesConfig(
    GateSpec(min_compared=1, max_error_rate=0.0, max_p99_ratio=10.0), source="<replay defaults>"
)
"""A replay's gates unless ``--gates``: every route compared, no structural difference, no
error, semantic differences documented, the candidate's p99 within 10x legacy's."""
_LOG_DIR = "./shadow-replay"
_MAX_CONCURRENCY = 64
_CLOSE_S = 30.0


def add_replay_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``shadow replay`` flags to ``parser``."""
    parser.add_argument(
        "captures", nargs="+", metavar="CAPTURE", help="capture files, directories or HAR files"
    )
    parser.add_argument("--legacy", metavar="URL", help="legacy base URL")
    parser.add_argument("--candidate", metavar="URL", help="candidate base URL")
    parser.add_argument("--secondary", metavar="URL", help="second legacy instance (noise)")
    parser.add_argument("--config", metavar="FILE", help="routes, rules, redaction (YAML)")
    parser.add_argument(
        "--log-dir", metavar="DIR", default=_LOG_DIR, help=f"evidence (default {_LOG_DIR})"
    )
    writes = parser.add_mutually_exclusive_group()
    writes.add_argument(
        "--dry-run", action="store_true", help="send writes with the dry-run header (every side)"
    )
    writes.add_argument(
        "--disposable", action="store_true", help="the backends' data may be written: send writes"
    )
    parser.add_argument("--concurrency", type=int, default=4, metavar="N", help="default 4")
    parser.add_argument(
        "--rate", type=float, default=0.0, metavar="R", help="requests/s at most (0: no limit)"
    )
    parser.add_argument("--timeout", type=float, default=10.0, metavar="S", help="default 10 s")
    credentials = parser.add_mutually_exclusive_group()
    credentials.add_argument("--credentials", metavar="FILE", help="header lines put back")
    credentials.add_argument("--credentials-env", metavar="VAR", help="the same, in a variable")
    parser.add_argument("--gates", metavar="FILE", help="gates YAML (default: replay gates)")
    parser.add_argument("--known", metavar="FILE", help="known-differences YAML")
    parser.add_argument("--format", choices=("table", "markdown", "json"), default="table")
    golden = parser.add_mutually_exclusive_group()
    golden.add_argument("--record-golden", metavar="DIR", help="record legacy's answers in DIR")
    golden.add_argument("--golden", metavar="DIR", help="check the candidate against DIR")


def add_import_har_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``shadow import-har`` flags to ``parser``."""
    parser.add_argument("har", metavar="FILE.har", help="an HTTP Archive (HAR 1.2) file")
    parser.add_argument("--out", metavar="CAPTURE", required=True, help="the capture file to write")
    parser.add_argument("--config", metavar="FILE", help="routes and redaction (YAML)")


def run_replay(args: argparse.Namespace) -> int:
    """Run ``shadow replay`` for parsed ``args``; the exit code."""
    try:
        return _replay(args)
    except (ReplayInputError, ReportInputError) as exc:
        print(f"shadow replay: {exc}", file=sys.stderr)
        return 2


def run_import_har(args: argparse.Namespace) -> int:
    """Run ``shadow import-har``; the exit code."""
    try:
        settings = _settings(args.config, None, None)
        out = Path(args.out)
        if out.exists():
            raise ReplayInputError(f"--out {out}", "exists; choose a new file")
        records = list(
            har_records(Path(args.har), Redactor(settings.redact), route_table(settings))
        )
        with os.fdopen(open_private(out), "ab") as file:
            for record in records:
                file.write(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))
    except ReplayInputError as exc:
        print(f"shadow import-har: {exc}", file=sys.stderr)
        return 2
    print(f"{args.har}: {len(records)} requests written to {out}")
    return 0


def _settings(
    config: str | None,
    legacy: str | None,
    candidate: str | None,
    secondary: str | None = None,
    log_dir: str | None = None,
) -> Settings:
    """The configuration's routes, rules and redaction; the URLs come from the flags.

    A side a mode does not use takes the other's URL, only to satisfy validation.
    """
    any_url = legacy or candidate or "http://127.0.0.1"
    return load_settings(
        config,
        Overrides(
            legacy=legacy or any_url,
            candidate=candidate or any_url,
            secondary=secondary,
            log_dir=log_dir,
        ),
    )


def _check_flags(args: argparse.Namespace) -> Mode:
    """The mode the flags ask for; ReplayInputError for a combination that cannot run."""
    mode: Mode = "record" if args.record_golden else "check" if args.golden else "replay"
    need = {"replay": ("legacy", "candidate"), "record": ("legacy",), "check": ("candidate",)}[mode]
    refuse = {"replay": (), "record": ("candidate", "secondary"), "check": ("legacy", "secondary")}
    for name in need:
        if getattr(args, name) is None:
            raise ReplayInputError(f"--{name}", f"required to {mode}")
    for name in refuse[mode]:
        if getattr(args, name) is not None:
            raise ReplayInputError(f"--{name}", f"not used to {mode}")
    if not 1 <= args.concurrency <= _MAX_CONCURRENCY:
        raise ReplayInputError("--concurrency", f"must be 1 to {_MAX_CONCURRENCY}")
    if not args.rate >= 0:
        raise ReplayInputError("--rate", "must be >= 0")
    if not args.timeout > 0:
        raise ReplayInputError("--timeout", "must be > 0")
    return mode


def _replay(args: argparse.Namespace) -> int:
    mode = _check_flags(args)
    settings = _settings(args.config, args.legacy, args.candidate, args.secondary, args.log_dir)
    plan = Plan(
        mode=mode,
        writes="dry_run" if args.dry_run else "disposable" if args.disposable else "skip",
        concurrency=args.concurrency,
        rate=args.rate,
        timeout_s=args.timeout,
        credentials=load_credentials(args.credentials, args.credentials_env),
    )
    redactor = Redactor(settings.redact)
    routes = route_table(settings)
    requests = [
        r for path in capture_files(args.captures) for r in read_captured(path, redactor, routes)
    ]
    golden_path = args.record_golden or args.golden
    golden = GoldenDir(Path(golden_path)) if golden_path else None
    if mode == "check" and golden is not None and not golden.entries:
        raise ReplayInputError(golden_path, "no golden files: record them with --record-golden")
    known = load_known(args.known) if args.known else KnownSet()
    gates = load_gates(args.gates) if args.gates else REPLAY_GATES
    worker = f"replay-{default_worker_id()}"
    # Records keep milliseconds: the window starts at the millisecond the replay did.
    started = math.floor(time.time() * 1000) / 1000
    evidence = None
    if mode != "record":
        evidence = Evidence(settings, Metrics(CollectorRegistry()), worker_id=worker)
        evidence.start()
    names = settings.upstreams
    assert names is not None  # the flags name both sides (or one twice)
    replayer = Replayer(settings, names, plan, routes, redactor, evidence, golden)
    try:
        tally = asyncio.run(_drive(replayer, requests))
    finally:
        if evidence is not None:
            evidence.close(_CLOSE_S)
    _summary(tally, len(requests))
    refused = _all_refused(tally, plan, names)
    if refused is not None:
        raise ReplayInputError(refused, "refused every request (is it running?)")
    if mode == "record":
        print(f"recorded {tally.recorded} answers in {golden_path}")
        return 1 if tally.failed else 0
    files = sorted(Path(args.log_dir).glob(f"shadow-{safe_worker_id(worker)}*"))
    windows = Windows.of(gates, time.time(), started)
    findings = aggregate_files(files, windows).evidence()
    report = build_report(findings, gates, known, generated_at=windows.until, since=started, top=10)
    render_report(args.format, report, sys.stdout)
    if tally.no_golden:
        print(
            f"shadow replay: {tally.no_golden} requests have no golden answer in {golden_path}"
            " (record them with --record-golden)",
            file=sys.stderr,
        )
    return 0 if report.passed and not tally.no_golden and not tally.failed else 1


async def _drive(replayer: Replayer, requests: list[Captured]) -> Tally:
    with _progress(len(requests)) as advance:
        try:
            return await replayer.run(requests, advance)
        finally:
            await replayer.aclose()


@contextlib.contextmanager
def _progress(total: int) -> Iterator[Callable[[], None]]:
    """A progress bar on a terminal (stderr); nothing otherwise, so CI logs stay clean."""
    if not sys.stderr.isatty():
        yield lambda: None
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("replaying", total=total)
        yield lambda: progress.advance(task)


def _summary(tally: Tally, total: int) -> None:
    why = {
        "method": " (writes need --dry-run or --disposable)",
        "mirror_off": " (mirror: false routes need --disposable)",
    }
    skipped = ", ".join(
        f"{n} {reason}{why.get(reason, '')}" for reason, n in sorted(tally.skipped.items())
    )
    print(
        f"shadow replay: {total} requests, {tally.sent} sent"
        + (f", skipped: {skipped}" if skipped else "")
        + (f", {tally.failed} failed" if tally.failed else ""),
        file=sys.stderr,
    )


def _all_refused(tally: Tally, plan: Plan, names: UpstreamSettings) -> str | None:
    """The flag of a side that refused every request sent to it, if any."""
    for side, url in (("legacy", names.legacy), ("candidate", names.candidate)):
        used = plan.mode != ("check" if side == "legacy" else "record")
        if used and tally.sent and tally.refused[side] >= tally.sent:
            return f"--{side} {url}"
    return None

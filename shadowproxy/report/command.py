"""``shadow report``: arguments, orchestration, exit codes.

Owns the command's flags and ``run_report``: read the gates and known
differences, gather evidence (files or Prometheus), judge it, render it,
update the tracker, suggest ignores. Exit 0 when every gate passes, 1 when
one does not (insufficient evidence included), 2 for bad input with one
line on stderr naming the file and key (with ``--strict``, also for
evidence in the window that could not be read). Never imports the proxy.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from shadowproxy.report.cutover_view import route_cutovers
from shadowproxy.report.document import Report, build_report, to_json
from shadowproxy.report.errors import ReportInputError
from shadowproxy.report.fleet import collect_fleet
from shadowproxy.report.known import KnownSet, load_known
from shadowproxy.report.outfile import private_text
from shadowproxy.report.parallel import aggregate_files
from shadowproxy.report.render_html import render_html
from shadowproxy.report.render_text import render_markdown, render_table
from shadowproxy.report.sources import expand_paths
from shadowproxy.report.suggest import suggest_ignores
from shadowproxy.report.summary import Findings
from shadowproxy.report.thresholds import load_gates
from shadowproxy.report.timeparse import parse_instant
from shadowproxy.report.tracker import update_tracker
from shadowproxy.report.windows import Windows

__all__ = ["add_report_arguments", "render_report", "run_report"]

_FORMATS = ("table", "markdown", "json", "html")


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``shadow report`` flags to ``parser``."""
    parser.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="JSONL evidence files, directories or globs (rotated and .gz too)",
    )
    parser.add_argument("--gates", metavar="FILE", help="gates YAML (default: built-in gates)")
    parser.add_argument("--known", metavar="FILE", help="known-differences YAML")
    parser.add_argument(
        "--since",
        metavar="T",
        help="RFC 3339 or relative (14d, 36h); default: each domain's gate window",
    )
    parser.add_argument("--until", metavar="T", help="RFC 3339 or relative; default: now")
    parser.add_argument("--format", choices=_FORMATS, default="table", help="output format")
    parser.add_argument("--out", metavar="FILE", help="write the report here instead of stdout")
    parser.add_argument(
        "--detail",
        action="store_true",
        help="table format: every table after the summary (domains, routes, gates, ...)",
    )
    parser.add_argument(
        "--prometheus",
        metavar="URL",
        help="fleet mode: evaluate the gates from Prometheus instead of files",
    )
    parser.add_argument("--tracker", metavar="FILE.csv", help="write or update the tracker CSV")
    parser.add_argument(
        "--evidence-url",
        metavar="URL",
        help="the tracker's evidence link ({domain}, {route} filled in); default: --out's file",
    )
    parser.add_argument(
        "--suggest-ignores",
        action="store_true",
        help="print a YAML snippet of frequent noise paths (report goes to --out)",
    )
    parser.add_argument(
        "--top", type=int, default=50, metavar="N", help="fingerprints to show (default 50)"
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="exit 2 when evidence in the window could not be read (default: insufficient)",
    )


def run_report(args: argparse.Namespace) -> int:
    """Run the report for parsed ``args``; return the exit code."""
    try:
        return _run(args)
    except ReportInputError as exc:
        print(f"shadow report: {exc}", file=sys.stderr)
        return 2


def _instant(flag: str, text: str | None, now: float) -> float | None:
    if text is None:
        return None
    try:
        return parse_instant(text, now)
    except ValueError as exc:
        raise ReportInputError(flag, str(exc)) from None


def _run(args: argparse.Namespace) -> int:
    now = time.time()
    until = _instant("--until", args.until, now) or now
    since = _instant("--since", args.since, now)
    if since is not None and since >= until:
        raise ReportInputError("--since", "must be before --until")
    if bool(args.paths) == bool(args.prometheus):
        raise ReportInputError("command line", "give evidence PATHs or --prometheus URL, not both")
    if args.top < 0:
        raise ReportInputError("--top", "must not be negative")
    config = load_gates(args.gates)
    known = load_known(args.known) if args.known else KnownSet()
    windows = Windows.of(config, until, since)
    if args.prometheus:
        evidence = collect_fleet(args.prometheus, windows)
    else:
        evidence = _from_files(args.paths, windows, known)
        if args.strict:
            _refuse_unreadable(evidence)
    report = build_report(
        evidence, config, known, generated_at=now, since=windows.earliest, top=args.top
    )
    doc = to_json(report)
    if args.suggest_ignores:
        if args.out:
            _write(args.out, args, report, doc)
        sys.stdout.write(suggest_ignores(evidence.noise_paths))
    elif args.out:
        _write(args.out, args, report, doc)
    else:
        _render(args, report, doc, sys.stdout)
    if args.tracker:
        link = args.evidence_url or (str(Path(args.out).resolve()) if args.out else None)
        update_tracker(args.tracker, doc, link)
    return 0 if report.passed else 1


def _from_files(paths: list[str], windows: Windows, known: KnownSet) -> Findings:
    files = expand_paths(paths)
    evidence = aggregate_files(files, windows, known).evidence()
    if evidence.inputs.records == 0:
        raise ReportInputError(
            ", ".join(paths),
            f"no evidence records in {len(files)} files "
            f"({evidence.inputs.malformed_lines} malformed lines)",
        )
    return evidence


def _refuse_unreadable(evidence: Findings) -> None:
    """ReportInputError naming the first unreadable line held against a gate (``--strict``)."""
    held = {u.file for u in evidence.unreadable}
    if not held:
        return
    total = sum(u.count for u in evidence.unreadable)
    first = next(p for p in evidence.inputs.problems if p.file in held)
    raise ReportInputError(
        f"{first.file}: line {first.first_line}",
        f"{first.first_problem} ({total} lines in the window could not be read; --strict)",
    )


def render_report(fmt: str, report: Report, out: TextIO) -> None:
    """Render ``report`` as ``table``, ``markdown``, ``json`` or ``html`` (``shadow replay``)."""
    _render(argparse.Namespace(format=fmt, detail=False), report, to_json(report), out)


def _render(args: argparse.Namespace, report: Report, doc: dict[str, Any], out: TextIO) -> None:
    if args.format == "json":
        import json

        json.dump(doc, out, indent=2, ensure_ascii=False)
        out.write("\n")
    elif args.format == "markdown":
        render_markdown(doc, out)
    elif args.format == "html":
        render_html(doc, out, route_cutovers(doc, report.stages), report.evidence.domains)
    else:
        render_table(doc, out, route_cutovers(doc, report.stages), detail=args.detail)


def _write(path: str, args: argparse.Namespace, report: Report, doc: dict[str, Any]) -> None:
    with private_text(path) as out:
        _render(args, report, doc, out)

"""``shadow promote`` and ``shadow drill``: promote a route on evidence; rehearse rollback.

``promote`` reads the evidence exactly as ``shadow report`` does (its
aggregation, gates and known differences; no gate logic of its own) and,
only when every gate of the route's domain passes, asks the admin API to
move the route one step: shadow -> canary 1 -> 5 -> 25 -> 50 -> 100 ->
candidate. ``drill`` flips a route to ``legacy-only`` and back through the
admin API, checks with real requests through the proxy (``X-Shadow-Probe``)
which side answers after each flip, and records the result as evidence.

Exit codes: 0 done (drill passed), 1 refused (a gate did not pass, nothing
left to promote, the drill failed), 2 bad input (unreadable evidence, gates
or known file, unknown route, admin API unreachable or refusing the token),
always as one line on stderr. Talks HTTP with urllib; imports the report
and the cutover values, never a running proxy's code paths.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shadowproxy.config import ADMIN_TOKEN_ENV
from shadowproxy.cutover.state import Assignment, Mode, next_step
from shadowproxy.report.errors import ReportInputError
from shadowproxy.report.gates import evaluate_gates
from shadowproxy.report.known import KnownSet, load_known
from shadowproxy.report.parallel import aggregate_files
from shadowproxy.report.sources import expand_paths
from shadowproxy.report.summary import DomainSummary
from shadowproxy.report.thresholds import load_gates
from shadowproxy.report.windows import Windows

__all__ = [
    "AdminClient",
    "add_drill_arguments",
    "add_promote_arguments",
    "run_drill",
    "run_promote",
]

DEFAULT_ADMIN = "http://127.0.0.1:9901"
_HTTP_TIMEOUT_S = 5.0


class _RefusedError(Exception):
    """Nothing was changed, for a reason the user should read (exit 1)."""


class _BadInputError(Exception):
    """Input the user can fix (exit 2)."""


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--route", required=True, metavar="ROUTE", help="route name")
    parser.add_argument(
        "--admin", default=DEFAULT_ADMIN, metavar="URL", help=f"admin API (default {DEFAULT_ADMIN})"
    )
    parser.add_argument(
        "--token-env",
        default=ADMIN_TOKEN_ENV,
        metavar="VAR",
        help=f"environment variable holding the admin bearer token (default {ADMIN_TOKEN_ENV})",
    )


def add_promote_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``shadow promote`` flags to ``parser``."""
    _common(parser)
    parser.add_argument("paths", nargs="+", metavar="PATH", help="JSONL evidence (as for report)")
    parser.add_argument("--gates", metavar="FILE", help="gates YAML (default: built-in gates)")
    parser.add_argument("--known", metavar="FILE", help="known-differences YAML")


def add_drill_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``shadow drill`` flags to ``parser``."""
    _common(parser)
    parser.add_argument("--path", required=True, metavar="PATH", help="request path to probe")
    parser.add_argument("--proxy", required=True, metavar="URL", help="the proxy's base URL")
    parser.add_argument(
        "--timeout",
        type=float,
        default=5.0,
        metavar="S",
        help="how long each flip may take to show in answers (default 5)",
    )


class AdminClient:
    """The admin API's cutover endpoints, over urllib."""

    def __init__(self, base: str, token_env: str) -> None:
        self.base = base.rstrip("/")
        token = os.environ.get(token_env) or None
        # urllib sends header values as Latin-1: one character per byte of the token's UTF-8.
        self.token = token.encode("utf-8", "surrogateescape").decode("latin-1") if token else None
        """The admin token as a header value; drill probes carry it too (``X-Shadow-Probe``)."""
        self._token_env = token_env

    def _call(self, method: str, path: str, body: Mapping[str, object] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=_HTTP_TIMEOUT_S) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            if exc.code == 401:
                raise _BadInputError(
                    f"--admin {self.base}: bearer token refused (set {self._token_env})"
                ) from None
            detail = exc.read().decode("utf-8", "replace")[:200]
            raise _BadInputError(f"--admin {self.base}{path}: HTTP {exc.code}: {detail}") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise _BadInputError(f"--admin {self.base}: cannot reach ({reason})") from None

    def assignment(self, route: str) -> Assignment:
        """The route's current assignment; a route the proxy does not know is bad input."""
        routes = self._call("GET", "/cutover").get("routes", {})
        if route not in routes:
            known = ", ".join(sorted(routes)) or "none"
            raise _BadInputError(f"--route: {route!r} is not configured (known: {known})")
        entry = routes[route]
        return Assignment.of(entry["mode"], float(entry["percent"]))

    def set(
        self,
        route: str,
        target: Assignment,
        *,
        reason: str,
        source: str,
        numbers: Mapping[str, float] | None = None,
    ) -> None:
        """Move ``route`` to ``target``."""
        body: dict[str, object] = {
            "route": route,
            "mode": str(target.mode),
            "percent": target.percent,
            "reason": reason,
            "source": source,
        }
        if numbers:
            body["numbers"] = dict(numbers)
        self._call("POST", "/cutover", body)

    def record_drill(self, route: str, passed: bool, steps: list[dict[str, object]]) -> None:
        """Write the drill's result record."""
        self._call(
            "POST",
            "/cutover/drill",
            {"route": route, "passed": passed, "steps": steps, "reason": "shadow drill"},
        )


def _describe(assignment: Assignment) -> str:
    if assignment.mode is Mode.CANARY:
        return f"canary {assignment.percent:g}%"
    return str(assignment.mode)


def _domain_numbers(summary: DomainSummary) -> dict[str, float]:
    counts = summary.counts
    numbers: dict[str, float] = {
        "compared": counts.compared,
        "structural": counts.structural,
        "semantic": counts.semantic,
        "errors": counts.errors,
    }
    ratio = summary.latency.p99_ratio
    if ratio is not None:
        numbers["p99_ratio"] = round(ratio, 3)
    return numbers


def _promote(args: argparse.Namespace) -> str:
    now = time.time()
    gates = load_gates(args.gates)
    known = load_known(args.known) if args.known else KnownSet()
    files = expand_paths(args.paths)
    evidence = aggregate_files(files, Windows.of(gates, now)).evidence()
    if evidence.inputs.records == 0:
        raise _BadInputError(f"{', '.join(args.paths)}: no evidence records in {len(files)} files")
    admin = AdminClient(args.admin, args.token_env)
    current = admin.assignment(args.route)
    domain = next((r.domain for r in evidence.routes if r.route == args.route), None)
    if domain is None:
        raise _RefusedError(f"{args.route}: no evidence for this route; nothing promoted")
    failing = [g for g in evaluate_gates(evidence, gates, known) if g.domain == domain]
    failing = [g for g in failing if not g.passed]
    if failing:
        lines = [f"  {g.name}: {g.status}: {g.reason}" for g in failing]
        raise _RefusedError(
            f"{args.route}: gates of domain {domain!r} do not pass; stays {_describe(current)}\n"
            + "\n".join(lines)
        )
    target = next_step(current)
    if target is None:
        raise _RefusedError(f"{args.route}: already answered by the candidate; nothing to promote")
    summary = next(d for d in evidence.domains if d.domain == domain)
    admin.set(
        args.route,
        target,
        reason=f"gates of domain {domain} passed",
        source="promote",
        numbers=_domain_numbers(summary),
    )
    return f"{args.route}: {_describe(current)} -> {_describe(target)} (gates of {domain} passed)"


def run_promote(args: argparse.Namespace) -> int:
    """Run ``shadow promote``; returns the exit code."""
    try:
        print(_promote(args))
    except _RefusedError as exc:
        print(f"shadow promote: {exc}", file=sys.stderr)
        return 1
    except (_BadInputError, ReportInputError) as exc:
        print(f"shadow promote: {exc}", file=sys.stderr)
        return 2
    return 0


@dataclass(frozen=True, slots=True)
class _Probe:
    status: int | None
    answered_by: str | None


def _probe(url: str, token: str | None) -> _Probe:
    # Only a probe carrying the admin token is told which side answered.
    request = urllib.request.Request(url, headers={"X-Shadow-Probe": token or ""})
    try:
        with urllib.request.urlopen(request, timeout=_HTTP_TIMEOUT_S) as response:
            response.read()
            return _Probe(response.status, response.headers.get("X-Shadow-Answered-By"))
    except urllib.error.HTTPError as exc:
        return _Probe(exc.code, exc.headers.get("X-Shadow-Answered-By"))
    except (urllib.error.URLError, OSError):
        return _Probe(None, None)


def _expected(assignment: Assignment) -> set[str]:
    if assignment.mode is Mode.CANDIDATE:
        return {"candidate"}
    if assignment.mode is Mode.CANARY:
        return {"legacy", "candidate"}
    return {"legacy"}


def _until_answered(url: str, token: str | None, expected: set[str], timeout_s: float) -> _Probe:
    """Probe until a good answer comes from an expected side (changes take up to a second)."""
    deadline = time.monotonic() + timeout_s
    while True:
        probe = _probe(url, token)
        good = probe.status is not None and probe.status < 500
        if (good and probe.answered_by in expected) or time.monotonic() >= deadline:
            return probe
        time.sleep(0.05)  # a blocking CLI polling a remote proxy; no event to wait on


def _step(name: str, assignment: Assignment, probe: _Probe, ok: bool) -> dict[str, object]:
    return {
        "step": name,
        "mode": str(assignment.mode),
        "percent": assignment.percent,
        "status": probe.status,
        "answered_by": probe.answered_by,
        "ok": ok,
    }


def _drill(args: argparse.Namespace) -> tuple[bool, list[dict[str, object]]]:
    if not args.path.startswith("/"):
        raise _BadInputError("--path: must start with /")
    admin = AdminClient(args.admin, args.token_env)
    url = args.proxy.rstrip("/") + args.path
    original = admin.assignment(args.route)
    fallback = Assignment.of(Mode.LEGACY_ONLY)
    steps: list[dict[str, object]] = []
    admin.set(args.route, fallback, reason="drill: roll back to legacy", source="drill")
    try:
        probe = _until_answered(url, admin.token, {"legacy"}, args.timeout)
        ok = probe.answered_by == "legacy" and probe.status is not None and probe.status < 500
        steps.append(_step("rollback", fallback, probe, ok))
    finally:
        admin.set(args.route, original, reason="drill: restore", source="drill")
    expected = _expected(original)
    probe = _until_answered(url, admin.token, expected, args.timeout)
    ok = probe.answered_by in expected and probe.status is not None and probe.status < 500
    steps.append(_step("restore", original, probe, ok))
    passed = all(bool(step["ok"]) for step in steps)
    admin.record_drill(args.route, passed, steps)
    return passed, steps


def run_drill(args: argparse.Namespace) -> int:
    """Run ``shadow drill``; returns the exit code."""
    try:
        passed, steps = _drill(args)
    except _BadInputError as exc:
        print(f"shadow drill: {exc}", file=sys.stderr)
        return 2
    for step in steps:
        print(
            f"{args.route}: {step['step']}: mode {step['mode']}: "
            f"HTTP {step['status']} answered by {step['answered_by']}: "
            + ("ok" if step["ok"] else "FAILED")
        )
    print(f"{args.route}: drill {'passed' if passed else 'FAILED'}")
    return 0 if passed else 1

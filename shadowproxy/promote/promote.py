"""``shadow promote``: move a route one step on every replica, only when its gates pass.

Reads the evidence exactly as ``shadow report`` does (its aggregation, gates
and known differences; no gate logic of its own), reads the route's state on
every replica, and only when every replica has the same assignment, none of
them rolled the route back, and every gate of the route's domain passes,
moves the route one step on each: shadow -> canary 1 -> 5 -> 25 -> 50 ->
100 -> candidate. A replica that fails is reported and the ones already
moved are put back.

Exit codes: 0 promoted, 1 refused (a gate did not pass, replicas disagree or
one rolled back, nothing left to promote, a partial failure put back), 2 bad
input (unreadable evidence, gates or known file, unknown route, an admin API
unreachable or refusing the token), as one line on stderr.
"""

from __future__ import annotations

import argparse
import sys
import time

from shadowproxy.cutover.state import next_step
from shadowproxy.promote.arguments import DEFAULT_ADMIN
from shadowproxy.promote.replicas import BadInputError, RefusedError, Replicas, RouteState
from shadowproxy.report.errors import ReportInputError
from shadowproxy.report.gates import evaluate_gates
from shadowproxy.report.known import KnownSet, load_known
from shadowproxy.report.parallel import aggregate_files
from shadowproxy.report.sources import expand_paths
from shadowproxy.report.summary import DomainSummary
from shadowproxy.report.thresholds import load_gates
from shadowproxy.report.windows import Windows
from shadowproxy.timestamps import rfc3339

__all__ = ["run_promote"]


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


def _not_rolled_back(route: str, replicas: Replicas, states: list[RouteState]) -> None:
    """RefusedError while a replica's mode for ``route`` came from an automatic rollback."""
    rolled = [
        f"{client.replica.name} since {rfc3339(state.since)}"
        for client, state in zip(replicas.clients, states, strict=True)
        if state.source == "rollback"
    ]
    if rolled:
        raise RefusedError(
            f"{route}: rolled back on {'; '.join(rolled)}; read the rollback's numbers"
            " (GET /cutover history), then set the mode with shadow cutover; nothing promoted"
        )


def _promote(args: argparse.Namespace) -> list[str]:
    now = time.time()
    gates = load_gates(args.gates)
    known = load_known(args.known) if args.known else KnownSet()
    files = expand_paths(args.paths)
    evidence = aggregate_files(files, Windows.of(gates, now)).evidence()
    if evidence.inputs.records == 0:
        raise BadInputError(f"{', '.join(args.paths)}: no evidence records in {len(files)} files")
    replicas = Replicas(args.admin or [DEFAULT_ADMIN], args.token_env, args.replicas)
    states = replicas.states(args.route)
    _not_rolled_back(args.route, replicas, states)
    current = replicas.agreed(args.route, states).assignment
    domain = next((r.domain for r in evidence.routes if r.route == args.route), None)
    if domain is None:
        raise RefusedError(f"{args.route}: no evidence for this route; nothing promoted")
    failing = [g for g in evaluate_gates(evidence, gates, known) if g.domain == domain]
    failing = [g for g in failing if not g.passed]
    if failing:
        lines = [f"  {g.name}: {g.status}: {g.reason}" for g in failing]
        raise RefusedError(
            f"{args.route}: gates of domain {domain!r} do not pass; stays {current.describe()}\n"
            + "\n".join(lines)
        )
    target = next_step(current)
    if target is None:
        raise RefusedError(f"{args.route}: already answered by the candidate; nothing to promote")
    summary = next(d for d in evidence.domains if d.domain == domain)
    lines = replicas.change(
        args.route,
        target,
        states,
        reason=f"gates of domain {domain} passed",
        source="promote",
        numbers=_domain_numbers(summary),
    )
    count = len(replicas.clients)
    return [
        *lines,
        f"{args.route}: {current.describe()} -> {target.describe()} on {count}"
        f" replica{'' if count == 1 else 's'} (gates of {domain} passed)",
    ]


def run_promote(args: argparse.Namespace) -> int:
    """Run ``shadow promote``; returns the exit code."""
    try:
        lines = _promote(args)
    except RefusedError as exc:
        print(f"shadow promote: {exc}", file=sys.stderr)
        return 1
    except (BadInputError, ReportInputError) as exc:
        print(f"shadow promote: {exc}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0

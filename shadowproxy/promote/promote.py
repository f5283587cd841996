"""``shadow promote``: move a route one step on every replica, only when its gates pass.

Reads the evidence exactly as ``shadow report`` does (its aggregation, gates,
readiness and known differences; no gate logic of its own), reads the
route's state on every replica, and only when every replica has the same
assignment, none of them rolled the route back, and the gates of the
current phase pass, moves the route one step on each: shadow -> canary 1 ->
5 -> 25 -> 50 -> 100 -> candidate. From shadow the domain's parity gates
decide; from canary step N, step N's own gates on the evidence gathered since
the replicas entered it (its bake time and ``min_compared`` included); from
100 %, ready for cutover (parity, the canary gates at 100 % and a recent
drill). A replica that fails is reported and the ones already moved are put
back.

Exit codes: 0 promoted, 1 refused (a gate did not pass, replicas disagree or
one rolled back, nothing left to promote, a partial failure put back), 2 bad
input (unreadable evidence, gates or known file, unknown route, an admin API
unreachable or refusing the token), as one line on stderr.
"""

from __future__ import annotations

import argparse
import sys
import time

from shadowproxy.cutover.state import Mode, next_step
from shadowproxy.promote.arguments import DEFAULT_ADMIN
from shadowproxy.promote.replicas import BadInputError, RefusedError, Replicas, RouteState
from shadowproxy.report.errors import ReportInputError
from shadowproxy.report.gates import evaluate_gates
from shadowproxy.report.known import KnownSet, load_known
from shadowproxy.report.parallel import aggregate_files
from shadowproxy.report.readiness import next_step_gates
from shadowproxy.report.sources import expand_paths
from shadowproxy.report.summary import RouteSummary
from shadowproxy.report.thresholds import load_gates
from shadowproxy.report.windows import Windows
from shadowproxy.timestamps import rfc3339

__all__ = ["run_promote"]


def _numbers(route: RouteSummary, mode: str, percent: float | None) -> dict[str, float]:
    """What the promotion was decided on: the step's episode, or the route's whole window."""
    phase = next((p for p in route.phases if (p.mode, p.percent) == (mode, percent)), None)
    counts, latency = (
        (route.counts, route.latency)
        if phase is None
        else (
            phase.episode.counts,
            phase.episode.latency,
        )
    )
    numbers: dict[str, float] = {
        "compared": counts.compared,
        "structural": counts.structural,
        "semantic": counts.semantic,
        "errors": counts.errors,
    }
    if latency.p99_ratio is not None:
        numbers["p99_ratio"] = round(latency.p99_ratio, 3)
    if phase is not None and mode == "canary":
        numbers["bake_s"] = round(phase.episode.duration_s, 3)
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
    evidence = aggregate_files(files, Windows.of(gates, now), known).evidence()
    if evidence.inputs.records == 0:
        raise BadInputError(f"{', '.join(args.paths)}: no evidence records in {len(files)} files")
    replicas = Replicas(args.admin or [DEFAULT_ADMIN], args.token_env, args.replicas)
    states = replicas.states(args.route)
    _not_rolled_back(args.route, replicas, states)
    current = replicas.agreed(args.route, states).assignment
    route = next((r for r in evidence.routes if r.route == args.route), None)
    if route is None:
        raise RefusedError(f"{args.route}: no evidence for this route; nothing promoted")
    target = next_step(current)
    if target is None:
        raise RefusedError(f"{args.route}: already answered by the candidate; nothing to promote")
    mode = str(current.mode)
    percent = current.percent if current.mode is Mode.CANARY else None
    parity = evaluate_gates(evidence, gates, known)
    # The evidence of a step counts from when the replicas entered it, the earliest of them.
    entered = min(state.since for state in states)
    needed = next_step_gates(evidence, gates, parity, route, mode, percent, entered)
    failing = [g for g in needed if not g.passed]
    what = current.describe() if mode == "canary" else f"domain {route.domain}"
    if failing or not needed:
        lines = [f"  {g.name}: {g.status}: {g.reason}" for g in failing]
        raise RefusedError(
            f"{args.route}: gates of {what} do not pass; stays {current.describe()}\n"
            + "\n".join(lines)
        )
    lines = replicas.change(
        args.route,
        target,
        states,
        reason=f"gates of {what} passed",
        source="promote",
        numbers=_numbers(route, mode, percent),
    )
    count = len(replicas.clients)
    return [
        *lines,
        f"{args.route}: {current.describe()} -> {target.describe()} on {count}"
        f" replica{'' if count == 1 else 's'} (gates of {what} passed)",
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

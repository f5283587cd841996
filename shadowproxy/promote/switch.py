"""``shadow cutover``: show or switch a route's mode, or force-legacy, on every replica at once.

Without ``--route`` or ``--force-legacy`` it lists every route's mode on
every replica and exits 1 when they disagree. ``--route R --mode M`` reads
every replica first (all must answer), then switches each in turn; a
replica that fails is reported and the ones already switched are put back
to what each had. ``--force-legacy on`` is an emergency: it is never put
back, every replica is tried and each failure reported; ``off`` is put back
(on again) on a partial failure, the safe direction.

Exit codes: 0 done (or all replicas agree), 1 a partial failure or
disagreeing replicas, 2 bad input, as one line on stderr.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from shadowproxy.cutover.state import Assignment, Mode
from shadowproxy.promote.arguments import DEFAULT_ADMIN
from shadowproxy.promote.replicas import BadInputError, RefusedError, Replicas, RouteState

__all__ = ["run_cutover"]


def _show(replicas: Replicas) -> tuple[list[str], bool]:
    """One line per route and replica; True when every replica agrees on every route."""
    listings = [client.listing() for client in replicas.clients]
    lines: list[str] = []
    agree = True
    forced = {bool(listing.get("force_legacy")) for listing in listings}
    if len(forced) > 1:
        agree = False
    for client, listing in zip(replicas.clients, listings, strict=True):
        if listing.get("force_legacy"):
            lines.append(f"* on {client.replica.name}: force-legacy ON")
    routes = sorted({name for listing in listings for name in listing["routes"]})
    for route in routes:
        seen: set[tuple[object, ...]] = set()
        for client, listing in zip(replicas.clients, listings, strict=True):
            entry = listing["routes"].get(route)
            if entry is None:
                seen.add(("missing",))
                lines.append(f"{route} on {client.replica.name}: not configured")
                continue
            try:
                state = RouteState.of(entry)
            except (KeyError, TypeError, ValueError):
                raise BadInputError(f"--admin {client.replica.name}: malformed /cutover") from None
            seen.add((state.assignment,))
            lines.append(
                f"{route} on {client.replica.name}: {state.assignment.describe()}"
                f" (effective {state.effective}, source {state.source})"
            )
        agree = agree and len(seen) == 1
    return lines, agree


def _target(args: argparse.Namespace) -> Assignment:
    if args.mode is None:
        raise BadInputError("--mode: required with --route")
    if args.mode == Mode.CANARY:
        if args.percent is None or not 0 <= args.percent <= 100:
            raise BadInputError("--percent: --mode canary needs a percent in [0, 100]")
        return Assignment.of(Mode.CANARY, args.percent)
    if args.percent is not None:
        raise BadInputError("--percent: only with --mode canary")
    return Assignment.of(args.mode)


def _force_legacy(replicas: Replicas, on: bool, reason: str) -> list[str]:
    """Force-legacy on every replica; on is never put back, off is on a partial failure."""
    lines: list[str] = []
    failed: list[str] = []
    done: list[int] = []
    for index, client in enumerate(replicas.clients):
        try:
            client.force_legacy(on, reason=reason)
        except BadInputError as exc:
            failed.append(f"* on {client.replica.name}: FAILED: {exc}")
            if not on:
                break
            continue
        done.append(index)
        lines.append(f"* on {client.replica.name}: force-legacy {'on' if on else 'off'}")
    if failed and not on:
        for index in reversed(done):
            client = replicas.clients[index]
            try:
                client.force_legacy(True, reason="put back: force-legacy off failed elsewhere")
            except BadInputError as exc:
                failed.append(f"* on {client.replica.name}: NOT PUT BACK to force-legacy: {exc}")
                continue
            failed.append(f"* on {client.replica.name}: put back to force-legacy on")
    if failed:
        raise RefusedError("\n".join([*lines, *failed]))
    return lines


def _cutover(args: argparse.Namespace) -> tuple[list[str], bool]:
    replicas = Replicas(args.admin or [DEFAULT_ADMIN], args.token_env, args.replicas)
    if args.force_legacy is not None:
        if args.route is not None:
            raise BadInputError("--force-legacy: not with --route")
        return _force_legacy(replicas, args.force_legacy == "on", args.reason), True
    if args.route is None:
        if args.mode is not None or args.percent is not None:
            raise BadInputError("--route: required with --mode")
        return _show(replicas)
    target = _target(args)
    states: Sequence[RouteState] = replicas.states(args.route)
    lines = replicas.change(args.route, target, states, reason=args.reason, source="api")
    return lines, True


def run_cutover(args: argparse.Namespace) -> int:
    """Run ``shadow cutover``; returns the exit code."""
    try:
        lines, agree = _cutover(args)
    except RefusedError as exc:
        print(f"shadow cutover: {exc}", file=sys.stderr)
        return 1
    except BadInputError as exc:
        print(f"shadow cutover: {exc}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    if not agree:
        print("shadow cutover: replicas disagree", file=sys.stderr)
    return 0 if agree else 1

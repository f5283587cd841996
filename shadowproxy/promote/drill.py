"""``shadow drill``: rehearse a route's rollback on every replica, check real answers, record it.

The drill reads the route's state on every replica (they must agree), flips
the route to ``legacy-only`` on all of them (source ``drill``; a replica that
fails puts the others back and fails the drill), probes every ``--proxy``
until legacy answers each, restores the original mode everywhere (always,
even after a failure), probes until the expected side answers each proxy
again, and writes one ``drill`` record on every replica, with one id for
the run. Probes carry the admin token in ``X-Shadow-Probe``: only then does
the proxy say which side answered. With ``--grpc-proxy`` the probes are gRPC
calls of the method ``--path`` names (``promote.grpc_probe``).

Exit codes: 0 the drill passed, 1 it failed (or was refused: replicas
disagree), 2 bad input, as one line on stderr.
"""

from __future__ import annotations

import argparse
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from shadowproxy.cutover.state import Assignment, Mode
from shadowproxy.promote.arguments import DEFAULT_ADMIN
from shadowproxy.promote.grpc_probe import probe_grpc
from shadowproxy.promote.replicas import BadInputError, RefusedError, Replica, Replicas, resolve

__all__ = ["run_drill"]

_HTTP_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class _Probe:
    status: int | None
    answered_by: str | None


Prober = Callable[[Replica, str | None], "_Probe"]
"""One probe of one proxy (HTTP or gRPC), with the admin token."""


def _http(path: str) -> Prober:
    return lambda target, token: _probe(target, path, token)


def _grpc(method: str, request: bytes) -> Prober:
    def probe(target: Replica, token: str | None) -> _Probe:
        return _Probe(*probe_grpc(target.url, method, request, token))

    return probe


def _probe(target: Replica, path: str, token: str | None) -> _Probe:
    # Only a probe carrying the admin token is told which side answered.
    request = urllib.request.Request(target.url + path, headers={"X-Shadow-Probe": token or ""})
    if target.host:
        request.add_header("Host", target.host)
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


def _good(probe: _Probe, expected: set[str]) -> bool:
    return probe.status is not None and probe.status < 500 and probe.answered_by in expected


def _until_answered(
    target: Replica, probe_one: Prober, token: str | None, expected: set[str], timeout_s: float
) -> _Probe:
    """Probe until a good answer comes from an expected side (changes take up to a second)."""
    deadline = time.monotonic() + timeout_s
    while True:
        probe = probe_one(target, token)
        if _good(probe, expected) or time.monotonic() >= deadline:
            return probe
        time.sleep(0.05)  # a blocking CLI polling a remote proxy; no event to wait on


def _steps(
    name: str,
    assignment: Assignment,
    proxies: tuple[Replica, ...],
    probe_one: Prober,
    token: str | None,
    timeout_s: float,
) -> list[dict[str, object]]:
    """Probe every proxy until it answers from the side ``assignment`` expects; one step each."""
    expected = _expected(assignment)
    steps: list[dict[str, object]] = []
    for proxy in proxies:
        probe = _until_answered(proxy, probe_one, token, expected, timeout_s)
        steps.append(
            {
                "step": name,
                "proxy": proxy.name,
                "mode": str(assignment.mode),
                "percent": assignment.percent,
                "status": probe.status,
                "answered_by": probe.answered_by,
                "ok": _good(probe, expected),
            }
        )
    return steps


def _prober(args: argparse.Namespace) -> tuple[tuple[Replica, ...], Prober]:
    """The proxies to probe and how: HTTP GETs of ``--path``, or gRPC calls of the method."""
    if bool(args.proxy) == bool(args.grpc_proxy):
        raise BadInputError("--proxy or --grpc-proxy: give one of them")
    if not args.proxy:
        method = args.path or args.route
        service, _, name = method[1:].partition("/")
        if not method.startswith("/") or not service or not name or name == "*":
            raise BadInputError("--path: the gRPC method to call, /package.Service/Method")
        request = b""
        if args.grpc_request:
            try:
                request = Path(args.grpc_request).read_bytes()
            except OSError as exc:
                raise BadInputError(f"--grpc-request: {exc.strerror or exc}") from None
        proxies = tuple(Replica(target, target) for target in args.grpc_proxy)
        return proxies, _grpc(method, request)
    if not args.path or not args.path.startswith("/"):
        raise BadInputError("--path: must start with /")
    return resolve(args.proxy), _http(args.path)


def _drill(args: argparse.Namespace) -> tuple[bool, list[dict[str, object]], list[str]]:
    proxies, probe_one = _prober(args)
    replicas = Replicas(args.admin or [DEFAULT_ADMIN], args.token_env, args.replicas)
    states = replicas.states(args.route)
    original = replicas.agreed(args.route, states).assignment
    fallback = Assignment.of(Mode.LEGACY_ONLY)
    steps: list[dict[str, object]] = []
    failures: list[str] = []
    try:
        replicas.change(
            args.route, fallback, states, reason="drill: roll back to legacy", source="drill"
        )
    except RefusedError as exc:
        failures.append(str(exc))
        steps.append({"step": "rollback", "ok": False, "error": "a replica could not switch"})
    else:
        try:
            steps += _steps("rollback", fallback, proxies, probe_one, replicas.token, args.timeout)
        finally:
            failures += replicas.restore(args.route, states, reason="drill: restore")
        steps += _steps("restore", original, proxies, probe_one, replicas.token, args.timeout)
    passed = not failures and all(bool(step["ok"]) for step in steps)
    drill_id = uuid.uuid4().hex[:16]
    for client in replicas.clients:
        try:
            client.record_drill(args.route, drill_id, passed, steps[:20])
        except BadInputError as exc:
            failures.append(f"drill record not written on {client.replica.name}: {exc}")
    return passed, steps, failures


def run_drill(args: argparse.Namespace) -> int:
    """Run ``shadow drill``; returns the exit code."""
    try:
        passed, steps, failures = _drill(args)
    except RefusedError as exc:
        print(f"shadow drill: {exc}", file=sys.stderr)
        return 1
    except BadInputError as exc:
        print(f"shadow drill: {exc}", file=sys.stderr)
        return 2
    for step in steps:
        print(
            f"{args.route}: {step['step']}: {step.get('proxy', 'every replica')}: mode "
            f"{step.get('mode', '?')}: HTTP {step.get('status')} answered by "
            f"{step.get('answered_by')}: " + ("ok" if step["ok"] else "FAILED")
        )
    for failure in failures:
        print(f"shadow drill: {failure}", file=sys.stderr)
    print(f"{args.route}: drill {'passed' if passed and not failures else 'FAILED'}")
    return 0 if passed and not failures else 1

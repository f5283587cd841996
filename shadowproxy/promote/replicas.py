"""Every replica's admin API: who the replicas are, what each says, and changes that reach all.

Owns turning ``--admin`` URLs into replicas: a URL whose host is a name
stands for every address the name resolves to (a Kubernetes headless
Service lists each ready pod): its IPv4 addresses, or its IPv6 ones when it
has none, so a dual-stack pod is not counted twice. Owns calling each
replica's cutover endpoints over urllib (``AdminClient``), and changing a
route on every replica in turn (``Replicas.change``): when one fails, the
replicas already changed are put back to what they had, newest first, and
the failure names which were and which could not be.

Errors: ``BadInputError`` (exit 2: unreachable, refused token, unknown
route, nothing changed) and ``RefusedError`` (exit 1: replicas disagree, a
replica rolled back, a partial failure put back).
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from shadowproxy.cutover.state import Assignment

__all__ = [
    "AdminClient",
    "BadInputError",
    "RefusedError",
    "Replica",
    "Replicas",
    "RouteState",
    "resolve",
]

_HTTP_TIMEOUT_S = 5.0
_MAX_REPLICAS = 64

Resolver = Callable[..., list[tuple[Any, ...]]]
"""``socket.getaddrinfo``'s shape (tests pass their own)."""


class RefusedError(Exception):
    """Nothing is left changed, for a reason the user should read (exit 1)."""


class BadInputError(Exception):
    """Input the user can fix; nothing was changed (exit 2)."""


@dataclass(frozen=True, slots=True)
class Replica:
    """One replica's admin API."""

    url: str
    """The base URL called."""
    name: str
    """How output names it: the URL given, with the address it resolved to."""
    host: str | None = None
    """The Host header to send when an address stands in for the name."""


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def resolve(urls: Sequence[str], resolver: Resolver | None = None) -> tuple[Replica, ...]:
    """The replicas ``urls`` stand for; BadInputError names a URL that is bad or unresolvable."""
    lookup = resolver or socket.getaddrinfo
    found: dict[str, Replica] = {}
    for given in urls:
        parts = urlsplit(given.rstrip("/"))
        host = parts.hostname
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            host = None
        if parts.scheme not in {"http", "https"} or not host:
            raise BadInputError(f"--admin {given}: must be an http:// or https:// URL")
        base = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
        if _is_address(host) or parts.scheme == "https":
            # A certificate names the host, not its addresses: https URLs stay as given.
            found.setdefault(base, Replica(base, base))
            continue
        try:
            answers = lookup(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise BadInputError(f"--admin {given}: cannot resolve {host} ({exc})") from None
        v4 = sorted({a[4][0] for a in answers if a[0] == socket.AF_INET})
        v6 = sorted({a[4][0] for a in answers if a[0] == socket.AF_INET6})
        for address in v4 or v6:
            shown = f"[{address}]" if ":" in address else address
            url = urlunsplit((parts.scheme, f"{shown}:{port}", parts.path, "", ""))
            found.setdefault(url, Replica(url, f"{base} ({address})", parts.netloc))
    if not found:
        raise BadInputError("--admin: no replica (the names resolved to no address)")
    if len(found) > _MAX_REPLICAS:
        raise BadInputError(f"--admin: {len(found)} replicas, more than {_MAX_REPLICAS}")
    return tuple(found.values())


@dataclass(frozen=True, slots=True)
class RouteState:
    """What one replica says about a route."""

    assignment: Assignment
    effective: str
    source: str
    """Who set the mode: ``config``, ``api``, ``promote``, ``drill``, ``rollback``, ..."""
    since: float

    @classmethod
    def of(cls, entry: Mapping[str, Any]) -> RouteState:
        """From a route of ``GET /cutover``; KeyError or ValueError when malformed."""
        return cls(
            Assignment.of(entry["mode"], float(entry["percent"])),
            str(entry.get("effective", entry["mode"])),
            str(entry.get("source", "config")),
            float(entry.get("since", 0.0)),
        )


class AdminClient:
    """One replica's cutover endpoints, over urllib."""

    def __init__(self, replica: Replica, token: str | None, token_env: str) -> None:
        self.replica = replica
        self._token = token
        self._token_env = token_env

    def _call(self, method: str, path: str, body: Mapping[str, object] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.replica.url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if self.replica.host:
            request.add_header("Host", self.replica.host)
        if self._token:
            request.add_header("Authorization", f"Bearer {self._token}")
        name = self.replica.name
        try:
            with urllib.request.urlopen(request, timeout=_HTTP_TIMEOUT_S) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            if exc.code == 401:
                raise BadInputError(
                    f"--admin {name}: bearer token refused (set {self._token_env})"
                ) from None
            detail = exc.read().decode("utf-8", "replace")[:200]
            raise BadInputError(f"--admin {name}{path}: HTTP {exc.code}: {detail}") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise BadInputError(f"--admin {name}: cannot reach ({reason})") from None

    def listing(self) -> dict[str, Any]:
        """``GET /cutover``: every route's mode, force-legacy and the recent history."""
        answer = self._call("GET", "/cutover")
        if not isinstance(answer, dict) or not isinstance(answer.get("routes"), dict):
            raise BadInputError(f"--admin {self.replica.name}: not a shadowproxy admin API")
        return answer

    def state(self, route: str) -> RouteState:
        """The route's state; a route the proxy does not know is bad input."""
        routes = self.listing()["routes"]
        if route not in routes:
            known = ", ".join(sorted(routes)) or "none"
            raise BadInputError(
                f"--route: {route!r} is not configured on {self.replica.name} (known: {known})"
            )
        try:
            return RouteState.of(routes[route])
        except (KeyError, TypeError, ValueError):
            raise BadInputError(f"--admin {self.replica.name}: malformed /cutover") from None

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

    def force_legacy(self, on: bool, *, reason: str) -> None:
        """Switch force-legacy on or off."""
        self._call("POST" if on else "DELETE", "/cutover/force-legacy", {"reason": reason})

    def record_drill(
        self, route: str, drill_id: str, passed: bool, steps: list[dict[str, object]]
    ) -> None:
        """Write a drill's result record on this replica."""
        body = {"route": route, "id": drill_id, "passed": passed, "steps": steps}
        self._call("POST", "/cutover/drill", {**body, "reason": "shadow drill"})


class Replicas:
    """Every replica's admin API, reached with one token."""

    def __init__(self, urls: Sequence[str], token_env: str, expected: int | None = None) -> None:
        replicas = resolve(urls)
        if expected is not None and len(replicas) != expected:
            names = ", ".join(r.name for r in replicas)
            raise BadInputError(f"--replicas: expected {expected}, found {len(replicas)}: {names}")
        token = os.environ.get(token_env) or None
        # urllib sends header values as Latin-1: one character per byte of the token's UTF-8.
        self.token = token.encode("utf-8", "surrogateescape").decode("latin-1") if token else None
        """The admin token as a header value; drill probes carry it too (``X-Shadow-Probe``)."""
        self.clients = tuple(AdminClient(r, self.token, token_env) for r in replicas)

    def states(self, route: str) -> list[RouteState]:
        """Each replica's state of ``route``, in replica order; any failure is bad input."""
        return [client.state(route) for client in self.clients]

    def agreed(self, route: str, states: Sequence[RouteState]) -> RouteState:
        """The one state every replica has; RefusedError lists them when they differ."""
        if len({s.assignment for s in states}) > 1:
            shown = "; ".join(
                f"{c.replica.name}: {s.assignment.describe()}"
                for c, s in zip(self.clients, states, strict=True)
            )
            raise RefusedError(f"{route}: replicas disagree ({shown}); nothing changed")
        return states[0]

    def change(
        self,
        route: str,
        target: Assignment,
        before: Sequence[RouteState],
        *,
        reason: str,
        source: str,
        numbers: Mapping[str, float] | None = None,
    ) -> list[str]:
        """Move ``route`` to ``target`` on every replica; one line per replica.

        On a failure the replicas already changed are put back to their
        ``before`` assignment and RefusedError says what happened to each.
        """
        done: list[str] = []
        for index, client in enumerate(self.clients):
            try:
                client.set(route, target, reason=reason, source=source, numbers=numbers)
            except BadInputError as exc:
                lines = [*done, f"{route} on {client.replica.name}: FAILED: {exc}"]
                lines += self._put_back(route, before, index, client.replica.name, source)
                raise RefusedError("\n".join(lines)) from None
            was = before[index].assignment.describe()
            done.append(f"{route} on {client.replica.name}: {was} -> {target.describe()}")
        return done

    def restore(self, route: str, before: Sequence[RouteState], *, reason: str) -> list[str]:
        """Return every replica to its ``before`` assignment (a drill's restore, source ``drill``).

        Every replica is tried whatever the others do; the failures, one line each.
        """
        failures: list[str] = []
        for client, was in zip(self.clients, before, strict=True):
            try:
                client.set(route, was.assignment, reason=reason, source="drill")
            except BadInputError as exc:
                failures.append(
                    f"{route} on {client.replica.name}: NOT RESTORED to"
                    f" {was.assignment.describe()}: {exc}"
                )
        return failures

    def _put_back(
        self, route: str, before: Sequence[RouteState], changed: int, failed: str, source: str
    ) -> list[str]:
        """Return the first ``changed`` replicas to ``before``, newest first (same source)."""
        lines: list[str] = []
        for index in reversed(range(changed)):
            client, was = self.clients[index], before[index].assignment
            try:
                client.set(route, was, reason=f"put back: {failed} failed", source=source)
            except BadInputError as exc:
                name = client.replica.name
                lines.append(f"{route} on {name}: NOT PUT BACK to {was.describe()}: {exc}")
                continue
            lines.append(f"{route} on {client.replica.name}: put back to {was.describe()}")
        return lines

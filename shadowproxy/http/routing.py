"""Route resolution: request method and path to a bounded route name, its domain and rules.

Configured routes match first, in order: templates (``/orders/{id}``) match
segment by segment, prefixes end in ``*`` (``/static/*``), and a route with
``methods`` matches only those methods, so GET and POST on one path can be
two routes with two modes. Any other path gets
a normalised name in which identifier-like segments (numbers, UUIDs, long hex,
long opaque tokens, and words of eight or more characters mixing letters and
digits, which is what passwords and keys in paths look like) become ``{id}``.
A normalised name longer than ``MAX_LEARNED_ROUTE`` characters, and every
new one past ``max_routes`` distinct names, collapses into ``other``, so
metric label cardinality and size stay bounded whatever clients send; the
configured routes are outside that bound and always match first. Pure,
synchronous code.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from shadowproxy.compare.rules import CompareRules
from shadowproxy.settings import (
    MAX_LEARNED_ROUTE,
    RouteCapture,
    RouteIdentity,
    RouteSpec,
    RouteStream,
)
from shadowproxy.sinks.secrets import SecretFinder, mask_path

__all__ = ["OTHER", "Route", "RouteTable", "normalise_path", "resolve_request", "route_path"]

OTHER = "other"
DEFAULT_DOMAIN = "default"

_NUMERIC = re.compile(r"^\d+$")
_UUID = re.compile(
    r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$"
)
_HEX = re.compile(r"^[0-9a-fA-F]{16,}$")
_OPAQUE = re.compile(r"^[A-Za-z0-9_\-.~=+]{24,}$")
_HAS_DIGIT = re.compile(r"\d")
_MIXED = re.compile(r"^(?=[^A-Za-z]*[A-Za-z])(?=\D*\d)[A-Za-z0-9_\-.~=+]{8,}$")
_MAX_SEGMENT = 64
_MAX_SEGMENTS = 16
# Resolved paths remembered per table: at most this many, each at most this long
# (a few hundred KB at worst); when full, the memory starts over.
_MAX_RESOLVED = 1024
_MAX_RESOLVED_PATH = 256
_NO_STREAM_SETTINGS = RouteStream()
_NO_CAPTURE = RouteCapture()


@dataclass(frozen=True, slots=True)
class Route:
    """What the proxy and the evidence need to know about a request's route."""

    name: str
    domain: str
    sample_percent: float
    mirror_writes: bool
    rules: CompareRules
    mirror: bool = True
    """False: never mirrored (``mirror: false``)."""
    fallback: bool = True
    """Retry an idempotent request on legacy when the candidate answering it fails."""
    stream: RouteStream = RouteStream()
    """Its stream window, whether every GET is an event stream, its WebSocket mode."""
    dry_run: bool = False
    """A write's copy carries the dry-run header: the candidate commits nothing."""
    identity: RouteIdentity | None = None
    """Ids its answers create or its requests carry (docs/writes.md)."""
    capture: RouteCapture = RouteCapture()
    """How many of its requests are captured for replay (docs/replay.md)."""


def _is_identifier(segment: str) -> bool:
    if _NUMERIC.match(segment) or _UUID.match(segment) or _HEX.match(segment):
        return True
    if len(segment) > _MAX_SEGMENT or _MIXED.match(segment):
        return True
    return bool(_OPAQUE.match(segment) and _HAS_DIGIT.search(segment))


def normalise_path(path: str) -> str:
    """``/users/42/orders/9f1c...`` becomes ``/users/{id}/orders/{id}``."""
    segments = path.split("/")
    if len(segments) > _MAX_SEGMENTS + 1:
        segments = [*segments[:_MAX_SEGMENTS], "{rest}"]
    return "/".join("{id}" if _is_identifier(s) else s for s in segments) or "/"


_DOT = re.compile(r"%2[eE]")
_SLASHES = re.compile(r"/{2,}")


def route_path(path: str) -> str:
    """The path a route is chosen by: ``%2e`` read as ``.``, ``//`` folded, dot segments removed.

    Only for labelling and rules; upstreams always get the raw target unchanged.
    """
    if "." not in path and "%" not in path and "//" not in path:
        return path
    segments: list[str] = []
    parts = _SLASHES.sub("/", _DOT.sub(".", path)).split("/")
    for part in parts[1:]:
        if part == "..":
            if segments:
                segments.pop()
        elif part != ".":
            segments.append(part)
    # A trailing dot segment leaves a directory, as in RFC 3986 remove_dot_segments.
    trailing = "/" if parts[-1] in {".", ".."} and segments else ""
    return "/" + "/".join(segments) + trailing


class _Template:
    __slots__ = ("methods", "parts", "prefix", "route")

    def __init__(self, spec: RouteSpec) -> None:
        self.route = Route(
            name=spec.name,
            domain=spec.domain,
            sample_percent=spec.sample_percent,
            mirror_writes=spec.mirror_writes,
            rules=spec.rules,
            mirror=spec.mirror,
            fallback=spec.fallback,
            stream=spec.stream,
            dry_run=spec.dry_run,
            identity=spec.identity,
            capture=spec.capture,
        )
        self.methods = spec.methods
        self.prefix: str | None = spec.match[:-1] if spec.match.endswith("*") else None
        self.parts: tuple[str | None, ...] = tuple(
            None if part.startswith("{") and part.endswith("}") else part
            for part in spec.match.split("/")
        )

    def matches(self, method: str, path: str, segments: list[str]) -> bool:
        if self.methods is not None and method not in self.methods:
            return False
        if self.prefix is not None:
            return path.startswith(self.prefix)
        if len(segments) != len(self.parts):
            return False
        return all(p is None or p == s for p, s in zip(self.parts, segments, strict=True))


class RouteTable:
    """Resolves paths to routes; remembers at most ``max_routes`` normalised names."""

    def __init__(
        self,
        specs: Sequence[RouteSpec],
        *,
        default_sample_percent: float,
        default_rules: CompareRules,
        max_routes: int,
        default_stream: RouteStream = _NO_STREAM_SETTINGS,
        default_capture: RouteCapture = _NO_CAPTURE,
    ) -> None:
        self._templates = [_Template(spec) for spec in specs]
        # Only a table with method-specific routes needs the method in its memory's key.
        self._by_method = any(t.methods is not None for t in self._templates)
        self._default_sample_percent = default_sample_percent
        self._default_rules = default_rules
        self._default_stream = default_stream
        self._default_capture = default_capture
        self._max_routes = max_routes
        self._seen: dict[str, Route] = {}
        # Most traffic repeats a few paths; matching and normalising each time is not free.
        self._resolved: dict[str, Route] = {}
        self._other = self._unconfigured(OTHER)

    def _unconfigured(self, name: str) -> Route:
        return Route(
            name=name,
            domain=DEFAULT_DOMAIN,
            sample_percent=self._default_sample_percent,
            mirror_writes=False,
            rules=self._default_rules,
            stream=self._default_stream,
            capture=self._default_capture,
        )

    @property
    def names(self) -> list[str]:
        """Every route name this table can hand out so far."""
        configured = [t.route.name for t in self._templates]
        return [*configured, *self._seen, OTHER]

    def resolve(self, path: str, method: str = "GET") -> Route:
        """The route for a ``method`` request of ``path`` (the path only, without query string).

        The path is matched after ``route_path``, so ``/static/../admin`` is
        labelled (and compared) as ``/admin``, which is what an upstream serves.
        """
        key = f"{method} {path}" if self._by_method else path
        route = self._resolved.get(key)
        if route is not None:
            return route
        route = self._resolve(path, method)
        if len(key) <= _MAX_RESOLVED_PATH:
            if len(self._resolved) >= _MAX_RESOLVED:
                self._resolved.clear()
            self._resolved[key] = route
        return route

    def _resolve(self, path: str, method: str) -> Route:
        path = route_path(path)
        segments = path.split("/")
        for template in self._templates:
            if template.matches(method, path, segments):
                return template.route
        name = normalise_path(path)
        route = self._seen.get(name)
        if route is not None:
            return route
        if len(self._seen) >= self._max_routes or len(name) > MAX_LEARNED_ROUTE:
            return self._other
        route = self._seen[name] = self._unconfigured(name)
        return route


def resolve_request(
    routes: RouteTable,
    finder: SecretFinder,
    method: str,
    path: str,
    query: str,
    headers: Iterable[tuple[str, str]],
) -> tuple[Route, tuple[str, ...]]:
    """The route of a ``method`` request of ``path``, and the secrets its headers and query hold.

    The route is resolved from the path with those secrets masked: a secret
    in a path never names a route (nor a metric label).
    """
    secrets = finder.in_request(headers, query)
    return routes.resolve(mask_path(path, secrets) if secrets else path, method), secrets

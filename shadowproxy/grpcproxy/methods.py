"""Method resolution: a full gRPC method name to its route, domain, mirror policy and shape.

Owns the mirror policy. A method is mirrored when configured with
``mirror: true``; when ``mirror`` is not configured, only when its own name
(after the last ``/``) starts with one of ``READ_PREFIXES`` followed by an
upper-case letter (``GetUser``, ``ListOrders``, ``WatchItems``; not ``List``,
``Listen`` or ``Get_user``) and none of its other CamelCase words is one of
``WRITE_WORDS`` (``GetAndIncrementBalance``, ``CheckAndSet``,
``FetchAndAdd``, ``FindOrCreateUser``, ``ReadAndAck`` all write). Anything
else is assumed to write and is never mirrored unless configured, so a
candidate never performs a second write. The cardinality comes from the
configuration, else the descriptors, else unary-unary. Method names the
configuration and descriptors do not know become routes as they are, up to
``max_routes`` names of at most ``MAX_LEARNED_ROUTE`` characters, then
``other``, so metric labels stay bounded; the known names are outside that
bound. A service configured as ``/package.Service/*`` is one route for all
its methods without an entry of their own (as an HTTP prefix route is), each
call keeping its method's shape. Pure code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from google.protobuf import message

from shadowproxy.compare.rules import CompareRules
from shadowproxy.grpcproxy.descriptors import Catalog
from shadowproxy.settings import (
    MAX_LEARNED_ROUTE,
    GrpcCardinality,
    GrpcMethodSpec,
    GrpcSettings,
    StreamSettings,
)

__all__ = ["OTHER", "READ_PREFIXES", "WRITE_WORDS", "GrpcMethod", "MethodTable", "reads_only"]

OTHER = "other"
READ_PREFIXES = (
    "Get",
    "BatchGet",
    "List",
    "Search",
    "Read",
    "Describe",
    "Lookup",
    "Find",
    "Query",
    "Count",
    "Check",
    "Fetch",
    "Head",
    "Exists",
    "Watch",
)
"""Method-name prefixes that may mean "reads only" (then ``WRITE_WORDS`` decide)."""

WRITE_WORDS = frozenset(
    {
        # A read and something else in one call.
        "And", "Or",
        # Verbs that change state and are seldom a noun in a read's name
        # (Record, Post, Commit, Run, Release... are left out: GetRecord reads).
        "Ack", "Acquire", "Add", "Allocate", "Append", "Apply", "Approve", "Assign",
        "Attach", "Cancel", "Clear", "Confirm", "Consume", "Create", "Dec", "Decr",
        "Decrement", "Delete", "Dequeue", "Destroy", "Detach", "Disable", "Drain", "Drop",
        "Edit", "Enable", "Enqueue", "Ensure", "Exec", "Execute", "Expire", "Extend",
        "Flush", "Inc", "Incr", "Increment", "Insert", "Invalidate", "Kill", "Lock",
        "Login", "Logout", "Mark", "Modify", "Move", "Mutate", "Pay", "Pop", "Publish",
        "Purge", "Push", "Put", "Register", "Reject", "Remove", "Rename", "Renew",
        "Replace", "Reserve", "Reset", "Restore", "Revoke", "Save", "Send", "Set", "Stop",
        "Submit", "Subscribe", "Swap", "Take", "Touch", "Truncate", "Unlock",
        "Unsubscribe", "Update", "Upsert", "Write",
    }
)  # fmt: skip
"""Words that make a read-named method a write: ``CheckAndSet``, ``GetOrCreate``, ``ReadAndAck``.

A read whose name holds one (``GetDataSet``) is not mirrored unless configured
``mirror: true``: a read left out costs evidence, a write let in a double write.
"""

_READ = re.compile(rf"^(?:{'|'.join(READ_PREFIXES)})(?=[A-Z])")
_WORD = re.compile(r"[A-Z][a-z0-9]*")
_METHOD = re.compile(r"^/[A-Za-z_][\w.]*/[A-Za-z_]\w*$")


@dataclass(frozen=True, slots=True)
class GrpcMethod:
    """What the proxy needs to know about one method."""

    name: str
    """The route: the full method name (``/package.Service/Method``), or ``other``."""
    domain: str
    mirror: bool
    sample_percent: float
    rules: CompareRules
    cardinality: GrpcCardinality
    output: type[message.Message] | None
    """The response message class; None compares raw bytes."""
    window: StreamSettings = StreamSettings()
    """The comparison window of a server-streaming call."""
    fallback: bool = True
    """Retry a read on legacy when the candidate answering it fails before answering."""


def reads_only(method: str) -> bool:
    """True when the method's own name reads as a read (the rule in this module's docstring)."""
    name = method.rpartition("/")[2]
    prefix = _READ.match(name)
    if prefix is None:
        return False
    return not any(word in WRITE_WORDS for word in _WORD.findall(name, prefix.end()))


class MethodTable:
    """Resolves method names; remembers at most ``max_routes`` unknown names."""

    def __init__(
        self,
        settings: GrpcSettings,
        catalog: Catalog | None,
        *,
        default_sample_percent: float,
        default_rules: CompareRules,
        max_routes: int,
        default_window: StreamSettings,
        default_fallback: bool = True,
    ) -> None:
        self._catalog = catalog
        self._window = default_window
        self._fallback = default_fallback
        self._domain = settings.domain
        self._sample_percent = default_sample_percent
        self._rules = default_rules
        self._max_routes = max_routes
        self._known: dict[str, GrpcMethod] = {}
        self._seen: dict[str, GrpcMethod] = {}
        self._services = {
            spec.method[:-1]: spec for spec in settings.methods if spec.method.endswith("/*")
        }
        """Service routes by prefix: ``/package.Service/`` for ``/package.Service/*``."""
        for spec in settings.methods:
            if not spec.method.endswith("/*"):
                self._known[spec.method] = self._configured(spec, spec.method)
        if catalog is not None:
            for name in catalog:
                if name not in self._known:
                    self._known[name] = self._unconfigured(name)
        self._other = self._unconfigured(OTHER)

    @property
    def names(self) -> list[str]:
        """Every route name this table can hand out so far."""
        return [*self._known, *self._seen, OTHER]

    def _shape(
        self, name: str, configured: GrpcCardinality | None
    ) -> tuple[GrpcCardinality, type[message.Message] | None]:
        shape = self._catalog.get(name) if self._catalog is not None else None
        if shape is None:
            return configured or "unary_unary", None
        return configured or shape.cardinality, shape.output

    def _configured(self, spec: GrpcMethodSpec, method: str) -> GrpcMethod:
        """``method`` as ``spec`` (its own, or its service's) configures it."""
        cardinality, output = self._shape(method, spec.cardinality)
        return GrpcMethod(
            name=spec.method,
            domain=spec.domain,
            mirror=reads_only(method) if spec.mirror is None else spec.mirror,
            sample_percent=spec.sample_percent,
            rules=spec.rules,
            cardinality=cardinality,
            output=output,
            window=spec.window or self._window,
            fallback=spec.fallback,
        )

    def _unconfigured(self, name: str) -> GrpcMethod:
        service = self._services.get(name[: name.rfind("/") + 1])
        if service is not None:
            return self._configured(service, name)
        cardinality, output = self._shape(name, None)
        return GrpcMethod(
            name=name,
            domain=self._domain,
            mirror=reads_only(name) if name != OTHER else False,
            sample_percent=self._sample_percent,
            rules=self._rules,
            cardinality=cardinality,
            output=output,
            window=self._window,
            fallback=self._fallback,
        )

    def resolve(self, method: str) -> GrpcMethod:
        """The method for the full name a client called."""
        known = self._known.get(method) or self._seen.get(method)
        if known is not None:
            return known
        if (
            len(self._seen) >= self._max_routes
            or len(method) > MAX_LEARNED_ROUTE
            or not _METHOD.match(method)
        ):
            return self._other
        resolved = self._seen[method] = self._unconfigured(method)
        return resolved

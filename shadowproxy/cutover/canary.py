"""Who answers one request: the canary's sticky hash, its allowlist, and the decision.

A canary key comes from the route's ``sticky`` setting (a header, a cookie
or the client address). The candidate answers a request when its key is on
the route's allowlist (``canary_allow``: tenant or runner ids from that
header or cookie), or when the key's blake2b hash falls below the canary
percent. The hash has no salt, so a key lands on the same side in every
worker and after every restart, and stays on the candidate as the
percentage grows. Pure code: no I/O, no clock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from shadowproxy.cutover.state import FORCE_LEGACY, CutoverState, Mode
from shadowproxy.model import Phase, Upstream
from shadowproxy.settings import GrpcMethodSpec, RouteSpec

__all__ = [
    "CanaryKeys",
    "Decision",
    "canary_bucket",
    "canary_keys",
    "decide",
    "decisions",
    "in_canary",
    "sticky_key",
]

_BUCKETS = 2**64


@dataclass(frozen=True, slots=True)
class CanaryKeys:
    """How a route picks its canary key, and the keys the candidate always answers."""

    sticky: str = "client"
    """``client``, ``header:NAME`` or ``cookie:NAME``."""
    allow: frozenset[str] = frozenset()
    """Allowlisted keys, spelled as ``sticky_key`` returns them (``header:tenant-7``)."""

    def chosen(self, key: str, percent: float) -> bool:
        """True when the candidate answers ``key`` at ``percent``."""
        return key in self.allow or in_canary(key, percent)


def canary_keys(spec: RouteSpec | GrpcMethodSpec) -> CanaryKeys:
    """A configured route's canary settings; allowlist entries take the sticky key's kind."""
    kind = spec.sticky.partition(":")[0]
    return CanaryKeys(spec.sticky, frozenset(f"{kind}:{value}" for value in spec.canary_allow))


@dataclass(frozen=True, slots=True)
class Decision:
    """Who answers one request, whether the other side gets a copy, and the route's phase."""

    answered_by: Upstream
    mirror: bool
    phase: Phase

    @property
    def mode(self) -> str:
        """The effective mode."""
        return self.phase.mode


def canary_bucket(key: str) -> float:
    """Where ``key`` falls in [0, 100): blake2b of the key, the same in every process."""
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest) * 100.0 / _BUCKETS


def in_canary(key: str, percent: float) -> bool:
    """True when ``key`` is answered by the candidate at ``percent``; monotone in ``percent``."""
    if percent <= 0:
        return False
    return percent >= 100 or canary_bucket(key) < percent


def sticky_key(
    sticky: str, headers: Mapping[str, str], cookies: Mapping[str, str], client: str
) -> str:
    """The canary key a route's ``sticky`` setting picks; the client address when it is absent."""
    kind, _, name = sticky.partition(":")
    value: str | None = None
    if kind == "header":
        value = headers.get(name)
    elif kind == "cookie":
        value = cookies.get(name)
    return f"{kind}:{value}" if value else f"client:{client}"


_MIRRORED = {
    Mode.SHADOW: (Upstream.LEGACY, True),
    FORCE_LEGACY: (Upstream.LEGACY, True),
    Mode.CANDIDATE: (Upstream.CANDIDATE, True),
    Mode.LEGACY_ONLY: (Upstream.LEGACY, False),
}


def decisions(state: CutoverState, route: str) -> tuple[Decision, Decision | None]:
    """A request of ``route`` not chosen by the canary, and, in canary, one it chose."""
    phase = state.phase(route)
    if phase.mode == Mode.CANARY:
        return Decision(Upstream.LEGACY, True, phase), Decision(Upstream.CANDIDATE, True, phase)
    answered_by, mirror = _MIRRORED[phase.mode]
    return Decision(answered_by, mirror, phase), None


def decide(
    state: CutoverState,
    route: str,
    key: Callable[[], str],
    keys: CanaryKeys = CanaryKeys(),
) -> Decision:
    """Who answers a request of ``route``; ``key`` (the sticky key) is read only in canary."""
    other, chosen = decisions(state, route)
    if chosen is not None and keys.chosen(key(), state.assignment(route).percent):
        return chosen
    return other

"""What a gate says: its status, its result, and a route's migration status.

Owns the values every gate produces and every renderer reads: ``GateStatus``
(pass, fail, insufficient), ``GateResult`` (one gate of a domain, or of one
route at one phase) and ``RouteStatus`` (what the tracker calls a route).
Standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["GateResult", "GateStatus", "Number", "RouteStatus"]

Number = int | float
"""A gate's measured value or threshold."""


class GateStatus(StrEnum):
    """How a gate came out."""

    PASS = "pass"
    FAIL = "fail"
    INSUFFICIENT = "insufficient"


@dataclass(frozen=True, slots=True)
class GateResult:
    """One gate for one domain (or one route of it); ``passed`` only for ``status == pass``."""

    name: str
    domain: str
    status: GateStatus
    reason: str
    value: Number | None
    threshold: Number | bool | None
    route: str | None = None
    """Set for the gates of one route: its canary step and drill gates."""
    phase: str | None = None
    """The phase whose evidence the gate judged (``canary 5%``); None: the whole window."""

    @property
    def passed(self) -> bool:
        """True when the gate passed on sufficient evidence."""
        return self.status is GateStatus.PASS


class RouteStatus(StrEnum):
    """A route's migration status, as the tracker records it."""

    PARITY_OK = "PARITY_OK"
    BLOCKED_STRUCTURAL = "BLOCKED_STRUCTURAL"
    BLOCKED_ERRORS = "BLOCKED_ERRORS"
    SEMANTIC_UNDOCUMENTED = "SEMANTIC_UNDOCUMENTED"
    TIMING_REGRESSION = "TIMING_REGRESSION"
    INSUFFICIENT_EVIDENCE = "INSUFFICIENT_EVIDENCE"
    NOT_SHADOWED = "NOT_SHADOWED"
    """Never compared by design (writes not opted in, streams, upgrades, ``mirror: false``)."""

"""What the NATS data plane reports to (``shadowproxy.sinks.Evidence`` is one)."""

from __future__ import annotations

from typing import Protocol

from shadowproxy.shadow.mirror import EvidenceSink

__all__ = ["NatsSink"]


class NatsSink(EvidenceSink, Protocol):
    """Requests answered, each event's fate, and the messages a bound dropped."""

    def on_request(self, route: str, method: str, status: int | None) -> None: ...
    def on_nats_event(self, route: str, side: str, result: str) -> None: ...
    def on_nats_dropped(self, route: str, reason: str) -> None: ...

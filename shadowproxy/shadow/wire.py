"""The wire between a proxy worker and its comparison process.

Each message is an 8-byte big-endian length and a pickle; requests are
``(exchange, rules, slots)``, the exchange flattened to built-in values
(``flat``) and the rules pickled on their own (the proxy worker pickles a
route's rules once, and the process unpickles each distinct value once and
hands the engine that one object: the engine's plan and the recall's pairs
are keyed by the rules' identity); replies are ``(True, verdict)``, the
verdict flattened, or ``(False, message)`` when the comparison raised.
Replies come in request order.

A large body crosses the pipe once (``SharedBodies``): both ends hold the
last few, and an exchange whose body equals one held sends the slot it is in
(``slots``, per side) with an empty body in its place. An endpoint serving one
document to many clients then costs the proxy worker a byte comparison instead
of pickling and writing both bodies, and the comparison process gets the very
objects it digested before (``compare.recall`` remembers their digests). Pickle is
safe here: both ends are the same program, connected by a private pipe.
Compiled with the hot path: the proxy worker packs and frames every message.
"""

from __future__ import annotations

import pickle

from shadowproxy.model import Exchange, Observation

__all__ = [
    "HEADER_BYTES",
    "RULES_KEPT",
    "SHARED_BODIES",
    "SHARED_MIN_BYTES",
    "SharedBodies",
    "Slots",
    "frame",
    "pickled",
]

HEADER_BYTES = 8
"""Bytes of the length that precedes every message."""
SHARED_MIN_BYTES = 4096
"""Bodies from this size on are held by both ends; smaller ones always cross whole."""
RULES_KEPT = 64
"""Distinct route rules each end keeps pickled or unpickled (then it starts over)."""
SHARED_BODIES = 4
"""Bodies each end holds, the most recently used: both sides of a pair, and a pair before."""

Slots = tuple[int | None, int | None, int | None]
"""Per side (legacy, candidate, secondary): the held body it has, or None when it crossed whole."""
_WHOLE: Slots = (None, None, None)


class SharedBodies:
    """The large bodies one end of the pipe holds; the other end holds the same ones.

    Both ends take the same steps for the same messages in the same order (a
    pipe keeps it), so their lists stay equal: a body sent whole is held from
    then on by both, a body sent as a slot moves to the end of both lists,
    and the least recently used one beyond ``SHARED_BODIES`` is let go. A new
    comparison process starts both ends afresh.
    """

    __slots__ = ("_held",)

    def __init__(self) -> None:
        self._held: list[bytes] = []

    def pack(self, exchange: Exchange) -> tuple[Exchange, Slots]:
        """What crosses for ``exchange``: a held body is left out and named by its slot."""
        legacy, first = self._send(exchange.legacy)
        candidate, second = self._send(exchange.candidate)
        secondary, third = exchange.secondary, None
        if secondary is not None:
            secondary, third = self._send(secondary)
        slots = (first, second, third)
        if slots == _WHOLE:
            return exchange, _WHOLE
        return exchange.with_sides(legacy, candidate, secondary), slots

    def unpack(self, exchange: Exchange, slots: Slots) -> Exchange:
        """The exchange ``pack`` was given, from what crossed."""
        legacy = self._receive(exchange.legacy, slots[0])
        candidate = self._receive(exchange.candidate, slots[1])
        secondary = exchange.secondary
        if secondary is not None:
            secondary = self._receive(secondary, slots[2])
        if slots == _WHOLE:
            return exchange
        return exchange.with_sides(legacy, candidate, secondary)

    def _send(self, side: Observation) -> tuple[Observation, int | None]:
        body = side.body
        if len(body) < SHARED_MIN_BYTES:
            return side, None
        for slot, held in enumerate(self._held):
            if held == body:
                self._use(slot)
                return side.with_body(b""), slot
        self._hold(body)
        return side, None

    def _receive(self, side: Observation, slot: int | None) -> Observation:
        if slot is not None:
            body = self._held[slot]
            self._use(slot)
            return side.with_body(body)
        if len(side.body) >= SHARED_MIN_BYTES:
            self._hold(side.body)
        return side

    def _use(self, slot: int) -> None:
        self._held.append(self._held.pop(slot))

    def _hold(self, body: bytes) -> None:
        self._held.append(body)
        if len(self._held) > SHARED_BODIES:
            del self._held[0]


def pickled(message: object) -> bytes:
    """``message`` pickled as the wire carries it."""
    return pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)


def frame(message: object) -> tuple[bytes, bytes]:
    """The length header and the pickled body of one message."""
    body = pickled(message)
    return len(body).to_bytes(HEADER_BYTES, "big"), body

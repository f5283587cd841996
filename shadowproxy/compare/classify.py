"""Which class each kind of difference belongs to.

Owns the kind-to-class table: structural differences change the shape a client
relies on, semantic ones change values, timing ones change speed. Noise is not a
class: it is a flag decided separately (``noise``). Pure code.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from shadowproxy.compare.found import Found
from shadowproxy.model import DiffClass, Difference

__all__ = ["KIND_CLASS", "classify"]

KIND_CLASS: Mapping[str, DiffClass] = MappingProxyType(
    {
        "status": DiffClass.STRUCTURAL,
        "content_type": DiffClass.STRUCTURAL,
        "missing": DiffClass.STRUCTURAL,
        "extra": DiffClass.STRUCTURAL,
        "type": DiffClass.STRUCTURAL,
        "parse": DiffClass.STRUCTURAL,
        "value": DiffClass.SEMANTIC,
        "length": DiffClass.SEMANTIC,
        "order": DiffClass.SEMANTIC,
        "body": DiffClass.SEMANTIC,
        "content_type_params": DiffClass.SEMANTIC,
        "header": DiffClass.SEMANTIC,
        "latency": DiffClass.TIMING,
        # Streams (compare/events.py, compare/patches.py).
        "event_missing": DiffClass.STRUCTURAL,
        "event_extra": DiffClass.STRUCTURAL,
        "event_type": DiffClass.STRUCTURAL,
        "patch": DiffClass.STRUCTURAL,
        "event_order": DiffClass.SEMANTIC,
        "event_id": DiffClass.SEMANTIC,
        "first_event": DiffClass.TIMING,
        "event_gap": DiffClass.TIMING,
    }
)
"""Every kind the engine produces, with its class."""


def classify(found: Found, *, noise: bool) -> Difference:
    """The model value for ``found``, flagged ``noise`` as decided by the caller."""
    return Difference(
        cls=KIND_CLASS[found.kind],
        kind=found.kind,
        path=found.path,
        legacy=found.legacy,
        candidate=found.candidate,
        noise=noise,
    )

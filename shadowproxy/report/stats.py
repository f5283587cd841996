"""Rates with honest uncertainty: the 95% Wilson score upper bound.

"0 of 40" and "0 of 4 million" have the same point rate but very different
upper bounds; every rate the report prints carries both. Pure arithmetic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Rate", "wilson_upper"]

_Z95 = 1.959963984540054


def wilson_upper(hits: int, total: int, z: float = _Z95) -> float:
    """Upper bound of the Wilson score interval for ``hits`` of ``total`` (1.0 when empty)."""
    if total <= 0:
        return 1.0
    p = hits / total
    z2 = z * z
    centre = p + z2 / (2 * total)
    spread = z * math.sqrt(p * (1 - p) / total + z2 / (4 * total * total))
    return min(1.0, (centre + spread) / (1 + z2 / total))


@dataclass(frozen=True, slots=True)
class Rate:
    """``hits`` of ``total`` with the point rate and its 95% upper bound."""

    hits: int
    total: int

    @property
    def value(self) -> float | None:
        """The point rate, or None without a denominator."""
        return self.hits / self.total if self.total else None

    @property
    def upper95(self) -> float:
        """The 95% Wilson upper bound."""
        return wilson_upper(self.hits, self.total)

"""A report table as rows of text, and how its cells spell numbers.

Owns ``Section`` (a titled table the table, markdown and HTML formats all
render) and the cell formats: milliseconds, a count with its rate and 95%
upper bound, quantiles, a p99 ratio, any gate value. Standard library only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Section", "cell_ms", "cell_quantiles", "cell_rate", "cell_ratio", "cell_value"]


@dataclass(frozen=True, slots=True)
class Section:
    """A titled table; ``styles`` marks each row ``pass``, ``fail``, ``warn`` or ``""``."""

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    styles: tuple[str, ...]


def cell_ms(value: float | None) -> str:
    """Milliseconds to three significant digits; ``-`` when unknown."""
    return "-" if value is None else f"{value:.3g}"


def cell_rate(item: Mapping[str, Any], name: str) -> str:
    """``4 · 0.200% (≤0.513%)``: a count with its rate and 95% upper bound."""
    rate = item["rates"][name]
    if rate["rate"] is None:
        return f"{item[name]}"
    return f"{item[name]} · {rate['rate']:.3%} (≤{rate['upper95']:.3%})"


def cell_quantiles(q: Mapping[str, float | None]) -> str:
    """``p50/p95/p99`` in milliseconds."""
    return f"{cell_ms(q['p50'])}/{cell_ms(q['p95'])}/{cell_ms(q['p99'])}"


def cell_ratio(latency: Mapping[str, Any]) -> str:
    """The candidate/legacy p99 ratio, ``1.05x``; ``-`` when unknown."""
    ratio = latency["p99_ratio"]
    return "-" if ratio is None else f"{ratio:.2f}x"


def cell_value(value: object) -> str:
    """A gate's value or threshold."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)

"""Each domain's gate window: where it starts, and how long a gap in it may be.

Owns ``Windows``, the one value the readers get about time: ``until``, each
domain's window start (its gate ``window`` back from ``until``, or ``--since``
for every domain) and its ``max_gap``. It is pickled to worker processes.
Imports the gates' thresholds.
"""

from __future__ import annotations

from dataclasses import dataclass

from shadowproxy.report.thresholds import GatesConfig, GateSpec

__all__ = ["Windows"]


@dataclass(frozen=True, slots=True)
class Windows:
    """Where each domain's window starts and its gap tolerance; the defaults for the rest."""

    until: float
    default_since: float
    by_domain: tuple[tuple[str, float], ...] = ()
    default_gap: float = GateSpec().max_gap_s
    gaps: tuple[tuple[str, float], ...] = ()

    @classmethod
    def of(cls, config: GatesConfig, until: float, since: float | None = None) -> Windows:
        """The windows of ``config`` ending at ``until``; ``since`` overrides every start."""
        return cls(
            until,
            until - config.default.window_s if since is None else since,
            ()
            if since is not None
            else tuple((domain, until - spec.window_s) for domain, spec in config.domains.items()),
            config.default.max_gap_s,
            tuple((domain, spec.max_gap_s) for domain, spec in config.domains.items()),
        )

    def span(self, domain: str) -> float:
        """The length of ``domain``'s window in seconds."""
        return self.until - self(domain)

    @property
    def spans(self) -> list[float]:
        """Every distinct window length in use, shortest first."""
        return sorted(
            {self.until - since for since in (self.default_since, *dict(self.by_domain).values())}
        )

    def __call__(self, domain: str) -> float:
        """The window start for ``domain``."""
        for name, since in self.by_domain:
            if name == domain:
                return since
        return self.default_since

    def max_gap(self, domain: str) -> float:
        """The longest gap without rollups ``domain``'s window may have."""
        for name, gap in self.gaps:
            if name == domain:
                return gap
        return self.default_gap

    @property
    def earliest(self) -> float:
        """The earliest start of any window."""
        return min([self.default_since, *(since for _, since in self.by_domain)])

    @property
    def join_gap(self) -> float:
        """The smallest gap tolerance: shorter holes never matter, so readers close them."""
        return min([self.default_gap, *(gap for _, gap in self.gaps)])

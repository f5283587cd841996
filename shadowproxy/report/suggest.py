"""``--suggest-ignores``: the paths that were noise most often, as a config snippet.

Owns turning noise counts into a YAML ``routes:`` snippet for a human to
review and paste. Array indices are already generalised to ``[*]`` by the
aggregator. Only body paths (``$...``) are suggested: headers have their own
rules. Standard library only.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from shadowproxy.report.summary import NoisePath

__all__ = ["suggest_ignores"]


def suggest_ignores(noise: Sequence[NoisePath], per_route: int = 10) -> str:
    """A YAML snippet with up to ``per_route`` most frequent noise paths per route."""
    lines = [
        "# shadow report --suggest-ignores: body paths that were noise most often.",
        "# Review each one before pasting it into the proxy configuration.",
    ]
    by_route: dict[str, list[NoisePath]] = {}
    for item in noise:
        by_route.setdefault(item.route, []).append(item)
    if not by_route:
        lines.append("routes: []  # no noise differences in the window")
        return "\n".join(lines) + "\n"
    lines.append("routes:")
    for route in sorted(by_route):
        top = sorted(by_route[route], key=lambda p: (-p.count, p.path))[:per_route]
        # JSON strings are valid YAML double-quoted scalars, so quoting stays exact.
        lines.append(f"  - match: {json.dumps(route)}")
        lines.append("    compare:")
        lines.append("      ignore:")
        lines.extend(f"        - {json.dumps(p.path)}  # noise {p.count} times" for p in top)
    return "\n".join(lines) + "\n"

"""Cutover commands over every replica's admin API: ``shadow promote``, ``drill`` and ``cutover``.

``promote`` moves a route one step when the report's gates pass; ``drill``
rehearses its rollback and records it; ``cutover`` shows or switches modes
and force-legacy. Each acts on every replica (``replicas``: several
``--admin`` URLs, or a name resolving to every replica), reports per
replica, and puts back what a partial failure changed. They talk HTTP with
urllib and import the report and the cutover values, never a running
proxy's code paths.
"""

from shadowproxy.promote.arguments import (
    add_cutover_arguments,
    add_drill_arguments,
    add_promote_arguments,
)
from shadowproxy.promote.drill import run_drill
from shadowproxy.promote.promote import run_promote
from shadowproxy.promote.switch import run_cutover

__all__ = [
    "add_cutover_arguments",
    "add_drill_arguments",
    "add_promote_arguments",
    "run_cutover",
    "run_drill",
    "run_promote",
]

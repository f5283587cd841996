"""Evidence sinks: JSONL records, redaction, rollups, Prometheus metrics and logging.

The proxy talks to ``Evidence`` (built on a ``Metrics``); the admin endpoint
uses ``render_metrics`` and, with several workers, ``multiprocess_registry``.
Imports settings, model and histogram; never the proxy, admin or report.
"""

from shadowproxy.sinks.evidence import Evidence, default_worker_id
from shadowproxy.sinks.logs import (
    ScrubSecrets,
    configure_logging,
)
from shadowproxy.sinks.metrics import (
    Metrics,
    mark_worker_dead,
    multiprocess_registry,
    render_metrics,
)
from shadowproxy.sinks.redact import REDACTED, Redactor

__all__ = [
    "REDACTED",
    "Evidence",
    "Metrics",
    "Redactor",
    "ScrubSecrets",
    "configure_logging",
    "default_worker_id",
    "mark_worker_dead",
    "multiprocess_registry",
    "render_metrics",
]

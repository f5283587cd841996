"""The evidence record contract (docs/evidence.md, v1): the schema version and the record types.

Every JSONL line shadowproxy writes carries ``v`` and ``type``. The writers
(``sinks`` for exchanges and rollups, ``cutover`` for ownership changes, the
admin API for drills) and the reader (``report``) take both from here, so the
contract has one home at the bottom of the layers, beside ``model``. A reader
ignores a ``type`` it does not know. Imports nothing.
"""

from __future__ import annotations

from typing import Final

__all__ = ["CAPTURE", "DRILL", "EXCHANGE", "GOLDEN", "OWNERSHIP", "ROLLUP", "SCHEMA_VERSION"]

SCHEMA_VERSION: Final = 1
"""The ``v`` of every record."""

EXCHANGE: Final = "exchange"
"""One compared exchange (``sinks.records.exchange_record``)."""
ROLLUP: Final = "rollup"
"""Per-route counters and latency histograms over one interval (``sinks.rollup``)."""
OWNERSHIP: Final = "ownership"
"""One change of a route's owner (``cutover.state.Change.record``)."""
DRILL: Final = "drill"
"""The result of a ``shadow drill`` (the admin API's ``POST /cutover/drill``)."""
CAPTURE: Final = "capture"
"""One captured request, redacted, for ``shadow replay`` (``sinks.capture``); in capture files."""
GOLDEN: Final = "golden"
"""One request and legacy's recorded answer (``replay.golden``); in golden files."""

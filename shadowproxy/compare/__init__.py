"""The comparison engine: pure, synchronous, deterministic.

``Comparator().compare(exchange, rules)`` turns one ``model.Exchange`` into one
``model.Verdict``. ``decode`` is the Content-Encoding decoder used for
comparison. Private modules, each owning one step:

- ``rules``: the frozen rules a comparison runs under;
- ``decode``: Content-Encoding, bounded;
- ``media``: Content-Type and body kind;
- ``headers``: which headers are compared, header kinds;
- ``body``: JSON / text / bytes bodies, ``parse`` and ``body`` kinds;
- ``parse``: JSON parsing, exact integers, the one nesting limit (``MAX_DEPTH``);
- ``window``: the textual shortcut (two texts that differ in one number);
- ``tree``: JSON documents, flattened by JSONPath;
- ``fields``: the field rules (whitespace, JSON in strings, maps, added fields);
- ``found``: differences before classification, and their cap;
- ``equivalence``: cross-runtime equal spellings;
- ``paths``: JSONPath formatting and patterns;
- ``timing``: the latency rule;
- ``noise``: ignore rules, secondary noise, learned noise;
- ``classify``: kind to class;
- ``events``: streams, two windows of events compared event by event;
- ``patches``: the documents JSON Patch streams build;
- ``engine``: the order of work and the verdict.

The core imports only the standard library, msgspec, orjson, brotli, zstandard
and ``shadowproxy.model``: no asyncio, no sockets, no file I/O.
"""

from shadowproxy.compare import decode
from shadowproxy.compare.classify import KIND_CLASS
from shadowproxy.compare.engine import MAX_DIFFERENCES, Comparator, validate_rules
from shadowproxy.compare.found import EQUIVALENCE_NAMES
from shadowproxy.compare.headers import NEVER_COMPARED
from shadowproxy.compare.noise import NoiseLearner
from shadowproxy.compare.rules import (
    CompareRules,
    Equivalences,
    NoiseRules,
    TimingRules,
    Tolerance,
)

__all__ = [
    "EQUIVALENCE_NAMES",
    "KIND_CLASS",
    "MAX_DIFFERENCES",
    "NEVER_COMPARED",
    "Comparator",
    "CompareRules",
    "Equivalences",
    "NoiseLearner",
    "NoiseRules",
    "TimingRules",
    "Tolerance",
    "decode",
    "validate_rules",
]

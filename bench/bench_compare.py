"""Benchmark of the comparison engine (a script, not a test).

Run from the repository root::

    PYTHONPATH=. python bench/bench_compare.py

Prints one line per scenario and writes ``bench/results/compare.json``. Each
figure is the median over several rounds of the mean time per ``compare`` call,
so one noisy round on a shared machine does not move it.
"""

from __future__ import annotations

import itertools
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import orjson

from shadowproxy.compare import Comparator, CompareRules
from shadowproxy.compare.recall import MAX_ENTRIES
from shadowproxy.model import Exchange, Observation, RequestFacts

__all__ = ["main"]

_RESULTS = Path(__file__).resolve().parent / "results" / "compare.json"
_REQUEST = RequestFacts("bench", "GET", "/orders", "", "/orders", "orders", 0.0)
_HEADERS = (
    ("Content-Type", "application/json"),
    ("Cache-Control", "no-store"),
    ("X-Request-Id", "abc"),
    ("Content-Length", "0"),
)


def _document(size: int, price: float) -> dict[str, object]:
    items: list[dict[str, object]] = []
    doc: dict[str, object] = {"order": 42, "currency": "EUR", "items": items}
    index = 0
    while len(orjson.dumps(doc)) < size:
        items.append(
            {
                "id": index,
                "sku": f"SKU-{index:06d}",
                "name": f"Item number {index} with a longer description",
                "price": price if index == 57 else 9.99 + index,
                "tags": ["a", "b", "c"],
                "available": index % 3 != 0,
            }
        )
        index += 1
    return doc


def _observation(body: bytes, server: str = "legacy") -> Observation:
    # Date and Server differ between the sides, as they do in production.
    headers = (
        *_HEADERS,
        ("Server", server),
        ("Date", f"Mon, 23 Nov 2026 13:40:0{len(server)} GMT"),
    )
    return Observation(200, headers, body, 0.003, len(body))


def _time(call: Callable[[], object], seconds: float = 0.4, rounds: int = 5) -> float:
    """Median over ``rounds`` of the mean seconds per call."""
    loops = 1
    while True:
        start = time.perf_counter()
        for _ in range(loops):
            call()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds / rounds:
            break
        loops *= 2
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(loops):
            call()
        samples.append((time.perf_counter() - start) / loops)
    return statistics.median(samples)


def _varying(legacy_doc: bytes, option: int | None = None) -> Callable[[], Exchange]:
    """Exchanges whose candidate's price differs from one call to the next, more of them
    than the comparator remembers (``recall.MAX_ENTRIES``): each is parsed, never recalled."""
    exchanges = [
        Exchange(
            _REQUEST,
            _observation(legacy_doc),
            _observation(orjson.dumps(_document(50_000, 2.0 + cents / 100), option=option)),
        )
        for cents in range(2 * MAX_ENTRIES)
    ]
    turn = itertools.cycle(exchanges)
    return lambda: next(turn)


def main() -> int:
    """Run every scenario, print the figures and write the results file."""
    comparator = Comparator()
    rules = CompareRules()
    small = orjson.dumps({"id": 42, "status": "shipped", "total": 10.5})
    identical = Exchange(_REQUEST, _observation(small), _observation(small, "candidate"))
    legacy_doc = orjson.dumps(_document(50_000, 1.0))
    candidate_doc = orjson.dumps(_document(50_000, 2.0))
    one_field = Exchange(
        _REQUEST, _observation(legacy_doc), _observation(candidate_doc, "candidate")
    )
    one_field_varying = _varying(legacy_doc)
    # A rewrite whose serialiser orders keys differently: no textual shortcut applies.
    reordered = Exchange(
        _REQUEST,
        _observation(legacy_doc),
        _observation(
            orjson.dumps(_document(50_000, 2.0), option=orjson.OPT_SORT_KEYS), "candidate"
        ),
    )
    reordered_varying = _varying(legacy_doc, orjson.OPT_SORT_KEYS)
    # Every element differs: the difference cap and the bounded order check.
    shifted = Exchange(
        _REQUEST,
        _observation(orjson.dumps(list(range(140_000)))),
        _observation(orjson.dumps(list(range(1, 140_001))), "candidate"),
    )
    for exchange in (one_field, reordered):
        verdict = comparator.compare(exchange, rules)
        assert [d.path for d in verdict.differences] == ["$.items[57].price"], verdict
    assert comparator.compare(identical, rules).differences == ()
    assert comparator.compare(shifted, rules).note == "differences truncated at 1000"

    figures = {
        "identical_small_pair_us": _time(lambda: comparator.compare(identical, rules)) * 1e6,
        # The field varies per call: what every parse costs, the cache cannot hide it.
        "json_50kb_one_field_ms": _time(lambda: comparator.compare(one_field_varying(), rules))
        * 1e3,
        "json_50kb_one_field_keys_reordered_ms": _time(
            lambda: comparator.compare(reordered_varying(), rules)
        )
        * 1e3,
        # One document served to many: the pair's body differences are recalled.
        "json_50kb_one_field_repeated_ms": _time(lambda: comparator.compare(one_field, rules))
        * 1e3,
        "json_1mb_array_shifted_ms": _time(lambda: comparator.compare(shifted, rules)) * 1e3,
        "orjson_parse_50kb_x2_ms": _time(
            lambda: (orjson.loads(legacy_doc), orjson.loads(candidate_doc))
        )
        * 1e3,
    }
    # The machine-independent figure: how much the comparison adds to the two parses.
    figures["json_50kb_over_bare_parse_ratio"] = (
        figures["json_50kb_one_field_ms"] / figures["orjson_parse_50kb_x2_ms"]
    )
    result = {
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "body_bytes": len(legacy_doc),
        "figures": {name: round(value, 3) for name, value in figures.items()},
        "budgets": {"identical_small_pair_us": 5.0, "json_50kb_one_field_ms": 0.5},
    }
    for name, value in result["figures"].items():  # type: ignore[attr-defined]
        print(f"{name:40} {value:10.3f}")
    _RESULTS.parent.mkdir(parents=True, exist_ok=True)
    _RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

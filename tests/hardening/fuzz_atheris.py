"""Coverage-guided fuzzing (atheris) of the comparator, the header filter and the redactor.

Not part of the test suite (pytest does not collect it, atheris is optional).
Run a short session from the repository root:

    pip install atheris
    PYTHONPATH=. python tests/hardening/fuzz_atheris.py -max_total_time=60

Any exception escaping one of the three entry points, or a broken invariant
(hop-by-hop header forwarded, redaction not idempotent, planted secret
surviving, verdict classes inconsistent), is a crash that libFuzzer reports
with the input that caused it.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    import orjson

    from shadowproxy.compare import Comparator, CompareRules
    from shadowproxy.http.headers import HOP_BY_HOP, request_headers, response_headers
    from shadowproxy.model import Exchange, Observation, RequestFacts
    from shadowproxy.settings import EvidenceSettings, RedactSettings
    from shadowproxy.sinks.records import exchange_record
    from shadowproxy.sinks.redact import Redactor

__all__ = ["main"]

_REQUEST = RequestFacts("fuzz", "GET", "/fuzz", "", "/fuzz", "default", 1_700_000_000.0)
_RULES = CompareRules(headers=("x-a", "etag"), max_decoded_bytes=1 << 16)
_REDACTOR = Redactor(RedactSettings(body_paths=("$..password", "$.user.ssn")))
_SECRET = "QZSECRET9F2K7"
_NAMES = ["Content-Type", "Content-Encoding", "Connection", "X-A", "TE", "Via", "Set-Cookie"]


def _headers(fdp: atheris.FuzzedDataProvider) -> list[tuple[str, str]]:
    pairs = []
    for _ in range(fdp.ConsumeIntInRange(0, 6)):
        name = fdp.PickValueInList(_NAMES) if fdp.ConsumeBool() else fdp.ConsumeUnicode(6)
        pairs.append((name, fdp.ConsumeUnicode(12)))
    return pairs


def _observation(fdp: atheris.FuzzedDataProvider) -> Observation:
    body = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 256))
    return Observation(
        status=fdp.ConsumeIntInRange(100, 599),
        headers=tuple(_headers(fdp)),
        body=body,
        elapsed_s=fdp.ConsumeFloatInRange(0.0, 10.0),
        body_size=len(body),
    )


def one_input(data: bytes) -> None:
    """One libFuzzer iteration over all three targets."""
    fdp = atheris.FuzzedDataProvider(data)
    exchange = Exchange(_REQUEST, _observation(fdp), _observation(fdp))
    verdict = Comparator().compare(exchange, _RULES)
    assert verdict.classes == {d.cls for d in verdict.differences if not d.noise}
    orjson.dumps(exchange_record(exchange, verdict, _REDACTOR, EvidenceSettings()))

    headers = _headers(fdp)
    named = {
        t.strip().lower()
        for n, v in headers
        if n.lower() == "connection"
        for t in v.split(",")
        if t.strip()
    }
    hop = (set(HOP_BY_HOP) | named) - {"via", "x-forwarded-for", "x-forwarded-proto"}
    out = request_headers(headers, client_ip="127.0.0.1", scheme="http", host=None, via="p")
    assert not {n.lower() for n, _ in out} & hop - {"x-forwarded-host", "host"}
    assert not {n.lower() for n, _ in response_headers(headers, "p", 200)} & hop

    text = fdp.ConsumeUnicodeNoSurrogates(64)
    assert _REDACTOR.text(_REDACTOR.text(text)) == _REDACTOR.text(text)
    planted = _REDACTOR.text(f"{text} Authorization: Bearer {_SECRET}\n")
    assert _SECRET not in planted


def main() -> None:
    """Run libFuzzer with the command-line arguments (``-max_total_time=60`` and so on)."""
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()

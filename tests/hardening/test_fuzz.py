"""Property fuzzing of the pure pieces hostile traffic reaches: comparator, header filter, redactor.

tests/compare/test_compare_properties.py and tests/proxy/test_headers.py hold
the well-formed properties; these feed malformed and adversarial values (any
bytes, any header casing, broken encodings, planted secrets) and check that
nothing raises and the invariants still hold.
"""

from __future__ import annotations

import gzip
import json
import os
import zlib

import brotli
import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shadowproxy.compare import Comparator, CompareRules, Tolerance
from shadowproxy.http.headers import HOP_BY_HOP, request_headers, response_headers
from shadowproxy.model import (
    DiffClass,
    Difference,
    ErrorKind,
    Exchange,
    Observation,
    Outcome,
    RequestFacts,
)
from shadowproxy.settings import EvidenceSettings, RedactSettings
from shadowproxy.sinks.records import exchange_record
from shadowproxy.sinks.redact import Redactor, is_marker

EXAMPLES = int(os.environ.get("SHADOW_FUZZ_EXAMPLES", "60"))
"""Examples per property; CI keeps the default, a hunt sets thousands (docs/hardening.md)."""
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- comparator -----------------------------------------------------------------------------

CONTENT_TYPES = st.sampled_from(
    [
        "application/json",
        "application/json; charset=utf-8",
        "application/problem+json",
        "text/plain; charset=latin-1",
        "text/html; charset=no-such-codec",
        "application/octet-stream",
        "",
        ";;;=",
        "application/json; charset=\xff",
    ]
)
ENCODINGS = st.sampled_from(
    ["gzip", "x-gzip", "deflate", "br", "zstd", "identity", "gzip, br", "bogus", "", " , "]
)
LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
DOCUMENTS = st.recursive(
    LEAVES,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=15,
)


@st.composite
def bodies(draw: st.DrawFn) -> tuple[bytes, str | None]:
    """A body and the Content-Encoding it claims (which may be a lie)."""
    raw = draw(
        st.binary(max_size=64)
        | DOCUMENTS.map(lambda doc: json.dumps(doc).encode())
        | st.text(max_size=32).map(lambda t: t.encode("utf-8", "surrogatepass"))
    )
    codec = draw(st.sampled_from(["none", "gzip", "deflate", "br", "cut-gzip", "claim"]))
    if codec == "gzip":
        return gzip.compress(raw), "gzip"
    if codec == "deflate":
        return zlib.compress(raw), "deflate"
    if codec == "br":
        return brotli.compress(raw), "br"
    if codec == "cut-gzip":
        return gzip.compress(raw)[: max(1, len(raw) // 2)], "gzip"
    if codec == "claim":
        return raw, draw(ENCODINGS)
    return raw, None


HEADER_NAMES = st.sampled_from(
    ["X-A", "x-a", "ETag", "Cache-Control", "Set-Cookie", "Date"]
) | st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=126, exclude_characters=":"),
    min_size=1,
    max_size=8,
)
HEADER_VALUES = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=255), max_size=16)


@st.composite
def observations(draw: st.DrawFn) -> Observation:
    """Any observation a broken upstream could produce, including failures."""
    error = draw(st.none() | st.sampled_from(list(ErrorKind)))
    elapsed = draw(st.floats(min_value=0, max_value=60, allow_nan=False))
    if error is not None and draw(st.booleans()):
        return Observation.failed(error, elapsed)
    body, encoding = draw(bodies())
    headers = draw(st.lists(st.tuples(HEADER_NAMES, HEADER_VALUES), max_size=4))
    content_type = draw(CONTENT_TYPES)
    if content_type:
        headers.insert(0, ("Content-Type", content_type))
    if encoding is not None:
        headers.append(("Content-Encoding", encoding))
    truncated = draw(st.booleans()) and draw(st.booleans())
    return Observation(
        status=draw(st.integers(min_value=100, max_value=599)),
        headers=tuple(headers),
        body=body,
        elapsed_s=elapsed,
        body_size=len(body) + (100 if truncated else 0),
        truncated=truncated,
        error=error,
    )


RULES = st.builds(
    CompareRules,
    ignore=st.lists(
        st.sampled_from(["$.a", "$..id", "$.items[*].at", "etag", "$[0]"]), max_size=2
    ).map(tuple),
    unordered=st.lists(st.sampled_from(["$", "$.items", "$..tags"]), max_size=2).map(tuple),
    tolerance=st.builds(
        Tolerance,
        absolute=st.floats(min_value=0, max_value=1),
        relative=st.floats(min_value=0, max_value=0.5),
    ),
    headers=st.lists(
        st.sampled_from(["x-a", "etag", "set-cookie", "cache-control"]), max_size=3
    ).map(tuple),
    max_decoded_bytes=st.integers(min_value=1, max_value=4096),
)
REQUEST = RequestFacts("fuzz", "GET", "/fuzz", "", "/fuzz", "default", 1_700_000_000.0)


def _check_verdict_shape(
    outcome: Outcome, classes: frozenset[DiffClass], diffs: tuple[Difference, ...]
) -> None:
    assert classes == {d.cls for d in diffs if not d.noise}
    if outcome is Outcome.DIVERGED:
        assert classes
    elif outcome is Outcome.NOISE:
        assert diffs and not classes
    elif outcome is Outcome.MATCH:
        assert not classes and not diffs


class TestComparatorFuzz:
    """Comparator.compare on anything: never raises, verdicts are well formed and recordable."""

    @FUZZ
    @given(observations(), observations(), st.none() | observations(), RULES)
    def test_never_raises_and_verdict_is_well_formed(
        self,
        legacy: Observation,
        candidate: Observation,
        secondary: Observation | None,
        rules: CompareRules,
    ) -> None:
        """Any pair gives a verdict whose classes are exactly its non-noise differences' classes."""
        exchange = Exchange(REQUEST, legacy, candidate, secondary)
        verdict = Comparator().compare(exchange, rules)
        _check_verdict_shape(verdict.outcome, verdict.classes, verdict.differences)
        if verdict.outcome is Outcome.ERROR:
            assert verdict.note
            assert not verdict.differences
        again = Comparator().compare(exchange, rules)
        assert again == verdict, "deterministic"

    @FUZZ
    @given(observations(), observations(), RULES)
    def test_every_verdict_becomes_a_valid_jsonl_line(
        self, legacy: Observation, candidate: Observation, rules: CompareRules
    ) -> None:
        """Whatever the bytes, the exchange record serialises to strict UTF-8 JSON."""
        exchange = Exchange(REQUEST, legacy, candidate)
        verdict = Comparator().compare(exchange, rules)
        record = exchange_record(exchange, verdict, Redactor(RedactSettings()), EvidenceSettings())
        line = orjson.dumps(record)
        assert json.loads(line.decode("utf-8", errors="strict"))["verdict"] == str(verdict.outcome)

    @FUZZ
    @given(observations(), RULES)
    def test_an_answer_matches_itself(self, observation: Observation, rules: CompareRules) -> None:
        """A complete answer compared with itself is a match, however odd its content."""
        if observation.error is not None or observation.truncated:
            return
        verdict = Comparator().compare(Exchange(REQUEST, observation, observation), rules)
        assert verdict.outcome is Outcome.MATCH


# --- header filter --------------------------------------------------------------------------

NAMES = st.sampled_from(
    [
        *sorted(HOP_BY_HOP),
        "Content-Type",
        "Set-Cookie",
        "X-A",
        "Via",
        "Host",
        "Content-Length",
        "X-Forwarded-For",
        "Cookie",
        "X-Shadow-Request",
        "X-Shadow-Probe",
    ]
).flatmap(
    # Any casing: header names are case-insensitive on the wire.
    lambda name: st.lists(st.booleans(), min_size=len(name), max_size=len(name)).map(
        lambda upper: "".join(
            c.upper() if u else c.lower() for c, u in zip(name, upper, strict=True)
        )
    )
)
TOKENS = st.lists(NAMES | st.just("") | st.just(" "), max_size=4).map(", ".join)
HEADERS = st.lists(
    st.tuples(NAMES, HEADER_VALUES) | st.tuples(st.just("Connection"), TOKENS), max_size=12
)
_ADDED = {"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "via", "host"}


def _hop(headers: list[tuple[str, str]]) -> set[str]:
    named = {
        token.strip().lower()
        for name, value in headers
        if name.lower() == "connection"
        for token in value.split(",")
        if token.strip()
    }
    return set(HOP_BY_HOP) | named


class TestHeaderFilterFuzz:
    """request_headers and response_headers on adversarial header lists."""

    @FUZZ
    @given(HEADERS, st.sampled_from(["", "127.0.0.1", "::1"]), st.none() | st.just("shop"))
    def test_request_headers(
        self, headers: list[tuple[str, str]], client_ip: str, host: str | None
    ) -> None:
        """No hop-by-hop, framing or X-Shadow-* header; other end-to-end headers unchanged
        and in order."""
        out = request_headers(headers, client_ip=client_ip, scheme="http", host=host, via="1.1 p")
        names = [name.lower() for name, _ in out]
        # The proxy's own Via and X-Forwarded-* are added after filtering, whatever Connection says.
        assert not (set(names) - _ADDED) & _hop(headers)
        assert "content-length" not in names
        assert not [name for name in names if name.startswith("x-shadow-")]
        assert names.count("via") == 1
        assert out[-1] == ("Via", out[-1][1]) and out[-1][1].endswith("1.1 p")
        hop = _hop(headers)
        expected = [
            (n, v)
            for n, v in headers
            if n.lower() not in hop
            and n.lower() not in _ADDED
            and n.lower() != "content-length"
            and not n.lower().startswith("x-shadow-")
        ]
        assert [(n, v) for n, v in out if n.lower() not in _ADDED] == expected
        if client_ip:
            chain = [v for n, v in out if n.lower() == "x-forwarded-for"]
            assert chain and chain[0].endswith(client_ip)

    @FUZZ
    @given(HEADERS, st.sampled_from([200, 204, 304]))
    def test_response_headers(self, headers: list[tuple[str, str]], status: int) -> None:
        """Hop-by-hop never reaches the client, nor framing on a 204 or 304; the Set-Cookie
        multiset is kept unless hop-named."""
        out = response_headers(headers, "1.1 p", status)
        hop = _hop(headers)
        if status != 200:
            hop.add("content-length")
        assert not ({n.lower() for n, _ in out} - {"via"}) & hop
        assert [p for p in out if p[0].lower() != "via"] == [
            p for p in headers if p[0].lower() not in {"via", *hop}
        ]
        if "set-cookie" not in hop:
            cookies = sorted(v for n, v in headers if n.lower() == "set-cookie")
            assert sorted(v for n, v in out if n.lower() == "set-cookie") == cookies


# --- redactor -------------------------------------------------------------------------------

SECRETS = st.text(alphabet="ABCDEFGHJKMNPQRSTUVWXYZ23456789", min_size=10, max_size=16).map(
    lambda s: "QZ" + s
)
"""Planted secrets: an alphabet and prefix the surrounding noise never produces."""
NOISE = st.text(alphabet="abcdefghij klmnop.,;-_/", max_size=20)
REDACT_SETTINGS = st.builds(
    RedactSettings,
    headers=st.lists(st.sampled_from(["x-session-id", "x-tenant"]), max_size=2).map(tuple),
    body_paths=st.lists(
        st.sampled_from(["$.user.ssn", "$..password", "$.cards[*].pan"]), max_size=3
    ).map(tuple),
    query_params=st.lists(st.sampled_from(["code", "state"]), max_size=2).map(tuple),
    hash_key=st.none() | st.binary(min_size=1, max_size=8),
)
JSON_LIKE = st.recursive(
    st.none() | st.booleans() | st.integers() | NOISE,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(NOISE, inner, max_size=3),
    max_leaves=10,
)


class TestRedactorFuzz:
    """Redaction is idempotent on anything, and planted secrets never survive it."""

    @FUZZ
    @given(
        REDACT_SETTINGS,
        st.lists(
            st.tuples(HEADER_NAMES | st.sampled_from(["Authorization", "x-tenant"]), HEADER_VALUES)
        ),
        st.text(max_size=40),
        st.dictionaries(
            NOISE | st.sampled_from(["token", "password", "Cookie"]), JSON_LIKE, max_size=4
        ),
    )
    def test_idempotent(
        self,
        config: RedactSettings,
        headers: list[tuple[str, str]],
        text: str,
        mapping: dict[str, object],
    ) -> None:
        """Redacting a redacted value changes nothing, for every entry point."""
        redactor = Redactor(config)
        once = redactor.headers(tuple(headers))
        assert redactor.headers(once) == once
        assert redactor.text(redactor.text(text)) == redactor.text(text)
        assert redactor.query(redactor.query(text)) == redactor.query(text)
        assert redactor.mapping(redactor.mapping(mapping)) == redactor.mapping(mapping)

    @FUZZ
    @given(REDACT_SETTINGS, SECRETS, NOISE, NOISE, JSON_LIKE)
    def test_planted_secrets_never_survive(
        self, config: RedactSettings, secret: str, before: str, after: str, filler: object
    ) -> None:
        """A secret in a header, query, log text, mapping or body path is gone after redaction."""
        redactor = Redactor(config)
        outputs: list[object] = [
            redactor.headers((("Authorization", f"Bearer {secret}"), ("X-A", before))),
            redactor.headers((("cookie", f"sid={secret}"),)),
            redactor.query(f"a={before}&api_key={secret}&b={after}"),
            redactor.query(f"SessionID={secret}"),
            redactor.text(f"{before} Authorization: Bearer {secret}\n{after}"),
            redactor.text(f"{before} GET /x?access_token={secret}&page=2 {after}"),
            redactor.mapping({"note": before, "password": secret, "deep": [{"X-Api-Key": secret}]}),
            redactor.mapping({"filler": filler, "headers": [["authorization", secret]]}),
            redactor.difference(Difference(DiffClass.SEMANTIC, "value", "set-cookie", secret, "x")),
        ]
        for path in config.body_paths:
            concrete = path.replace("$..", "$.").replace("[*]", "[0]")
            outputs.append(
                redactor.difference(
                    Difference(DiffClass.SEMANTIC, "value", concrete, secret, secret)
                )
            )
        dumped = repr(outputs)
        assert secret not in dumped
        assert any(is_marker(value) for value in _strings(outputs))


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, list | tuple):
        return [s for item in value for s in _strings(item)]
    if isinstance(value, Difference):
        return _strings([value.legacy, value.candidate])
    return []

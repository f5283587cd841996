"""Redaction of headers, query strings, difference values and free-form data."""

from __future__ import annotations

import pytest

from shadowproxy.model import DiffClass, Difference
from shadowproxy.settings import RedactSettings
from shadowproxy.sinks.redact import REDACTED, Redactor, RedactSettingsError, is_marker
from shadowproxy.sinks.secrets import known_secrets


def diff(path: str, legacy: object, candidate: object = None) -> Difference:
    """A semantic value difference at ``path``."""
    return Difference(DiffClass.SEMANTIC, "value", path, legacy=legacy, candidate=candidate)


class TestHeaders:
    def test_builtin_secret_headers_are_redacted(self) -> None:
        """Authorization, Cookie and friends lose their values whatever their case."""
        r = Redactor(RedactSettings())
        out = r.headers((("Authorization", "Bearer s3cret"), ("COOKIE", "a=b"), ("Accept", "*/*")))
        assert out == (("Authorization", REDACTED), ("COOKIE", REDACTED), ("Accept", "*/*"))

    def test_configured_headers_are_redacted(self) -> None:
        """``redact.headers`` extends the built-in list."""
        r = Redactor(RedactSettings(headers=("x-internal-token",)))
        assert r.is_secret_header("X-Internal-Token")
        assert not r.is_secret_header("x-request-id")

    def test_difference_on_secret_header_is_redacted(self) -> None:
        """A difference whose path is a secret header name keeps no value."""
        out = Redactor(RedactSettings()).difference(diff("set-cookie", "sid=1", "sid=2"))
        assert (out.legacy, out.candidate) == (REDACTED, REDACTED)


class TestQuery:
    @pytest.mark.parametrize(
        "name",
        ["token", "API_KEY", "client_secret", "password", "passwd", "sig", "Auth", "sessionid"],
    )
    def test_secret_words_are_redacted(self, name: str) -> None:
        """Parameters whose name contains a secret word lose their value."""
        assert Redactor(RedactSettings()).query(f"a=1&{name}=hunter2") == f"a=1&{name}={REDACTED}"

    def test_configured_params_are_redacted(self) -> None:
        """``redact.query_params`` names are redacted exactly (case-insensitive)."""
        assert Redactor(RedactSettings(query_params=("Email",))).query("email=a%40b&x=1") == (
            f"email={REDACTED}&x=1"
        )

    def test_ordinary_params_and_flags_stay(self) -> None:
        """Other parameters and valueless flags are kept as written."""
        assert Redactor(RedactSettings()).query("page=2&token&q=a+b") == "page=2&token&q=a+b"


class TestBodyPaths:
    def test_matching_path_is_redacted(self) -> None:
        """A difference at a configured path loses both values."""
        r = Redactor(RedactSettings(body_paths=("$.user.ssn",)))
        out = r.difference(diff("$.user.ssn", "123", "456"))
        assert (out.legacy, out.candidate) == (REDACTED, REDACTED)

    def test_wildcards_and_descent_match(self) -> None:
        """``[*]`` and ``..`` patterns match concrete indices and any depth."""
        r = Redactor(RedactSettings(body_paths=("$.items[*].card", "$..password")))
        assert r.difference(diff("$.items[7].card", "4111")).legacy == REDACTED
        assert r.difference(diff("$.a.b.password", "pw")).legacy == REDACTED

    def test_path_below_a_redacted_node_is_redacted(self) -> None:
        """A difference inside a redacted subtree is redacted too."""
        r = Redactor(RedactSettings(body_paths=("$.card",)))
        assert r.difference(diff("$.card.number", "4111")).legacy == REDACTED

    def test_subtree_value_containing_the_path_is_redacted_inside(self) -> None:
        """A whole-subtree value keeps its shape with the secret node replaced."""
        r = Redactor(RedactSettings(body_paths=("$..password",)))
        out = r.difference(diff("$", {"user": {"password": "hunter2", "name": "ann"}}, [1]))
        assert out.legacy == {"user": {"password": REDACTED, "name": "ann"}}
        assert out.candidate == [1]

    def test_missing_side_stays_missing(self) -> None:
        """A None side (field absent) is not turned into a marker."""
        r = Redactor(RedactSettings(body_paths=("$.pin",)))
        assert r.difference(diff("$.pin", None, "1234")).legacy is None

    def test_malformed_pattern_is_rejected(self) -> None:
        """A body path that is not JSONPath fails at construction."""
        with pytest.raises(ValueError, match="JSONPath"):
            Redactor(RedactSettings(body_paths=("user.ssn",)))


class TestHashing:
    def test_hash_key_keeps_equality_visible(self) -> None:
        """With a key, equal secrets give equal markers and different ones differ."""
        r = Redactor(RedactSettings(hash_key=b"k", body_paths=("$.t",)))
        same = r.difference(diff("$.t", "abc", "abc"))
        other = r.difference(diff("$.t", "abc", "abd"))
        assert same.legacy == same.candidate != other.candidate
        assert isinstance(same.legacy, str) and same.legacy.startswith("hmac-sha256:")
        assert len(same.legacy) == len("hmac-sha256:") + 16

    def test_hash_depends_on_key(self) -> None:
        """Another key gives another marker (no dictionary attack without the key)."""
        a = Redactor(RedactSettings(hash_key=b"a")).marker("secret")
        b = Redactor(RedactSettings(hash_key=b"b")).marker("secret")
        assert a != b


class TestIdempotence:
    @pytest.mark.parametrize("key", [None, b"k"])
    def test_redacting_twice_changes_nothing(self, key: bytes | None) -> None:
        """Query, difference and free text are fixed points after one redaction."""
        r = Redactor(RedactSettings(hash_key=key, body_paths=("$..pw",)))
        q = r.query("token=abc&x=1")
        assert r.query(q) == q
        d = r.difference(diff("$", {"pw": "x", "n": 1}, "cookie"))
        assert r.difference(d) == d
        t = r.text("Authorization: Bearer abcdefghijk token=zzz")
        assert r.text(t) == t
        assert is_marker(r.marker("v")) and r.marker(r.marker("v")) == r.marker("v")


class TestFreeForm:
    def test_mapping_scrubs_secret_keys_recursively(self) -> None:
        """Keys that look secret lose their values at any depth; others stay."""
        out = Redactor(RedactSettings()).mapping(
            {"route": "/a", "nested": {"api_key": "k1", "set_cookie": "c"}, "token": None}
        )
        assert out == {
            "route": "/a",
            "nested": {"api_key": REDACTED, "set_cookie": REDACTED},
            "token": None,
        }

    def test_header_pairs_in_lists_are_scrubbed(self) -> None:
        """A header list of (name, value) pairs loses its secret values."""
        out = Redactor(RedactSettings()).mapping(
            {"headers": [("Authorization", "Basic dXNlcjpwYXNz")]}
        )
        assert out == {"headers": [["Authorization", REDACTED]]}

    def test_text_scrubs_credentials(self) -> None:
        """Bearer tokens, header lines and secret query parameters vanish from text."""
        text = Redactor(RedactSettings()).text(
            "GET /x?sig=abc123&page=2 failed; Bearer eyJhbGciOiJIUzI1NiJ9 cookie: sid=42"
        )
        for secret in ("abc123", "eyJhbGciOiJIUzI1NiJ9", "sid=42"):
            assert secret not in text
        assert "page=2" in text


class TestSecretKeys:
    def test_value_under_a_secret_key_is_redacted_on_both_sides(self) -> None:
        """``$.headers.Authorization`` and ``$.session.id`` lose both values by default."""
        r = Redactor(RedactSettings())
        for path in ("$.headers.Authorization", "$.session.id", "$.data.accessToken"):
            out = r.difference(diff(path, "tok-legacy", "tok-candidate"))
            assert (out.legacy, out.candidate) == (REDACTED, REDACTED), path

    def test_secret_keys_inside_a_subtree_whichever_side(self) -> None:
        """An echoed ``args`` object keeps its shape with secret keys' values replaced."""
        out = Redactor(RedactSettings()).difference(
            diff("$.args", {"api_key": "k-1", "page": "2"}, {"API-KEY": "k-2", "page": "3"})
        )
        assert out.legacy == {"api_key": REDACTED, "page": "2"}
        assert out.candidate == {"API-KEY": REDACTED, "page": "3"}

    def test_secret_response_headers(self) -> None:
        """Set-Cookie, configured and token-named response headers are redacted in differences."""
        r = Redactor(RedactSettings(headers=("x-internal",)))
        for name in ("set-cookie", "x-internal", "x-csrf-token"):
            assert r.difference(diff(name, "a-1", "b-2")).legacy == REDACTED, name
        assert r.difference(diff("x-cache", "HIT", "MISS")).legacy == "HIT"

    def test_json_encoded_string_side_is_redacted_inside(self) -> None:
        """A side that is a JSON document in a string has its body paths redacted too."""
        r = Redactor(RedactSettings(body_paths=("$.user.ssn",)))
        out = r.difference(
            Difference(DiffClass.STRUCTURAL, "type", "$.user", {"ssn": "1-2"}, '{"ssn": "1-2"}')
        )
        assert out.legacy == {"ssn": REDACTED}
        assert out.candidate == '{"ssn":"[REDACTED]"}'
        assert (out.cls, out.kind, out.path) == (DiffClass.STRUCTURAL, "type", "$.user")


class TestPatterns:
    JWT_TOKEN = (
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0TH"
    )

    def test_jwt_shaped_strings_anywhere(self) -> None:
        """A JWT in a value, a note-like text or a nested string is replaced."""
        r = Redactor(RedactSettings())
        out = r.difference(diff("$.msg", f"hello {self.JWT_TOKEN}!", [{"t": self.JWT_TOKEN}]))
        assert out.legacy == f"hello {REDACTED}!" and out.candidate == [{"t": REDACTED}]
        assert r.text("www.example.com and v1.2.3") == "www.example.com and v1.2.3"

    def test_configured_patterns(self) -> None:
        """``redact.patterns`` matches are replaced in any recorded string, markers kept."""
        r = Redactor(RedactSettings(patterns=(r"\d{3}-\d{2}-\d{4}", r"[0-9a-f]{16}")))
        assert r.text("ssn 123-45-6789 ok") == f"ssn {REDACTED} ok"
        keyed = Redactor(RedactSettings(patterns=(r"[0-9a-f]{16}",), hash_key=b"k"))
        once = keyed.text("id 0123456789abcdef")
        assert once.startswith("id hmac-sha256:") and keyed.text(once) == once

    @pytest.mark.parametrize("pattern", ["(", "a*"])
    def test_bad_patterns_are_rejected(self, pattern: str) -> None:
        """A pattern that is no regular expression, or matches nothing at all, is refused."""
        with pytest.raises(RedactSettingsError, match=r"regular expression|empty string") as err:
            Redactor(RedactSettings(patterns=(pattern,)))
        assert err.value.key == "patterns"


class TestRequestSecrets:
    def test_echoed_request_secrets_leave_every_value(self) -> None:
        """A request's secret, echoed raw, encoded or in base64 inside values, is replaced."""
        r = Redactor(RedactSettings())
        known = known_secrets(("CANARY-q-77",))
        out = r.difference(
            diff(
                "$.echo",
                {"url": "/me?x=CANARY-q-77", "b64": "Q0FOQVJZLXEtNzc=", "n": [b"CANARY-q-77"]},
                "seen CANARY%2Dq%2D77",
            ),
            known,
        )
        assert "CANARY" not in str(out) and "Q0FOQVJZLXEtNzc" not in str(out)
        assert out.path == "$.echo"

    def test_equal_secrets_stay_equal_and_different_ones_differ(self) -> None:
        """With a hash key the verdict's meaning survives: equal values, equal markers."""
        r = Redactor(RedactSettings(hash_key=b"k"))
        known = known_secrets(("tok-AAAA", "tok-BBBB"))
        same = r.difference(diff("$.t", "tok-AAAA", "tok-AAAA"), known)
        other = r.difference(diff("$.t", "tok-AAAA", "tok-BBBB"), known)
        assert same.legacy == same.candidate and other.legacy != other.candidate

    def test_path_segments_and_query_values(self) -> None:
        """A secret in a path segment or query value goes, short ones when whole."""
        r = Redactor(RedactSettings())
        known = known_secrets(("alice", "pw", "CANARY-pw-1"))
        assert r.path("/basic-auth/alice/pw", known) == f"/basic-auth/{REDACTED}/{REDACTED}"
        assert r.path("/x/CANARY%2Dpw%2D1/y", known) == f"/x/{REDACTED}/y"
        assert r.query("page=2&u=alice&v=pw", known) == f"page=2&u={REDACTED}&v={REDACTED}"

    def test_idempotent_with_request_secrets(self) -> None:
        """Scrubbing a scrubbed value again changes nothing, even for secrets inside markers."""
        r = Redactor(RedactSettings(hash_key=b"k"))
        known = known_secrets(("0123", "hmac"))
        once = r.difference(diff("$.a", "0123 hmac x", {"k": "0123"}), known)
        assert r.difference(once, known) == once

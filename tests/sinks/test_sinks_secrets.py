"""Secret names, a request's own secrets, and finding them again in recorded text."""

from __future__ import annotations

import base64
import html
from urllib.parse import quote, quote_plus

import orjson
import pytest

from shadowproxy.compare.paths import parse_pattern
from shadowproxy.settings import RedactSettings
from shadowproxy.sinks.names import SecretNames
from shadowproxy.sinks.redact import REDACTED
from shadowproxy.sinks.secrets import MAX_SECRETS, KnownSecrets, SecretFinder, mask_path


def names(**settings: tuple[str, ...]) -> SecretNames:
    """Secret names with ``redact`` settings."""
    return SecretNames(RedactSettings(**settings))


def finder(*body_paths: str, **settings: tuple[str, ...]) -> SecretFinder:
    """A finder with body paths and other ``redact`` settings."""
    return SecretFinder(names(**settings), [parse_pattern(p) for p in body_paths])


def mark(_: str) -> str:
    return REDACTED


class TestSecretNames:
    @pytest.mark.parametrize(
        "key",
        [
            "password",
            "Password",
            "PASSWD",
            "access_token",
            "accessToken",
            "refresh-token",
            "id_token",
            "client_secret",
            "clientSecret",
            "api_key",
            "apiKey",
            "APIKEY",
            "private_key",
            "session",
            "sig",
            "signature",
            "Set-Cookie",
            "x-auth-token",
            "user_password",
            "X-Api-Key",
            "Proxy-Authorization",
        ],
    )
    def test_secret_keys_match_case_insensitively_and_by_suffix(self, key: str) -> None:
        """Listed keys match in any case, camelCase or kebab-case, alone or as a suffix."""
        assert names().key(key)

    @pytest.mark.parametrize(
        "key", ["name", "total", "keyboard", "signup", "design", "sessions_count", "tokenizer"]
    )
    def test_ordinary_keys_do_not_match(self, key: str) -> None:
        """Keys that merely contain a secret word are kept (unlike query parameters)."""
        assert not names().key(key)

    def test_configured_keys_and_headers_are_keys(self) -> None:
        """``redact.keys`` and ``redact.headers`` name secret keys too."""
        configured = names(keys=("ssn",), headers=("x-internal",))
        assert configured.key("SSN") and configured.key("customer_ssn")
        assert configured.key("X-Internal") and configured.header("x-internal")

    @pytest.mark.parametrize("param", ["code", "jwt", "JWT", "access_token", "x-sig", "api%5Fkey"])
    def test_oauth_code_and_jwt_parameters_are_secret(self, param: str) -> None:
        """``code`` and ``jwt`` are secret query parameters besides the secret words."""
        assert names().param(param)

    def test_postcode_is_not_a_secret_parameter(self) -> None:
        """``code`` is matched as a whole name only."""
        assert not names().param("postcode") and not names().param("page")


class TestFinderInRequest:
    def test_bearer_credential(self) -> None:
        """A bearer token is a secret, with the whole credential."""
        found = finder().in_request([("Authorization", "Bearer tok-123456")], "")
        assert "tok-123456" in found

    def test_basic_credentials_encoded_and_decoded(self) -> None:
        """Basic gives the encoded credential, ``user:password``, the user and the password."""
        encoded = base64.b64encode(b"alice:s3cret pw").decode()
        found = finder().in_request([("Proxy-Authorization", f"Basic {encoded}")], "")
        assert {encoded, "alice:s3cret pw", "alice", "s3cret pw"} <= set(found)

    def test_digest_values(self) -> None:
        """Digest gives its username, response, nonces and opaque, not its uri or realm."""
        value = (
            'Digest username="alice", realm="api", nonce="n0nce-1", uri="/basic-auth/x",'
            ' response="6629fae4", cnonce="c-nonce", opaque=op4que, qop=auth'
        )
        found = set(finder().in_request([("Authorization", value)], ""))
        assert {"alice", "n0nce-1", "6629fae4", "c-nonce", "op4que"} <= found
        assert not {"/basic-auth/x", "api", "auth"} & found

    def test_cookies_secret_headers_and_query(self) -> None:
        """Cookie values, secret and configured headers and secret parameters are secrets."""
        found = finder(headers=("x-tenant",)).in_request(
            [
                ("Cookie", 'sid=abc123; theme="dark"'),
                ("X-Auth-Token", "xat-1"),
                ("X-Tenant", "t-9"),
                ("Accept", "text/html"),
            ],
            "page=2&api_key=k%2F1&code=oauth-code&q=shoes",
        )
        assert set(found) == {"abc123", "dark", "xat-1", "t-9", "k%2F1", "k/1", "oauth-code"}

    def test_bounded(self) -> None:
        """A request with thousands of cookies keeps at most ``MAX_SECRETS`` of them."""
        cookie = "; ".join(f"c{i}=v{i}" for i in range(5000))
        assert len(finder().in_request([("Cookie", cookie)], "")) == MAX_SECRETS


class TestFinderInBody:
    def test_json_body_paths_and_secret_keys(self) -> None:
        """Values at body paths and under secret keys, at any depth, are secrets."""
        body = orjson.dumps(
            {
                "user": {"ssn": "123-45", "name": "ann"},
                "auth": {"password": "pw-1", "otp": 424242},
                "items": [{"card": {"number": "4111"}}],
            }
        )
        found = finder("$.user.ssn", "$.items[*].card").in_body(body, "application/json")
        assert set(found) == {"123-45", "pw-1", "4111"}

    def test_form_body(self) -> None:
        """Form fields named like secrets, or matching a body path, are secrets."""
        body = b"username=ann&password=p%40ss&pin=1234&note=hi"
        found = finder("$.pin").in_body(body, "application/x-www-form-urlencoded; charset=utf-8")
        assert set(found) == {"p@ss", "1234"}

    def test_other_bodies_hold_none(self) -> None:
        """Binary, broken JSON and empty bodies give nothing (and never raise)."""
        assert finder("$.a").in_body(b"\xff\x00", "application/octet-stream") == ()
        assert finder("$.a").in_body(b'{"a": ', "application/json") == ()
        assert finder("$.a").in_body(b"", "application/json") == ()


class TestKnownSecrets:
    SECRET = "s3cr/et+val ue&"

    @pytest.mark.parametrize(
        "form",
        [
            SECRET,
            quote(SECRET, safe=""),
            quote(SECRET, safe="").lower(),
            quote(SECRET),
            quote_plus(SECRET),
            html.escape(SECRET),
            base64.b64encode(SECRET.encode()).decode(),
            base64.urlsafe_b64encode(SECRET.encode()).decode().rstrip("="),
        ],
    )
    def test_every_form_is_found_inside_longer_text(self, form: str) -> None:
        """Raw, percent-encoded, escaped and base64 forms are replaced inside text."""
        text = f"echo: <{form}> done"
        assert KnownSecrets((self.SECRET,)).scrub(text, mark) == f"echo: <{REDACTED}> done"

    def test_json_escaped_form(self) -> None:
        """A secret with quotes, as it appears inside a JSON string, is found."""
        secret = 'a"b\\c-long'
        text = orjson.dumps({"echo": secret}).decode()
        assert secret not in KnownSecrets((secret,)).scrub(text, mark).replace("\\", "")

    def test_cut_secret_at_the_end(self) -> None:
        """A value cut in the middle of a secret loses the secret's prefix too."""
        known = KnownSecrets(("CANARY-7f3a-long",))
        assert known.scrub("token was CANARY-7f", mark) == f"token was {REDACTED}"
        assert known.scrub("token was CAN", mark) == "token was CAN"

    def test_short_secrets_only_as_whole_values(self) -> None:
        """A secret shorter than four characters is replaced only when it is the whole value."""
        known = KnownSecrets(("en",))
        assert known.scrub("en", mark) == REDACTED
        assert known.scrub("often", mark) == "often"
        assert known.is_secret("en") and not known.is_secret("eng")

    def test_numbers_match_by_digits(self) -> None:
        """A numeric secret echoed as a JSON number is recognised."""
        known = KnownSecrets(("424242",))
        assert known.is_secret(424242) and not known.is_secret(True)


class TestMaskPath:
    def test_segments_holding_a_secret_are_masked(self) -> None:
        """Raw, percent-encoded and partial segments become ``{secret}``; others stay."""
        secrets = ("alice", "s3cret pw", "ab")
        assert mask_path("/basic-auth/alice/s3cret%20pw", secrets) == (
            "/basic-auth/{secret}/{secret}"
        )
        assert mask_path("/u/alice.json/ab/abc", secrets) == "/u/{secret}/{secret}/abc"

    def test_a_path_without_secrets_is_returned_as_is(self) -> None:
        """The common case costs one scan and changes nothing."""
        path = "/api/v1/orders/12345"
        assert mask_path(path, ("tok-123456", "dark")) is path

"""Content-Encoding decoding for comparison: every codec, the cap, corrupt streams."""

from __future__ import annotations

import gzip
import zlib

import brotli
import pytest
import zstandard

from shadowproxy.compare import Comparator, CompareRules, decode
from shadowproxy.model import ErrorKind, Outcome
from tests.compare.factories import make_exchange, make_observation

PAYLOAD = b'{"items": [' + b",".join(b'{"id": %d}' % i for i in range(500)) + b"]}"


def _raw_deflate(data: bytes) -> bytes:
    encoder = zlib.compressobj(wbits=-15)
    return encoder.compress(data) + encoder.flush()


ENCODERS = {
    "gzip": gzip.compress,
    "x-gzip": gzip.compress,
    "deflate": zlib.compress,
    "br": brotli.compress,
    "zstd": lambda data: zstandard.ZstdCompressor().compress(data),
}


class TestDecode:
    """``shadowproxy.compare.decode.decode``."""

    @pytest.mark.parametrize("coding", sorted(ENCODERS))
    def test_round_trip(self, coding: str) -> None:
        """Each supported coding decodes back to the original bytes."""
        result = decode.decode(ENCODERS[coding](PAYLOAD), coding, 1 << 20)
        assert (result.data, result.error) == (PAYLOAD, None)

    def test_raw_deflate_is_accepted(self) -> None:
        """A deflate body without the zlib wrapper still decodes."""
        assert decode.decode(_raw_deflate(PAYLOAD), "deflate", 1 << 20).data == PAYLOAD

    def test_stacked_codings_are_undone_in_reverse(self) -> None:
        """``br, gzip`` means gzip was applied last, so it is undone first."""
        body = gzip.compress(brotli.compress(PAYLOAD))
        assert decode.decode(body, "br, gzip", 1 << 20).data == PAYLOAD

    def test_concatenated_members_and_frames(self) -> None:
        """Several gzip members or zstd frames decode to their concatenation."""
        frame = zstandard.ZstdCompressor().compress(PAYLOAD)
        assert decode.decode(gzip.compress(b"a") + gzip.compress(b"b"), "gzip", 10).data == b"ab"
        assert decode.decode(frame + frame, "zstd", 1 << 20).data == PAYLOAD * 2

    @pytest.mark.parametrize("coding", ["gzip", "deflate", "br", "zstd"])
    def test_bomb_is_too_large_without_inflating(self, coding: str) -> None:
        """A body decoding beyond the cap ends as too_large, whatever the codec."""
        bomb = ENCODERS[coding](b"\0" * (64 << 20))
        result = decode.decode(bomb, coding, 1 << 20)
        assert (result.data, result.error) == (b"", ErrorKind.TOO_LARGE)

    def test_zstd_bomb_without_declared_size(self) -> None:
        """A zstd frame that hides its content size is bounded as well."""
        bomb = zstandard.ZstdCompressor(write_content_size=False).compress(b"\0" * (64 << 20))
        assert decode.decode(bomb, "zstd", 1 << 20).error is ErrorKind.TOO_LARGE

    def test_identity_beyond_cap_is_too_large(self) -> None:
        """The cap applies to unencoded bodies too."""
        assert decode.decode(b"x" * 11, None, 10).error is ErrorKind.TOO_LARGE

    @pytest.mark.parametrize("coding", ["gzip", "deflate", "br", "zstd"])
    def test_truncated_stream_is_a_decode_error(self, coding: str) -> None:
        """A stream cut short is a decode error, not a shorter body."""
        result = decode.decode(ENCODERS[coding](PAYLOAD)[:-8], coding, 1 << 20)
        assert result.error is ErrorKind.DECODE

    @pytest.mark.parametrize("coding", ["gzip", "br", "zstd", "compress"])
    def test_garbage_or_unknown_is_a_decode_error(self, coding: str) -> None:
        """Garbage input or an unsupported coding is a decode error with a reason."""
        result = decode.decode(b"definitely not compressed", coding, 1 << 20)
        assert result.error is ErrorKind.DECODE
        assert result.detail


class TestDecodeInComparison:
    """How decoding shapes a verdict."""

    def test_gzip_vs_identity_same_payload_matches(self) -> None:
        """The same payload, compressed on one side only, matches."""
        legacy = make_observation(body=PAYLOAD)
        candidate = make_observation(
            body=gzip.compress(PAYLOAD), headers={"Content-Encoding": "gzip"}
        )
        verdict = Comparator().compare(make_exchange(legacy, candidate), CompareRules())
        assert verdict.outcome is Outcome.MATCH

    def test_br_vs_deflate_same_payload_matches(self) -> None:
        """Different codings of the same payload match."""
        legacy = make_observation(body=brotli.compress(PAYLOAD), headers={"Content-Encoding": "br"})
        candidate = make_observation(
            body=zlib.compress(PAYLOAD), headers={"Content-Encoding": "deflate"}
        )
        verdict = Comparator().compare(make_exchange(legacy, candidate), CompareRules())
        assert verdict.outcome is Outcome.MATCH

    def test_candidate_bomb_is_an_error_verdict(self) -> None:
        """A candidate body decoding beyond max_decoded_bytes gives an error outcome."""
        bomb = gzip.compress(b"\0" * (16 << 20))
        candidate = make_observation(body=bomb, headers={"Content-Encoding": "gzip"})
        verdict = Comparator().compare(
            make_exchange(make_observation(body=b"{}"), candidate),
            CompareRules(max_decoded_bytes=1 << 20),
        )
        assert verdict.outcome is Outcome.ERROR
        assert verdict.differences == ()
        assert verdict.note is not None and verdict.note.startswith("too_large: candidate")

    def test_candidate_corrupt_encoding_is_an_error_verdict(self) -> None:
        """A corrupt candidate encoding gives an error outcome whose note starts with decode."""
        candidate = make_observation(body=b"nope", headers={"Content-Encoding": "br"})
        verdict = Comparator().compare(make_exchange(candidate=candidate), CompareRules())
        assert verdict.outcome is Outcome.ERROR
        assert verdict.note is not None and verdict.note.startswith("decode: candidate")

    def test_legacy_decode_failure_skips_the_body_only(self) -> None:
        """A legacy body that cannot be decoded is not compared, and the note says so."""
        legacy = make_observation(201, body=b"nope", headers={"Content-Encoding": "gzip"})
        verdict = Comparator().compare(
            make_exchange(legacy, make_observation(200, body={"a": 1})), CompareRules()
        )
        assert [d.kind for d in verdict.differences] == ["status"]
        assert verdict.note is not None and verdict.note.startswith(
            "legacy body not compared: decode"
        )

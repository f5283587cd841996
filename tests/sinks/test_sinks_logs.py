"""Operational logging: JSON lines, console output, request ids, secret scrubbing."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import orjson
import pytest
import structlog

from shadowproxy.sinks.logs import bind_request, configure_logging, unbind_request


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Put structlog and the root logger back as they were."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    """The JSON log lines written to ``stream``."""
    return [orjson.loads(line) for line in stream.getvalue().splitlines() if line]


class TestConfigureLogging:
    def test_json_lines_with_level_and_timestamp(self) -> None:
        """Each event is one JSON object with event, level and a UTC timestamp."""
        out = io.StringIO()
        configure_logging(level="info", stream=out)
        structlog.get_logger("t").info("started", port=8080)
        (line,) = lines(out)
        assert line["event"] == "started" and line["level"] == "info" and line["port"] == 8080
        assert str(line["timestamp"]).endswith("Z")

    def test_level_filters(self) -> None:
        """Events below the configured level are not written."""
        out = io.StringIO()
        configure_logging(level="warning", stream=out)
        structlog.get_logger("t").info("quiet")
        structlog.get_logger("t").warning("loud")
        assert [line["event"] for line in lines(out)] == ["loud"]

    def test_console_output_when_not_json(self) -> None:
        """``json=False`` gives readable console lines, not JSON."""
        out = io.StringIO()
        configure_logging(json=False, stream=out)
        structlog.get_logger("t").info("hello", who="you")
        text = out.getvalue()
        assert "hello" in text and "who" in text and not text.startswith("{")

    def test_unknown_level_is_rejected(self) -> None:
        """A misspelt level is a start-up error."""
        with pytest.raises(ValueError, match="verbose"):
            configure_logging(level="verbose")

    def test_standard_library_records_share_the_format(self) -> None:
        """Records from libraries using ``logging`` (aiohttp) come out as JSON too."""
        out = io.StringIO()
        configure_logging(stream=out)
        logging.getLogger("aiohttp.access").warning("GET /x?token=abc123 200")
        (line,) = lines(out)
        assert line["logger"] == "aiohttp.access"
        assert "abc123" not in str(line["event"])


class TestRequestId:
    def test_bound_request_id_appears(self) -> None:
        """A request id bound in the context is on every line until unbound."""
        out = io.StringIO()
        configure_logging(stream=out)
        with structlog.contextvars.bound_contextvars(request_id="req-7"):
            structlog.get_logger("t").info("inside")
        structlog.get_logger("t").info("outside")
        first, second = lines(out)
        assert first["request_id"] == "req-7" and "request_id" not in second

    def test_bind_and_unbind_request(self) -> None:
        """bind_request binds until unbind_request, for standard-library records too."""
        out = io.StringIO()
        configure_logging(stream=out)
        binding = bind_request("req-8")
        logging.getLogger("aiohttp.server").error("boom")
        unbind_request(binding)
        logging.getLogger("aiohttp.server").error("after")
        first, second = lines(out)
        assert first["request_id"] == "req-8" and "request_id" not in second

    def test_request_secrets_are_scrubbed_from_every_line(self) -> None:
        """A bound request's own secrets vanish from log lines, in any field, even encoded."""
        out = io.StringIO()
        configure_logging(stream=out)
        binding = bind_request("req-9", ("CANARY-own-1", "p@ss word!"))
        structlog.get_logger("t").warning(
            "upstream said CANARY-own-1", detail={"echo": "p%40ss%20word%21"}
        )
        logging.getLogger("aiohttp.server").error("x=cEBzcyB3b3JkIQ==")
        unbind_request(binding)
        structlog.get_logger("t").info("after CANARY-own-1")
        first, second, third = lines(out)
        assert "CANARY-own-1" not in str(first) and "p%40ss" not in str(first)
        assert "cEBzcyB3b3JkIQ" not in str(second)
        assert third["event"] == "after CANARY-own-1"


class TestScrubbing:
    def test_secret_keys_and_values_never_reach_the_output(self) -> None:
        """Authorization-like keys, bearer tokens and secret parameters are scrubbed."""
        out = io.StringIO()
        configure_logging(stream=out)
        log = structlog.get_logger("t")
        log.info("req", authorization="Bearer CANARY-hdr-1", headers={"Cookie": "sid=CANARY-ck-2"})
        log.info("upstream said Bearer CANARYtokenXYZ for /p?api_key=CANARY-q-3")
        try:
            raise RuntimeError("token=CANARY-exc-4")
        except RuntimeError:
            log.exception("failed")
        text = out.getvalue()
        assert "CANARY" not in text
        assert len(lines(out)) == 3

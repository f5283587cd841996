"""The event-stream parser, the request test and the stream configuration, without a server."""

from __future__ import annotations

from pathlib import Path

import pytest
from multidict import CIMultiDict

from shadowproxy.http.sse import EventParser, accepts_events, is_event_stream
from shadowproxy.model import StreamKind, WindowEnd
from shadowproxy.shadow.streams import Recorder
from tests.support import config_error


def _parse(*chunks: bytes, max_events: int = 100, max_bytes: int = 1 << 20) -> Recorder:
    recorder = Recorder(StreamKind.SSE, max_events, max_bytes)
    parser = EventParser(recorder)
    for n, chunk in enumerate(chunks):
        parser.feed(chunk, n / 10)
    return recorder


def _events(recorder: Recorder) -> list[tuple[str, bytes, str | None, float]]:
    window = recorder.window(WindowEnd.END, 1.0)
    return [(e.type, e.data, e.id, e.at_s) for e in window.events]


class TestParser:
    """Events as the HTML standard's EventSource reads them."""

    def test_fields_comments_and_defaults(self) -> None:
        """``event``, ``data`` lines joined by LF, ``id``; comments skipped; type ``message``."""
        recorder = _parse(b": hi\nevent: up\nid: 7\ndata: a\ndata:b\n\ndata: c\n\n")
        assert _events(recorder) == [("up", b"a\nb", "7", 0.0), ("message", b"c", "7", 0.0)]

    def test_line_ends_split_across_chunks(self) -> None:
        """CR LF split between chunks is one line end; bare CR ends a line too."""
        recorder = _parse(b"\xef\xbb\xbfdata: 1\r", b"\n\r\n", b"data: 2\r\r")
        assert _events(recorder) == [("message", b"1", None, 0.1), ("message", b"2", None, 0.2)]

    def test_an_event_without_data_is_not_dispatched(self) -> None:
        """A blank line after only ``event`` or ``id`` dispatches nothing (the id is kept)."""
        recorder = _parse(b"event: x\nid: 3\n\ndata: y\n\n")
        assert _events(recorder) == [("message", b"y", "3", 0.0)]

    def test_an_event_completes_when_its_blank_line_arrives(self) -> None:
        """An event's time is when the chunk ending it arrived."""
        recorder = _parse(b"data: partial", b" rest\n", b"\n")
        assert _events(recorder) == [("message", b"partial rest", None, 0.2)]

    def test_window_bounds(self) -> None:
        """The window closes at ``max_events`` (keeping no more) or ``max_bytes``."""
        recorder = Recorder(StreamKind.SSE, 2, 1 << 20)
        parser = EventParser(recorder)
        assert parser.feed(b"data: 1\n\ndata: 2\n\ndata: 3\n\n", 0.0) is WindowEnd.EVENTS
        assert len(recorder.window(WindowEnd.EVENTS, 0.0).events) == 2
        small = EventParser(Recorder(StreamKind.SSE, 100, 8))
        assert small.feed(b"data: 12345\n", 0.0) is WindowEnd.BYTES


class TestRecognition:
    def test_accept_names_the_event_stream(self) -> None:
        """Accept may list several types, with parameters and in any case."""
        assert accepts_events(CIMultiDict({"Accept": "text/html, Text/Event-Stream;q=0.9"}))
        assert not accepts_events(CIMultiDict({"Accept": "text/event-streams"}))
        assert not accepts_events(CIMultiDict())

    def test_answer_content_type(self) -> None:
        """Only the media type counts, parameters aside."""
        assert is_event_stream((("content-type", "text/event-stream; charset=utf-8"),))
        assert not is_event_stream((("Content-Type", "application/json"),))


class TestConfig:
    @pytest.mark.parametrize(
        ("document", "message"),
        [
            ("streams: {max_events: 0}", "streams.max_events: must be >= 1"),
            ("streams: {max_events: 10001}", "streams.max_events: must be <= 10000"),
            ("streams: {max_seconds: 0}", "streams.max_seconds: must be > 0"),
            ("streams: {window: 3}", "streams.window: unknown key"),
            (
                "routes: [{match: /ws, stream: {websocket: mirror}}]",
                "routes[0].stream.websocket: must be one of tunnel, shadow",
            ),
            (
                "routes: [{match: /e, stream: {sse: 1}}]",
                "routes[0].stream.sse: must be true or false",
            ),
            ("shadow: {max_streams: 0}", "shadow.max_streams: must be >= 1"),
        ],
    )
    def test_bad_values_exit_2_naming_the_key(
        self, document: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """One line naming the file and the key."""
        head = "upstreams: {legacy: 'http://127.0.0.1:1', candidate: 'http://127.0.0.1:2'}\n"
        assert config_error(head + document, tmp_path, capsys).startswith(message)

"""Stream windows that closed full: the other side's events past them are never missing or extra."""

from __future__ import annotations

from shadowproxy.compare import Comparator, CompareRules
from shadowproxy.model import Observation, StreamEvent, StreamKind, StreamWindow, WindowEnd
from tests.compare.factories import make_exchange


def _side(count: int, ended: WindowEnd, closed_s: float = 10.0) -> Observation:
    """A window of ``count`` equal-shaped events, all well before ``closed_s``."""
    events = tuple(StreamEvent("message", b'{"n": %d}' % n, None, 0.001 * n) for n in range(count))
    window = StreamWindow(StreamKind.GRPC, events, ended, closed_s)
    return Observation(status=200, stream=window)


def _kinds(legacy: Observation, candidate: Observation) -> list[tuple[str, str]]:
    verdict = Comparator().compare(make_exchange(legacy, candidate), CompareRules())
    return [(d.kind, d.path) for d in verdict.differences if d.kind != "first_event"]


class TestFullWindows:
    """A window that closed holding its events (or bytes) bounds what the other side is held to."""

    def test_faster_copy_past_a_full_window(self) -> None:
        """Legacy's window filled at 4; the copy read 8 before that: nothing is extra."""
        assert _kinds(_side(4, WindowEnd.EVENTS), _side(8, WindowEnd.EVENTS)) == []

    def test_full_by_bytes(self) -> None:
        """The same for a window that filled its bytes."""
        assert _kinds(_side(4, WindowEnd.BYTES), _side(6, WindowEnd.END)) == []

    def test_missing_within_the_full_window(self) -> None:
        """An event inside the full window the copy lacks is still missing."""
        legacy = _side(4, WindowEnd.EVENTS)
        assert legacy.stream is not None
        events = legacy.stream.events
        copy = Observation(
            status=200,
            stream=StreamWindow(
                StreamKind.GRPC, (events[0], events[2], events[3]), WindowEnd.END, 10.0
            ),
        )
        assert _kinds(legacy, copy) == [("event_missing", "$[1].message")]

    def test_an_ended_stream_holds_the_other_to_every_event(self) -> None:
        """Legacy's stream ended after 4: a copy that sent 6 sent 2 extra."""
        assert _kinds(_side(4, WindowEnd.END), _side(6, WindowEnd.EVENTS)) == [
            ("event_extra", "$[4].message"),
            ("event_extra", "$[5].message"),
        ]

"""Ownership values: canary steps, sticky assignment, precedence, transitions, rollback windows."""

from __future__ import annotations

import importlib
from dataclasses import replace
from pathlib import Path

import pytest

from shadowproxy.config import ConfigError, settings_from_document
from shadowproxy.cutover.canary import canary_bucket, decide, in_canary, sticky_key
from shadowproxy.cutover.rollback import RollbackWindows
from shadowproxy.cutover.state import (
    ALL_ROUTES,
    Assignment,
    CutoverState,
    Mode,
    Placement,
    configured,
    next_step,
    reconcile,
)
from shadowproxy.model import Upstream
from shadowproxy.settings import RollbackSettings

UPSTREAMS = {"upstreams": {"legacy": "http://127.0.0.1:1", "candidate": "http://127.0.0.1:2"}}


def _settings(routes: list[dict[str, object]], **cutover: object) -> object:
    return settings_from_document(
        {**UPSTREAMS, "routes": routes, "cutover": cutover}, "test.yaml", env={}
    )


class TestSteps:
    """Promotion walks a fixed ladder."""

    def test_ladder(self) -> None:
        """shadow -> canary 1, 5, 25, 50, 100 -> candidate, then nothing."""
        seen = []
        current: Assignment | None = Assignment.of(Mode.SHADOW)
        while current is not None:
            seen.append((str(current.mode), current.percent))
            current = next_step(current)
        assert seen == [
            ("shadow", 0.0),
            ("canary", 1.0),
            ("canary", 5.0),
            ("canary", 25.0),
            ("canary", 50.0),
            ("canary", 100.0),
            ("candidate", 100.0),
        ]

    def test_legacy_only_returns_to_shadow_first(self) -> None:
        """A legacy-only route is promoted back to shadow before any canary."""
        assert next_step(Assignment.of(Mode.LEGACY_ONLY)) == Assignment.of(Mode.SHADOW)

    def test_between_steps(self) -> None:
        """A percent between steps moves to the next step above it."""
        assert next_step(Assignment.of(Mode.CANARY, 10)) == Assignment.of(Mode.CANARY, 25)


class TestStickiness:
    """The pure assignment function: stable, monotone, and converging to the percentage."""

    def test_same_key_same_side(self) -> None:
        """A key gets the same bucket every time (blake2b, no per-process salt)."""
        assert canary_bucket("user-42") == canary_bucket("user-42")
        assert all(in_canary("user-42", 30) == in_canary("user-42", 30) for _ in range(100))

    @pytest.mark.parametrize("percent", [1.0, 5.0, 25.0, 50.0])
    def test_split_converges(self, percent: float) -> None:
        """Over 20,000 keys the candidate's share is within 1 point of the percentage."""
        keys = [f"user-{n}" for n in range(20_000)]
        share = 100.0 * sum(in_canary(k, percent) for k in keys) / len(keys)
        assert abs(share - percent) < 1.0

    def test_monotone(self) -> None:
        """A key on the candidate at 5% stays there at 25%: growing never flips users back."""
        keys = [f"k{n}" for n in range(5_000)]
        assert all(in_canary(k, 25) for k in keys if in_canary(k, 5))

    def test_edges(self) -> None:
        """0% answers nobody from the candidate, 100% everybody."""
        assert not in_canary("x", 0) and in_canary("x", 100)

    def test_sticky_key_sources(self) -> None:
        """Header and cookie keys are used when present; the client address otherwise."""
        headers, cookies = {"X-User": "ann"}, {"sid": "s1"}
        assert sticky_key("header:X-User", headers, cookies, "10.0.0.1") == "header:ann"
        assert sticky_key("cookie:sid", headers, cookies, "10.0.0.1") == "cookie:s1"
        assert sticky_key("cookie:other", headers, cookies, "10.0.0.1") == "client:10.0.0.1"
        assert sticky_key("client", headers, cookies, "10.0.0.1") == "client:10.0.0.1"


class TestPrecedence:
    """force-legacy beats the route's mode, which beats the default."""

    def test_route_beats_default(self) -> None:
        """A route's own assignment wins; other routes follow the default."""
        state = CutoverState(
            default=Placement(Assignment.of(Mode.CANDIDATE)),
            routes={"/a": Placement(Assignment.of(Mode.SHADOW))},
        )
        assert decide(state, "/a", lambda: "k").answered_by is Upstream.LEGACY
        assert decide(state, "/b", lambda: "k").answered_by is Upstream.CANDIDATE

    def test_force_legacy_beats_everything(self) -> None:
        """With force-legacy on, canary and candidate routes are answered by legacy."""
        state = CutoverState(
            default=Placement(Assignment.of(Mode.CANDIDATE)),
            routes={"/a": Placement(Assignment.of(Mode.CANARY, 100))},
            force_legacy=True,
        )
        for route in ("/a", "/b"):
            decision = decide(state, route, lambda: "k")
            assert (decision.answered_by, decision.mirror, decision.mode) == (
                Upstream.LEGACY,
                True,
                "force-legacy",
            )

    def test_legacy_only_mirrors_nothing(self) -> None:
        """legacy-only answers from legacy and mirrors nothing, force-legacy or not."""
        state = CutoverState(default=Placement(Assignment.of(Mode.LEGACY_ONLY)))
        assert decide(state, "/a", lambda: "k").mirror is False
        assert decide(replace(state, force_legacy=True), "/a", lambda: "k").mirror is False

    @pytest.mark.parametrize("force_legacy", [False, True])
    @pytest.mark.parametrize("mode", list(Mode))
    def test_every_mode_decides(self, mode: Mode, force_legacy: bool) -> None:
        """Each mode, with force-legacy on or off, gives a decision naming its effective mode."""
        state = CutoverState(default=Placement(Assignment.of(mode, 100)), force_legacy=force_legacy)
        decision = decide(state, "/a", lambda: "k")
        assert decision.mode == state.effective("/a")
        answering = mode in {Mode.CANARY, Mode.CANDIDATE} and not force_legacy
        assert decision.answered_by is (Upstream.CANDIDATE if answering else Upstream.LEGACY)
        assert decision.mirror is (mode is not Mode.LEGACY_ONLY)


class TestTransitions:
    """Every change yields one ownership record; no-ops yield none."""

    def test_route_change_record(self) -> None:
        """A change records from, to, percent, reason, source and numbers."""
        state, change = CutoverState().with_route(
            "/a",
            Assignment.of(Mode.CANARY, 5),
            reason="trial",
            source="api",
            now=0.0,
            numbers={"n": 1.0},
        )
        assert change is not None
        record = change.record()
        assert {k: record[k] for k in ("type", "route", "from", "to", "percent", "source")} == {
            "type": "ownership",
            "route": "/a",
            "from": "shadow",
            "to": "canary",
            "percent": 5.0,
            "source": "api",
        }
        assert record["numbers"] == {"n": 1.0} and record["ts"] == "1970-01-01T00:00:00.000Z"
        assert state.history == (record,)

    def test_no_op(self) -> None:
        """Setting the mode a route already has changes nothing."""
        state = CutoverState()
        assert (
            state.with_route("/a", Assignment.of(Mode.SHADOW), reason="", source="api", now=0)[1]
            is None
        )
        assert state.with_force_legacy(False, reason="", source="api", now=0)[1] is None

    def test_state_round_trips(self) -> None:
        """The state file form reads back to the same state."""
        state, _ = CutoverState().with_force_legacy(True, reason="r", source="api", now=1.0)
        state, _ = state.with_route(
            "/a", Assignment.of(Mode.CANARY, 25), reason="", source="api", now=2.0
        )
        assert CutoverState.from_json(state.to_json()) == state


class TestConfiguration:
    """Route keys and the cutover section validate into settings."""

    def test_configured_state(self) -> None:
        """Route modes and the default mode become the initial state."""
        settings = _settings(
            [{"match": "/a", "mode": "canary", "canary_percent": 5, "sticky": "header:X-User"}],
            default_mode="legacy-only",
        )
        state = configured(settings)  # type: ignore[arg-type]
        assert state.assignment("/a") == Assignment.of(Mode.CANARY, 5)
        assert state.assignment("/other") == Assignment.of(Mode.LEGACY_ONLY)

    @pytest.mark.parametrize(
        ("route", "cutover", "message"),
        [
            ({"match": "/a", "mode": "blue"}, {}, "test.yaml: routes[0].mode: must be one of"),
            ({"match": "/a", "sticky": "ip"}, {}, "test.yaml: routes[0].sticky: must be client"),
            ({"match": "/a", "canary_percent": 101}, {}, "routes[0].canary_percent: must be"),
            ({"match": "/a"}, {"rollback": {"window_s": 0}}, "cutover.rollback.window_s"),
            ({"match": "/a"}, {"default_mode": "x"}, "test.yaml: cutover.default_mode"),
            ({"match": "/a"}, {"colour": 1}, "test.yaml: cutover.colour: unknown key"),
        ],
    )
    def test_bad_keys(
        self, route: dict[str, object], cutover: dict[str, object], message: str
    ) -> None:
        """Each bad value is one ConfigError naming the file and key."""
        with pytest.raises(ConfigError) as caught:
            _settings([route], **cutover)
        assert str(caught.value).startswith(message) or message in str(caught.value)

    def test_force_legacy_env(self) -> None:
        """SHADOWPROXY_FORCE_LEGACY=1 switches force-legacy on; a junk value is an error."""
        doc = {**UPSTREAMS}
        assert settings_from_document(
            doc, "t", env={"SHADOWPROXY_FORCE_LEGACY": "1"}
        ).cutover.force_legacy
        with pytest.raises(ConfigError, match="SHADOWPROXY_FORCE_LEGACY"):
            settings_from_document(doc, "t", env={"SHADOWPROXY_FORCE_LEGACY": "maybe"})

    def test_reconcile_applies_only_changed_routes(self) -> None:
        """A reload moves routes whose configuration changed and keeps API changes elsewhere."""
        old = _settings([{"match": "/a"}, {"match": "/b"}])
        new = _settings([{"match": "/a", "mode": "candidate"}, {"match": "/b"}])
        state, _ = configured(old).with_route(  # type: ignore[arg-type]
            "/b", Assignment.of(Mode.CANARY, 5), reason="", source="api", now=0
        )
        state, changes = reconcile(state, old, new, now=1.0)  # type: ignore[arg-type]
        assert [(c.route, c.after, c.source) for c in changes] == [("/a", "candidate", "sighup")]
        assert state.assignment("/b") == Assignment.of(Mode.CANARY, 5)

    def test_reconcile_default(self) -> None:
        """A changed default mode is recorded under route ``*``."""
        old, new = _settings([]), _settings([], default_mode="candidate")
        _, changes = reconcile(configured(old), old, new, now=1.0)  # type: ignore[arg-type]
        assert [(c.route, c.after) for c in changes] == [(ALL_ROUTES, "candidate")]


class TestRollbackWindows:
    """Each trigger fires past its threshold once min_samples are in the window."""

    SETTINGS = RollbackSettings(window_s=60, min_samples=10, max_p99_ratio=2.0)

    def test_errors(self) -> None:
        """Error rate above max_error_rate fires only once min_samples are in."""
        windows = RollbackWindows(self.SETTINGS)
        fired = [windows.answered("/a", "o", error=True, now=float(n)) for n in range(10)]
        assert fired[:9] == [None] * 9
        assert fired[9] is not None and fired[9].reason == "errors"
        assert fired[9].numbers["error_rate"] == 1.0

    def test_structural(self) -> None:
        """Structural rate above max_structural_rate fires with its numbers."""
        windows = RollbackWindows(self.SETTINGS)
        trigger = None
        for n in range(10):
            trigger = windows.compared(
                "/a", "o", structural=n == 0, candidate_s=0.01, legacy_s=0.01, now=float(n)
            )
        assert trigger is not None and trigger.reason == "structural"
        assert trigger.numbers["structural"] == 1

    def test_latency(self) -> None:
        """A candidate p99 three times legacy's fires ``latency``."""
        windows = RollbackWindows(self.SETTINGS)
        trigger = None
        for n in range(10):
            trigger = windows.compared(
                "/a", "o", structural=False, candidate_s=0.03, legacy_s=0.01, now=float(n)
            )
        assert trigger is not None and trigger.reason == "latency"
        assert trigger.numbers["p99_ratio"] == pytest.approx(3.0)

    def test_old_samples_leave_the_window(self) -> None:
        """Errors older than window_s no longer count."""
        windows = RollbackWindows(self.SETTINGS)
        for n in range(9):
            windows.answered("/a", "o", error=True, now=float(n))
        assert windows.answered("/a", "o", error=False, now=200.0) is None

    def test_new_assignment_new_window(self) -> None:
        """Samples collected under another assignment are dropped."""
        windows = RollbackWindows(self.SETTINGS)
        for n in range(9):
            windows.answered("/a", "canary-5", error=True, now=float(n))
        assert windows.answered("/a", "canary-25", error=True, now=9.0) is None


class TestExports:
    """Every new module declares what it exports and says what it owns."""

    @pytest.mark.parametrize(
        "name",
        [
            "shadowproxy.cutover.state",
            "shadowproxy.cutover.canary",
            "shadowproxy.cutover.restore",
            "shadowproxy.cutover.statefile",
            "shadowproxy.cutover.ownership",
            "shadowproxy.cutover.rollback",
            "shadowproxy.admin.cutover",
            "shadowproxy.promote",
            "shadowproxy.promote.replicas",
            "shadowproxy.promote.switch",
        ],
    )
    def test_all(self, name: str, tmp_path: Path) -> None:
        """``__all__`` lists only defined names (docstrings: tests/test_layout.py, from the
        source, which the compiled build's modules do not keep)."""
        module = importlib.import_module(name)
        assert all(hasattr(module, export) for export in module.__all__)

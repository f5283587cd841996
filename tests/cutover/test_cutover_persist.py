"""Runtime cutover state survives a restart: precedence at start, the state file, its failures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from shadowproxy.config import settings_from_document
from shadowproxy.cutover.restore import restore
from shadowproxy.cutover.state import (
    ALL_ROUTES,
    Assignment,
    CutoverState,
    Mode,
    configured,
)
from shadowproxy.cutover.statefile import STATE_FILE, StateFile, StateFileError
from shadowproxy.settings import Settings
from tests.cutover.cutover_support import TOKEN, admin, probe, records, side, valid
from tests.support import backend, eventually, make_settings, running_proxy

ROUTE = "/a"
UPSTREAMS = {"upstreams": {"legacy": "http://127.0.0.1:1", "candidate": "http://127.0.0.1:2"}}


def _settings(mode: str | None = None, **env: str) -> Settings:
    route: dict[str, Any] = {"match": "/a/*", "name": ROUTE}
    if mode is not None:
        route["mode"], route["canary_percent"] = mode, 5
    return settings_from_document({**UPSTREAMS, "routes": [route]}, "t.yaml", env=env)


def _changed(state: CutoverState, mode: Mode, source: str, now: float) -> CutoverState:
    """``state`` after a runtime change of ``/a`` made while the configuration said shadow."""
    moved, _ = state.with_route(
        ROUTE,
        Assignment.of(mode, 25),
        reason="",
        source=source,
        now=now,
        configured=state.assignment(ROUTE),
    )
    return moved


class TestRestore:
    """Precedence at start: force-legacy from the environment, saved runtime state, config."""

    def test_runtime_change_beats_the_configuration(self) -> None:
        """A rollback or an API change saved before a restart is in force after it, recorded."""
        saved = _changed(configured(_settings(), 10.0), Mode.CANARY, "api", 20.0)
        state, changes = restore(configured(_settings(), 100.0), saved, [ROUTE], now=100.0)
        assert state.assignment(ROUTE) == Assignment.of(Mode.CANARY, 25)
        assert (state.placement(ROUTE).since, state.placement(ROUTE).source) == (20.0, "api")
        assert [(c.route, c.before, c.after, c.source) for c in changes] == [
            (ROUTE, "shadow", "canary", "restored")
        ]
        assert state.history[-1]["source"] == "restored"

    def test_a_configuration_edited_since_wins(self) -> None:
        """When the route's configuration changed after the runtime change, the file's edit wins."""
        saved = _changed(configured(_settings(), 10.0), Mode.CANDIDATE, "rollback", 20.0)
        edited = configured(_settings("canary"), 100.0)
        state, changes = restore(edited, saved, [ROUTE], now=100.0)
        assert state.assignment(ROUTE) == Assignment.of(Mode.CANARY, 5)
        assert changes == []

    def test_unconfigured_route_is_dropped(self) -> None:
        """A runtime change of a route the configuration no longer has is not restored."""
        saved = _changed(configured(_settings(), 10.0), Mode.CANDIDATE, "api", 20.0)
        state, changes = restore(configured(_settings(), 100.0), saved, [], now=100.0)
        assert ROUTE not in state.routes and changes == []

    def test_unchanged_route_keeps_its_since(self) -> None:
        """A configured route still where it was keeps the time it got there."""
        saved = configured(_settings("canary"), 10.0)
        state, _ = restore(configured(_settings("canary"), 100.0), saved, [ROUTE], now=100.0)
        assert state.placement(ROUTE).since == 10.0

    def test_force_legacy(self) -> None:
        """Force-legacy set through the API is restored; set by the environment, it is not."""
        base = configured(_settings(), 0.0)
        by_api, _ = base.with_force_legacy(True, reason="", source="api", now=5.0)
        state, changes = restore(base, by_api, [ROUTE], now=9.0)
        assert state.force_legacy and [c.source for c in changes] == ["restored"]
        by_env = configured(_settings(SHADOWPROXY_FORCE_LEGACY="1"), 0.0)
        assert not restore(base, by_env, [ROUTE], now=9.0)[0].force_legacy

    def test_drill_keeps_the_since(self) -> None:
        """A drill's flip and restore leave the time the route entered its step alone."""
        state = _changed(configured(_settings(), 0.0), Mode.CANARY, "promote", 10.0)
        for mode, now in ((Mode.LEGACY_ONLY, 50.0), (Mode.CANARY, 60.0)):
            state, _ = state.with_route(
                ROUTE, Assignment.of(mode, 25), reason="", source="drill", now=now
            )
        assert state.placement(ROUTE).since == 10.0
        assert state.phase(ROUTE).since == 10.0


class TestStateFile:
    """The file is private, durable, and every failure is a StateFileError naming it."""

    def test_round_trip_and_mode(self, tmp_path: Path) -> None:
        """What is written reads back; the directory is 0700 and the file 0600."""
        state = _changed(configured(_settings(), 1.0), Mode.CANARY, "api", 2.0)
        store = StateFile(str(tmp_path / "state"))
        store.prepare()
        with store.locked():
            store.write(state)
        assert store.read() == state
        assert (tmp_path / "state").stat().st_mode & 0o777 == 0o700
        assert (tmp_path / "state" / STATE_FILE).stat().st_mode & 0o777 == 0o600

    def test_link_refused(self, tmp_path: Path) -> None:
        """A state directory that is a symbolic link is refused; a linked file is not read."""
        (tmp_path / "real").mkdir()
        (tmp_path / "link").symlink_to(tmp_path / "real")
        with pytest.raises(StateFileError, match="not a directory"):
            StateFile(str(tmp_path / "link")).prepare()
        store = StateFile(str(tmp_path / "real"))
        (tmp_path / "elsewhere.json").write_bytes(b"{}")
        (tmp_path / "real" / STATE_FILE).symlink_to(tmp_path / "elsewhere.json")
        with pytest.raises(StateFileError, match=STATE_FILE):
            store.read()

    def test_others_cannot_write(self, tmp_path: Path) -> None:
        """A directory others may write to is tightened."""
        directory = tmp_path / "state"
        directory.mkdir(mode=0o777)
        directory.chmod(0o777)
        StateFile(str(directory)).prepare()
        assert directory.stat().st_mode & 0o022 == 0

    def test_malformed(self, tmp_path: Path) -> None:
        """Junk in the file is a StateFileError, not a crash."""
        store = StateFile(str(tmp_path))
        (tmp_path / STATE_FILE).write_bytes(b'{"v": 2, "routes": 3}')
        with pytest.raises(StateFileError, match="malformed"):
            store.read()


def _doc(**cutover: Any) -> dict[str, Any]:
    return {
        "admin_token": TOKEN,
        "routes": [{"match": "/a/*", "name": ROUTE, "domain": "orders"}],
        "shadow": {"grace_s": 0.5, "max_loop_lag_ms": 10_000},
        "cutover": cutover,
    }


class TestAcrossRestarts:
    """Through a real proxy: what the admin API set is in force after a restart."""

    async def test_api_change_survives_a_restart(self, tmp_path: Path) -> None:
        """A route switched to candidate is still answered by the candidate after a restart."""
        logs = tmp_path / "logs"
        async with backend(side("legacy")) as legacy, backend(side("candidate")) as candidate:
            settings = make_settings(legacy.url, candidate.url, logs, _doc())
            async with running_proxy(settings) as proxy:
                status, _ = await admin(
                    proxy.admin, "POST", "/cutover", {"route": ROUTE, "mode": "candidate"}
                )
                assert status == 200
            async with running_proxy(settings) as proxy:
                answered = (await probe(proxy.url + "/a/1"))[1]
                _, listing = await admin(proxy.admin, "GET", "/cutover")
                await eventually(lambda: len(records(logs, "ownership")) == 2)
        assert answered == "candidate"
        assert (listing["routes"][ROUTE]["mode"], listing["routes"][ROUTE]["source"]) == (
            "candidate",
            "api",
        )
        restored = records(logs, "ownership")[-1]
        assert (restored["from"], restored["to"], restored["source"]) == (
            "shadow",
            "candidate",
            "restored",
        )
        assert valid(restored, "ownership")

    async def test_unsaved_change_is_refused(self, tmp_path: Path) -> None:
        """A mode change the state file cannot keep answers 503 and changes nothing.

        Force-legacy still applies: it protects clients, saved or not.
        """
        logs = tmp_path / "logs"
        async with backend(side("legacy")) as legacy, backend(side("candidate")) as candidate:
            settings = make_settings(legacy.url, candidate.url, logs, _doc())
            async with running_proxy(settings) as proxy:
                state_file = logs / STATE_FILE
                state_file.unlink()
                state_file.mkdir()  # a rename can never replace a directory
                status, body = await admin(
                    proxy.admin, "POST", "/cutover", {"route": ROUTE, "mode": "candidate"}
                )
                answered = (await probe(proxy.url + "/a/1"))[1]
                forced, forced_body = await admin(proxy.admin, "POST", "/cutover/force-legacy")
                _, listing = await admin(proxy.admin, "GET", "/cutover")
        assert (status, answered) == (503, "legacy")
        assert "not saved" in body["error"] and str(state_file) in body["error"]
        assert listing["routes"][ROUTE]["mode"] == "shadow"
        assert (forced, forced_body["saved"], listing["force_legacy"]) == (200, False, True)
        assert listing["state_error"] is not None

    async def test_unreadable_file_is_set_aside(self, tmp_path: Path) -> None:
        """A state file that cannot be read at start is kept aside; the configuration applies."""
        logs = tmp_path / "logs"
        logs.mkdir(mode=0o700)
        (logs / STATE_FILE).write_bytes(b"not json")
        async with backend(side("legacy")) as legacy, backend(side("candidate")) as candidate:
            settings = make_settings(legacy.url, candidate.url, logs, _doc())
            async with running_proxy(settings) as proxy:
                _, listing = await admin(proxy.admin, "GET", "/cutover")
        assert listing["routes"][ROUTE]["mode"] == "shadow" and listing["state_error"] is None
        assert (logs / f"{STATE_FILE}.unreadable").read_bytes() == b"not json"
        saved = orjson.loads((logs / STATE_FILE).read_bytes())
        assert saved["routes"] == {} and saved["default"]["mode"] == "shadow"

    async def test_state_dir_setting(self, tmp_path: Path) -> None:
        """``cutover.state_dir`` puts the file where it says, private."""
        logs, state_dir = tmp_path / "logs", tmp_path / "state"
        async with backend(side("legacy")) as legacy, backend(side("candidate")) as candidate:
            doc = _doc(state_dir=str(state_dir))
            settings = make_settings(legacy.url, candidate.url, logs, doc)
            async with running_proxy(settings) as proxy:
                await admin(
                    proxy.admin, "POST", "/cutover", {"route": ALL_ROUTES, "mode": "shadow"}
                )
        assert (state_dir / STATE_FILE).is_file() and not (logs / STATE_FILE).exists()
        assert state_dir.stat().st_mode & 0o777 == 0o700

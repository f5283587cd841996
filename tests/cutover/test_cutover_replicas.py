"""Three replicas, each its own ``shadowproxy run`` process with its own admin port and state.

``shadow promote``, ``shadow cutover`` and ``shadow drill`` act on every
replica at once, report per replica, put back what a partial failure
changed, and refuse to promote while one replica rolled a route back; a
replica keeps its state across a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from shadowproxy.config import settings_from_document
from shadowproxy.cutover.statefile import STATE_FILE
from shadowproxy.promote.replicas import BadInputError, resolve
from tests.cutover.cutover_support import (
    TOKEN,
    admin,
    cli,
    passing_evidence,
    probe,
    records,
    valid,
)
from tests.support import WAIT_S, ProxyProcess, backend, eventually, proxy_process

ROUTE = "/a"
CONFIG = f"""
admin_token: {TOKEN}
routes:
  - {{match: "/a/*", name: "{ROUTE}", domain: orders}}
shadow: {{max_loop_lag_ms: 60000}}
cutover:
  rollback: {{min_samples: 5, max_error_rate: 0.1, max_structural_rate: 1, max_p99_ratio: 1000000}}
"""


async def _candidate(request: web.Request) -> web.Response:
    """The candidate; it fails every request carrying ``X-Fail``."""
    return web.json_response({"side": "legacy"}, status=500 if "X-Fail" in request.headers else 200)


async def _legacy(request: web.Request) -> web.Response:
    return web.json_response({"side": "legacy"})


class _Fleet:
    """Three replicas in front of one legacy and one candidate, each with its own log dir."""

    def __init__(self, tmp_path: Path, legacy: str, candidate: str) -> None:
        self.config = tmp_path / "config.yaml"
        self.config.write_text(CONFIG)
        self.logs = [tmp_path / f"logs{n}" for n in range(3)]
        self._upstreams = ("--legacy", legacy, "--candidate", candidate)
        self.replicas: list[ProxyProcess] = []
        self._stack = contextlib.AsyncExitStack()

    async def start(self, index: int) -> ProxyProcess:
        return await self._stack.enter_async_context(
            proxy_process(
                "--config", str(self.config), *self._upstreams, "--log-dir", str(self.logs[index])
            )
        )

    @property
    def admins(self) -> list[str]:
        """``--admin URL`` for every replica."""
        return [arg for replica in self.replicas for arg in ("--admin", replica.admin)]

    async def modes(self) -> list[tuple[str, float, str]]:
        """Each replica's (mode, percent, source) of the route."""
        found = []
        for replica in self.replicas:
            entry = (await admin(replica.admin, "GET", "/cutover"))[1]["routes"][ROUTE]
            found.append((entry["mode"], entry["percent"], entry["source"]))
        return found


@contextlib.asynccontextmanager
async def _fleet(tmp_path: Path) -> AsyncIterator[_Fleet]:
    async with backend(_legacy) as legacy, backend(_candidate) as candidate:
        fleet = _Fleet(tmp_path, legacy.url, candidate.url)
        async with fleet._stack:
            fleet.replicas = list(await asyncio.gather(*(fleet.start(n) for n in range(3))))
            yield fleet


@pytest.fixture(autouse=True)
def _token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHADOWPROXY_ADMIN_TOKEN", TOKEN)


class TestEveryReplica:
    """One command reaches every replica, or none stays changed."""

    async def test_promote_rollback_and_drill_reach_every_replica(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Promote moves all three; an operator rollback moves all three; a drill drills all."""
        evidence = passing_evidence(tmp_path / "evidence.jsonl")
        async with _fleet(tmp_path) as fleet:
            promoted = await cli("promote", "--route", ROUTE, *fleet.admins, str(evidence))
            after_promote = await fleet.modes()
            rolled = await cli(
                "cutover", *fleet.admins, "--route", ROUTE, "--mode", "shadow", "--reason", "r"
            )
            after_rollback = await fleet.modes()
            proxies = [arg for r in fleet.replicas for arg in ("--proxy", r.url)]
            drilled = await cli(
                "drill", "--route", ROUTE, "--path", "/a/1", "--replicas", "3",
                *fleet.admins, *proxies,
            )  # fmt: skip
            shown = await cli("cutover", *fleet.admins)
            for logs in fleet.logs:
                await eventually(lambda logs=logs: bool(records(logs, "drill")))
        out = capsys.readouterr().out
        assert (promoted, rolled, drilled, shown) == (0, 0, 0, 0)
        assert after_promote == [("canary", 1.0, "promote")] * 3
        assert after_rollback == [("shadow", 0.0, "api")] * 3
        assert out.count(f"{ROUTE} on http://127.0.0.1:") >= 3 + 3 + 3
        drills = [records(logs, "drill")[0] for logs in fleet.logs]
        assert len({d["id"] for d in drills}) == 1 and all(d["passed"] for d in drills)
        assert all(valid(d, "drill") for d in drills)
        assert len([s for s in drills[0]["steps"] if s["step"] == "rollback" and s["ok"]]) == 3

    async def test_partial_failure_is_put_back(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """When the third replica cannot keep the change, the first two are put back; exit 1."""
        evidence = passing_evidence(tmp_path / "evidence.jsonl")
        async with _fleet(tmp_path) as fleet:
            third = fleet.logs[2] / STATE_FILE
            third.unlink()
            third.mkdir()  # its state file can no longer be replaced: the change is refused
            code = await cli("promote", "--route", ROUTE, *fleet.admins, str(evidence))
            modes = await fleet.modes()
        err = capsys.readouterr().err
        assert code == 1
        assert modes == [
            ("shadow", 0.0, "promote"),
            ("shadow", 0.0, "promote"),
            ("shadow", 0.0, "config"),
        ]
        assert err.count("put back to shadow") == 2 and "FAILED" in err and "503" in err
        for logs in fleet.logs[:2]:
            changes = [(r["to"], r["reason"]) for r in records(logs, "ownership")]
            assert changes[0][0] == "canary" and changes[1][0] == "shadow"
            assert changes[1][1].startswith("put back: ")

    async def test_state_kept_across_a_restart(self, tmp_path: Path) -> None:
        """A replica restarted after a promotion comes back in the promoted mode."""
        evidence = passing_evidence(tmp_path / "evidence.jsonl")
        async with _fleet(tmp_path) as fleet:
            assert await cli("promote", "--route", ROUTE, *fleet.admins, str(evidence)) == 0
            assert await fleet.replicas[1].terminate() == 0
            fleet.replicas[1] = await fleet.start(1)
            modes = await fleet.modes()
            answered = {(await probe(fleet.replicas[1].url + "/a/1"))[1] for _ in range(30)}
        assert modes == [("canary", 1.0, "promote")] * 3
        assert answered <= {"legacy", "candidate"}
        # Files sort by the writer's pid, so the restarted process's record may come first.
        restored = [r for r in records(fleet.logs[1], "ownership") if r["source"] == "restored"]
        assert [(r["from"], r["to"], r["percent"]) for r in restored] == [("shadow", "canary", 1.0)]

    async def test_promote_refuses_while_a_replica_rolled_back(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """One replica rolls back alone: replicas disagree and promote refuses, naming it."""
        evidence = passing_evidence(tmp_path / "evidence.jsonl")
        async with _fleet(tmp_path) as fleet:
            assert await cli("cutover", *fleet.admins, "--route", ROUTE, "--mode", "canary",
                             "--percent", "100") == 0  # fmt: skip
            third = fleet.replicas[2]

            async def rolled_back() -> bool:
                await probe(third.url + "/a/1", headers={"X-Fail": "1"})
                return (await fleet.modes())[2][2] == "rollback"

            async with asyncio.timeout(WAIT_S):
                while not await rolled_back():
                    pass
            capsys.readouterr()
            refused = await cli("promote", "--route", ROUTE, *fleet.admins, str(evidence))
            refused_err = capsys.readouterr().err
            shown = await cli("cutover", *fleet.admins)
            metrics = [
                await _metric(r.admin, f'shadowproxy_route_mode{{mode="canary",route="{ROUTE}"}}')
                for r in fleet.replicas
            ]
            modes = await fleet.modes()
        assert refused == 1 and "rolled back on" in refused_err and third.admin[7:] in refused_err
        assert shown == 1
        assert metrics == [1.0, 1.0, 0.0]
        assert [m[0] for m in modes] == ["canary", "canary", "shadow"]

    async def test_force_legacy_on_is_never_put_back(
        self, tmp_path: Path, closed_port: int, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """An unreachable replica fails the command, the others stay forced; off is put back."""
        dead = ["--admin", f"http://127.0.0.1:{closed_port}"]
        async with _fleet(tmp_path) as fleet:
            on = await cli("cutover", *fleet.admins, *dead, "--force-legacy", "on")
            forced = [await _forced(r.admin) for r in fleet.replicas]
            off = await cli("cutover", *fleet.admins, *dead, "--force-legacy", "off")
            still = [await _forced(r.admin) for r in fleet.replicas]
        err = capsys.readouterr().err
        assert (on, off) == (1, 1)
        assert forced == still == [True, True, True]
        assert err.count("put back to force-legacy on") == 3


async def _forced(base: str) -> bool:
    return bool((await admin(base, "GET", "/cutover"))[1]["force_legacy"])


async def _metric(base: str, series: str) -> float:
    """One series' value from a replica's /metrics."""
    import aiohttp

    async with aiohttp.ClientSession() as session, session.get(base + "/metrics") as response:
        text = await response.text()
    line = next(line for line in text.splitlines() if line.startswith(series))
    return float(line.rsplit(" ", 1)[1])


class TestToken:
    def test_file_and_environment(self) -> None:
        """``admin_token`` in the file with the variable set: the variable wins, no error."""
        document = {
            "upstreams": {"legacy": "http://127.0.0.1:1", "candidate": "http://127.0.0.1:2"},
            "admin_token": "from-file",
        }
        env = {"SHADOWPROXY_ADMIN_TOKEN": "from-env"}
        assert settings_from_document(document, "t", env=env).admin.token == "from-env"
        assert settings_from_document(document, "t", env={}).admin.token == "from-file"


class TestResolve:
    """``--admin`` names: a name is every address it resolves to, once."""

    @staticmethod
    def _resolver(*addresses: tuple[int, str]) -> Any:
        def lookup(host: str, port: int, **_: Any) -> list[tuple[Any, ...]]:
            return [
                (family, socket.SOCK_STREAM, 6, "", (address, port))
                for family, address in addresses
            ]

        return lookup

    def test_headless_service_is_every_address(self) -> None:
        """Each IPv4 address is one replica, called by address with the name as Host."""
        lookup = self._resolver(
            (socket.AF_INET, "10.0.0.2"),
            (socket.AF_INET, "10.0.0.1"),
            (socket.AF_INET, "10.0.0.2"),
            (socket.AF_INET6, "fd00::1"),
        )
        replicas = resolve(["http://orders-admin.shop:9901"], lookup)
        assert [(r.url, r.host) for r in replicas] == [
            ("http://10.0.0.1:9901", "orders-admin.shop:9901"),
            ("http://10.0.0.2:9901", "orders-admin.shop:9901"),
        ]

    def test_ipv6_only_and_literals(self) -> None:
        """Without IPv4, the IPv6 addresses; an address literal is itself, looked up never."""
        lookup = self._resolver((socket.AF_INET6, "fd00::1"))
        assert [r.url for r in resolve(["http://svc:9901"], lookup)] == ["http://[fd00::1]:9901"]
        assert [r.url for r in resolve(["http://127.0.0.1:9/", "http://127.0.0.1:9"], lookup)] == [
            "http://127.0.0.1:9"
        ]

    @pytest.mark.parametrize("url", ["ftp://x:1", "http://:9", "http://x:99999"])
    def test_bad_urls(self, url: str) -> None:
        """A URL that is not http(s) with a host is bad input."""
        with pytest.raises(BadInputError, match="--admin"):
            resolve([url], self._resolver())

    async def test_a_name_reaches_its_replica(self, tmp_path: Path) -> None:
        """``localhost`` resolves to the replica listening on 127.0.0.1: shown end to end."""
        async with _fleet(tmp_path) as fleet:
            port = fleet.replicas[0].admin.rsplit(":", 1)[1]
            code = await cli("cutover", "--admin", f"http://localhost:{port}", "--replicas", "1")
        assert code == 0

"""``shadow promote`` and ``shadow drill`` against a real proxy and evidence files."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from shadowproxy.cli import main
from shadowproxy.timestamps import rfc3339
from tests.cutover.cutover_support import (
    TOKEN,
    admin,
    cli,
    passing_evidence,
    records,
    shown,
    side,
    step_evidence,
    valid,
)
from tests.support import backend, eventually, make_settings, running_proxy

ROUTE = "/a"


def _doc(mode: str = "shadow") -> dict[str, Any]:
    return {
        "admin_token": TOKEN,
        "routes": [{"match": "/a/*", "name": ROUTE, "domain": "orders", "mode": mode}],
        "shadow": {"grace_s": 0.5, "max_loop_lag_ms": 10_000},
    }


class TestPromote:
    """Promotion moves one step only when every gate of the route's domain passes."""

    @pytest.mark.parametrize("token", [TOKEN, "t\u00f6k\u20acn"])
    async def test_promotes_when_gates_pass(
        self,
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
        token: str,
    ) -> None:
        """Passing gates move shadow to canary 1%, recorded with source promote and numbers.

        The token may be any text: promote sends its UTF-8 bytes.
        """
        monkeypatch.setenv("PROMOTE_TOKEN", token)
        evidence = passing_evidence(tmp_path / "in.jsonl")
        logs = tmp_path / "logs"
        async with backend(side("legacy")) as legacy, backend(side("candidate")) as candidate:
            settings = make_settings(
                legacy.url, candidate.url, logs, {**_doc(), "admin_token": token}
            )
            async with running_proxy(settings) as proxy:
                code = await cli(
                    "promote", "--route", ROUTE, "--admin", proxy.admin,
                    "--token-env", "PROMOTE_TOKEN", str(evidence),
                )  # fmt: skip
                _, listing = await admin(proxy.admin, "GET", "/cutover")
                await eventually(lambda: bool(records(logs, "ownership")))
        assert code == 0, capsys.readouterr().err
        assert "shadow -> canary 1%" in capsys.readouterr().out
        assert shown(listing, ROUTE) == ("canary", 1.0, "canary", "promote")
        (record,) = records(logs, "ownership")
        assert (record["source"], record["to"], record["percent"]) == ("promote", "canary", 1.0)
        assert record["numbers"]["compared"] == 1200 and record["numbers"]["structural"] == 0

    async def test_refuses_on_failing_gate(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A structural divergence keeps the route where it is and says why (exit 1)."""
        evidence = passing_evidence(tmp_path / "in.jsonl", structural=3)
        async with backend(side("legacy")) as legacy, backend(side("candidate")) as candidate:
            settings = make_settings(legacy.url, candidate.url, tmp_path / "logs", _doc())
            async with running_proxy(settings) as proxy:
                code = await cli("promote", "--route", ROUTE, "--admin", proxy.admin, str(evidence))
                _, listing = await admin(proxy.admin, "GET", "/cutover")
        err = capsys.readouterr().err
        assert code == 1
        assert "structural: fail: 3 structural" in err and "stays shadow" in err
        assert listing["routes"][ROUTE]["mode"] == "shadow"

    async def test_bad_input_exits_2(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], closed_port: int
    ) -> None:
        """A missing evidence path, an unknown route or an unreachable admin API exit 2."""
        evidence = passing_evidence(tmp_path / "in.jsonl")
        async with backend(side("legacy")) as legacy, backend(side("candidate")) as candidate:
            settings = make_settings(legacy.url, candidate.url, tmp_path / "logs", _doc())
            async with running_proxy(settings) as proxy:
                missing = await cli(
                    "promote", "--route", ROUTE, "--admin", proxy.admin, str(tmp_path / "none")
                )
                unknown = await cli(
                    "promote", "--route", "/zz", "--admin", proxy.admin, str(evidence)
                )
        unreachable = await cli(
            "promote", "--route", ROUTE, "--admin", f"http://127.0.0.1:{closed_port}",
            str(evidence),
        )  # fmt: skip
        lines = capsys.readouterr().err.strip().splitlines()
        assert (missing, unknown, unreachable) == (2, 2, 2)
        assert len(lines) == 3 and all(line.startswith("shadow promote: ") for line in lines)
        assert "'/zz' is not configured" in lines[1] and "cannot reach" in lines[2]


class TestPromoteFromACanaryStep:
    """From canary step N, only step N's own evidence counts: its bake time and min_compared."""

    GATES = 'gates: {"*": {canary: {bake: 2h, min_compared: 100}}}'

    @pytest.fixture(autouse=True)
    def _token(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("SHADOWPROXY_ADMIN_TOKEN", TOKEN)

    async def _promote(
        self, tmp_path: Path, since_s: float, compared: int, gates: str | None
    ) -> tuple[int, dict[str, Any], list[dict[str, Any]]]:
        logs = tmp_path / "logs"
        async with backend(side("legacy")) as legacy, backend(side("candidate")) as candidate:
            doc = {**_doc("canary"), "routes": [{**_doc()["routes"][0], "mode": "canary",
                                                  "canary_percent": 5}]}  # fmt: skip
            settings = make_settings(legacy.url, candidate.url, logs, doc)
            async with running_proxy(settings) as proxy:
                # Written now, so the step's evidence ends after the replica entered the step.
                evidence = step_evidence(
                    tmp_path / "in.jsonl", percent=5, since_s=since_s, compared=compared
                )
                extra = ["--gates", str(tmp_path / "gates.yaml")] if gates else []
                if gates:
                    (tmp_path / "gates.yaml").write_text(gates)
                code = await cli(
                    "promote", "--route", ROUTE, "--admin", proxy.admin, *extra, str(evidence)
                )
                _, listing = await admin(proxy.admin, "GET", "/cutover")
        return code, listing["routes"][ROUTE], records(logs, "ownership")

    async def test_baked_step_promotes(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Three hours and 500 compared at 5 %: on to 25 %, with the step's numbers recorded."""
        code, route, changes = await self._promote(tmp_path, 3 * 3600, 500, self.GATES)
        assert code == 0, capsys.readouterr().err
        assert (route["mode"], route["percent"]) == ("canary", 25.0)
        assert "canary 5% -> canary 25%" in capsys.readouterr().out
        numbers = changes[-1]["numbers"]
        assert numbers["compared"] == 500 and numbers["bake_s"] >= 3 * 3600 - 5
        assert changes[-1]["reason"] == "gates of canary 5% passed"

    @pytest.mark.parametrize(
        ("since_s", "compared", "waiting"),
        [(1800, 500, "canary_bake"), (3 * 3600, 20, "canary_min_compared")],
    )
    async def test_unbaked_step_stays(
        self,
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
        since_s: float,
        compared: int,
        waiting: str,
    ) -> None:
        """Half an hour, or 20 compared, at 5 %: refused though the shadow phase was clean."""
        code, route, _ = await self._promote(tmp_path, since_s, compared, self.GATES)
        err = capsys.readouterr().err
        assert code == 1 and f"{waiting}: insufficient" in err
        assert (route["mode"], route["percent"]) == ("canary", 5.0)

    async def test_default_bake_is_a_day(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """With the built-in gates a step bakes 24 hours."""
        code, route, _ = await self._promote(tmp_path, 3 * 3600, 1500, None)
        assert code == 1 and "canary_bake: insufficient" in capsys.readouterr().err
        assert route["percent"] == 5.0


class TestDrill:
    """The drill flips a route to legacy and back, checks real answers and records itself."""

    async def test_drill_records(
        self,
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """From candidate mode: legacy answers after the flip, the candidate after the restore."""
        monkeypatch.setenv("DRILL_TOKEN", TOKEN)
        async with backend(side("legacy")) as legacy, backend(side("candidate")) as candidate:
            settings = make_settings(legacy.url, candidate.url, tmp_path, _doc("candidate"))
            async with running_proxy(settings) as proxy:
                code = await cli(
                    "drill", "--route", ROUTE, "--path", "/a/1", "--token-env", "DRILL_TOKEN",
                    "--admin", proxy.admin, "--proxy", proxy.url,
                )  # fmt: skip
                _, listing = await admin(proxy.admin, "GET", "/cutover")
                await eventually(lambda: bool(records(tmp_path, "drill")))
        assert code == 0, capsys.readouterr()
        assert listing["routes"][ROUTE]["mode"] == "candidate"
        changes = [(r["from"], r["to"], r["source"]) for r in records(tmp_path, "ownership")]
        assert changes == [
            ("candidate", "legacy-only", "drill"),
            ("legacy-only", "candidate", "drill"),
        ]
        (drill,) = records(tmp_path, "drill")
        assert drill["passed"] is True and drill["route"] == ROUTE
        assert [(s["step"], s["answered_by"], s["ok"]) for s in drill["steps"]] == [
            ("rollback", "legacy", True),
            ("restore", "candidate", True),
        ]

    async def test_drill_fails_when_candidate_is_down(
        self, tmp_path: Path, closed_port: int, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A candidate that cannot answer after the restore fails the drill (exit 1), recorded."""
        monkeypatch.setenv("DRILL_TOKEN", TOKEN)
        dead = f"http://127.0.0.1:{closed_port}"
        async with backend(side("legacy")) as legacy:
            settings = make_settings(legacy.url, dead, tmp_path, _doc("candidate"))
            async with running_proxy(settings) as proxy:
                code = await cli(
                    "drill", "--route", ROUTE, "--path", "/a/1", "--timeout", "0.3",
                    "--token-env", "DRILL_TOKEN", "--admin", proxy.admin, "--proxy", proxy.url,
                )  # fmt: skip
                await eventually(lambda: bool(records(tmp_path, "drill")))
        (drill,) = records(tmp_path, "drill")
        assert code == 1 and drill["passed"] is False
        assert drill["steps"][1]["answered_by"] == "legacy"  # retried on legacy, not the candidate


class TestReport:
    """``shadow report`` shows each route's current mode, its history and the numbers behind it."""

    def test_modes_history_and_numbers(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The latest ownership record per route is its mode; rollbacks keep their numbers."""
        evidence = passing_evidence(tmp_path / "in.jsonl")
        now = time.time()
        changes = [
            {"ts": rfc3339(now - 300), "from": "shadow", "to": "canary", "percent": 1.0,
             "reason": "gates of domain orders passed", "source": "promote",
             "numbers": {"compared": 1200}},
            {"ts": rfc3339(now - 200), "from": "canary", "to": "shadow", "percent": 0.0,
             "reason": "errors", "source": "rollback", "numbers": {"error_rate": 0.25}},
        ]  # fmt: skip
        with evidence.open("ab") as out:
            for change in changes:
                out.write(orjson.dumps({"v": 1, "type": "ownership", "route": ROUTE, **change}))
                out.write(b"\n")
        assert main(["report", str(evidence), "--format", "json"]) == 0
        doc = orjson.loads(capsys.readouterr().out)
        assert valid(doc, "report")
        assert [(m["route"], m["mode"], m["source"]) for m in doc["modes"]] == [
            (ROUTE, "shadow", "rollback")
        ]
        assert [c["numbers"] for c in doc["ownership"]] == [
            {"compared": 1200.0},
            {"error_rate": 0.25},
        ]
        main(["report", str(evidence), "--format", "markdown"])
        table = capsys.readouterr().out
        assert "Route modes" in table and "error_rate=0.25" in table

"""A gRPC method walked through every canary step by ``shadow promote``, drilled, rolled back."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import pytest

from shadowproxy.cutover.canary import in_canary
from tests.cutover.cutover_support import cli, phase_rollup
from tests.cutover.cutover_support import records as typed_records
from tests.grpc.harness import GET, answered_by, cutover, methods, pair, side
from tests.grpc.shop import ShopCode
from tests.support import ADMIN_TOKEN

GATES = """gates:
  "*":
    min_compared: 10
    canary: {bake: 0s, min_compared: 10}
"""
STEPS = ["canary 1%", "canary 5%", "canary 25%", "canary 50%", "canary 100%", "candidate"]
TENANTS = [f"tenant-{n}" for n in range(40)]


class TestPromoteGrpcMethod:
    """The same promote, drill and rollback as for HTTP routes, on a gRPC method."""

    async def test_every_step_drill_and_rollback(
        self,
        shop: ShopCode,
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """shadow -> canary 1 .. 100 -> (drill) -> candidate, then errors roll it back."""
        monkeypatch.setenv("SHADOWPROXY_ADMIN_TOKEN", ADMIN_TOKEN)
        gates = tmp_path / "gates.yaml"
        gates.write_text(GATES)
        evidence = tmp_path / "evidence.jsonl"
        logs = tmp_path / "logs"
        section = methods({"method": GET, "domain": "shop", "sticky": "metadata:x-tenant"})
        # Errors roll it back; latency must not (a loaded machine can make five of the
        # candidate's answers twice as slow as legacy's mirrored ones, and rolled it back early).
        rollback = {"min_samples": 5, "window_s": 60, "max_p99_ratio": 1e6}
        document = {"cutover": {"rollback": rollback}}
        candidate_script = side("candidate")
        started = time.time()
        # Parity: the method compared clean in shadow over the whole gate window.
        lines = [
            phase_rollup(GET, "shop", started - 14 * 86400 + 60, started, 5000, ("shadow", None, 0))
        ]
        async with pair(shop, tmp_path, section, document, candidate=candidate_script) as (
            _legacy,
            _candidate,
            p,
        ):
            admin = p.proxy.admin
            assert p.proxy.bound.grpc is not None
            for step in STEPS:
                if step == "candidate":
                    drilled = await cli(
                        "drill", "--route", GET, "--admin", admin,
                        "--grpc-proxy", str(p.proxy.bound.grpc),
                    )  # fmt: skip
                    assert drilled == 0, capsys.readouterr()
                evidence.write_bytes(b"".join(lines))
                code = await cli(
                    "promote", "--route", GET, "--admin", admin, "--gates", str(gates),
                    str(evidence), str(logs),
                )  # fmt: skip
                out, err = capsys.readouterr()
                assert code == 0, err
                assert f"-> {step} on 1 replica" in out
                state = (await cutover(p))["routes"][GET]
                percent = state["percent"] if state["mode"] == "canary" else None
                # The step's evidence: clean, since the method entered the step.
                now = time.time()
                phase = (state["mode"], percent, state["since"])
                lines.append(phase_rollup(GET, "shop", state["since"], now, 50, phase))
                # Real calls: each tenant is answered by the side its hash gives it.
                share = 100.0 if percent is None else percent
                for tenant in TENANTS[:10]:
                    side_of = await answered_by(p, shop, **{"x-tenant": tenant})
                    wanted = in_canary(f"metadata:{tenant}", share)
                    assert side_of == ("candidate" if wanted else "legacy"), (step, tenant)
            # The candidate starts failing: its UNAVAILABLE answers soon pass the error
            # rate over the rollback window (ten good answers, then the failures).
            candidate_script.code = grpc.StatusCode.UNAVAILABLE
            failures = 0
            while p.metric("shadowproxy_rollbacks_total", route=GET, reason="errors") == 0:
                assert failures < 5, "no rollback after five errors"
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await answered_by(p, shop, **{"x-tenant": TENANTS[failures]})
                assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
                failures += 1
            final = (await cutover(p))["routes"][GET]
            again = await answered_by(p, shop)
        assert (final["mode"], final["source"]) == ("shadow", "rollback")
        assert again == "legacy"
        moves = [(r["to"], r["percent"], r["source"]) for r in typed_records(logs, "ownership")]
        promoted = [m for m in moves if m[2] == "promote"]
        assert promoted == [
            ("canary", 1.0, "promote"),
            ("canary", 5.0, "promote"),
            ("canary", 25.0, "promote"),
            ("canary", 50.0, "promote"),
            ("canary", 100.0, "promote"),
            ("candidate", 100.0, "promote"),
        ]
        assert moves[-1] == ("shadow", 0.0, "rollback")
        (drill,) = typed_records(logs, "drill")
        assert drill["route"] == GET and drill["passed"] is True

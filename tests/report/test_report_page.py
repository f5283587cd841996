"""The HTML report looked at in headless Chromium: the demo's evidence and fourteen days of it.

Each test renders the page, takes screenshots, and measures the page in the
browser's layout (``page_checks.js``): no two text boxes overlap, chart marks
are drawn wherever a rate is non-zero, the banner names the routes that
block. ``REPORT_SCREENSHOTS=DIR`` keeps the screenshots in DIR (the ones in
docs/ come from the demo test).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from rich.cells import cell_len

from shadowproxy.report.command import run_report
from shadowproxy.report.tabular import printable
from tests.report.browser import chromium, needs_chromium
from tests.report.fortnight import HOSTILE_ROUTE, write_fortnight
from tests.report.report_factories import UNTIL_TEXT, parse
from tests.report.test_report_summary import write_damaged

pytestmark = [pytest.mark.slow, needs_chromium]

PAGE_CHECKS = Path(__file__).with_name("page_checks.js").read_text()
_PNG = b"\x89PNG\r\n\x1a\n"
_WIDTH = 1280
DEMO_WAIT_S = 180.0
"""Bound on the whole demo: about 1.5 s on an idle machine, 11 s with six busy processes
on two cores; reaching it means the demo hangs."""


def _report(evidence: list[str], out: Path, *extra: str, until: str | None) -> dict[str, Any]:
    """Write the HTML page to ``out``; return the same report's JSON document."""
    args = [*evidence, *extra]
    assert run_report(parse(*args, "--format", "html", "--out", str(out), until=until)) == 1
    as_json = out.with_suffix(".json")
    run_report(parse(*args, "--format", "json", "--out", str(as_json), until=until))
    doc: dict[str, Any] = json.loads(as_json.read_text())
    return doc


def _png_width(path: Path) -> int:
    data = path.read_bytes()
    assert data.startswith(_PNG), f"{path} is not a PNG"
    return int.from_bytes(data[16:20], "big")


async def _look(
    page_file: Path, tmp_path: Path, name: str, narrow: int | None = None
) -> dict[str, Any]:
    """Screenshots of the page as it opens and of its details opened; the layout measured
    (at ``narrow`` pixels wide too, where no text may overlap or spill either)."""
    shots = tmp_path / "shots"
    shots.mkdir(exist_ok=True)
    async with chromium(tmp_path / "profile") as page:
        await page.open(page_file, width=_WIDTH)
        taken = [
            await page.screenshot(shots / f"{name}.png"),
            await page.screenshot(shots / f"{name}-top.png", max_height=1000),
            await page.screenshot(shots / f"{name}-card.png", "article.card"),
        ]
        checks: dict[str, Any] = await page.evaluate(PAGE_CHECKS)
        taken.append(await page.screenshot(shots / f"{name}-details.png", "section.details"))
        if narrow is not None:
            await page.open(page_file, width=narrow)
            squeezed = await page.evaluate(PAGE_CHECKS)
            taken.append(await page.screenshot(shots / f"{name}-narrow.png", max_height=1400))
            for key in ("overlaps", "outside", "overflowing"):
                assert squeezed[key] == [], (narrow, key, squeezed[key])
            assert not squeezed["pageScrollsSideways"]
    for shot in taken:
        assert _png_width(shot) > 0
    assert _png_width(taken[0]) == _WIDTH
    keep = os.environ.get("REPORT_SCREENSHOTS")
    if keep:
        for shot in taken:
            shutil.copy(shot, Path(keep) / shot.name)
    return checks


def _phase(route: dict[str, Any]) -> str:
    """The phase the page must show for ``route`` (docs/report.md, Cutover readiness)."""
    if route["status"] == "NOT_SHADOWED":
        return "not shadowed"
    percent = route["canary_percent"]
    return f"canary {percent:g}%" if percent is not None else str(route["mode"])


def _assert_cutover(checks: dict[str, Any], doc: dict[str, Any]) -> None:
    """Every route's phase and readiness in its domain's card, as the JSON says them; the
    routes not shadowed listed in their card (traffic, reasons) and named in the banner."""
    ready = sum(1 for r in doc["routes"] if r["ready_for_cutover"])
    assert f": {ready} of {len(doc['routes'])} routes." in checks["readiness"]
    for domain in doc["domains"]:
        chart = checks["charts"][domain["domain"]]
        mine = [r for r in doc["routes"] if r["domain"] == domain["domain"]]
        stages = {stage["route"]: stage for stage in chart["stages"]}
        assert len(stages) == len(chart["stages"]) == len(mine), domain["domain"]
        for route in mine:
            stage = stages[printable(route["route"])]
            assert stage["phase"] == _phase(route)
            assert stage["ready"] == ("yes" if route["ready_for_cutover"] else "no")
            assert ("missing: " in stage["text"]) != route["ready_for_cutover"]
            assert stage["width"] > 0 and stage["height"] > 0
        listed = domain["not_shadowed"]
        assert [(n["route"], n["requests"]) for n in chart["notShadowed"]] == [
            (printable(n["route"]), n["requests"]) for n in listed
        ]
        for shown, entry in zip(chart["notShadowed"], listed, strict=True):
            assert all(reason in shown["text"] for reason in entry["reasons"])
            assert printable(entry["route"]) in checks["notShadowed"]
    if not any(d["not_shadowed"] for d in doc["domains"]):
        assert checks["notShadowed"] == ""


def _assert_looks_right(checks: dict[str, Any], doc: dict[str, Any]) -> None:
    """What every report page must show, whatever the evidence."""
    assert checks["overlaps"] == []
    assert checks["outside"] == []
    assert checks["overflowing"] == []
    assert not checks["pageScrollsSideways"]
    assert checks["textBoxes"] > 100
    assert (checks["scripts"], checks["external"]) == (0, 0)
    failed = any(g["status"] == "fail" for g in doc["gates"])
    assert checks["verdict"] == ("pass" if doc["passed"] else "fail" if failed else "insufficient")
    named = {(line["domain"], line["route"]) for line in checks["blocking"]}
    assert named == {
        (r["domain"], printable(r["route"]))
        for r in doc["routes"]
        if r["status"] not in ("PARITY_OK", "NOT_SHADOWED")
    }
    for line in checks["blocking"]:
        assert line["status"] in {"fail", "insufficient"}
        assert printable(line["route"]) in line["text"]
    _assert_cutover(checks, doc)
    for domain in doc["domains"]:
        chart = checks["charts"][domain["domain"]]
        drawn = [bar for bar in chart["rates"] if bar["rate"] > 0]
        assert bool(drawn) == (domain["diverged"] > 0), domain["domain"]
        for bar in drawn:
            assert bar["height"] >= 3.9 and bar["width"] >= 1.9, (domain["domain"], bar)
        days = chart["days"]
        assert len(days) == math.ceil(doc["window"]["seconds"] / 86400)
        assert sum(day["compared"] for day in days) == domain["compared"]
        for day in days:
            assert day["height"] >= 2.9 and day["width"] >= 1
            assert ("structural" in day["cls"]) == (day["structural"] > 0)
            assert ("empty" in day["cls"]) == (day["compared"] == 0)
        assert chart["streak"]["width"] >= 1.9
        # Routes not shadowed are listed without a chart: nothing of theirs was compared.
        measured = [
            r
            for r in doc["routes"]
            if r["domain"] == domain["domain"] and r["status"] != "NOT_SHADOWED"
        ]
        for bar in chart["bars"]:
            assert bar["width"] >= 1.9 or bar["label"].endswith("no data"), bar
        assert len(chart["bars"]) == 6 * sum(
            1 for r in measured if any(v is not None for v in r["latency"]["legacy"].values())
        )


class TestDemoPage:
    async def test_demo_evidence(self, tmp_path: Path) -> None:
        """The demo prints a summary that fits 100 columns and opens with what blocks; its page
        passes every layout check and names the same routes."""
        logs = tmp_path / "logs"
        demo = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "shadowproxy",
            "demo",
            "--log-dir",
            str(logs),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "NO_COLOR": "1"},
        )
        try:
            async with asyncio.timeout(DEMO_WAIT_S):
                stdout, stderr = await demo.communicate()
        finally:
            if demo.returncode is None:
                demo.kill()
                await demo.wait()
        assert demo.returncode == 0, stderr.decode()[-2000:]
        printed = stdout.decode().splitlines()
        assert max(cell_len(line) for line in printed) <= 100
        doc = _report([str(logs)], tmp_path / "demo.html", until=None)
        blocking = [
            r["route"] for r in doc["routes"] if r["status"] not in ("PARITY_OK", "NOT_SHADOWED")
        ]
        # The demo's POST /api/orders is never mirrored: not shadowed, not blocking.
        assert [r["route"] for r in doc["routes"] if r["status"] == "NOT_SHADOWED"] == [
            "/api/orders"
        ]
        assert {"/api/users/{id}", "/api/orders/{id}", "/api/search"} <= set(blocking)
        assert printed[0].startswith("shadow report FAIL: ")
        first = "\n".join(printed[: 3 + len(blocking) + 1])
        for route in blocking:
            assert f"  {route}  " in first, route
        checks = await _look(tmp_path / "demo.html", tmp_path, "report-demo")
        _assert_looks_right(checks, doc)
        # Every compared /api/users answer differs in shape; how many were compared
        # depends on the machine's load (mirrors are shed when the loop lags).
        (orders,) = checks["charts"]["orders"]["notShadowed"]
        assert orders["route"] == "/api/orders" and "(method)" in orders["text"]
        accounts = checks["charts"]["accounts"]
        assert {bar["rate"] for bar in accounts["rates"]} == {1.0}
        structural = next(d["structural"] for d in doc["domains"] if d["domain"] == "accounts")
        assert accounts["days"][-1]["structural"] == structural > 0


class TestFortnightPage:
    async def test_fourteen_days(self, tmp_path: Path) -> None:
        """Fourteen days of evidence: the structural day and the clean streak, the gap, a 100 %
        hour next to rates of 1 in 10,000 (all visible), a hostile route shown as text; and
        on a narrow screen still nothing overlaps."""
        evidence = write_fortnight(tmp_path / "evidence")
        doc = _report(
            [str(evidence / "shadow-fortnight.jsonl")],
            tmp_path / "fortnight.html",
            "--known",
            str(evidence / "known.yaml"),
            until="2026-11-23T12:00:00.000Z",
        )
        checks = await _look(tmp_path / "fortnight.html", tmp_path, "report-fortnight", 480)
        _assert_looks_right(checks, doc)
        charts = checks["charts"]
        orders = charts["orders"]
        assert [d["structural"] > 0 for d in orders["days"]].count(True) == 1
        assert orders["streakText"] == "clean for 9d 12h since the last structural"
        plot = sum(d["width"] for d in orders["days"])
        assert 0.6 < orders["streak"]["width"] / plot < 0.75
        payments = charts["payments"]
        assert ["empty" in d["cls"] for d in payments["days"]].count(True) == 2
        assert "2 days lack evidence" in payments["streakText"]
        tiny = [bar for bar in payments["rates"] if 0 < bar["rate"] < 0.001]
        huge = max(bar["rate"] for bar in payments["rates"])
        assert tiny and huge > 0.1
        assert [bar["width"] >= 1.9 for bar in payments["uncovered"]] == [True]
        assert "coverage not met: no evidence from 2026-11-17T12:00:00.000Z" in payments["text"]
        assert charts["catalog"]["uncovered"] == []
        assert charts["catalog"]["status"] == "pass"
        assert charts["accounts"]["status"] == "insufficient"
        phases = {
            (domain, stage["route"]): (stage["phase"], stage["ready"])
            for domain, chart in charts.items()
            for stage in chart["stages"]
        }
        assert phases[("catalog", "/catalog")] == ("canary 100%", "yes")
        assert phases[("search", "/search")] == ("canary 25%", "no")
        assert phases[("orders", "/orders/{id}/ws")] == ("not shadowed", "no")
        assert phases[("payments", "/pay")] == ("unknown", "no")
        assert "6720 streams" in orders["text"]
        assert "/orders/{id}/ws: 1008 requests (upgrade)" in orders["text"]
        assert printable(HOSTILE_ROUTE) in checks["banner"]
        assert "<script>" in checks["banner"]


class TestUnreadablePage:
    async def test_evidence_that_could_not_be_read(self, tmp_path: Path) -> None:
        """Lines that could not be read: the banner says so and names the routes they hold
        back, the details list the file and its first problem, and the layout holds."""
        evidence = write_damaged(tmp_path / "shadow-a.jsonl")
        doc = _report([str(evidence)], tmp_path / "damaged.html", until=UNTIL_TEXT)
        checks = await _look(tmp_path / "damaged.html", tmp_path, "report-damaged")
        _assert_looks_right(checks, doc)
        assert checks["verdict"] == "insufficient"
        assert "1 file has evidence that could not be read" in checks["banner"]
        why = {line["route"]: line["text"] for line in checks["blocking"]}
        assert why["/orders/{id}"].endswith("2 unreadable lines")
        details = checks["details"]
        assert "Evidence that could not be read" in details
        assert "line 3: malformed rollup" in details

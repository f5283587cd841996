"""The terminal summary: fits 100 columns, names what blocks first, colour only on a terminal."""

from __future__ import annotations

import os
import re
import sys
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from rich.cells import cell_len

from shadowproxy.report.command import run_report
from shadowproxy.report.cutover_view import route_cutovers
from shadowproxy.report.document import to_json
from shadowproxy.report.render_summary import elide, summary_lines
from shadowproxy.report.tabular import printable
from tests.report.fortnight import write_fortnight
from tests.report.report_factories import (
    as_json,
    drill,
    fleet_report,
    healthy,
    parse,
    phased,
    rollup,
    write_jsonl,
)
from tests.support import WAIT_S

_COLOUR = re.compile(r"\x1b\[[0-9;]*3[0-7](;[0-9]+)*m")


def _summary(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str]]:
    code = run_report(parse(*argv))
    return code, capsys.readouterr().out.splitlines()


@pytest.fixture
def fortnight(tmp_path: Path) -> list[str]:
    """Arguments for the fortnight's evidence, with its known differences."""
    directory = write_fortnight(tmp_path / "evidence")
    return [str(directory / "shadow-fortnight.jsonl"), "--known", str(directory / "known.yaml")]


class TestSummary:
    def test_verdict_then_blocking_routes_first(
        self, capsys: pytest.CaptureFixture[str], fortnight: list[str]
    ) -> None:
        """The first line is the verdict; then each route, failures first, with why in a few
        words and its counts; every line fits 100 columns."""
        code, lines = _summary(capsys, *fortnight)
        assert code == 1
        assert lines[0] == (
            "shadow report FAIL: 3 routes block cutover, 1 route needs more evidence, "
            "3 routes at parity"
        )
        assert lines[3].split() == [
            "status", "route", "domain", "why", "compared", "structural", "semantic", "timing"
        ]  # fmt: skip
        assert lines[4].split() == [
            "FAIL", "/orders/{id}", "orders", "structural:", "5", ">", "0", "67200", "5", "0", "0"
        ]  # fmt: skip
        assert "undocumented: $.amount" in lines[5]
        assert "p99: 3.08x legacy > 1x" in lines[6]
        assert lines[7].startswith("INSUFFICIENT  /users/")
        assert "21 of 1000 compared" in lines[7]
        assert [line.split()[0] for line in lines[8:11]] == ["PASS", "PASS", "PASS"]
        assert lines[11].startswith("NOT SHADOWED  /orders/{id}/ws ")
        uncovered = lines.index("Windows the evidence does not cover (their gates cannot pass)")
        assert lines[uncovered + 1].split() == ["domain", "covered", "gaps", "why"]
        assert lines[uncovered + 2].startswith("accounts ")
        assert lines[uncovered + 3].split()[:3] == ["payments", "12d", "0h"]
        assert lines[uncovered + 3].endswith("to 2026-11-19T12:00:00.000Z (2d 0h)")
        ready = lines.index("Cutover readiness (not part of the verdict): 1 of 8 routes ready")
        # The hostile route's name gives way before what readiness misses.
        assert lines[ready + 2].endswith("shadow        no     parity (failed), canary 100%, drill")
        assert "Top fingerprints (3 of 3)" in lines
        assert max(cell_len(line) for line in lines) <= 100

    def test_hostile_names_are_escaped_and_elided(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        """Control characters never reach the terminal; long and wide names are cut in cells."""
        wide = "/商品/" + "目録" * 80
        evidence = write_jsonl(
            tmp_path / "e.jsonl",
            [
                rollup("/a\x1b]0;owned\x07\u202e" + "b" * 300, "x\x1b[2J", match=3),
                rollup(wide, "catalog", match=3, structural=1),
            ],
        )
        _, lines = _summary(capsys, str(evidence))
        text = "\n".join(lines)
        assert not any(c in text for c in "\x1b\x07\u202e")
        assert max(cell_len(line) for line in lines) <= 100
        assert "x\\x1b[2J" in text
        routes = [line for line in lines[4:6]]
        assert all("…" in line for line in routes)
        assert routes[0].startswith("FAIL          /商品/")

    def test_detail_prints_every_table_after_it(
        self, capsys: pytest.CaptureFixture[str], fortnight: list[str]
    ) -> None:
        """--detail adds the full tables; without it the summary stops at its pointer to them."""
        _, plain = _summary(capsys, *fortnight)
        _, detail = _summary(capsys, *fortnight, "--detail")
        assert detail[: len(plain)] == plain
        rest = "\n".join(detail[len(plain) :])
        assert "Gates" in rest
        assert "BLOCKED_STRUCTURAL" in rest
        assert "BLOCKED_STRUCTURAL" not in "\n".join(plain)
        assert plain[-1].startswith("Full tables: add --detail")

    def test_pass_and_insufficient_verdicts(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        """Clean evidence reads PASS; clean but thin evidence reads INSUFFICIENT, exit 1."""
        clean = write_jsonl(tmp_path / "clean.jsonl", [healthy(compared=1500)])
        code, lines = _summary(capsys, str(clean))
        assert (code, lines[0]) == (0, "shadow report PASS: 1 route at parity")
        thin = write_jsonl(tmp_path / "thin.jsonl", [healthy(compared=40, ago=timedelta(hours=2))])
        code, lines = _summary(capsys, str(thin))
        assert code == 1
        assert (
            lines[0]
            == "shadow report INSUFFICIENT: 1 route needs more evidence, 0 routes at parity"
        )
        assert lines[4].split()[-5:] == ["compared", "40", "0", "0", "0"]


def write_damaged(path: Path) -> Path:
    """Enough clean evidence for two domains, and two lines that cannot be read."""
    return write_jsonl(
        path,
        [
            healthy(compared=2000),
            healthy("/pay", "payments", compared=2000),
            b'{"v": 1, "type": "rollup", "ts_start": "2026-11-23T10:00:00.000Z", '
            b'"route": "/orders/{id}", "domain": "orders", "compared": "5"}',
            b'{"v":1,"type":"rollup","ts_start":',
        ],
    )


_CUTOVER_GATES = """
gates:
  "*": {canary: {bake: 2h, min_compared: 100}}
  payments: {min_duration: 14d, max_gap: 2d}
"""


def _clean(
    route: str, domain: str, ago: timedelta, span: timedelta, **extra: int
) -> dict[str, Any]:
    fast = [5.0] * 100
    return rollup(route, domain, ago, legacy_ms=fast, candidate_ms=fast, span=span, **extra)


def write_cutover(directory: Path) -> list[str]:
    """Routes at every stage of a cutover; returns the report's arguments.

    ``/orders/{id}`` is at canary 100 % with a drill: ready. ``/search`` is at
    canary 25 % and its drill failed; ``/events`` (streams) is in shadow;
    ``/pay``'s rollups cover 13 of the 14 days its ``min_duration`` asks;
    ``/orders/{id}/ws`` is never compared (upgrades): not shadowed.
    """
    day, hour = timedelta(days=1), timedelta(hours=1)
    shadow = timedelta(days=20)
    records = [
        phased(_clean("/orders/{id}", "orders", 14 * day, 14 * day - 4 * hour, match=2000),
               "shadow", since=shadow),
        phased(_clean("/orders/{id}", "orders", 4 * hour, 4 * hour, match=500),
               "canary", 100, 4 * hour),
        drill("/orders/{id}"),
        rollup("/orders/{id}/ws", "orders", day, skipped={"upgrade": 40}),
        phased(_clean("/search", "search", 14 * day, 14 * day - 3 * hour, match=2000),
               "shadow", since=shadow),
        phased(_clean("/search", "search", 3 * hour, 3 * hour, match=300), "canary", 25, 3 * hour),
        drill("/search", passed=False),
        phased(_clean("/events", "search", 14 * day, 14 * day, match=1500, streams=1500),
               "shadow", since=shadow),
        phased(_clean("/pay", "payments", 13 * day, 13 * day, match=2000), "shadow", since=shadow),
    ]  # fmt: skip
    gates = directory / "gates.yaml"
    gates.write_text(_CUTOVER_GATES)
    return [str(write_jsonl(directory / "e.jsonl", records)), "--gates", str(gates)]


def _columns(line: str) -> list[str]:
    """A summary table's line cut into its cells (columns are two spaces apart)."""
    return re.split(r"\s{2,}", line.strip())


class TestCutover:
    def test_phase_readiness_and_what_is_missing(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        """Each route's phase, ready or what readiness misses (parity, duration, canary at
        100 %, drill; failed ones marked), as the JSON says it, in 100 columns."""
        args = write_cutover(tmp_path)
        _, lines = _summary(capsys, *args)
        title = lines.index("Cutover readiness (not part of the verdict): 1 of 5 routes ready")
        assert _columns(lines[title + 1]) == ["route", "domain", "phase", "ready", "missing"]
        rows = {_columns(line)[0]: _columns(line)[1:] for line in lines[title + 2 : title + 7]}
        assert rows == {
            "/orders/{id}": ["orders", "canary 100%", "yes", "-"],
            "/search": ["search", "canary 25%", "no", "canary 100%, drill (failed)"],
            "/events": ["search", "shadow", "no", "canary 100%, drill"],
            "/pay": ["payments", "shadow", "no", "duration 13d 0h of 14d 0h, canary 100%, drill"],
            "/orders/{id}/ws": ["orders", "not shadowed", "no", "drill"],
        }
        assert lines[title + 7] == ""
        assert max(cell_len(line) for line in lines) <= 100
        doc = as_json(capsys, *args)[1]
        ready = {r["route"]: r["ready_for_cutover"] for r in doc["routes"]}
        assert {route: cells[2] == "yes" for route, cells in rows.items()} == ready

    def test_not_shadowed_routes_are_listed_last_with_their_traffic(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        """A route never compared has a line of its own after the others: its domain, its
        requests and why they were skipped; it neither blocks nor counts as at parity."""
        _, lines = _summary(capsys, *write_cutover(tmp_path))
        assert lines[0].endswith("4 routes at parity")
        header = next(i for i, line in enumerate(lines) if line.startswith("status"))
        # The domain's own line: the status word already says the evidence is insufficient.
        assert _columns(lines[header + 1])[:4] == [
            "INSUFFICIENT", "(domain)", "payments", "min_duration: rollups …"
        ]  # fmt: skip
        end = lines.index("", header) - 1  # the streams line ends the table
        assert _columns(lines[end - 1]) == [
            "NOT SHADOWED", "/orders/{id}/ws", "orders", "40 requests (upgrade)", "0", "0",
            "0", "0"
        ]  # fmt: skip
        assert not any("NOT SHADOWED" in line for line in lines[header + 1 : end - 1])

    def test_stream_routes_are_marked_and_counted(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        """A route whose compared exchanges include streams has its count marked, and a line
        under the table says how many of them were streams; other counts stay aligned."""
        _, lines = _summary(capsys, *write_cutover(tmp_path))
        header = next(i for i, line in enumerate(lines) if line.startswith("status"))
        routes = {_columns(line)[1]: line for line in lines[header + 1 : header + 7]}
        assert _columns(routes["/events"])[-4:] == ["1500*", "0", "0", "0"]
        assert _columns(routes["/search"])[-4:] == ["2300", "0", "0", "0"]
        assert routes["/events"].index("1500*") == routes["/search"].index("2300")
        assert lines[header + 7] == (
            "* compared as streams (SSE, WebSocket, gRPC): /events 1500 of 1500"
        )

    def test_fleet_mode_says_readiness_needs_the_files(self) -> None:
        """Prometheus has no phases or drills: the summary says so instead of a table."""
        report = fleet_report()
        doc = to_json(report)
        text = [line.plain for line in summary_lines(doc, route_cutovers(doc, report.stages))]
        title = text.index("Cutover readiness (not part of the verdict)")
        assert text[title + 1].startswith("Fleet mode has no phases or drills")


class TestCoverage:
    def test_domains_with_the_same_gap_share_a_line(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        """Evidence that starts at once leaves every domain the same gap: one line says it."""
        evidence = write_jsonl(
            tmp_path / "e.jsonl",
            [healthy(f"/r{n}", f"d{n}", ago=timedelta(hours=2)) for n in range(3)]
            + [healthy("/late", "late", ago=timedelta(minutes=30))],
        )
        code, lines = _summary(capsys, str(evidence))
        assert code == 1
        title = lines.index("Windows the evidence does not cover (their gates cannot pass)")
        assert lines[title + 2].startswith("d0, d1 +1 ")
        assert lines[title + 3].startswith("late ")
        assert "no evidence in the window's first 13d 22h" in lines[title + 2]
        assert lines[title + 4] == ""


class TestUnreadable:
    def test_unreadable_lines_are_why_and_listed(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        """Routes held back by lines that could not be read say so, and the files are listed
        with their first problem, in 100 columns."""
        evidence = write_damaged(tmp_path / ("shadow-" + "a" * 120 + ".jsonl"))
        code, lines = _summary(capsys, str(evidence))
        assert code == 1
        assert lines[0].startswith("shadow report INSUFFICIENT: 2 routes need more evidence")
        header = next(i for i, line in enumerate(lines) if line.startswith("status"))
        routes = {line.split()[1]: line for line in lines[header + 1 : header + 3]}
        assert "2 unreadable lines" in routes["/orders/{id}"]
        assert "1 unreadable line " in routes["/pay"]
        title = lines.index("Evidence that could not be read (it keeps gates from passing)")
        assert lines[title + 1].split() == [
            "file", "malformed", "oversized", "uncounted", "first", "problem"
        ]  # fmt: skip
        assert lines[title + 2].endswith("2         0         0  line 3: malformed rollup")
        assert "…" in lines[title + 2]
        assert max(cell_len(line) for line in lines) <= 100


class TestColour:
    def _on_a_terminal(
        self, fortnight: list[str], monkeypatch: pytest.MonkeyPatch, columns: int
    ) -> str:
        """The summary written to a pseudo-terminal ``columns`` wide, as it reads back."""
        reader, writer = os.openpty()
        chunks: list[bytes] = []

        def drain() -> None:
            # The pseudo-terminal buffers only a few KiB: read while the report writes.
            while True:
                try:
                    chunk = os.read(reader, 65536)
                except OSError:  # EIO: the writing side is closed and everything was read
                    return
                if not chunk:
                    return
                chunks.append(chunk)

        draining = threading.Thread(target=drain)
        draining.start()
        with os.fdopen(writer, "w", encoding="utf-8") as terminal, monkeypatch.context() as patch:
            patch.setenv("COLUMNS", str(columns))
            patch.setattr(sys, "stdout", terminal)
            run_report(parse(*fortnight))
        draining.join(timeout=WAIT_S)
        os.close(reader)
        return b"".join(chunks).decode().replace("\r\n", "\n")

    def test_colour_on_a_terminal_only(
        self,
        capsys: pytest.CaptureFixture[str],
        fortnight: list[str],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """A terminal gets coloured status words; NO_COLOR and a pipe get none."""
        monkeypatch.delenv("NO_COLOR", raising=False)
        coloured = self._on_a_terminal(fortnight, monkeypatch, 120)
        assert _COLOUR.search(coloured)
        monkeypatch.setenv("NO_COLOR", "1")
        assert not _COLOUR.search(self._on_a_terminal(fortnight, monkeypatch, 120))
        monkeypatch.delenv("NO_COLOR")
        _, piped = _summary(capsys, *fortnight)
        assert "\x1b[" not in "\n".join(piped)

    def test_narrow_terminal(self, fortnight: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
        """On a terminal narrower than 100 columns the summary fits its width."""
        monkeypatch.setenv("NO_COLOR", "1")
        text = re.sub(r"\x1b\[[0-9;]*m", "", self._on_a_terminal(fortnight, monkeypatch, 84))
        assert max(cell_len(line) for line in text.splitlines()) <= 84


class TestText:
    @pytest.mark.parametrize(
        ("text", "width", "middle", "expected"),
        [
            ("/short", 10, True, "/short"),
            ("/api/v1/very/long/route/{id}", 15, True, "/api/v1…te/{id}"),
            ("GET /x: 1 -> 2", 8, False, "GET /x:…"),
            ("/商品/目録目録", 9, True, "/商…目録"),
            ("abc", 1, False, "…"),
        ],
    )
    def test_elide(self, text: str, width: int, middle: bool, expected: str) -> None:
        """Cut to a width in terminal cells, wide characters counting two."""
        assert elide(text, width, middle) == expected
        assert cell_len(elide(text, width, middle)) <= width

    def test_printable(self) -> None:
        """Controls, bidi overrides and zero-width characters are spelled out; the rest stays."""
        assert (
            printable("a\x1b[31mb\u202ec\u200bd\ne 日本") == "a\\x1b[31mb\\u202ec\\u200bd\\ne 日本"
        )

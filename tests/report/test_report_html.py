"""The HTML page as a file (test_report_page looks at it in a browser); parallel aggregation."""

from __future__ import annotations

import io
import re
from datetime import timedelta
from pathlib import Path

from shadowproxy.report.command import run_report
from shadowproxy.report.cutover_view import route_cutovers
from shadowproxy.report.document import to_json
from shadowproxy.report.parallel import aggregate_files, plan_pieces
from shadowproxy.report.render_html import render_html
from shadowproxy.report.windows import Windows
from tests.report.report_factories import (
    UNTIL,
    difference,
    exchange,
    fleet_report,
    parse,
    rollup,
    write_jsonl,
)
from tests.report.test_report_summary import write_cutover


class TestPage:
    def test_self_contained_and_escaped(self, tmp_path: Path) -> None:
        """One file: no scripts, no external assets; client text is escaped and printable."""
        evidence = write_jsonl(
            tmp_path / "e.jsonl",
            [
                rollup("/a\x1b[2J<b>", match=40, semantic=2, legacy_ms=[4.0], candidate_ms=[4.0]),
                exchange(
                    "/a\x1b[2J<b>",
                    differences=[difference(legacy="<script>alert(1)</script>")],
                ),
            ],
        )
        page = tmp_path / "report.html"
        assert run_report(parse(str(evidence), "--format", "html", "--out", str(page))) == 1
        html = page.read_text()
        assert "http://" not in html.replace("http://www.w3.org/2000/svg", "")
        assert "https://" not in html
        assert "<script" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert "\x1b" not in html
        assert "/a\\x1b[2J&lt;b&gt;" in html
        assert 'data-verdict="fail"' in html
        assert '<svg class="chart activity"' in html
        assert '<svg class="chart days"' in html
        assert '<svg class="chart latency"' in html

    def test_cards_say_each_routes_phase_and_list_those_not_shadowed(self, tmp_path: Path) -> None:
        """Each compared route shows its phase and readiness under its status; a route never
        compared is listed apart with its traffic, never with a status badge of its own."""
        page = tmp_path / "report.html"
        run_report(parse(*write_cutover(tmp_path), "--format", "html", "--out", str(page)))
        html = page.read_text()
        routes = dict(
            re.findall(
                r'<div class="route" data-status="\w+" data-route="([^"]+)"(.*?)</div>', html
            )
        )
        assert set(routes) == {"/orders/{id}", "/search", "/events", "/pay"}
        assert 'data-phase="canary 25%" data-ready="no"' in routes["/search"]
        assert "missing: canary 100%, drill (failed)" in routes["/search"]
        assert 'data-phase="canary 100%" data-ready="yes"' in routes["/orders/{id}"]
        assert "1500 streams" in routes["/events"]
        (listed,) = re.findall(r'<ul class="not-shadowed">(.*?)</ul>', html)
        assert listed.startswith('<li data-route="/orders/{id}/ws" data-requests="40">')
        assert "40 requests (upgrade)" in listed and "missing: drill" in listed
        assert "1 of 5 routes." in html

    def test_fleet_mode_says_there_is_no_timeline(self) -> None:
        """Without series (Prometheus totals) the card says so instead of drawing empty charts."""
        report = fleet_report()
        out = io.StringIO()
        doc = to_json(report)
        render_html(doc, out, route_cutovers(doc, report.stages), report.evidence.domains)
        assert "no timeline to draw" in out.getvalue()
        assert "Fleet mode has no phases or drills" in out.getvalue()
        assert '<svg class="chart activity"' not in out.getvalue()


class TestParallel:
    def test_workers_and_chunks_agree_with_one_process(self, tmp_path: Path) -> None:
        """Splitting files into byte ranges across workers gives the same evidence."""
        records = []
        for i in range(600):
            records.append(
                rollup(
                    f"/r{i % 3}",
                    f"d{i % 3 % 2}",
                    timedelta(minutes=i),
                    match=5,
                    semantic=i % 2,
                    legacy_ms=[float(i % 50 + 1)],
                    candidate_ms=[float(i % 40 + 1)],
                )
            )
            records.append(
                exchange(
                    f"/r{i % 3}",
                    f"d{i % 3 % 2}",
                    timedelta(minutes=i),
                    [difference(path=f"$.f{i % 7}"), difference(path=f"$.n[{i}]", noise=True)],
                )
            )
        write_jsonl(tmp_path / "a.jsonl", records[:700])
        write_jsonl(tmp_path / "b.jsonl.gz", records[700:], gz=True)
        files = sorted(tmp_path.iterdir())
        end = UNTIL.timestamp()
        windows = Windows(end, end - 14 * 86400)
        assert len(plan_pieces(files, chunk_bytes=4096)) > 10
        alone = aggregate_files(files, windows, workers=1).evidence()
        split = aggregate_files(
            files, windows, workers=2, parallel_min_bytes=0, chunk_bytes=4096
        ).evidence()
        assert split.routes == alone.routes
        assert split.domains == alone.domains
        assert split.fingerprints == alone.fingerprints
        assert split.noise_paths == alone.noise_paths
        assert split.inputs == alone.inputs
        assert alone.inputs.records == 1200


class TestBalance:
    """Pieces are dealt by the bytes of lines they hold, not by their size on disk."""

    def test_gzip_counts_uncompressed(self, tmp_path: Path) -> None:
        """A small gzip of many lines weighs its uncompressed size, and loads stay even."""
        import gzip

        from shadowproxy.report.parallel import Piece, _balance, _cost

        packed = tmp_path / "big.jsonl.gz"
        packed.write_bytes(gzip.compress(b'{"v":1}\n' * 100_000))
        plain = tmp_path / "plain.jsonl"
        plain.write_bytes(b"x" * 300_000)
        pieces = [Piece(packed), *(Piece(plain, n * 100_000, (n + 1) * 100_000) for n in range(3))]
        assert _cost(Piece(packed)) == 800_000 > packed.stat().st_size
        shares = _balance(pieces, 2)
        assert [Piece(packed)] in shares, "the heavy gzip gets a worker of its own"
        assert sorted(len(share) for share in shares) == [1, 3]

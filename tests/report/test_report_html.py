"""The HTML report rendered by a real headless Chromium, and parallel aggregation."""

from __future__ import annotations

import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest

from shadowproxy.report.aggregate import Windows
from shadowproxy.report.command import run_report
from shadowproxy.report.parallel import aggregate_files, plan_pieces
from tests.report.report_factories import (
    UNTIL,
    difference,
    exchange,
    parse,
    rollup,
    write_jsonl,
)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def dump_dom(page: Path, profile: Path) -> str:
    done = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.slow
class TestHtmlInChromium:
    @pytest.mark.skipif(
        not Path(CHROMIUM).exists(),
        reason="chromium is not installed (apt-get install -y chromium); CI installs it",
    )
    def test_charts_render_in_the_dom(self, tmp_path: Path) -> None:
        """Chromium loads the self-contained page and its SVG charts reach the DOM."""
        evidence = write_jsonl(
            tmp_path / "e.jsonl",
            [
                rollup(
                    match=90,
                    semantic=10,
                    ago=timedelta(hours=3),
                    legacy_ms=[4.0] * 10,
                    candidate_ms=[8.0] * 10,
                ),
                rollup(
                    "/pay",
                    "payments",
                    match=50,
                    ago=timedelta(days=2),
                    legacy_ms=[2.0],
                    candidate_ms=[2.0],
                ),
                exchange(differences=[difference(legacy="<script>alert(1)</script>")]),
            ],
        )
        page = tmp_path / "report.html"
        code = run_report(parse(str(evidence), "--format", "html", "--out", str(page)))
        assert code == 1
        html = page.read_text()
        assert "http://" not in html.replace("http://www.w3.org/2000/svg", "")
        assert "https://" not in html
        assert "<script" not in html
        dom = dump_dom(page, tmp_path / "profile")
        assert dom.count('class="chart timeline"') == 2
        assert 'data-domain="payments"' in dom
        assert "Divergence rate over time: orders" in dom
        assert '<polyline class="rate"' in dom
        assert 'class="chart latency"' in dom
        assert dom.count('class="bar legacy"') == 6
        assert dom.count('class="bar candidate"') == 6
        assert "orders p99 candidate: 8.61 ms" in dom
        assert "&lt;script&gt;" in dom
        assert "NOT PASSED" in dom


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

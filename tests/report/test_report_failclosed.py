"""The report fails closed: parsed verdicts, visible bad lines, content once, hostile values."""

from __future__ import annotations

import gzip
import itertools
import json
import tracemalloc
import zlib
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from shadowproxy.report import aggregate as aggregate_module
from shadowproxy.report.errors import ReportInputError
from shadowproxy.report.parallel import aggregate_files
from shadowproxy.report.sources import CUT, MAX_LINE_BYTES, OVERSIZED, iter_lines, line_number
from shadowproxy.report.windows import Windows
from tests.report.report_factories import (
    UNTIL,
    as_json,
    difference,
    exchange,
    healthy,
    rollup,
    run,
    write_jsonl,
)

ORDERS_GATES = {
    "min_compared",
    "structural",
    "semantic_documented",
    "p99_ratio",
    "error_rate",
    "coverage",
}


def gates_of(doc: dict[str, Any], domain: str = "orders") -> dict[str, dict[str, Any]]:
    return {g["name"]: g for g in doc["gates"] if g["domain"] == domain}


def passing(*extra: dict[str, Any] | bytes) -> list[dict[str, Any] | bytes]:
    """Evidence that passes every default gate, followed by ``extra`` lines."""
    return [healthy(compared=2000), *extra]


class TestParsedVerdicts:
    def test_a_diverged_record_spelling_a_match_is_not_a_match(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        """Values holding the text of a sampled match do not hide an undocumented difference."""
        known = tmp_path / "known.yaml"
        known.write_text("- {fingerprint: '*|semantic|value|$.total', reason: r, owner: o}\n")
        disguised = difference(path="$.note", legacy={"verdict": "match", "differences": []})
        path = write_jsonl(
            tmp_path / "a.jsonl",
            passing(
                rollup(match=10, semantic=2),
                exchange(differences=[difference()]),
                exchange(differences=[disguised]),
            ),
        )
        assert b'"verdict":"match"' in path.read_bytes()
        code, doc = as_json(capsys, str(path), "--known", str(known))
        semantic = gates_of(doc)["semantic_documented"]
        assert (code, semantic["status"]) == (1, "fail")
        assert "$.note" in semantic["reason"]


def _bad_rollup(**changes: object) -> dict[str, Any]:
    return {**healthy(compared=10), **changes}


TRUNCATED_LINE = orjson.dumps(healthy())[:70]
BOM_LINE = b"\xef\xbb\xbf" + orjson.dumps(healthy(compared=10))
NON_UTF8_LINE = orjson.dumps(healthy(compared=10)).replace(b"/orders/{id}", b"/orders/\xff")


class TestUnreadableLines:
    @pytest.mark.parametrize(
        "line",
        [
            TRUNCATED_LINE,
            BOM_LINE,
            NON_UTF8_LINE,
            _bad_rollup(structural="5"),
            _bad_rollup(structural=5.0),
            _bad_rollup(compared=7),
        ],
        ids=["truncated", "bom", "non-utf8", "string-count", "float-count", "sums-disagree"],
    )
    def test_a_bad_line_in_the_window_keeps_gates_from_passing(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path, line: dict[str, Any] | bytes
    ) -> None:
        """A malformed, truncated or wrongly typed line makes the gates insufficient, naming it."""
        path = write_jsonl(tmp_path / "shadow-a-1.jsonl", passing(line))
        code, doc = as_json(capsys, str(path))
        gates = gates_of(doc)
        assert code == 1
        assert {name for name, g in gates.items() if g["status"] == "insufficient"} == ORDERS_GATES
        assert f"1 unreadable lines in the window ({path}: 1)" in gates["structural"]["reason"]
        assert doc["inputs"]["malformed_lines"] == 1
        (problem,) = doc["inputs"]["problems"]
        assert (problem["file"], problem["malformed"], problem["first_line"]) == (str(path), 1, 2)

    def test_a_bad_exchange_holds_only_the_gate_reading_exchanges(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        """An exchange the report cannot read keeps semantic_documented from passing, no more."""
        bad = exchange(differences=[difference(cls="semantik")])
        path = write_jsonl(tmp_path / "a.jsonl", passing(bad))
        code, doc = as_json(capsys, str(path))
        statuses = {name: g["status"] for name, g in gates_of(doc).items()}
        assert code == 1
        assert statuses.pop("semantic_documented") == "insufficient"
        assert set(statuses.values()) == {"pass"}
        assert doc["inputs"]["unreadable"] == [
            {"file": str(path), "domain": "orders", "gates": "semantic_documented", "count": 1}
        ]

    def test_a_bad_line_outside_the_window_is_counted_not_held(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        """A wrongly typed rollup from before the window is reported but judges nothing."""
        old = {**rollup(ago=timedelta(days=30), match=5), "structural": "5"}
        path = write_jsonl(tmp_path / "a.jsonl", passing(old))
        code, doc = as_json(capsys, str(path))
        assert code == 0
        assert doc["inputs"]["malformed_lines"] == 1
        assert doc["inputs"]["unreadable"] == []

    def test_a_domain_seen_only_in_bad_lines_is_judged(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        """A domain whose every rollup is malformed is insufficient, not left out of the report."""
        hidden = {**rollup("/pay", "payments", match=5000), "structural": "9"}
        path = write_jsonl(tmp_path / "a.jsonl", passing(hidden))
        code, doc = as_json(capsys, str(path))
        assert code == 1
        assert all(g["passed"] for g in gates_of(doc, "orders").values())
        assert {g["status"] for g in gates_of(doc, "payments").values()} == {"insufficient"}

    def test_strict_refuses_with_one_line_naming_file_and_line(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        """--strict turns unreadable evidence in the window into exit 2 and one stderr line."""
        path = write_jsonl(tmp_path / "a.jsonl", passing(healthy(), TRUNCATED_LINE))
        code, out, err = run(capsys, str(path), "--strict")
        assert (code, out) == (2, "")
        assert err == (
            f"shadow report: {path}: line 3: malformed line "
            "(1 lines in the window could not be read; --strict)\n"
        )


class TestSameContent:
    def test_a_rotated_file_and_its_gzip_copy_count_once(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        """`gzip -k` next to the rotated file does not double an insufficient total."""
        known = tmp_path / "known.yaml"
        known.write_text("- {fingerprint: '*|semantic|value|$.total', reason: r, owner: o}\n")
        records = [healthy(compared=600), exchange(differences=[difference()])]
        rotated = write_jsonl(tmp_path / "logs" / "shadow-a-1.jsonl.1", records)
        copy = write_jsonl(tmp_path / "logs" / "shadow-a-1.jsonl.1.gz", records, gz=True)
        code, doc = as_json(capsys, str(tmp_path / "logs"), "--known", str(known))
        assert code == 1
        assert doc["routes"][0]["compared"] == 600
        assert doc["fingerprints"][0]["count"] == 1
        assert gates_of(doc)["min_compared"]["status"] == "insufficient"
        assert doc["inputs"]["files"] == 1
        assert doc["inputs"]["duplicate_files"] == [{"file": str(copy), "same_as": str(rotated)}]
        assert f"{copy}: same content as {rotated}, read once" in doc["notes"]

    def test_files_that_differ_are_all_read(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        """Two workers' files of the same size but different lines both count."""
        write_jsonl(tmp_path / "shadow-a-1.jsonl", [healthy(compared=600)])
        write_jsonl(tmp_path / "shadow-b-2.jsonl", [healthy(compared=601, route="/orders/{ix}")])
        _, doc = as_json(capsys, str(tmp_path))
        assert (doc["inputs"]["files"], doc["inputs"]["duplicate_files"]) == (2, [])


def _deep(depth: int) -> bytes:
    value = b"[" * depth + b"]" * depth
    return orjson.dumps(exchange(differences=[difference(legacy=0)])).replace(
        b'"legacy":0', b'"legacy":' + value
    )


def _big_count() -> bytes:
    return orjson.dumps(healthy()).replace(b'"compared":2000', b'"compared":1' + b"0" * 400)


class TestHostileValues:
    @pytest.mark.parametrize(
        ("line", "what"),
        [
            (_big_count(), "compared: a count of 401 digits, beyond 64 bits"),
            (_bad_rollup(ts_start="0000-01-01T00:00:00.000Z"), "ts_start: '0000-01-01T00:00"),
            (
                _bad_rollup(structural=1, diverged=1, match=9, ts_end="0001-01-01T00:00:00+01:00"),
                "ts_end: '0001-01-01T00:00:00+01:00' is outside the years 1970-9999",
            ),
            (
                {"v": 1, "type": "ownership", "ts": "0001-01-01T00:30:00+01:00", "route": "/a"},
                "ts: '0001-01-01T00:30:00+01:00'",
            ),
            (_deep(5000), "a value is nested too deep to decode"),
            (b"[" * 5000 + b"]" * 5000, "a value is nested too deep to decode"),
            (
                orjson.dumps(healthy()).replace(b'"sum_ms":', b'"sum_ms":1e300,"x":'),
                "latency.legacy.sum_ms: 1e+300 ms is beyond 64 bits",
            ),
        ],
        ids=["400-digit", "year-0", "year-1-offset", "ownership", "deep", "deep-array", "sum"],
    )
    def test_refused_with_one_line_naming_file_and_line(
        self,
        capsys: pytest.CaptureFixture[str],
        tmp_path: Path,
        line: dict[str, Any] | bytes,
        what: str,
    ) -> None:
        """Huge numbers, impossible instants and deep nesting exit 2 with one line, no traceback."""
        path = write_jsonl(tmp_path / "a.jsonl", passing(line))
        code, out, err = run(capsys, str(path))
        assert (code, out) == (2, "")
        assert err.startswith(f"shadow report: {path}: line 2: ")
        assert what in err
        assert err.count("\n") == 1

    def test_a_hostile_line_in_a_later_chunk_names_its_line(self, tmp_path: Path) -> None:
        """Worker processes reading byte ranges report the line number in the whole file."""
        lines: list[dict[str, Any] | bytes] = [healthy(route=f"/r{i}") for i in range(400)]
        lines[333] = _big_count()
        path = write_jsonl(tmp_path / "big.jsonl", lines)
        end = UNTIL.timestamp()
        with pytest.raises(ReportInputError) as caught:
            aggregate_files(
                [path],
                Windows(end, end - 14 * 86400),
                workers=2,
                parallel_min_bytes=0,
                chunk_bytes=path.stat().st_size // 3,
            )
        assert str(caught.value) == (
            f"{path}: line 334: compared: a count of 401 digits, beyond 64 bits"
        )


class TestBoundedInput:
    def test_a_long_line_is_skipped_in_bounded_memory(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        """A line past the bound costs at most about the bound, and is counted as oversized."""
        path = write_jsonl(tmp_path / "a.jsonl", passing(b"x" * (4 * MAX_LINE_BYTES)))
        tracemalloc.start()
        try:
            lines = [len(line) if line is not OVERSIZED else line for line in iter_lines(path)]
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert lines[1] == OVERSIZED
        # readline(n) peaks at about twice n; reading the whole line would peak past 8n.
        assert peak < 3 * MAX_LINE_BYTES
        code, doc = as_json(capsys, str(path))
        assert code == 1
        assert (doc["inputs"]["oversized_lines"], doc["inputs"]["malformed_lines"]) == (1, 1)
        assert gates_of(doc)["structural"]["status"] == "insufficient"

    def test_a_gzip_bomb_is_cut_in_bounded_memory(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        """A small gzip file expanding to 300 MB is read to its bound, said so, and held."""
        squeeze = zlib.compressobj(9, zlib.DEFLATED, 31)
        bomb = b"".join(squeeze.compress(b"\0" * 2**20) for _ in range(300)) + squeeze.flush()
        path = tmp_path / "shadow-a-1.jsonl.2.gz"
        path.write_bytes(gzip.compress(orjson.dumps(healthy(compared=2000)) + b"\n") + bomb)
        tracemalloc.start()
        try:
            tail = [line for line in iter_lines(path) if line in (OVERSIZED, CUT)]
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert tail[-1] == CUT
        assert peak < 3 * MAX_LINE_BYTES
        code, doc = as_json(capsys, str(path))
        assert code == 1
        assert doc["inputs"]["problems"][0]["cut"] is True
        assert any("the rest was not read" in note for note in doc["notes"])
        assert gates_of(doc)["structural"]["status"] == "insufficient"

    def test_line_numbers_of_byte_ranges(self, tmp_path: Path) -> None:
        """Ranges read every line once, and a range's line index maps to the file's line."""
        path = tmp_path / "a.jsonl"
        path.write_bytes(b"".join(b"%d\n" % i for i in range(1, 101)))
        size = path.stat().st_size
        cuts = [0, 17, 100, 101, size]
        seen = []
        for start, end in itertools.pairwise(cuts):
            for index, line in enumerate(iter_lines(path, start, end), 1):
                assert int(line) == line_number(path, start, index)
                seen.append(int(line))
        assert seen == list(range(1, 101))


class TestCaps:
    def test_routes_beyond_the_cap_keep_their_domain_from_passing(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Rollups of routes the report cannot track are counted and held, never dropped quietly."""
        monkeypatch.setattr(aggregate_module, "MAX_ROUTES", 1)
        path = write_jsonl(tmp_path / "a.jsonl", passing(healthy(route="/orders")))
        code, doc = as_json(capsys, str(path))
        assert code == 1
        assert doc["inputs"]["uncounted_records"] == 1
        assert gates_of(doc)["structural"]["status"] == "insufficient"

    def test_domains_beyond_the_cap_keep_every_domain_from_passing(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A domain the report cannot track may be any domain: all of them are insufficient."""
        monkeypatch.setattr(aggregate_module, "MAX_DOMAINS", 1)
        path = write_jsonl(tmp_path / "a.jsonl", passing(healthy("/pay", "payments")))
        code, doc = as_json(capsys, str(path))
        assert code == 1
        assert [d["domain"] for d in doc["domains"]] == ["orders"]
        assert gates_of(doc)["structural"]["status"] == "insufficient"
        assert doc["inputs"]["unreadable"][0]["domain"] == "*"


class TestOutputs:
    def test_out_and_tracker_files_are_private(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        """--out and --tracker files are 0600, also when an earlier file was wider."""
        path = write_jsonl(tmp_path / "a.jsonl", passing())
        out, tracker = tmp_path / "report.md", tmp_path / "tracker.csv"
        out.write_text("old")
        out.chmod(0o644)
        run(capsys, str(path), "--format", "markdown", "--out", str(out), "--tracker", str(tracker))
        assert out.read_text().startswith("# shadow report PASSED")
        assert (out.stat().st_mode & 0o777, tracker.stat().st_mode & 0o777) == (0o600, 0o600)
        run(capsys, str(path), "--tracker", str(tracker))
        assert tracker.stat().st_mode & 0o777 == 0o600
        assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jsonl", "report.md", "tracker.csv"]

    def test_markdown_and_terminal_escape_client_text(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        """Client paths with HTML, links and escape sequences stay inert text in every format."""
        from markdown_it import MarkdownIt

        hostile = (
            "/x/<script>alert(1)</script>/[click](https://evil.example)/<https://evil.example>"
            "/![i](https://evil.example/i.png)/*bold*/`code`/\x1b[2J\u202e"
        )
        path = write_jsonl(
            tmp_path / "a.jsonl",
            passing(exchange(differences=[difference("structural")], path=hostile)),
        )
        _, markdown, _ = run(capsys, str(path), "--format", "markdown")
        html = MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(markdown)
        for active in ("<script", "<a ", "<img", "<em>", "<strong>", "<code>", "\x1b", "\u202e"):
            assert active not in html
        assert "[click](https://evil.example)" in html
        _, table, _ = run(capsys, str(path), "--detail")
        assert "\x1b" not in table and "\u202e" not in table
        assert "\\x1b[2J\\u202e" in table
        _, doc_text, _ = run(capsys, str(path), "--format", "json")
        assert json.loads(doc_text)["fingerprints"][0]["example"].startswith("GET /x/<script>")

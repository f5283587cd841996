"""The ``shadow report`` command: exit codes, formats, tracker, suggestions, ``python -m``."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

import shadowproxy.report as report_package
from shadowproxy.report.command import run_report
from tests.report.report_factories import (
    UNTIL_TEXT,
    as_json,
    difference,
    exchange,
    healthy,
    parse,
    rollup,
    run,
    write_jsonl,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def clean(tmp_path: Path) -> Path:
    """Evidence passing every default gate, in two shards."""
    write_jsonl(tmp_path / "logs" / "shadow-a-1.jsonl", [healthy(compared=600)])
    write_jsonl(tmp_path / "logs" / "shadow-b-2.jsonl.1.gz", [healthy(compared=601)], gz=True)
    return tmp_path / "logs"


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    """Evidence with a structural divergence, a semantic one, noise and a bad line."""
    return write_jsonl(
        tmp_path / "broken.jsonl",
        [
            rollup(
                match=1990,
                structural=4,
                semantic=6,
                noise=5,
                legacy_ms=[5.0] * 50,
                candidate_ms=[5.0] * 50,
            ),
            rollup("/pay", "payments", match=30, legacy_ms=[5.0], candidate_ms=[5.0]),
            exchange(differences=[difference("structural", "missing", "$.id", 7, None)]),
            exchange(differences=[difference(), difference(path="$.items[0].etag", noise=True)]),
            exchange(differences=[difference(path="$.items[4].etag", noise=True)]),
            b'{"v": 1, "type": "rollup", "ts_start": ',
            {
                "v": 1,
                "type": "ownership",
                "ts": "2026-11-23T09:00:00.000Z",
                "route": "/pay",
                "from": "shadow",
                "to": "canary",
                "percent": 5,
                "reason": "trial",
                "source": "admin",
            },
        ],
    )


class TestExitCodes:
    def test_passing_gates_exit_zero(self, capsys: pytest.CaptureFixture[str], clean: Path) -> None:
        """Shards merged to enough clean evidence pass every gate: exit 0."""
        code, doc = as_json(capsys, str(clean))
        assert code == 0
        assert doc["passed"] is True
        assert doc["routes"][0]["compared"] == 1201
        assert doc["inputs"]["files"] == 2

    def test_failing_gate_exits_one(self, capsys: pytest.CaptureFixture[str], broken: Path) -> None:
        """A failing gate exits 1 and says which gate and why."""
        code, doc = as_json(capsys, str(broken))
        assert code == 1
        failed = {(g["domain"], g["name"]) for g in doc["gates"] if g["status"] == "fail"}
        assert ("orders", "structural") in failed
        assert ("orders", "semantic_documented") in failed
        assert doc["inputs"]["malformed_lines"] == 1

    def test_insufficient_evidence_exits_one(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        """Clean but thin evidence is not a pass."""
        path = write_jsonl(tmp_path / "a.jsonl", [healthy(compared=40)])
        code, doc = as_json(capsys, str(path))
        assert code == 1
        assert {g["status"] for g in doc["gates"]} == {"insufficient"}

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["{tmp}/absent.jsonl"], "{tmp}/absent.jsonl: no such file"),
            (["{tmp}/empty.jsonl"], "no evidence records"),
            (["{tmp}/empty.jsonl", "--gates", "{tmp}/none.yaml"], "{tmp}/none.yaml: cannot read"),
            (["{tmp}/empty.jsonl", "--gates", "{tmp}/bad.yaml"], "gates.orders.min_compared"),
            (["{tmp}/empty.jsonl", "--known", "{tmp}/known.yaml"], "[0].owner: missing"),
            (["{tmp}/empty.jsonl", "--since", "last tuesday"], "--since:"),
            ([], "command line: give evidence PATHs"),
        ],
    )
    def test_bad_input_exits_two_with_one_line(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path, args: list[str], message: str
    ) -> None:
        """Bad input exits 2 with one stderr line naming the file and key, no traceback."""
        (tmp_path / "empty.jsonl").write_bytes(b"not json\n")
        (tmp_path / "bad.yaml").write_text("gates:\n  orders: {min_compared: -1}\n")
        (tmp_path / "known.yaml").write_text("- {fingerprint: 'a|b|c|d', reason: r}\n")
        code, out, err = run(capsys, *(a.format(tmp=tmp_path) for a in args))
        assert code == 2
        assert out == ""
        assert err.count("\n") == 1
        assert err.startswith("shadow report: ")
        assert message.format(tmp=tmp_path) in err
        assert "Traceback" not in err

    def test_since_and_until_select_records(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        """--since/--until (relative or RFC 3339) bound the records that count."""
        path = write_jsonl(
            tmp_path / "a.jsonl",
            [
                rollup(match=1, ago=timedelta(hours=70)),
                rollup(match=10, ago=timedelta(hours=30)),
                rollup(match=100, ago=timedelta(hours=2)),
            ],
        )
        _, doc = as_json(capsys, str(path), "--since", "2026-11-21T00:00:00Z")
        assert doc["routes"][0]["compared"] == 110
        assert doc["window"] == {
            "since": "2026-11-21T00:00:00.000Z",
            "until": UNTIL_TEXT,
            "seconds": 216000.0,
        }
        code = run_report(parse(str(path), "--since", "2026-11-21T00:00:00Z", "--format", "json"))
        assert code == 1
        capsys.readouterr()
        _, doc = as_json(capsys, str(path), "--since", "2026-11-22T12:00:00Z")
        assert doc["routes"][0]["compared"] == 100
        assert doc["inputs"]["outside_window"] == 2


class TestFormats:
    def test_json_matches_schema_and_hand_computed_numbers(
        self, capsys: pytest.CaptureFixture[str], broken: Path
    ) -> None:
        """The JSON report validates against the schema and carries the expected figures."""
        _, doc = as_json(capsys, str(broken))
        orders = next(d for d in doc["domains"] if d["domain"] == "orders")
        assert (orders["compared"], orders["structural"], orders["semantic"]) == (2001, 4, 6)
        assert orders["rates"]["structural"]["rate"] == pytest.approx(4 / 2001, abs=1e-6)
        assert orders["rates"]["structural"]["upper95"] > orders["rates"]["structural"]["rate"]
        assert orders["last_structural"] == "2026-11-23T11:01:00.000Z"  # the rollup's ts_end
        assert orders["latency"]["legacy"]["p99"] == pytest.approx(5.0, rel=0.1)
        keys = [f["key"] for f in doc["fingerprints"]]
        assert keys == [
            "/orders/{id}|semantic|value|$.total",
            "/orders/{id}|structural|missing|$.id",
        ] or sorted(keys) == sorted(
            ["/orders/{id}|semantic|value|$.total", "/orders/{id}|structural|missing|$.id"]
        )
        assert doc["ownership"][0]["to"] == "canary"
        statuses = {r["route"]: r["status"] for r in doc["routes"]}
        assert statuses == {"/orders/{id}": "BLOCKED_STRUCTURAL", "/pay": "INSUFFICIENT_EVIDENCE"}

    def test_markdown(self, capsys: pytest.CaptureFixture[str], broken: Path) -> None:
        """Markdown has the headline, a gate table and escaped pipes in fingerprint keys."""
        code, out, _ = run(capsys, str(broken), "--format", "markdown")
        assert code == 1
        assert out.startswith("# shadow report NOT PASSED")
        assert "| orders | structural | FAIL | 4 | 0 |" in out
        assert "/orders/{id}\\|semantic\\|value\\|$.total" in out
        assert "## Ownership history" in out

    def test_table_without_colour_off_a_terminal(
        self, capsys: pytest.CaptureFixture[str], broken: Path
    ) -> None:
        """The table format prints its summary with no escape codes when not a TTY."""
        code, out, _ = run(capsys, str(broken))
        assert code == 1
        assert "\x1b[" not in out
        assert "structural: 4 > 0" in out
        assert "$.items" not in out
        assert "note: 1 malformed lines skipped" in out

    def test_out_writes_a_file(
        self, capsys: pytest.CaptureFixture[str], clean: Path, tmp_path: Path
    ) -> None:
        """--out writes the report there and nothing to stdout."""
        target = tmp_path / "report.md"
        code, out, _ = run(capsys, str(clean), "--format", "markdown", "--out", str(target))
        assert (code, out) == (0, "")
        assert target.read_text().startswith("# shadow report PASSED")


class TestTracker:
    def test_keeps_hand_added_columns_and_rows(
        self, capsys: pytest.CaptureFixture[str], broken: Path, tmp_path: Path
    ) -> None:
        """Updating keeps a team's extra columns and rows and refreshes the report's own."""
        tracker = tmp_path / "tracker.csv"
        tracker.write_text(
            "route,owner,status,notes\n"
            '/orders/{id},alice,PARITY_OK,"careful, money"\n'
            "/legacy-only,bob,,never migrating\n"
        )
        assert run(capsys, str(broken), "--tracker", str(tracker))[0] == 1
        with tracker.open(newline="") as handle:
            reader = csv.DictReader(handle)
            rows = {row["route"]: row for row in reader}
            header = reader.fieldnames
        assert header is not None
        assert header[:4] == ["route", "owner", "status", "notes"]
        assert "last_updated" in header
        assert rows["/orders/{id}"]["owner"] == "alice"
        assert rows["/orders/{id}"]["notes"] == "careful, money"
        assert rows["/orders/{id}"]["status"] == "BLOCKED_STRUCTURAL"
        assert rows["/orders/{id}"]["structural"] == "4"
        assert rows["/legacy-only"]["notes"] == "never migrating"
        assert rows["/pay"]["status"] == "INSUFFICIENT_EVIDENCE"

    def test_creates_a_new_file(
        self, capsys: pytest.CaptureFixture[str], clean: Path, tmp_path: Path
    ) -> None:
        """Without a file, the tracker is created with the report's columns."""
        tracker = tmp_path / "new.csv"
        run(capsys, str(clean), "--tracker", str(tracker))
        with tracker.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert [(r["route"], r["status"]) for r in rows] == [("/orders/{id}", "PARITY_OK")]


class TestSuggestIgnores:
    def test_snippet_is_pasteable_yaml(
        self, capsys: pytest.CaptureFixture[str], broken: Path
    ) -> None:
        """The most frequent noise paths come out as a routes/compare/ignore YAML snippet."""
        code, out, _ = run(capsys, str(broken), "--suggest-ignores")
        assert code == 1
        snippet = yaml.safe_load(out)
        assert snippet == {
            "routes": [{"match": "/orders/{id}", "compare": {"ignore": ["$.items[*].etag"]}}]
        }
        assert "noise 2 times" in out


class TestModule:
    def test_python_dash_m(self, clean: Path) -> None:
        """``python -m shadowproxy.report`` runs the command and returns its exit code."""
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "shadowproxy.report",
                str(clean),
                "--until",
                UNTIL_TEXT,
                "--format",
                "json",
            ],
            capture_output=True,
            env=env,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0
        assert json.loads(done.stdout)["passed"] is True

    def test_exports(self) -> None:
        """The package exports the CLI entry points and the input error."""
        assert report_package.__all__ == ["ReportInputError", "add_report_arguments", "run_report"]

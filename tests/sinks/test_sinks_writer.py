"""The JSONL writer: files, modes, rotation, the disk cap and every way to drop a record."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import orjson
import pytest

from shadowproxy.settings import EvidenceSettings
from shadowproxy.sinks import writer as writer_module
from shadowproxy.sinks.metrics import Metrics
from shadowproxy.sinks.writer import JsonlWriter, file_name
from tests.sinks.sinks_factories import read_records, wait_until

PAD = "p" * 60


def make_writer(log_dir: Path, metrics: Metrics, **limits: int) -> JsonlWriter:
    """A writer for worker ``w1`` in ``log_dir`` with ``limits`` overriding the defaults."""
    return JsonlWriter(EvidenceSettings(log_dir=str(log_dir), **limits), "w1", metrics)  # type: ignore[arg-type]


def record(i: int) -> dict[str, object]:
    """A small numbered record (about 100 bytes as JSON)."""
    return {"v": 1, "type": "test", "seq": i, "pad": PAD}


def dropped(metrics: Metrics, reason: str) -> float:
    """``shadowproxy_jsonl_dropped_total{reason}``."""
    value = metrics.registry.get_sample_value("shadowproxy_jsonl_dropped_total", {"reason": reason})
    return value or 0.0


class TestFiles:
    def test_one_private_file_per_worker(self, tmp_path: Path, metrics: Metrics) -> None:
        """Records land in ``shadow-<worker>.jsonl`` created with mode 0600 in a 0700 directory."""
        w = make_writer(tmp_path / "logs", metrics)
        w.start()
        w.submit(record(1))
        assert w.close(5.0)
        path = tmp_path / "logs" / "shadow-w1.jsonl"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE((tmp_path / "logs").stat().st_mode) == 0o700
        assert orjson.loads(path.read_bytes()) == record(1)

    def test_existing_wide_file_is_narrowed(self, tmp_path: Path, metrics: Metrics) -> None:
        """An existing world-readable file is made private before anything is appended."""
        (tmp_path / "shadow-w1.jsonl").write_bytes(b"")
        (tmp_path / "shadow-w1.jsonl").chmod(0o644)
        w = make_writer(tmp_path, metrics)
        w.start()
        w.submit(record(1))
        assert w.close(5.0)
        assert stat.S_IMODE((tmp_path / "shadow-w1.jsonl").stat().st_mode) == 0o600

    def test_unsafe_worker_ids_are_sanitised(self) -> None:
        """A worker id cannot escape the log directory."""
        assert file_name("../etc/passwd host:1") == "shadow-.._etc_passwd_host_1.jsonl"


class TestClose:
    def test_close_flushes_everything(self, tmp_path: Path, metrics: Metrics) -> None:
        """N records submitted then a graceful close give exactly N lines."""
        w = make_writer(tmp_path, metrics, queue_size=20_000)
        w.start()
        n = 5000
        assert all(w.submit(record(i)) for i in range(n))
        assert w.close(30.0)
        lines = (tmp_path / "shadow-w1.jsonl").read_bytes().splitlines()
        assert len(lines) == n
        assert [orjson.loads(line)["seq"] for line in lines] == list(range(n))
        assert metrics.registry.get_sample_value("shadowproxy_jsonl_records_total") == n

    def test_final_items_are_written_and_later_ones_counted(
        self, tmp_path: Path, metrics: Metrics
    ) -> None:
        """Items handed to close are written; submissions after close are dropped as closed."""
        w = make_writer(tmp_path, metrics)
        assert w.close(5.0, [record(1)])
        assert not w.submit(record(2))
        assert [r["seq"] for r in read_records(tmp_path)] == [1]
        assert dropped(metrics, "closed") == 1


class TestDrops:
    def test_full_queue_drops_without_blocking(self, tmp_path: Path, metrics: Metrics) -> None:
        """Beyond ``queue_size`` submissions return False at once and are counted."""
        w = make_writer(tmp_path, metrics, queue_size=3)
        results = [w.submit(record(i)) for i in range(10)]  # writer not started: nothing drains
        assert results == [True] * 3 + [False] * 7
        assert dropped(metrics, "queue_full") == 7
        assert w.stats()["queue_depth"] == 3
        assert w.close(5.0)
        assert len(read_records(tmp_path)) == 3

    def test_unwritable_directory_drops_and_recovers(
        self, tmp_path: Path, metrics: Metrics, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A log_dir that cannot be created drops records as write_error, then writing resumes."""
        monkeypatch.setattr(writer_module, "_RETRY_S", 0.0)
        blocker = tmp_path / "logs"
        blocker.write_bytes(b"not a directory")
        w = make_writer(blocker, metrics)
        w.start()
        for i in range(5):
            w.submit(record(i))
        wait_until(lambda: dropped(metrics, "write_error") == 5, "write errors counted")
        assert "ENOTDIR" in str(w.stats()["last_error"]) or "EEXIST" in str(w.stats()["last_error"])
        blocker.unlink()
        w.submit(record(99))
        assert w.close(5.0)
        assert [r["seq"] for r in read_records(blocker)] == [99]

    def test_full_disk_drops_and_counts(
        self, tmp_path: Path, metrics: Metrics, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """ENOSPC on write (``/dev/full``) drops the records, counts them and keeps going."""
        if not Path("/dev/full").exists():
            pytest.skip("/dev/full is needed to simulate a full disk")
        monkeypatch.setattr(
            writer_module, "open_private", lambda path: os.open("/dev/full", os.O_WRONLY)
        )
        w = make_writer(tmp_path, metrics)
        w.start()
        results = [w.submit(record(i)) for i in range(20)]
        assert all(results)
        assert w.close(5.0)
        assert dropped(metrics, "write_error") == 20
        assert "ENOSPC" in str(w.stats()["last_error"])

    def test_opener_failure_is_counted(
        self, tmp_path: Path, metrics: Metrics, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A read-only file system (EROFS from the opener) drops records as write_error."""

        def refuse(path: Path) -> int:
            raise OSError(30, "Read-only file system", str(path))

        monkeypatch.setattr(writer_module, "open_private", refuse)
        w = make_writer(tmp_path, metrics)
        w.start()
        for i in range(4):
            w.submit(record(i))
        assert w.close(5.0)
        assert dropped(metrics, "write_error") == 4
        assert w.stats()["records_written"] == 0

    def test_unserialisable_record_is_counted(self, tmp_path: Path, metrics: Metrics) -> None:
        """A record orjson cannot encode is dropped as encode_error; the next one is written."""
        w = make_writer(tmp_path, metrics)
        w.start()
        w.submit({"type": "bad", "value": object()})
        w.submit(record(2))
        assert w.close(5.0)
        assert dropped(metrics, "encode_error") == 1
        assert [r["seq"] for r in read_records(tmp_path)] == [2]


class TestRotation:
    def test_rotates_by_size_and_keeps_files(self, tmp_path: Path, metrics: Metrics) -> None:
        """Files rotate at ``rotate_bytes``; only ``keep_files`` rotated files remain, all 0600."""
        w = make_writer(tmp_path, metrics, rotate_bytes=1000, keep_files=2)
        w.start()
        for i in range(100):
            w.submit(record(i))
        assert w.close(5.0)
        names = sorted(p.name for p in tmp_path.iterdir())
        assert names == ["shadow-w1.jsonl", "shadow-w1.jsonl.1", "shadow-w1.jsonl.2"]
        for path in tmp_path.iterdir():
            assert path.stat().st_size <= 1000
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
        newest = [
            orjson.loads(x)["seq"] for x in (tmp_path / "shadow-w1.jsonl").read_bytes().split()
        ]
        assert newest[-1] == 99
        seqs = sorted(int(r["seq"]) for r in read_records(tmp_path))  # type: ignore[call-overload]
        assert seqs == list(range(seqs[0], 100))

    def test_disk_cap_deletes_oldest_rotated_files(self, tmp_path: Path, metrics: Metrics) -> None:
        """Over ``max_total_bytes`` the oldest rotated files go first and the newest data stays."""
        w = make_writer(tmp_path, metrics, rotate_bytes=1000, keep_files=50, max_total_bytes=2500)
        w.start()
        for i in range(100):
            w.submit(record(i))
        assert w.close(5.0)
        total = sum(p.stat().st_size for p in tmp_path.iterdir())
        assert total <= 2500
        assert dropped(metrics, "disk_cap") == 0
        seqs = sorted(int(r["seq"]) for r in read_records(tmp_path))  # type: ignore[call-overload]
        assert seqs[-1] == 99 and seqs == list(range(seqs[0], 100))

    def test_disk_cap_drops_when_nothing_is_left_to_delete(
        self, tmp_path: Path, metrics: Metrics
    ) -> None:
        """With no rotated file to delete, records beyond the cap are dropped and counted."""
        w = make_writer(tmp_path, metrics, rotate_bytes=100_000, max_total_bytes=2000)
        w.start()
        for i in range(100):
            w.submit(record(i))
        assert w.close(5.0)
        size = (tmp_path / "shadow-w1.jsonl").stat().st_size
        written = len(read_records(tmp_path))
        assert size <= 2000
        assert written + dropped(metrics, "disk_cap") == 100
        assert dropped(metrics, "disk_cap") > 0

    def test_cap_counts_other_workers_files(self, tmp_path: Path, metrics: Metrics) -> None:
        """Other workers' evidence files count toward the cap; unrelated files do not."""
        (tmp_path / "shadow-w2.jsonl").write_bytes(b"x" * 1500)
        (tmp_path / "notes.txt").write_bytes(b"x" * 10_000)
        w = make_writer(tmp_path, metrics, max_total_bytes=2000)
        w.start()
        for i in range(20):
            w.submit(record(i))
        assert w.close(5.0)
        assert (tmp_path / "shadow-w1.jsonl").stat().st_size <= 500
        assert dropped(metrics, "disk_cap") > 0

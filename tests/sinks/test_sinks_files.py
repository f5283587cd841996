"""Evidence files cannot be redirected: planted symlinks and hard links, unsafe log dirs."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import orjson
import pytest

from shadowproxy.settings import EvidenceSettings
from shadowproxy.sinks import Metrics, configure_logging
from shadowproxy.sinks.writer import JsonlWriter, Stream

PAD = "p" * 60
TARGET_TEXT = b"precious file, not evidence\n"


def make_writer(log_dir: Path, metrics: Metrics, **limits: int) -> JsonlWriter:
    """A writer of worker ``w1`` with ``limits`` overriding the defaults."""
    return JsonlWriter(EvidenceSettings(log_dir=str(log_dir), **limits), "w1", metrics)  # type: ignore[arg-type]


def record(i: int) -> dict[str, object]:
    return {"v": 1, "type": "test", "seq": i, "pad": PAD}


def plant_target(tmp_path: Path) -> Path:
    """A file outside the log dir that a symlink will point at (mode 0644)."""
    target = tmp_path / "elsewhere" / "target.txt"
    target.parent.mkdir()
    target.write_bytes(TARGET_TEXT)
    target.chmod(0o644)
    return target


def untouched(target: Path) -> bool:
    """The planted target still has its content and mode."""
    return target.read_bytes() == TARGET_TEXT and stat.S_IMODE(target.stat().st_mode) == 0o644


def dropped(metrics: Metrics, reason: str) -> float:
    value = metrics.registry.get_sample_value("shadowproxy_jsonl_dropped_total", {"reason": reason})
    return value or 0.0


class TestPlantedLinks:
    @pytest.mark.parametrize(
        ("name", "stream"),
        [("shadow-w1.jsonl", Stream.EXCHANGES), ("shadow-w1.rollups.jsonl", Stream.ROLLUPS)],
    )
    def test_symlink_at_the_active_name_is_never_followed(
        self, tmp_path: Path, metrics: Metrics, name: str, stream: Stream
    ) -> None:
        """A symlink where the next file goes: target untouched, records counted as write_error."""
        logs = tmp_path / "logs"
        logs.mkdir(mode=0o700)
        target = plant_target(tmp_path)
        (logs / name).symlink_to(target)
        w = make_writer(logs, metrics)
        w.start()
        for i in range(3):
            w.submit(record(i), stream)
        assert w.close(5.0)
        assert untouched(target)
        assert (logs / name).is_symlink()
        assert dropped(metrics, "write_error") == 3
        assert "symbolic link" in str(w.stats()["last_error"])

    def test_symlink_at_the_rotated_name_is_replaced_not_followed(
        self, tmp_path: Path, metrics: Metrics
    ) -> None:
        """Rotation renames over a planted ``.1`` link: the link goes, its target stays."""
        target = plant_target(tmp_path)
        (tmp_path / "shadow-w1.jsonl.1").symlink_to(target)
        (tmp_path / "shadow-w1.jsonl.2").symlink_to(target)
        w = make_writer(tmp_path, metrics, rotate_bytes=300, keep_files=3)
        w.start()
        for i in range(20):
            w.submit(record(i))
        assert w.close(5.0)
        assert untouched(target)
        assert not any(p.is_symlink() for p in tmp_path.glob("shadow-w1.jsonl*"))
        assert dropped(metrics, "write_error") == 0

    def test_hard_link_is_refused(self, tmp_path: Path, metrics: Metrics) -> None:
        """A hard link at the active name (another name for someone's file) is not written."""
        logs = tmp_path / "logs"
        logs.mkdir(mode=0o700)
        target = plant_target(tmp_path)
        os.link(target, logs / "shadow-w1.jsonl")
        w = make_writer(logs, metrics)
        w.start()
        w.submit(record(1))
        assert w.close(5.0)
        assert target.read_bytes() == TARGET_TEXT
        assert dropped(metrics, "write_error") == 1
        assert "not a private regular file" in str(w.stats()["last_error"])


class TestLogDir:
    def test_writable_by_others_is_tightened_with_a_warning(
        self, tmp_path: Path, metrics: Metrics
    ) -> None:
        """A log dir others may write to loses those bits; a warning says so."""
        logs = tmp_path / "logs"
        logs.mkdir()
        logs.chmod(0o777)
        out = io.StringIO()
        configure_logging(json=True, stream=out)
        try:
            w = make_writer(logs, metrics)
            w.start()
            w.submit(record(1))
            assert w.close(5.0)
        finally:
            configure_logging()
        assert stat.S_IMODE(logs.stat().st_mode) == 0o755
        events = [orjson.loads(line) for line in out.getvalue().splitlines()]
        assert [e["level"] for e in events if e["event"] == "log_dir_tightened"] == ["warning"]
        assert (logs / "shadow-w1.jsonl").exists()

    def test_owned_by_another_user_is_refused(
        self, tmp_path: Path, metrics: Metrics, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A log dir of another user gets no evidence: write_error, and the error says why."""
        real = os.geteuid()
        monkeypatch.setattr(os, "geteuid", lambda: real + 1)
        w = make_writer(tmp_path, metrics)
        w.start()
        w.submit(record(1))
        assert w.close(5.0)
        monkeypatch.undo()
        assert not (tmp_path / "shadow-w1.jsonl").exists()
        assert dropped(metrics, "write_error") == 1
        assert f"owned by uid {real}" in str(w.stats()["last_error"])

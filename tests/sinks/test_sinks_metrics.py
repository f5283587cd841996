"""Metric names, labels, bounded label values, promtool lint and multiprocess summing."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.multiprocess import MultiProcessCollector

from shadowproxy import __version__
from shadowproxy.model import ErrorKind, Observation
from shadowproxy.sinks.metrics import (
    RENDER_ATTEMPTS,
    Metrics,
    code_class,
    method_label,
    render_metrics,
)

REPO = Path(__file__).resolve().parents[2]


def promtool_check(text: bytes) -> None:
    """Fail with promtool's own words unless ``text`` passes ``promtool check metrics``."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package 'prometheus')")
    done = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()


def exercise(metrics: Metrics) -> None:
    """Touch every metric once."""
    metrics.requests.labels("/a", method_label("GET"), code_class(200)).inc()
    metrics.comparisons.labels("/a", "orders", "diverged").inc()
    metrics.divergences.labels("/a", "orders", "semantic").inc()
    metrics.observe_upstream("candidate", "/a", Observation.failed(ErrorKind.TIMEOUT, 5.0))
    metrics.observe_upstream("legacy", "/a", Observation(status=200, elapsed_s=0.004))
    metrics.skipped.labels("sampled_out").inc()
    metrics.inflight.set(2)
    metrics.jsonl_records.inc()
    metrics.jsonl_dropped.labels("queue_full").inc()


class TestLabels:
    @pytest.mark.parametrize(
        ("method", "label"),
        [("get", "GET"), ("PATCH", "PATCH"), ("PROPFIND", "OTHER"), ("", "OTHER")],
    )
    def test_methods_are_bounded(self, method: str, label: str) -> None:
        """Known methods keep their name; anything else is OTHER."""
        assert method_label(method) == label

    @pytest.mark.parametrize(
        ("status", "label"),
        [(200, "2xx"), (304, "3xx"), (503, "5xx"), (None, "error"), (999, "error")],
    )
    def test_status_classes_are_bounded(self, status: int | None, label: str) -> None:
        """Statuses map to 1xx..5xx; none or out of range is ``error``."""
        assert code_class(status) == label


class TestMetrics:
    def test_names_and_labels(self, metrics: Metrics) -> None:
        """Each metric is readable under its documented name and labels."""
        exercise(metrics)
        get = metrics.registry.get_sample_value
        assert (
            get("shadowproxy_requests_total", {"route": "/a", "method": "GET", "code_class": "2xx"})
            == 1
        )
        assert (
            get(
                "shadowproxy_comparisons_total",
                {"route": "/a", "domain": "orders", "verdict": "diverged"},
            )
            == 1
        )
        assert (
            get(
                "shadowproxy_divergences_total",
                {"route": "/a", "domain": "orders", "class": "semantic"},
            )
            == 1
        )
        assert (
            get(
                "shadowproxy_upstream_latency_seconds_count",
                {"upstream": "candidate", "route": "/a"},
            )
            == 1
        )
        assert (
            get(
                "shadowproxy_upstream_latency_seconds_bucket",
                {"upstream": "legacy", "route": "/a", "le": "0.005"},
            )
            == 1
        )
        assert (
            get("shadowproxy_upstream_errors_total", {"upstream": "candidate", "reason": "timeout"})
            == 1
        )
        assert (
            get("shadowproxy_upstream_errors_total", {"upstream": "legacy", "reason": "timeout"})
            == 0
        )
        assert get("shadowproxy_shadow_skipped_total", {"reason": "sampled_out"}) == 1
        assert get("shadowproxy_shadow_skipped_total", {"reason": "overload"}) == 0
        assert get("shadowproxy_shadow_inflight") == 2
        assert get("shadowproxy_jsonl_records_total") == 1
        assert get("shadowproxy_jsonl_dropped_total", {"reason": "queue_full"}) == 1
        assert get("shadowproxy_jsonl_dropped_total", {"reason": "disk_cap"}) == 0
        assert get("shadowproxy_rollups_dropped_total", {"reason": "disk_cap"}) == 0
        assert get("shadowproxy_build_info", {"version": __version__}) == 1

    def test_render_gives_text_exposition(self, metrics: Metrics) -> None:
        """render_metrics returns the text format and its content type."""
        exercise(metrics)
        body, content_type = render_metrics(metrics.registry)
        assert content_type.startswith("text/plain")
        assert b"# TYPE shadowproxy_requests_total counter" in body

    def test_promtool_accepts_the_output(self, metrics: Metrics) -> None:
        """``promtool check metrics`` finds nothing to complain about."""
        exercise(metrics)
        promtool_check(render_metrics(metrics.registry)[0])

    def test_two_instances_on_separate_registries(self) -> None:
        """Fresh registries give independent metrics (no global state)."""
        a, b = Metrics(CollectorRegistry()), Metrics(CollectorRegistry())
        a.jsonl_records.inc()
        assert b.registry.get_sample_value("shadowproxy_jsonl_records_total") == 0


WORKER = textwrap.dedent(
    """
    import sys
    from prometheus_client import CollectorRegistry
    from shadowproxy.sinks.metrics import Metrics
    m = Metrics(CollectorRegistry())
    m.requests.labels("/a", "GET", "2xx").inc(int(sys.argv[1]))
    m.inflight.set(int(sys.argv[1]))
    """
)
SCRAPER = textwrap.dedent(
    """
    import sys
    from shadowproxy.sinks.metrics import multiprocess_registry, render_metrics
    sys.stdout.buffer.write(render_metrics(multiprocess_registry())[0])
    """
)
MARK_DEAD = textwrap.dedent(
    """
    import sys
    from shadowproxy.sinks.metrics import mark_worker_dead
    mark_worker_dead(int(sys.argv[1]))
    """
)


def run_python(code: str, env: dict[str, str], *args: str) -> tuple[int, bytes]:
    """Run ``code`` in a fresh interpreter; its pid and standard output."""
    with subprocess.Popen(
        [sys.executable, "-c", code, *args], env=env, stdout=subprocess.PIPE
    ) as proc:
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    return proc.pid, out


class TestMultiprocess:
    def test_scrape_sums_workers(self, tmp_path: Path) -> None:
        """With PROMETHEUS_MULTIPROC_DIR the admin registry serves the sum over workers."""
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PYTHONPATH": str(REPO)}
        first, _ = run_python(WORKER, env, "2")
        run_python(WORKER, env, "3")
        out = run_python(SCRAPER, env)[1]
        assert b'shadowproxy_requests_total{code_class="2xx",method="GET",route="/a"} 5.0' in out
        assert b"shadowproxy_shadow_inflight 5.0" in out
        assert b'shadowproxy_build_info{version="' in out
        promtool_check(out)
        run_python(MARK_DEAD, env, str(first))
        out = run_python(SCRAPER, env)[1]
        assert b"shadowproxy_shadow_inflight 3.0" in out
        assert b'shadowproxy_requests_total{code_class="2xx",method="GET",route="/a"} 5.0' in out


class TestFleetScrape:
    """A scrape that meets a worker's value file half made (empty, not yet grown) retries."""

    @staticmethod
    def _registry(directory: Path) -> CollectorRegistry:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]
        return registry

    def test_a_file_being_made_is_read_once_it_is(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The worker grows its file between two attempts: the scrape answers, with its values."""
        (tmp_path / "counter_7.db").touch()  # as a worker's open() leaves it, before it grows

        def worker_finishes(_seconds: float) -> None:
            # prometheus_client's own writer, untyped upstream.
            values = MmapedDict(str(tmp_path / "counter_7.db"))  # type: ignore[no-untyped-call]
            values.write_value('["c", "c_total", {}, "help"]', 3.0, 0.0)  # type: ignore[no-untyped-call]
            values.close()  # type: ignore[no-untyped-call]

        monkeypatch.setattr(time, "sleep", worker_finishes)
        body, _ = render_metrics(self._registry(tmp_path))
        assert b"c_total 3.0" in body

    def test_the_retries_are_bounded(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A file that stays empty fails the scrape after RENDER_ATTEMPTS collections."""
        (tmp_path / "counter_7.db").touch()
        pauses: list[float] = []
        monkeypatch.setattr(time, "sleep", pauses.append)
        with pytest.raises(struct.error):
            render_metrics(self._registry(tmp_path))
        assert len(pauses) == RENDER_ATTEMPTS - 1

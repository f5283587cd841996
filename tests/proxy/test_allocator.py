"""Freed body buffers stay mapped, unless the operator tunes glibc's malloc."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from shadowproxy.shadow import allocator
from shadowproxy.shadow.allocator import keep_freed_memory
from tests.support import REPO

# Each round allocates and frees four 50 KB bodies, as a mirrored request does;
# the probe prints the page faults of 200 rounds after a warm-up.
PROBE = textwrap.dedent(
    """
    import resource, sys
    from shadowproxy.shadow.allocator import keep_freed_memory

    if sys.argv[1] == "tuned":
        assert keep_freed_memory({})

    def faults():
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

    def rounds(count):
        for _ in range(count):
            bodies = [b"x" * 50_000 for _ in range(4)]
            del bodies

    rounds(5)
    before = faults()
    rounds(200)
    print(faults() - before)
    """
)

glibc_only = pytest.mark.skipif(not allocator._glibc(), reason="the thresholds are glibc's")


def _faults(mode: str) -> int:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for name in ("GLIBC_TUNABLES", "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_"):
        env.pop(name, None)
    done = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, env=env, check=True
    )
    return int(done.stdout)


class TestKeepFreedMemory:
    @glibc_only
    def test_freed_bodies_are_not_faulted_in_again(self) -> None:
        plain, tuned = _faults("plain"), _faults("tuned")
        # Without it each round gives pages back and faults them in again.
        assert plain >= 200
        assert tuned * 20 < plain

    @pytest.mark.parametrize(
        "environ",
        [
            {"MALLOC_TRIM_THRESHOLD_": "131072"},
            {"MALLOC_MMAP_THRESHOLD_": "65536"},
            {"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=131072"},
        ],
    )
    def test_the_operators_tuning_wins(self, environ: dict[str, str]) -> None:
        assert keep_freed_memory(environ) is False

    def test_without_glibc_nothing_is_set(self, monkeypatch: pytest.MonkeyPatch) -> None:
        def no_glibc(name: str) -> str:
            raise ValueError(name)

        monkeypatch.setattr(os, "confstr", no_glibc)
        assert keep_freed_memory({}) is False

"""Build shadowproxy; compile its hot path with mypyc where a C compiler can.

pyproject.toml holds the package's metadata; this file only decides whether
the wheel carries compiled modules. ``SHADOWPROXY_COMPILE`` chooses:

* ``auto`` (the default): compile when mypyc imports and the C compiler
  builds a test file including ``Python.h``; otherwise, or if compiling
  fails, build the same modules as plain Python and say so. ``pip install .``
  works on a machine without gcc or Python's headers.
* ``1``: compile, or fail the build (the container image, the compiled test pass).
* ``0``: plain Python only (the development install: an editable install
  would otherwise put compiled modules beside the sources, and an edited
  ``.py`` file would be shadowed by its stale build).

The compiled modules are the same source: every test runs against both
builds (``make test``). docs/performance.md has what compiling gains.
"""

from __future__ import annotations

import os
import sys
import tempfile
import traceback
from pathlib import Path

from setuptools import setup

ROOT = Path(__file__).resolve().parent

COMPILED = [
    "shadowproxy/kinds.py",
    "shadowproxy/model.py",
    "shadowproxy/histogram.py",
    "shadowproxy/timestamps.py",
    "shadowproxy/memo.py",
    "shadowproxy/records.py",
    "shadowproxy/http/answer.py",
    "shadowproxy/http/forward.py",
    "shadowproxy/http/h1.py",
    "shadowproxy/http/h1_connection.py",
    "shadowproxy/http/h1_response.py",
    "shadowproxy/http/h1_timer.py",
    "shadowproxy/http/headers.py",
    "shadowproxy/http/inbound.py",
    "shadowproxy/http/relay.py",
    "shadowproxy/http/routing.py",
    "shadowproxy/http/server.py",
    "shadowproxy/http/server_connection.py",
    "shadowproxy/http/server_request.py",
    "shadowproxy/http/shadow.py",
    "shadowproxy/http/sse.py",
    "shadowproxy/http/upstream.py",
    "shadowproxy/compare/engine.py",
    "shadowproxy/compare/timing.py",
    "shadowproxy/shadow/comparisons.py",
    "shadowproxy/shadow/wire.py",
    "shadowproxy/shadow/control.py",
    "shadowproxy/shadow/mirror.py",
    "shadowproxy/shadow/streams.py",
    "shadowproxy/shadow/tasks.py",
    "shadowproxy/sinks/batch.py",
    "shadowproxy/sinks/binding.py",
    "shadowproxy/sinks/evidence.py",
    "shadowproxy/sinks/metrics.py",
    "shadowproxy/sinks/names.py",
    "shadowproxy/sinks/records.py",
    "shadowproxy/sinks/redact.py",
    "shadowproxy/sinks/rollup.py",
    "shadowproxy/sinks/secrets.py",
    "shadowproxy/sinks/values.py",
    "shadowproxy/cutover/canary.py",
    "shadowproxy/cutover/ownership.py",
    "shadowproxy/cutover/state.py",
]
"""What one request runs through, from the listener to the evidence; the rest (the CLI,
configuration, the report, aiohttp's hand-over) stays plain Python."""


def _say(message: str) -> None:
    print(f"shadowproxy build: {message}", file=sys.stderr)


def compiler_works() -> bool:
    """True when the C compiler builds a file that includes Python.h."""
    from setuptools._distutils.ccompiler import new_compiler
    from setuptools._distutils.sysconfig import customize_compiler, get_python_inc

    compiler = new_compiler()
    customize_compiler(compiler)
    with tempfile.TemporaryDirectory() as tmp:
        probe = Path(tmp, "probe.c")
        probe.write_text("#include <Python.h>\nint probe(void) { return 0; }\n")
        try:
            compiler.compile([str(probe)], output_dir=tmp, include_dirs=[get_python_inc()])
        except Exception:
            return False
    return True


def _ext_modules(mode: str) -> list[object]:
    if mode == "0":
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        if mode == "1":
            raise
        _say("mypyc is not installed: building plain Python")
        return []
    if mode != "1" and not compiler_works():
        _say("no working C compiler (or no Python.h): building plain Python")
        return []
    try:
        return list(mypycify(COMPILED, opt_level="3", group_name="shadowproxy"))
    except BaseException:  # mypyc exits on a type error; auto mode falls back
        if mode == "1":
            raise
        traceback.print_exc()
        _say("compiling failed: building plain Python")
        return []


if __name__ == "__main__":  # pip's build backend runs this file as __main__ too
    MODE = os.environ.get("SHADOWPROXY_COMPILE", "auto").strip().lower()
    if MODE not in {"auto", "0", "1"}:
        sys.exit(f"shadowproxy build: SHADOWPROXY_COMPILE must be auto, 0 or 1, not {MODE!r}")
    setup(ext_modules=_ext_modules(MODE))

"""The two builds (setup.py): the hot path compiled by mypyc where a C compiler works, else plain.

``make test`` runs the suite twice and names each pass in ``SHADOWPROXY_BUILD``
(``plain``, then ``compiled`` in a copy of the tree built by
``.ci/compiled_tree.py``): the first test holds each pass to the build it names.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO

BUILD = os.environ.get("SHADOWPROXY_BUILD")


def _compiled_modules() -> list[str]:
    sys.path.insert(0, str(REPO))
    try:
        import setup
    finally:
        sys.path.remove(str(REPO))
    return [name.removesuffix(".py").replace("/", ".") for name in setup.COMPILED]


@pytest.mark.skipif(BUILD is None, reason="make test names the build each pass runs")
def test_each_pass_runs_the_build_it_names() -> None:
    """In the compiled pass every module setup.py lists imports compiled, in the plain none."""
    suffixes = {
        Path(importlib.import_module(name).__file__ or "").suffix for name in _compiled_modules()
    }
    assert suffixes == ({".so"} if BUILD == "compiled" else {".py"})


@pytest.mark.slow
def test_without_a_c_compiler_the_wheel_is_plain_python(tmp_path: Path) -> None:
    """``pip install .`` where no C compiler works: a plain wheel, built without an error."""
    source = tmp_path / "source"
    for name in ("setup.py", "pyproject.toml", "README.md"):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, source / name)
    shutil.copytree(
        REPO / "shadowproxy",
        source / "shadowproxy",
        ignore=shutil.ignore_patterns("*.so", "__pycache__"),
    )
    env = {**os.environ, "CC": "/bin/false", "SHADOWPROXY_COMPILE": "auto"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--verbose",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            ".",
        ],
        cwd=source,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "no working C compiler" in result.stderr + result.stdout
    assert [wheel.name.endswith("-py3-none-any.whl") for wheel in tmp_path.glob("*.whl")] == [True]


def test_the_compiled_tree_drops_the_extension_of_a_module_no_longer_listed(
    tmp_path: Path,
) -> None:
    """A stale extension would shadow the module's source and fail to import."""
    spec = importlib.util.spec_from_file_location("compiled_tree", REPO / ".ci/compiled_tree.py")
    assert spec is not None and spec.loader is not None
    compiled_tree = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(compiled_tree)
    package = tmp_path / "shadowproxy" / "http"
    package.mkdir(parents=True)
    listed = package / "relay.cpython-311-x86_64-linux-gnu.so"
    dropped = package / "forward.cpython-311-x86_64-linux-gnu.so"
    for extension in (listed, dropped):
        extension.write_bytes(b"")
    compiled_tree._drop_unlisted(tmp_path, ["shadowproxy/http/relay.py"])
    assert listed.exists() and not dropped.exists()

"""Copy the source tree to DEST and compile its hot path there: the compiled test pass.

Usage: python .ci/compiled_tree.py DEST      (``make test-compiled`` runs it)

DEST gets every file git knows of (tracked, or untracked and not ignored),
byte for byte; a file whose bytes did not change keeps its time stamp, so
mypyc and the C compiler redo only what changed, and files gone from the
source leave DEST, and so does the extension of a module no longer listed
(it would shadow the module's source and fail to import). Then
``setup.py build_ext --inplace`` with
``SHADOWPROXY_COMPILE=1`` compiles the modules ``setup.py`` lists, exactly as
``pip install .`` does. The test suite then runs in DEST, where those
modules import compiled.

Exit status 0 when DEST is built, 75 when no C compiler works here and
``SHADOWPROXY_COMPILE`` is not ``1`` (the pass is skipped, the caller says
so), anything else when the build failed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKIPPED = 75
_BUILT = (".so", ".c", ".h", ".o")
"""What the build leaves in DEST: kept between runs, so only changed modules recompile."""


def _sources() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    return sorted(
        {name for name in listed.decode().split("\0") if name and (ROOT / name).is_file()}
    )


def _sync(dest: Path) -> None:
    wanted = set(_sources())
    for name in wanted:
        source, target = ROOT / name, dest / name
        if target.is_file() and target.read_bytes() == source.read_bytes():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    for path in sorted(dest.rglob("*"), reverse=True):
        name = path.relative_to(dest).as_posix()
        if name.split("/")[0] in {"build", ".mypy_cache"} or path.suffix in _BUILT:
            continue
        if path.is_file() and name not in wanted:
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()


def _drop_unlisted(dest: Path, listed: list[str]) -> None:
    """Remove the extension of every module ``setup.py`` no longer compiles."""
    modules = {Path(name).with_suffix("").as_posix() for name in listed}
    for extension in (dest / "shadowproxy").rglob("*.so"):
        module = (extension.parent / extension.name.split(".")[0]).relative_to(dest)
        if module.as_posix() not in modules:
            extension.unlink()


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    dest = Path(argv[0]).resolve()
    required = os.environ.get("SHADOWPROXY_COMPILE", "auto") == "1"
    sys.path.insert(0, str(ROOT))
    from setup import COMPILED, compiler_works

    if not compiler_works():
        print("compiled pass: no working C compiler (or no Python.h) here", file=sys.stderr)
        return 1 if required else SKIPPED
    dest.mkdir(parents=True, exist_ok=True)
    _sync(dest)
    _drop_unlisted(dest, COMPILED)
    env = {**os.environ, "SHADOWPROXY_COMPILE": "1"}
    command = [sys.executable, "setup.py", "--quiet", "build_ext", "--inplace"]
    return subprocess.run(command, cwd=dest, env=env, check=False).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

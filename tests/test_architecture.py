"""docs/architecture.md matches the tree: what it names exists, and it names every package."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PAGE = (REPO / "docs" / "architecture.md").read_text()
PACKAGE = REPO / "shadowproxy"

# "`http/forward.py` `Forwarder.handle`": a module and a name inside it.
_REFERENCE = re.compile(r"`((?:shadowproxy/)?[\w/]+\.py)` `([\w.]+)`")
_PATH = re.compile(r"`([\w/]+(?:\.py|/))`")
_ROW = re.compile(r"^\| `shadowproxy/(\w+)/`")


def _paths() -> list[Path]:
    """Every path the page names, resolved: a bare module name in a package's row is
    in that package, one in the HTTP table is in ``http/``; others are relative to
    ``shadowproxy/`` (or to the repository, for ``tests/``)."""
    http_table = PAGE.index("The HTTP data plane, `shadowproxy/http/`")
    rules = PAGE.index("## The import rules")
    paths = []
    offset = 0
    for line in PAGE.splitlines(keepends=True):
        row = _ROW.match(line)
        base = row.group(1) if row else "http" if http_table < offset < rules else ""
        for name in _PATH.findall(line):
            if name.startswith(("shadowproxy/", "tests/")):
                paths.append(REPO / name)
            elif "/" in name or not base:
                paths.append(PACKAGE / name)
            else:
                paths.append(PACKAGE / base / name)
        offset += len(line)
    return sorted(set(paths))


def _module(path: str) -> str:
    relative = path.removeprefix("shadowproxy/").removesuffix(".py").replace("/", ".")
    return f"shadowproxy.{relative}"


PATHS = _paths()
REFERENCES = sorted(set(_REFERENCE.findall(PAGE)))


class TestArchitecturePage:
    @pytest.mark.parametrize(("path", "name"), REFERENCES)
    def test_named_function_exists(self, path: str, name: str) -> None:
        """Each step of the request's path names a module and something it defines."""
        target: object = importlib.import_module(_module(path))
        for part in name.split("."):
            assert hasattr(target, part), f"{path}: {name}"
            target = getattr(target, part)

    @pytest.mark.parametrize("path", PATHS, ids=lambda p: str(p.relative_to(REPO)))
    def test_named_path_exists(self, path: Path) -> None:
        """Every module or package the page names is in the tree."""
        assert path.exists()

    def test_every_package_and_top_level_module_is_named(self) -> None:
        """A package or module added to shadowproxy/ gets its line in the layout table."""
        present = {
            entry
            for entry in PACKAGE.iterdir()
            if (entry.is_dir() and (entry / "__init__.py").exists())
            or (entry.suffix == ".py" and not entry.name.startswith("__"))
        }
        assert present - set(PATHS) == set()

    def test_every_http_module_is_named(self) -> None:
        """The HTTP data plane's table lists each of its modules."""
        modules = {p for p in (PACKAGE / "http").glob("*.py") if p.name != "__init__.py"}
        assert modules - set(PATHS) == set()

    def test_linked_from_readme(self) -> None:
        """The README's documentation table links the page."""
        assert "(docs/architecture.md)" in (REPO / "README.md").read_text()

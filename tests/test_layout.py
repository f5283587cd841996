"""The package layout: every module says what it owns and exports only names it defines."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

import shadowproxy

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(shadowproxy.__path__, "shadowproxy.")
    if not info.name.endswith("__main__")
)


class TestLayout:
    @pytest.mark.parametrize("name", MODULES)
    def test_module_documents_what_it_owns(self, name: str) -> None:
        """Every module and package opens with a docstring (read from its source: the
        compiled build's modules keep none)."""
        path = Path(shadowproxy.__file__).parent.joinpath(*name.split(".")[1:])
        source = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        assert ast.get_docstring(ast.parse(source.read_text(encoding="utf-8")))

    @pytest.mark.parametrize("name", MODULES)
    def test_exports_exist(self, name: str) -> None:
        """A module's ``__all__`` (every plain module has one) lists only names it has."""
        module = importlib.import_module(name)
        exports = getattr(module, "__all__", None)
        if exports is None:
            assert hasattr(module, "__path__"), f"{name} has no __all__"
            return
        missing = [export for export in exports if not hasattr(module, export)]
        assert not missing, f"{name}: {missing}"

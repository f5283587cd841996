"""Frozen values whose ``__init__`` is written out (for mypyc) take exactly their fields."""

from __future__ import annotations

import ast
import dataclasses
import importlib
from pathlib import Path
from typing import Any

import pytest

import shadowproxy

_PACKAGE = Path(shadowproxy.__file__).parent


def _is_dataclass_decorator(node: ast.expr) -> bool:
    target = node.func if isinstance(node, ast.Call) else node
    return isinstance(target, ast.Name) and target.id == "dataclass"


def _written_inits() -> list[tuple[str, str]]:
    """(module, class) of every dataclass whose body defines ``__init__``, read from the
    sources (the compiled build's classes look alike whoever wrote their ``__init__``)."""
    found = []
    for path in sorted(_PACKAGE.rglob("*.py")):
        module = ".".join(("shadowproxy", *path.relative_to(_PACKAGE).with_suffix("").parts))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.ClassDef)
                and any(_is_dataclass_decorator(d) for d in node.decorator_list)
                and any(
                    isinstance(item, ast.FunctionDef) and item.name == "__init__"
                    for item in node.body
                )
            ):
                found.append((module.removesuffix(".__init__"), node.name))
    return found


WRITTEN = _written_inits()


def _value_class(module: str, name: str) -> Any:
    return getattr(importlib.import_module(module), name)


def test_the_hot_values_are_found() -> None:
    """The discovery sees the values one request builds (an empty list would pass anything)."""
    assert {
        ("shadowproxy.model", "Observation"),
        ("shadowproxy.model", "RequestFacts"),
        ("shadowproxy.model", "Exchange"),
    } <= set(WRITTEN)


@pytest.mark.parametrize(("module", "name"), WRITTEN)
class TestWrittenInit:
    def test_positional_arguments_fill_the_fields_in_order(self, module: str, name: str) -> None:
        cls = _value_class(module, name)
        fields = dataclasses.fields(cls)
        given = [object() for _ in fields]
        value = cls(*given)
        assert [getattr(value, f.name) for f in fields] == given

    def test_keywords_are_the_field_names(self, module: str, name: str) -> None:
        cls = _value_class(module, name)
        given = {f.name: object() for f in dataclasses.fields(cls)}
        value = cls(**given)
        assert {key: getattr(value, key) for key in given} == given

    def test_defaults_are_the_fields_defaults(self, module: str, name: str) -> None:
        cls = _value_class(module, name)
        fields = dataclasses.fields(cls)
        required = {f.name: object() for f in fields if f.default is dataclasses.MISSING}
        value = cls(**required)
        for f in fields:
            if f.name not in required:
                assert getattr(value, f.name) == f.default, f.name

    def test_stays_frozen(self, module: str, name: str) -> None:
        cls = _value_class(module, name)
        value = cls(*(object() for _ in dataclasses.fields(cls)))
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(value, dataclasses.fields(cls)[0].name, None)

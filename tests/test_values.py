"""Frozen values whose ``__init__`` is written out (for mypyc) take exactly their fields,
their ``with_*`` copies pass every field on, and a written ``__hash__`` hashes every field.

Read from the sources, so both builds check the same thing: the compiled
build's ``__init__`` checks argument types, and its classes look alike
whoever wrote their ``__init__``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import shadowproxy

_PACKAGE = Path(shadowproxy.__file__).parent


def _is_dataclass(node: ast.ClassDef) -> bool:
    for decorator in node.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        if isinstance(target, ast.Name) and target.id == "dataclass":
            return True
    return False


def _dataclasses() -> dict[str, ast.ClassDef]:
    """``module.Class`` of every dataclass in the package."""
    found = {}
    for path in sorted(_PACKAGE.rglob("*.py")):
        module = ".".join(("shadowproxy", *path.relative_to(_PACKAGE).with_suffix("").parts))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and _is_dataclass(node):
                found[f"{module}.{node.name}"] = node
    return found


def _field_default(value: ast.expr | None) -> str | None:
    """The default a field declares, as source: ``field(default=X, ...)`` gives X."""
    if value is None:
        return None
    if isinstance(value, ast.Call) and ast.unparse(value.func) == "field":
        for keyword in value.keywords:
            if keyword.arg == "default":
                return ast.unparse(keyword.value)
        raise AssertionError(f"a field without a plain default: {ast.unparse(value)}")
    return ast.unparse(value)


def _fields(node: ast.ClassDef) -> list[tuple[str, str | None]]:
    return [
        (item.target.id, _field_default(item.value))
        for item in node.body
        if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)
    ]


def _parameters(init: ast.FunctionDef) -> list[tuple[str, str | None]]:
    args = init.args
    assert not (args.vararg or args.kwarg or args.kwonlyargs or args.posonlyargs)
    names = [arg.arg for arg in args.args[1:]]
    defaults: list[str | None] = [None] * (len(names) - len(args.defaults))
    defaults += [ast.unparse(default) for default in args.defaults]
    return list(zip(names, defaults, strict=True))


def _assignments(init: ast.FunctionDef) -> list[tuple[str, str]]:
    """What each statement sets: ``object.__setattr__(self, "x", x)`` gives ("x", "x")."""
    done = []
    for statement in init.body:
        call = statement.value if isinstance(statement, ast.Expr) else None
        assert isinstance(call, ast.Call), ast.unparse(statement)
        assert ast.unparse(call.func) == "object.__setattr__", ast.unparse(statement)
        this, name, value = call.args
        assert ast.unparse(this) == "self" and isinstance(name, ast.Constant)
        done.append((name.value, ast.unparse(value)))
    return done


def _method(node: ast.ClassDef, name: str) -> ast.FunctionDef | None:
    for item in node.body:
        if isinstance(item, ast.FunctionDef) and item.name == name:
            return item
    return None


def _copies(node: ast.ClassDef) -> list[ast.FunctionDef]:
    return [
        item
        for item in node.body
        if isinstance(item, ast.FunctionDef) and item.name.startswith("with_")
    ]


DATACLASSES = _dataclasses()
WRITTEN = {name: node for name, node in DATACLASSES.items() if _method(node, "__init__")}
HASHED = {name: node for name, node in DATACLASSES.items() if _method(node, "__hash__")}
COPIES = {
    f"{name}.{copy.name}": (node, copy) for name, node in WRITTEN.items() for copy in _copies(node)
}


def test_the_values_built_per_request_are_found() -> None:
    """The discovery sees them (an empty list would pass anything)."""
    assert {
        "shadowproxy.model.Observation",
        "shadowproxy.model.RequestFacts",
        "shadowproxy.model.Exchange",
        "shadowproxy.http.shadow.MirrorRequest",
    } <= set(WRITTEN)


@pytest.mark.parametrize("name", sorted(WRITTEN))
def test_parameters_are_the_fields_in_order_with_their_defaults(name: str) -> None:
    node = WRITTEN[name]
    init = _method(node, "__init__")
    assert init is not None
    assert _parameters(init) == _fields(node)


@pytest.mark.parametrize("name", sorted(WRITTEN))
def test_each_field_is_set_from_its_parameter_and_nothing_else_happens(name: str) -> None:
    node = WRITTEN[name]
    init = _method(node, "__init__")
    assert init is not None
    assert _assignments(init) == [(field, field) for field, _ in _fields(node)]


def test_the_copies_are_found() -> None:
    assert {
        "shadowproxy.model.Observation.with_body",
        "shadowproxy.model.Exchange.with_sides",
    } <= set(COPIES)


@pytest.mark.parametrize("name", sorted(COPIES))
def test_a_copy_passes_every_field_on_in_order(name: str) -> None:
    """Each field is its parameter of that name, or this value's own: none falls back to
    its default."""
    node, copy = COPIES[name]
    parameters = {arg.arg for arg in copy.args.args[1:]}
    (statement,) = copy.body[1:] if ast.get_docstring(copy) else copy.body
    assert isinstance(statement, ast.Return) and isinstance(statement.value, ast.Call)
    call = statement.value
    assert ast.unparse(call.func) == node.name and not call.keywords
    passed = [ast.unparse(arg) for arg in call.args]
    assert passed == [
        field if field in parameters else f"self.{field}" for field, _ in _fields(node)
    ]


def test_the_written_hashes_are_found() -> None:
    assert "shadowproxy.model.Phase" in HASHED


@pytest.mark.parametrize("name", sorted(HASHED))
def test_a_written_hash_hashes_the_fields_in_order(name: str) -> None:
    """As dataclass's own would: equal values (every field equal) hash equal."""
    method = _method(HASHED[name], "__hash__")
    assert method is not None
    (statement,) = [item for item in method.body if not isinstance(item, ast.Expr)]
    assert isinstance(statement, ast.Return) and statement.value is not None
    fields = ", ".join(f"self.{field}" for field, _ in _fields(HASHED[name]))
    assert ast.unparse(statement.value) == f"hash(({fields}))"

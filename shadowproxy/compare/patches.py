"""JSON Patch streams: the document a side's patch events build (RFC 6902, pointers RFC 6901).

A stream of JSON Patch events (``[{"op": "add", "path": "/a", "value": 1}]``)
is compared by what it builds, not by how it spells it: two sides may batch
operations differently and still build the same document. Each side's
patches are applied in order to an empty object; an operation that does not
apply (a missing path, a failed ``test``) ends that side's document with an
error, compared as the ``patch`` kind. ``copy`` can double a document per
operation, so the document is bounded by ``MAX_NODES`` values.

Pure code: no I/O.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from shadowproxy.compare.parse import parse_json
from shadowproxy.model import JsonValue, StreamEvent

__all__ = ["MAX_NODES", "PATCH_PATH", "Built", "build_document", "is_patch"]

PATCH_PATH: Final = "$.document"
"""Path of differences about the built documents."""
MAX_NODES: Final = 1_000_000
"""Values (objects, arrays, scalars) added to one document at most; beyond it, an error."""
_OPS = frozenset({"add", "remove", "replace", "move", "copy", "test"})


@dataclass(frozen=True, slots=True)
class Built:
    """The document a side's patches built, or why they did not apply."""

    document: JsonValue = None
    error: str | None = None


class _PatchError(Exception):
    """One operation did not apply; the message says which and why."""


def is_patch(data: bytes) -> bool:
    """True when ``data`` is a JSON Patch: a non-empty array of operations."""
    parsed = parse_json(data)
    value = parsed.value
    return (
        parsed.error is None
        and isinstance(value, list)
        and bool(value)
        and all(
            isinstance(op, dict) and op.get("op") in _OPS and isinstance(op.get("path"), str)
            for op in value
        )
    )


def build_document(events: Sequence[StreamEvent]) -> Built:
    """Apply every patch event's operations, in order, to ``{}``."""
    document = _Document()
    number = 0
    try:
        for event in events:
            operations = parse_json(event.data).value
            assert isinstance(operations, list)
            for operation in operations:
                number += 1
                document.apply(operation)
    except _PatchError as exc:
        return Built(error=f"operation {number}: {exc}")
    return Built(document.root)


def _tokens(pointer: object) -> list[str]:
    if not isinstance(pointer, str) or (pointer and not pointer.startswith("/")):
        raise _PatchError(f"invalid pointer {pointer!r}")
    if not pointer:
        return []
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/")]


def _size(value: object) -> int:
    """How many values ``value`` holds, itself included."""
    count, pending = 0, [value]
    while pending:
        item = pending.pop()
        count += 1
        if isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return count


def _index(container: list[object], token: str, *, end_ok: bool) -> int:
    if token == "-" and end_ok:
        return len(container)
    if not token.isdigit() or (token != "0" and token.startswith("0")):
        raise _PatchError(f"invalid array index {token!r}")
    index = int(token)
    if index > len(container) or (index == len(container) and not end_ok):
        raise _PatchError(f"array index {index} out of range")
    return index


class _Document:
    __slots__ = ("nodes", "root")

    def __init__(self) -> None:
        self.root: object = {}
        self.nodes = 1

    def apply(self, operation: dict[str, object]) -> None:
        op, path = operation["op"], _tokens(operation["path"])
        if op == "add":
            self._add(path, self._value(operation))
        elif op == "remove":
            self._remove(path)
        elif op == "replace":
            value = self._value(operation)
            self._remove(path)
            self._add(path, value)
        elif op == "move":
            source = _tokens(operation.get("from"))
            if path[: len(source)] == source and len(path) > len(source):
                raise _PatchError("cannot move a value into itself")
            self._add(path, self._remove(source))
        elif op == "copy":
            value = self._get(_tokens(operation.get("from")))
            self._grow(_size(value))
            self._add(path, copy.deepcopy(value))
        elif self._get(path) != self._value(operation):
            raise _PatchError("test failed")

    def _value(self, operation: dict[str, object]) -> object:
        if "value" not in operation:
            raise _PatchError(f"{operation['op']} without a value")
        return operation["value"]

    def _grow(self, nodes: int) -> None:
        self.nodes += nodes
        if self.nodes > MAX_NODES:
            raise _PatchError(f"document over {MAX_NODES} values")

    def _parent(self, path: list[str]) -> object:
        return self._get(path[:-1])

    def _get(self, path: list[str]) -> object:
        node = self.root
        for token in path:
            if isinstance(node, dict) and token in node:
                node = node[token]
            elif isinstance(node, list):
                node = node[_index(node, token, end_ok=False)]
            else:
                raise _PatchError(f"no value at /{'/'.join(path)}")
        return node

    def _add(self, path: list[str], value: object) -> None:
        if not path:
            self.root = value
            return
        parent, token = self._parent(path), path[-1]
        if isinstance(parent, dict):
            parent[token] = value
        elif isinstance(parent, list):
            parent.insert(_index(parent, token, end_ok=True), value)
        else:
            raise _PatchError(f"no container at /{'/'.join(path[:-1])}")

    def _remove(self, path: list[str]) -> object:
        if not path:
            raise _PatchError("cannot remove the whole document")
        parent, token = self._parent(path), path[-1]
        if isinstance(parent, dict) and token in parent:
            return parent.pop(token)
        if isinstance(parent, list):
            return parent.pop(_index(parent, token, end_ok=False))
        raise _PatchError(f"no value at /{'/'.join(path)}")

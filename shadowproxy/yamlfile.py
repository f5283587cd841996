"""Reading a small YAML file a person wrote: bounded before PyYAML builds anything from it.

Owns the checks every YAML input gets (the configuration, the report's gates
and known differences). The file must be a regular file (a FIFO or
``/dev/zero`` would be read forever) of at most ``MAX_BYTES``, in UTF-8.
Then one pass over the parser's events, which is iterative and so cannot
overflow the stack, refuses nesting deeper than ``MAX_DEPTH`` (PyYAML's
composer recurses once per level), a key given twice in one mapping
(PyYAML keeps the last silently) and a number longer than
``MAX_NUMBER_CHARS`` (Python refuses to convert integers beyond 4,300
digits, with a ValueError). Only then is the document built.

Every problem is a ``YamlFileError`` whose message is one line: where (the
key path, ``routes[0].match``, else the line) and what; the caller adds the
file name. Imports PyYAML and the standard library only.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field

import yaml
from yaml.resolver import Resolver

__all__ = ["MAX_BYTES", "MAX_DEPTH", "MAX_NUMBER_CHARS", "YamlFileError", "load_yaml_file"]

MAX_BYTES = 1024 * 1024
"""Larger files are refused unread: a configuration of thousands of routes fits."""
MAX_DEPTH = 64
"""Deeper nesting is refused before the document is built."""
MAX_NUMBER_CHARS = 40
"""Longer numbers are refused: no setting needs more digits than a float shows."""

_NUMBER_TAGS = frozenset({"tag:yaml.org,2002:int", "tag:yaml.org,2002:float"})


class YamlFileError(Exception):
    """A file that is not a small, sound YAML document; the message is one line."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}")


def load_yaml_file(path: str) -> object:
    """The document in ``path``, checked before it is built; raises ``YamlFileError``."""
    text = _read(path)
    try:
        _scan(text)
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "(parse)"
        raise YamlFileError(where, getattr(exc, "problem", None) or "invalid YAML") from None
    except (ValueError, OverflowError) as exc:
        # A plain scalar PyYAML resolves but cannot build, such as the date 2001-13-45.
        raise YamlFileError("(parse)", f"invalid value: {str(exc).splitlines()[0]}") from None


def _read(path: str) -> str:
    try:
        # Non-blocking: opening a FIFO must not wait for a writer before fstat refuses it.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise YamlFileError("cannot read", exc.strerror or type(exc).__name__) from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise YamlFileError("cannot read", "not a regular file")
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_BYTES and (chunk := os.read(fd, MAX_BYTES + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise YamlFileError("cannot read", exc.strerror or type(exc).__name__) from None
    finally:
        os.close(fd)
    if size > MAX_BYTES:
        raise YamlFileError("cannot read", f"larger than {MAX_BYTES} bytes")
    try:
        return b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError:
        raise YamlFileError("cannot read", "not UTF-8") from None


@dataclass(slots=True)
class _Frame:
    """One open mapping or sequence, while its events are read."""

    path: str
    mapping: bool
    keys: dict[str, int] = field(default_factory=dict)
    """Keys seen so far (mappings), with their line."""
    key: str | None = None
    """The key whose value comes next (mappings); None while a key comes next."""
    index: int = 0
    """Items seen so far (sequences)."""

    def child(self) -> str:
        """The path of the node that starts now (a key's own path is its mapping's)."""
        if not self.mapping:
            return f"{self.path}[{self.index}]"
        if self.key is None:
            return self.path
        return f"{self.path}.{self.key}" if self.path else self.key

    def done(self) -> None:
        """A key, a value or an item has ended."""
        if not self.mapping:
            self.index += 1
        elif self.key is None:
            self.key = "?"  # a mapping or sequence used as a key: its value comes next
        else:
            self.key = None


def _scan(text: str) -> None:
    """Refuse deep nesting, duplicate keys and long numbers, from the parser's events."""
    resolver = Resolver()
    stack: list[_Frame] = []
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        line = event.start_mark.line + 1 if event.start_mark is not None else 0
        parent = stack[-1] if stack else None
        where = parent.child() if parent is not None else ""
        if isinstance(event, yaml.ScalarEvent):
            if parent is not None and parent.mapping and parent.key is None:
                first = parent.keys.get(event.value)
                if first is not None:
                    name = f"{where}.{event.value}" if where else event.value
                    raise YamlFileError(name, f"given twice (lines {first} and {line})")
                parent.keys[event.value] = line
                parent.key = event.value
                continue
            _check_number(resolver, event, where or "(top level)")
        if isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
            if len(stack) >= MAX_DEPTH:
                # The line, not the key path: that path would be 64 keys long.
                raise YamlFileError(f"line {line}", f"nested deeper than {MAX_DEPTH} levels")
            stack.append(_Frame(where, isinstance(event, yaml.MappingStartEvent)))
            continue
        if isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
            stack.pop()
            parent = stack[-1] if stack else None
        if parent is not None and isinstance(
            event,
            yaml.ScalarEvent | yaml.AliasEvent | yaml.MappingEndEvent | yaml.SequenceEndEvent,
        ):
            parent.done()


def _check_number(resolver: Resolver, event: yaml.ScalarEvent, where: str) -> None:
    if len(event.value) <= MAX_NUMBER_CHARS or not event.implicit[0]:
        return
    tag = resolver.resolve(yaml.ScalarNode, event.value, (True, False))  # type: ignore[no-untyped-call]
    if tag in _NUMBER_TAGS:
        raise YamlFileError(where, f"a number of {len(event.value)} characters is too long")

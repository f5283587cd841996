"""Descriptor sets: which methods exist, their cardinality and their response message type.

Owns loading a ``protoc --descriptor_set_out`` file (``--include_imports``
recommended; the well-known ``google/protobuf/*.proto`` files are filled in
when left out) into a private descriptor pool, so nothing here collides with
generated code imported elsewhere in the process. Every problem raises
``DescriptorError`` whose message is one line, ``<file>: <what>``. Reads one
file; imports only protobuf.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import MappingProxyType

from google.protobuf import descriptor_pb2, descriptor_pool, message, message_factory
from google.protobuf.descriptor import MethodDescriptor

from shadowproxy.settings import GrpcCardinality

__all__ = ["Catalog", "DescriptorError", "MethodShape", "load_catalog"]


class DescriptorError(ValueError):
    """A descriptor file that cannot be used; the message is ``<file>: <what>``."""


@dataclass(frozen=True, slots=True)
class MethodShape:
    """What the descriptors say about one method."""

    name: str
    """The full method name as it travels: ``/package.Service/Method``."""
    cardinality: GrpcCardinality
    output: type[message.Message]
    """The response message class (from the private pool)."""


class Catalog:
    """The methods of every service in one descriptor set."""

    __slots__ = ("_methods", "source")

    def __init__(self, methods: Mapping[str, MethodShape], source: str) -> None:
        self._methods = MappingProxyType(dict(methods))
        self.source = source

    def __len__(self) -> int:
        return len(self._methods)

    def __iter__(self) -> Iterator[str]:
        return iter(self._methods)

    def get(self, method: str) -> MethodShape | None:
        """The shape of ``/package.Service/Method``, or None when the set does not define it."""
        return self._methods.get(method)


def _cardinality(method: MethodDescriptor) -> GrpcCardinality:
    request = "stream" if method.client_streaming else "unary"
    response = "stream" if method.server_streaming else "unary"
    shape: GrpcCardinality = f"{request}_{response}"  # type: ignore[assignment]
    return shape


def _parse(path: str) -> descriptor_pb2.FileDescriptorSet:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise DescriptorError(
            f"{path}: cannot read: {exc.strerror or type(exc).__name__}"
        ) from None
    try:
        files = descriptor_pb2.FileDescriptorSet.FromString(data)
    except message.DecodeError:
        files = None
    if files is None or not files.file or not all(f.name for f in files.file):
        raise DescriptorError(
            f"{path}: not a descriptor set (make one with protoc --descriptor_set_out)"
        )
    return files


def _pool(path: str, files: descriptor_pb2.FileDescriptorSet) -> descriptor_pool.DescriptorPool:
    pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()
    given = {f.name: f for f in files.file}

    def add(proto: descriptor_pb2.FileDescriptorProto, chain: tuple[str, ...]) -> None:
        if proto.name in added:
            return
        if proto.name in chain:
            raise DescriptorError(f"{path}: {proto.name}: circular import")
        for dependency in proto.dependency:
            add(_dependency(path, proto.name, dependency, given), (*chain, proto.name))
        try:
            pool.Add(proto)
        except (TypeError, ValueError, KeyError) as exc:
            detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise DescriptorError(f"{path}: {proto.name}: {detail}") from None
        added.add(proto.name)

    for proto in files.file:
        add(proto, ())
    return pool


def _dependency(
    path: str,
    importer: str,
    name: str,
    given: Mapping[str, descriptor_pb2.FileDescriptorProto],
) -> descriptor_pb2.FileDescriptorProto:
    found = given.get(name)
    if found is not None:
        return found
    if name.startswith("google/protobuf/"):
        try:
            # Importing the well-known module registers it in the default pool.
            importlib.import_module(f"google.protobuf.{PurePosixPath(name).stem}_pb2")
            known = descriptor_pool.Default().FindFileByName(name)
        except (ImportError, KeyError):
            pass
        else:
            proto = descriptor_pb2.FileDescriptorProto()
            known.CopyToProto(proto)
            return proto
    raise DescriptorError(
        f"{path}: {importer}: imports {name}, which the set lacks (use protoc --include_imports)"
    )


def load_catalog(path: str) -> Catalog:
    """Read and check the descriptor set at ``path``; raises ``DescriptorError``."""
    files = _parse(path)
    pool = _pool(path, files)
    methods: dict[str, MethodShape] = {}
    for proto in files.file:
        described = pool.FindFileByName(proto.name)
        for service in described.services_by_name.values():
            for method in service.methods:
                name = f"/{service.full_name}/{method.name}"
                methods[name] = MethodShape(
                    name=name,
                    cardinality=_cardinality(method),
                    output=message_factory.GetMessageClass(method.output_type),
                )
    if not methods:
        raise DescriptorError(f"{path}: defines no gRPC service")
    return Catalog(methods, path)

"""Typed, path-aware access to the parsed YAML document, and the values every section shares.

Every problem is a ``ConfigError`` whose message is one line naming the file
and the key (``config.yaml: shadow.timeout_s: must be > 0``). Readers record
the keys they were asked for, so ``finish`` can reject unknown keys.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import fields, replace
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import yaml

from shadowproxy.settings import HostAddress

__all__ = [
    "ConfigError",
    "Reader",
    "is_loopback",
    "is_token",
    "parse_address",
    "parse_url",
    "read_document",
    "section",
    "worker_count",
]

T = TypeVar("T")

_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


class ConfigError(Exception):
    """A configuration problem a user can fix; the message is one line."""


class Reader:
    """Typed access to one mapping of the YAML document, with key paths for messages."""

    def __init__(self, source: str, data: object, path: str) -> None:
        self.source = source
        self.path = path
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise self.error("must be a mapping")
        self.data: Mapping[str, object] = data
        self.used: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def error(self, message: str, name: str | None = None) -> ConfigError:
        where = self.key(name) if name else (self.path or "(top level)")
        return ConfigError(f"{self.source}: {where}: {message}")

    def raw(self, name: str) -> object:
        self.used.add(name)
        return self.data.get(name)

    def has(self, name: str) -> bool:
        return name in self.data

    def child(self, name: str) -> Reader:
        return Reader(self.source, self.raw(name), self.key(name))

    def number(
        self,
        name: str,
        default: float,
        *,
        minimum: float = 0.0,
        maximum: float | None = None,
        exclusive_min: bool = False,
    ) -> float:
        value = self.raw(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error("must be a number", name)
        too_low = value <= minimum if exclusive_min else value < minimum
        if too_low or (maximum is not None and value > maximum):
            bound = f"> {minimum}" if exclusive_min else f">= {minimum}"
            limit = f" and <= {maximum}" if maximum is not None else ""
            raise self.error(f"must be {bound}{limit}", name)
        return float(value)

    def integer(self, name: str, default: int, *, minimum: int = 0) -> int:
        value = self.raw(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error("must be an integer", name)
        if value < minimum:
            raise self.error(f"must be >= {minimum}", name)
        return value

    def boolean(self, name: str, default: bool) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.error("must be true or false", name)
        return value

    def string(self, name: str, default: str | None) -> str | None:
        value = self.raw(name)
        if value is None:
            return default
        if not isinstance(value, str) or not value:
            raise self.error("must be a non-empty string", name)
        return value

    def strings(self, name: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
        value = self.raw(name)
        if value is None:
            return default
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.error("must be a list of non-empty strings", name)
        return tuple(value)

    def finish(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise self.error("unknown key", str(unknown[0]))


def parse_address(text: str, where: str) -> HostAddress:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) into an address; ``where`` prefixes errors."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{where}: must be HOST:PORT, got {text!r}")
    return HostAddress(host, int(port))


def is_token(text: str) -> bool:
    """True for an HTTP token (RFC 9110): a method or a header name."""
    return bool(text) and set(text) <= _TOKEN


def is_loopback(host: str) -> bool:
    """True when ``host`` is only reachable from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_url(value: str | None, where: str) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ConfigError(f"{where}: must be an http:// or https:// URL, got {value!r}")
    if parts.query or parts.fragment or (parts.path not in {"", "/"}):
        raise ConfigError(f"{where}: must be a base URL without path, query or fragment")
    try:
        parts.port  # noqa: B018 - property access validates the port
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return value.rstrip("/")


def section(reader: Reader, name: str, default: T, *, exclude: tuple[str, ...] = ()) -> T:
    """A flat section of numbers, booleans and strings whose keys are ``default``'s field names."""
    section = reader.child(name)
    values: dict[str, Any] = {}
    for f in fields(default):  # type: ignore[arg-type]
        if f.name in exclude:
            continue
        current = getattr(default, f.name)
        if isinstance(current, bool):
            values[f.name] = section.boolean(f.name, current)
        elif isinstance(current, str):
            values[f.name] = section.string(f.name, current)
        elif isinstance(current, int):
            values[f.name] = section.integer(
                f.name, current, minimum=0 if "max_connections" in f.name else 1
            )
        elif isinstance(current, float):
            exclusive = f.name.endswith(("_s", "_ms", "_days"))
            maximum = 100.0 if f.name.endswith("percent") else None
            values[f.name] = section.number(
                f.name, current, exclusive_min=exclusive, maximum=maximum
            )
    section.finish()
    return replace(default, **values)  # type: ignore[type-var]


def worker_count(text: object, where: str) -> int:
    if text is None:
        return 1
    if text == "auto":
        return os.cpu_count() or 1
    if isinstance(text, bool) or not (
        isinstance(text, int) or (isinstance(text, str) and text.isdigit())
    ):
        raise ConfigError(f"{where}: must be a positive integer or 'auto'")
    count = int(text)
    if count < 1:
        raise ConfigError(f"{where}: must be a positive integer or 'auto'")
    return count


def read_document(path: str) -> object:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise ConfigError(f"{path}: cannot read: {reason}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "(parse)"
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{path}: {where}: {problem}") from None

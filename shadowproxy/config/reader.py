"""Typed, path-aware access to the parsed YAML document, and the values every section shares.

Every problem is a ``ConfigError`` whose message is one line naming the file
and the key (``config.yaml: shadow.timeout_s: must be > 0``). Readers record
the keys they were asked for, so ``finish`` can reject unknown keys.
"""

from __future__ import annotations

import ipaddress
import math
import os
from collections.abc import Mapping
from dataclasses import fields, replace
from typing import Any, TypeVar
from urllib.parse import SplitResult, urlsplit

from shadowproxy.settings import HostAddress
from shadowproxy.yamlfile import YamlFileError, load_yaml_file

__all__ = [
    "ConfigError",
    "Reader",
    "is_loopback",
    "is_token",
    "parse_address",
    "parse_url",
    "read_document",
    "section",
    "split_url",
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
        """A finite number in range; ``maximum`` defaults to the bound of the key's unit."""
        value = self.raw(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error("must be a number", name)
        if not math.isfinite(value):
            raise self.error("must be a finite number", name)
        maximum = unit_maximum(name) if maximum is None else maximum
        too_low = value <= minimum if exclusive_min else value < minimum
        if too_low or (maximum is not None and value > maximum):
            bound = f"> {_shown(minimum)}" if exclusive_min else f">= {_shown(minimum)}"
            limit = f" and <= {_shown(maximum)}" if maximum is not None else ""
            raise self.error(f"must be {bound}{limit}", name)
        return float(value)

    def integer(
        self, name: str, default: int, *, minimum: int = 0, maximum: int | None = None
    ) -> int:
        """An integer in range; ``maximum`` defaults to the key's unit bound, else a count's."""
        value = self.raw(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error("must be an integer", name)
        if maximum is None:
            maximum = int(unit_maximum(name) or MAX_COUNT)
        if not minimum <= value <= maximum:
            raise self.error(f"must be >= {minimum} and <= {maximum}", name)
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
        if "\0" in value:
            # No setting holds one; a path with one fails deep in the runtime.
            raise self.error("must not contain a NUL character", name)
        return value

    def strings(self, name: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
        value = self.raw(name)
        if value is None:
            return default
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.error("must be a list of non-empty strings", name)
        if any("\0" in v for v in value):
            raise self.error("must not contain a NUL character", name)
        return tuple(value)

    def finish(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise self.error("unknown key", str(unknown[0]))


DAY_S = 86_400
"""The longest duration any ``*_s`` key may take."""
MAX_COUNT = 10_000_000
"""The largest count (an integer key without a unit)."""
MAX_WORKERS = 256
_GiB = 1024**3
_DISK_KEYS = frozenset({"max_total_bytes", "rotate_bytes"})


def unit_maximum(name: str) -> float | None:
    """The largest value of a key by the unit its name carries; None when it carries none.

    Durations at most a day; percentages at most 100; sizes held in memory
    (``*_bytes``, ``*_body``) at most 1 GiB, on disk at most 1 TiB.
    """
    if name in _DISK_KEYS:
        return 1024 * _GiB
    if name.endswith(("_bytes", "_body")):
        return _GiB
    if name.endswith(("_s", "_seconds")):
        return DAY_S
    if name.endswith("_ms"):
        return DAY_S * 1000
    if name.endswith("_days"):
        return 3650
    if "percent" in name:
        return 100
    return None


def _shown(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _no_credentials(text: str, where: str) -> None:
    """Refuse ``user:password@``, never echoing it (it would reach logs and /status)."""
    if "@" in text:
        raise ConfigError(
            f"{where}: must not carry credentials (user:password@); the proxy never sends them"
        )


def parse_address(text: str, where: str) -> HostAddress:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) into an address; ``where`` prefixes errors."""
    _no_credentials(text, where)
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    # ASCII digits only: str.isdigit() also takes '²', which int() refuses.
    if not sep or not host or not _digits(port) or not 0 <= int(port) <= 65535:
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


def split_url(value: str, where: str) -> SplitResult:
    """``value`` split into its parts, refused (never echoed) when it carries credentials.

    A malformed host (``http://[::1``) or port is a ``ConfigError``, not urllib's ValueError.
    """
    _no_credentials(value, where)
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - property access validates the port
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return parts


def parse_url(value: str | None, where: str) -> str | None:
    if value is None:
        return None
    parts = split_url(value, where)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ConfigError(f"{where}: must be an http:// or https:// URL, got {value!r}")
    if parts.query or parts.fragment or (parts.path not in {"", "/"}):
        raise ConfigError(f"{where}: must be a base URL without path, query or fragment")
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
            values[f.name] = section.number(f.name, current, exclusive_min=exclusive)
    section.finish()
    return replace(default, **values)  # type: ignore[type-var]


def worker_count(text: object, where: str) -> int:
    if text is None:
        return 1
    if text == "auto":
        return os.cpu_count() or 1
    problem = f"{where}: must be an integer from 1 to {MAX_WORKERS}, or 'auto'"
    if isinstance(text, bool) or not (
        isinstance(text, int) or (isinstance(text, str) and _digits(text) and len(text) < 8)
    ):
        raise ConfigError(problem)
    count = int(text)
    if not 1 <= count <= MAX_WORKERS:
        raise ConfigError(problem)
    return count


def _digits(text: str) -> bool:
    """True for a non-empty run of ASCII digits."""
    return text.isascii() and text.isdigit()


def read_document(path: str) -> object:
    """The YAML document in ``path``, bounded and checked before it is built (``yamlfile``)."""
    try:
        return load_yaml_file(path)
    except YamlFileError as exc:
        raise ConfigError(f"{path}: {exc}") from None

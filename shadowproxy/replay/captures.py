"""What a replay sends: captured requests read from capture files or HAR files, and credentials.

Owns reading the ``capture`` records ``shadowproxy run`` writes (docs/replay.md)
into ``Captured`` values, converting HAR files (HTTP Archive 1.2, as browsers
and proxies export them) into the same records with the same redaction, and
the credentials a replay puts back in place of redacted headers. Every
problem is a ``ReplayInputError`` naming the file (and line or entry); a
capture is hostile input like any other: bounded lines, checked types.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import orjson

from shadowproxy.http.routing import RouteTable
from shadowproxy.records import CAPTURE, SCHEMA_VERSION
from shadowproxy.sinks.capture import capture_record
from shadowproxy.sinks.redact import Redactor, is_marker
from shadowproxy.sinks.secrets import mask_path

__all__ = [
    "Captured",
    "ReplayInputError",
    "capture_files",
    "har_records",
    "load_credentials",
    "read_captured",
]

MAX_LINE = 8 * 1024 * 1024
"""A capture line longer than this is refused (a capture's body is at most ``max_body_bytes``)."""
MAX_HAR_BYTES = 256 * 1024 * 1024
_MAX_CREDENTIALS = 64


class ReplayInputError(Exception):
    """Input a user can fix: ``where`` (a file, line or flag) and what is wrong (exit 2)."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True, slots=True)
class Captured:
    """One request to replay, as its capture holds it (secrets replaced by markers)."""

    where: str
    """The file and line it came from, for messages."""
    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    @property
    def key(self) -> str:
        """Identifies the request in golden files: its method, target and body."""
        digest = hashlib.sha256(f"{self.method} {self.target}\n".encode())
        digest.update(self.body)
        return digest.hexdigest()[:32]

    def headers_with(self, credentials: Mapping[str, str]) -> list[tuple[str, str]]:
        """The headers to send: a redacted one gets its credential, or is left out."""
        sent = []
        for name, value in self.headers:
            if is_marker(value):
                credential = credentials.get(name.lower())
                if credential is None:
                    continue
                value = credential
            sent.append((name, value))
        return sent


def capture_files(paths: list[str]) -> list[Path]:
    """The files ``paths`` name: files as given, directories' ``capture-*.jsonl`` and ``*.har``."""
    found: list[Path] = []
    for text in paths:
        path = Path(text)
        if path.is_dir():
            found.extend(sorted([*path.glob("capture-*.jsonl"), *path.glob("*.har")]))
        elif path.is_file():
            found.append(path)
        else:
            raise ReplayInputError(text, "no such file or directory")
    if not found:
        raise ReplayInputError(", ".join(paths), "no capture files (capture-*.jsonl or *.har)")
    return found


def read_captured(path: Path, redactor: Redactor, routes: RouteTable) -> Iterator[Captured]:
    """The requests of one capture file (or HAR file, redacted as it is read)."""
    if path.suffix == ".har":
        for n, record in enumerate(har_records(path, redactor, routes), 1):
            yield _captured(record, f"{path}: entry {n}")
        return
    try:
        with path.open("rb") as lines:
            for n, line in enumerate(iter(lambda: lines.readline(MAX_LINE + 1), b""), 1):
                where = f"{path}: line {n}"
                if len(line) > MAX_LINE:
                    raise ReplayInputError(where, f"a line over {MAX_LINE} bytes")
                if not line.strip():
                    continue
                try:
                    record = orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    raise ReplayInputError(where, f"not JSON ({exc})") from None
                yield _captured(record, where)
    except OSError as exc:
        raise ReplayInputError(str(path), exc.strerror or type(exc).__name__) from None


def _captured(record: object, where: str) -> Captured:
    """A checked ``capture`` record as a ``Captured``."""
    if not isinstance(record, dict) or record.get("type") != CAPTURE:
        raise ReplayInputError(where, "not a capture record")
    if record.get("v") != SCHEMA_VERSION:
        raise ReplayInputError(where, f"v: {record.get('v')!r} (this version reads 1)")
    method, target, headers = record.get("method"), record.get("target"), record.get("headers")
    if not isinstance(method, str) or not method.isalpha():
        raise ReplayInputError(where, "method: must be a method name")
    if not isinstance(target, str) or not target.startswith("/") or not target.isprintable():
        raise ReplayInputError(where, "target: must be a printable path starting with /")
    if not isinstance(headers, list) or not all(
        isinstance(h, list) and len(h) == 2 and all(isinstance(p, str) for p in h) for h in headers
    ):
        raise ReplayInputError(where, "headers: must be a list of [name, value] pairs")
    if any("\r" in p or "\n" in p for h in headers for p in h):
        raise ReplayInputError(where, "headers: a line break in a header")
    text, encoded = record.get("body"), record.get("body_base64")
    if text is not None and not isinstance(text, str):
        raise ReplayInputError(where, "body: must be a string or null")
    try:
        body = (
            base64.b64decode(encoded, validate=True)
            if isinstance(encoded, str)
            else (text or "").encode()
        )
    except binascii.Error:
        raise ReplayInputError(where, "body_base64: not base64") from None
    return Captured(where, method.upper(), target, tuple((n, v) for n, v in headers), body)


def har_records(path: Path, redactor: Redactor, routes: RouteTable) -> Iterator[dict[str, object]]:
    """The ``capture`` records of a HAR file's requests, redacted as captures are."""
    try:
        if path.stat().st_size > MAX_HAR_BYTES:
            raise ReplayInputError(str(path), f"larger than {MAX_HAR_BYTES} bytes")
        document = json.loads(path.read_bytes())
    except OSError as exc:
        raise ReplayInputError(str(path), exc.strerror or type(exc).__name__) from None
    except ValueError as exc:
        raise ReplayInputError(str(path), f"not JSON ({exc})") from None
    log = document.get("log") if isinstance(document, dict) else None
    entries = log.get("entries") if isinstance(log, dict) else None
    if not isinstance(entries, list):
        raise ReplayInputError(str(path), "log.entries: missing (not a HAR file)")
    for n, entry in enumerate(entries, 1):
        request = entry.get("request") if isinstance(entry, dict) else None
        if not isinstance(request, dict):
            raise ReplayInputError(f"{path}: entry {n}", "request: missing")
        yield _har_record(request, f"{path}: entry {n}", n, redactor, routes)


def _har_record(
    request: dict[str, object], where: str, n: int, redactor: Redactor, routes: RouteTable
) -> dict[str, object]:
    url, method = request.get("url"), request.get("method")
    if not isinstance(url, str) or not isinstance(method, str):
        raise ReplayInputError(where, "request.url and request.method: must be strings")
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    listed = request.get("headers")
    headers = [
        (str(h.get("name")), str(h.get("value")))
        for h in (listed if isinstance(listed, list) else [])
        if isinstance(h, dict) and not str(h.get("name", "")).startswith(":")
    ]
    post = request.get("postData")
    body = b""
    if isinstance(post, dict) and isinstance(post.get("text"), str):
        text = post["text"]
        try:
            body = base64.b64decode(text) if post.get("encoding") == "base64" else text.encode()
        except binascii.Error:
            raise ReplayInputError(where, "request.postData.text: not base64") from None
    secrets = redactor.finder.in_request(headers, parts.query)
    route = routes.resolve(mask_path(parts.path or "/", secrets), method.upper())
    return capture_record(
        id=f"har-{n}",
        ts=0.0,
        route=route.name,
        domain=route.domain,
        method=method.upper(),
        target=target,
        headers=headers,
        body=body,
        redactor=redactor,
    )


def load_credentials(file: str | None, env: str | None) -> dict[str, str]:
    """Header lines (``Authorization: Bearer ...``) from a file or an environment variable.

    Names are lower-cased; blank lines and lines starting ``#`` are skipped.
    """
    if file is None and env is None:
        return {}
    if file is not None:
        where = file
        try:
            text = Path(file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8"
            raise ReplayInputError(f"--credentials {file}", reason or "unreadable") from None
    else:
        assert env is not None
        where = f"--credentials-env {env}"
        if env not in os.environ:
            raise ReplayInputError(where, "the variable is not set")
        text = os.environ[env]
    found: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, sep, value = line.partition(":")
        # Never echo the line: it holds a credential.
        if not sep or not name.strip() or " " in name.strip() or not value.strip():
            raise ReplayInputError(f"{where}: line {n}", "must be a header line (Name: value)")
        found[name.strip().lower()] = value.strip()
    if len(found) > _MAX_CREDENTIALS:
        raise ReplayInputError(where, f"more than {_MAX_CREDENTIALS} headers")
    return found

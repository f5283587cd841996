"""Golden files: legacy's answers recorded once, checked against a candidate with no legacy.

Owns the golden file format (docs/replay.md, a contract): one JSON file per
distinct captured request in the golden directory,
``NNNN-<method>-<path>.json``, holding the request as captured, legacy's
answer as recorded, the noise learned by recording again, and how often it
was recorded. An answer is stored normalised (``normal_answer``): its body
decoded from its Content-Encoding, framing headers left out, and its secrets
replaced as evidence replaces them, so a golden directory can be committed;
a candidate's answer is normalised the same way before it is compared, so a
secret compares as its marker on both sides. Recording into a directory
that holds an answer for the same request compares the two (with the
route's rules) and keeps the paths that differ as ``noise``, ignored when
checking. Timing is not compared: a recorded answer takes the candidate's
latency.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import orjson

from shadowproxy.compare import Comparator
from shadowproxy.compare.decode import decode
from shadowproxy.compare.rules import CompareRules
from shadowproxy.model import Exchange, Observation, RequestFacts
from shadowproxy.records import GOLDEN, SCHEMA_VERSION
from shadowproxy.replay.captures import Captured, ReplayInputError
from shadowproxy.sinks.files import open_private, private_dir
from shadowproxy.sinks.redact import Redactor
from shadowproxy.sinks.secrets import KnownSecrets

__all__ = ["GoldenDir", "GoldenEntry", "normal_answer"]

_DROPPED = frozenset({"content-encoding", "content-length", "transfer-encoding", "connection"})
_SLUG = re.compile(r"[^a-z0-9]+")
_NAME = re.compile(r"\d{4}-[a-z0-9-]*\.json")
_MAX_FILE = 64 * 1024 * 1024


def normal_answer(
    observation: Observation, redactor: Redactor, known: KnownSecrets, max_bytes: int
) -> Observation:
    """``observation`` as golden files keep it: decoded, without framing, secrets replaced."""
    decoded = decode(observation.body, observation.header("content-encoding"), max_bytes)
    body = observation.body if decoded.error is not None else decoded.data
    content_type = observation.header("content-type")
    headers = tuple(
        (name, value if redactor.is_secret_header(name) else redactor.text(value, known))
        for name, value in redactor.headers(observation.headers)
        if name.lower() not in _DROPPED or decoded.error is not None
    )
    scrubbed = redactor.body(body, content_type, known) if body else b""
    return replace(observation, headers=headers, body=scrubbed, body_size=len(scrubbed))


def _answer_json(answer: Observation) -> dict[str, object]:
    try:
        text, encoded = answer.body.decode("utf-8"), None
    except UnicodeDecodeError:
        text, encoded = None, base64.b64encode(answer.body).decode("ascii")
    return {
        "status": answer.status,
        "headers": [list(pair) for pair in answer.headers],
        "body": text,
        "body_base64": encoded,
    }


def _answer_of(data: object, where: str) -> Observation:
    if not isinstance(data, dict) or not isinstance(data.get("status"), int):
        raise ReplayInputError(where, "answer: must hold an integer status")
    headers = data.get("headers")
    if not isinstance(headers, list) or not all(
        isinstance(h, list) and len(h) == 2 and all(isinstance(p, str) for p in h) for h in headers
    ):
        raise ReplayInputError(where, "answer.headers: must be a list of [name, value] pairs")
    try:
        body = (
            base64.b64decode(data["body_base64"], validate=True)
            if isinstance(data.get("body_base64"), str)
            else str(data.get("body") or "").encode()
        )
    except binascii.Error:
        raise ReplayInputError(where, "answer.body_base64: not base64") from None
    return Observation(
        status=data["status"],
        headers=tuple((n, v) for n, v in headers),
        body=body,
        body_size=len(body),
    )


@dataclass(frozen=True, slots=True)
class GoldenEntry:
    """One golden file: a request, legacy's answer, the noise learned, the recordings."""

    name: str
    key: str
    request: Mapping[str, object]
    answer: Observation
    noise: tuple[str, ...] = ()
    recordings: int = 1

    def rules(self, rules: CompareRules) -> CompareRules:
        """``rules`` with the learned noise ignored."""
        return replace(rules, ignore=(*rules.ignore, *self.noise)) if self.noise else rules

    def document(self) -> dict[str, object]:
        """The file's JSON (docs/replay.md)."""
        return {
            "v": SCHEMA_VERSION,
            "type": GOLDEN,
            "key": self.key,
            "request": dict(self.request),
            "answer": _answer_json(self.answer),
            "noise": list(self.noise),
            "recordings": self.recordings,
        }


class GoldenDir:
    """The golden files of one directory, read at start, written as recordings arrive."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: dict[str, GoldenEntry] = {}
        if path.is_dir():
            for file in sorted(path.iterdir()):
                if _NAME.fullmatch(file.name):
                    entry = self._read(file)
                    self.entries[entry.key] = entry
        elif path.exists():
            raise ReplayInputError(str(path), "not a directory")

    def _read(self, file: Path) -> GoldenEntry:
        where = str(file)
        try:
            if file.stat().st_size > _MAX_FILE:
                raise ReplayInputError(where, f"larger than {_MAX_FILE} bytes")
            data = orjson.loads(file.read_bytes())
        except OSError as exc:
            raise ReplayInputError(where, exc.strerror or type(exc).__name__) from None
        except orjson.JSONDecodeError as exc:
            raise ReplayInputError(where, f"not JSON ({exc})") from None
        if not isinstance(data, dict) or data.get("type") != GOLDEN or data.get("v") != 1:
            raise ReplayInputError(where, "not a golden file (v 1)")
        key, request, noise = data.get("key"), data.get("request"), data.get("noise")
        recordings = data.get("recordings")
        if not isinstance(key, str) or not isinstance(request, dict):
            raise ReplayInputError(where, "key and request: missing")
        if not isinstance(noise, list) or not all(isinstance(p, str) for p in noise):
            raise ReplayInputError(where, "noise: must be a list of paths")
        if not isinstance(recordings, int) or recordings < 1:
            raise ReplayInputError(where, "recordings: must be a positive integer")
        answer = _answer_of(data.get("answer"), where)
        return GoldenEntry(file.name, key, request, answer, tuple(noise), recordings)

    def record(
        self,
        request: Captured,
        position: int,
        shown: Mapping[str, object],
        answer: Observation,
        rules: CompareRules,
        comparator: Comparator,
    ) -> GoldenEntry:
        """Store ``answer`` (normalised) for ``request``; a second recording learns noise.

        A new file is named by the request's ``position`` in the capture, so a
        directory lists the requests in their order whatever order they were
        answered in; a name another request already has gets the key added.
        """
        old = self.entries.get(request.key)
        if old is None:
            slug = _SLUG.sub("-", request.target.partition("?")[0].lower()).strip("-")[:48]
            name = f"{position:04d}-{request.method.lower()}-{slug}.json"
            if any(entry.name == name for entry in self.entries.values()):
                name = f"{name.removesuffix('.json')}-{request.key[:8]}.json"
            entry = GoldenEntry(name, request.key, shown, answer)
        else:
            entry = replace(
                old,
                noise=_noise(old, answer, rules, comparator),
                recordings=old.recordings + 1,
            )
        self.entries[request.key] = entry
        self._write(entry)
        return entry

    def _write(self, entry: GoldenEntry) -> None:
        private_dir(self.path)
        target = self.path / entry.name
        staged = self.path / f".{entry.name}.tmp"
        staged.unlink(missing_ok=True)
        data = orjson.dumps(entry.document(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
        # Written aside, then renamed: a reader never sees half a file.
        with os.fdopen(open_private(staged), "wb") as out:
            out.write(data + b"\n")
        staged.replace(target)


def _noise(
    old: GoldenEntry, answer: Observation, rules: CompareRules, comparator: Comparator
) -> tuple[str, ...]:
    """The paths where ``answer`` differs from the recorded one, added to the known noise."""
    facts = RequestFacts("golden", "GET", "/", "", f"golden {old.key}", "golden", 0.0)
    learning = replace(rules, ignore=(), noise=replace(rules.noise, learn=False))
    verdict = comparator.compare(
        Exchange(facts, old.answer, replace(answer, elapsed_s=old.answer.elapsed_s)), learning
    )
    found = {d.path for d in verdict.differences if d.kind != "latency"}
    return tuple(sorted({*old.noise, *found}))

"""The known-differences file: semantic differences a team has explained.

Owns loading and validating the file and matching fingerprints against it.
Each entry is ``{fingerprint, reason, owner}``; the fingerprint is a mapping
``{route, class, kind, path}`` or the string ``"route|class|kind|path"``, and
any part may be ``*``. A structural difference (an intended new field, a
versioned change) is explained only by an entry whose class says
``structural``: a ``*`` class documents semantic and timing differences, never
a change of shape. Imports the YAML loader and the report's values.
"""

from __future__ import annotations

from dataclasses import dataclass

from shadowproxy.report.errors import ReportInputError
from shadowproxy.report.summary import FingerprintSummary
from shadowproxy.report.yamlfile import load_yaml

__all__ = ["KnownDifference", "KnownSet", "load_known"]

_PARTS = ("route", "class", "kind", "path")


@dataclass(frozen=True, slots=True)
class KnownDifference:
    """One explained difference; ``*`` in a part matches anything."""

    route: str
    cls: str
    kind: str
    path: str
    reason: str
    owner: str

    def matches(self, fp: FingerprintSummary) -> bool:
        """True when every part equals the fingerprint's or is ``*``."""
        return self.covers(fp.route, fp.cls, fp.kind, fp.path)

    def covers(self, route: str, cls: str, kind: str, path: str) -> bool:
        """True when every part equals the given one or is ``*`` (structural only by name)."""
        if cls == "structural" and self.cls != "structural":
            return False
        return all(
            mine in ("*", theirs)
            for mine, theirs in (
                (self.route, route),
                (self.cls, cls),
                (self.kind, kind),
                (self.path, path),
            )
        )


@dataclass(frozen=True, slots=True)
class KnownSet:
    """All explained differences."""

    entries: tuple[KnownDifference, ...] = ()

    def explain(self, fp: FingerprintSummary) -> KnownDifference | None:
        """The first entry matching ``fp``, or None when it is undocumented."""
        return next((entry for entry in self.entries if entry.matches(fp)), None)

    def explains(self, route: str, cls: str, kind: str, path: str) -> bool:
        """True when an entry documents a difference of ``route`` with this class, kind, path."""
        return any(entry.covers(route, cls, kind, path) for entry in self.entries)


def load_known(path: str) -> KnownSet:
    """Parse and validate ``path``; ReportInputError names the file and key."""
    document = load_yaml(path)
    if isinstance(document, dict) and set(document) == {"known"}:
        document = document["known"]
    if document is None:
        return KnownSet()
    if not isinstance(document, list):
        raise ReportInputError(path, "must be a list of {fingerprint, reason, owner}")
    return KnownSet(tuple(_entry(path, i, item) for i, item in enumerate(document)))


def _entry(path: str, index: int, item: object) -> KnownDifference:
    where = f"[{index}]"
    if not isinstance(item, dict):
        raise ReportInputError(path, f"{where}: must be a mapping with fingerprint, reason, owner")
    unknown = set(item) - {"fingerprint", "reason", "owner"}
    if unknown:
        raise ReportInputError(path, f"{where}.{sorted(unknown)[0]}: unknown key")
    for key in ("reason", "owner"):
        value = item.get(key)
        if not isinstance(value, str) or not value.strip():
            raise ReportInputError(path, f"{where}.{key}: missing (every entry needs one)")
    parts = _fingerprint(path, where, item.get("fingerprint"))
    return KnownDifference(*parts, reason=item["reason"].strip(), owner=item["owner"].strip())


def _fingerprint(path: str, where: str, value: object) -> tuple[str, str, str, str]:
    key = f"{where}.fingerprint"
    if isinstance(value, str):
        pieces = value.split("|")
        if len(pieces) != len(_PARTS) or not all(pieces):
            raise ReportInputError(path, f"{key}: must be 'route|class|kind|path'")
        return pieces[0], pieces[1], pieces[2], pieces[3]
    if isinstance(value, dict):
        for part in _PARTS:
            if not isinstance(value.get(part), str) or not value[part]:
                raise ReportInputError(path, f"{key}.{part}: missing")
        extra = set(value) - set(_PARTS)
        if extra:
            raise ReportInputError(path, f"{key}.{sorted(extra)[0]}: unknown key")
        return value["route"], value["class"], value["kind"], value["path"]
    raise ReportInputError(path, f"{key}: missing (mapping or 'route|class|kind|path')")

"""Content-Type parsing and how a body of that type is compared.

Owns the media-type rules: ``application/json`` and ``*+json`` compare as JSON,
``text/*`` and the textual application types (XML, JavaScript, forms, YAML...)
as text in their charset, anything else as bytes. Pure code.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["BodyKind", "MediaType", "body_kind", "parse_content_type"]

_TEXT_APPLICATION_TYPES = frozenset(
    {
        "application/xml",
        "application/javascript",
        "application/ecmascript",
        "application/x-javascript",
        "application/x-www-form-urlencoded",
        "application/yaml",
        "application/x-yaml",
        "application/graphql",
        "application/x-ndjson",
        "application/jsonl",
        "application/csv",
        "application/sql",
    }
)


class BodyKind(StrEnum):
    """How a body is compared."""

    JSON = "json"
    TEXT = "text"
    BINARY = "binary"


@dataclass(frozen=True, slots=True)
class MediaType:
    """A parsed Content-Type: lower-cased ``essence`` (``""`` when absent) and parameters.

    Parameter names are lower-cased, values unquoted; the charset value is
    lower-cased too because charset names are case-insensitive.
    """

    essence: str
    params: tuple[tuple[str, str], ...] = ()
    raw: str | None = None

    @property
    def charset(self) -> str | None:
        """The ``charset`` parameter, or None."""
        for name, value in self.params:
            if name == "charset":
                return value
        return None

    def text_codec(self) -> str:
        """The codec to decode a text body with: the charset if Python knows it, else UTF-8."""
        charset = self.charset
        if charset is not None:
            try:
                return codecs.lookup(charset).name
            except LookupError:
                pass
        return "utf-8"


def parse_content_type(value: str | None) -> MediaType:
    """Parse a Content-Type header value; a missing header gives ``essence == ""``."""
    if value is None:
        return MediaType("")
    essence, _, rest = value.partition(";")
    params: list[tuple[str, str]] = []
    for part in rest.split(";"):
        name, sep, param = part.partition("=")
        name = name.strip().lower()
        if not sep or not name:
            continue
        param = param.strip()
        if len(param) >= 2 and param[0] == param[-1] == '"':
            param = param[1:-1].replace('\\"', '"')
        params.append((name, param.lower() if name == "charset" else param))
    return MediaType(essence.strip().lower(), tuple(sorted(params)), value)


def body_kind(media: MediaType) -> BodyKind:
    """How a body of this media type is compared."""
    essence = media.essence
    if essence == "application/json" or essence.endswith("+json"):
        return BodyKind.JSON
    if (
        essence.startswith("text/")
        or essence in _TEXT_APPLICATION_TYPES
        or essence.endswith("+xml")
        or essence.endswith("+yaml")
    ):
        return BodyKind.TEXT
    return BodyKind.BINARY

"""Response messages as JSON documents, so the comparison core diffs them field by field.

Owns the rendering: proto3 JSON (``json_format.MessageToDict``) with the
``.proto`` field names, every field printed even at its default value (a
proto3 field without presence cannot be told apart from one set to its
default on the wire, so such a change is a value difference, not a missing
field), int64 as numbers when they fit, and enums by name. Fields the
descriptors do not know (a candidate built from a newer ``.proto``) appear
as ``"#<number>"`` keys, so an added field is an ``extra`` difference
instead of vanishing. Pure code over protobuf.
"""

from __future__ import annotations

import base64

import orjson
from google.protobuf import json_format, message
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.unknown_fields import UnknownFieldSet

__all__ = ["message_json"]

_WELL_KNOWN_PREFIX = "google.protobuf."
_MAX_DEPTH = 64


def _unknown_value(field: object) -> object:
    data = getattr(field, "data", None)
    if isinstance(data, bytes):
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return {"base64": base64.b64encode(data).decode("ascii")}
    if isinstance(data, int):
        return data
    return "group"


def _add_unknown(msg: message.Message, rendered: dict[str, object], depth: int) -> None:
    """Add ``#<number>`` keys for unknown fields, here and in nested messages."""
    if depth > _MAX_DEPTH:
        return
    unknown = UnknownFieldSet(msg)
    for index in range(len(unknown)):
        field = unknown[index]
        key = f"#{field.field_number}"
        value = _unknown_value(field)
        previous = rendered.get(key)
        if previous is None:
            rendered[key] = value
        elif isinstance(previous, list):
            previous.append(value)
        else:
            rendered[key] = [previous, value]
    for descriptor, value in msg.ListFields():
        kind = descriptor.message_type
        if descriptor.type != FieldDescriptor.TYPE_MESSAGE or kind is None:
            continue
        if kind.full_name.startswith(_WELL_KNOWN_PREFIX) or kind.GetOptions().map_entry:
            continue  # rendered specially (timestamps as strings, maps as objects)
        child = rendered.get(descriptor.name)
        if descriptor.is_repeated:
            if isinstance(child, list):
                for item, item_rendered in zip(value, child, strict=False):
                    if isinstance(item_rendered, dict):
                        _add_unknown(item, item_rendered, depth + 1)
        elif isinstance(child, dict):
            _add_unknown(value, child, depth + 1)


def message_json(output: type[message.Message], data: bytes) -> bytes | None:
    """``data`` parsed as ``output`` and rendered as JSON; None when it does not parse."""
    try:
        parsed = output.FromString(data)
        rendered = json_format.MessageToDict(
            parsed,
            preserving_proto_field_name=True,
            always_print_fields_with_no_presence=True,
            unquote_int64_if_possible=True,
        )
    except (message.DecodeError, json_format.Error, RecursionError, ValueError):
        return None
    _add_unknown(parsed, rendered, 0)
    return orjson.dumps(rendered)

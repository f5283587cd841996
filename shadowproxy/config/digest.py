"""The settings' fingerprint: ``config_digest`` on ``/status`` and in the logs.

A stable hash of the effective settings with the secrets (admin token,
redaction hash key) and the source name left out, so two processes running
the same configuration show the same digest.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

import orjson

from shadowproxy.settings import Settings

__all__ = ["digest"]


def digest(settings: Settings) -> str:
    """A stable fingerprint of the effective settings, secrets left out."""
    shown = replace(
        settings,
        admin=replace(settings.admin, token=None),
        redact=replace(settings.redact, hash_key=None),
        source="",
    )
    encoded = orjson.dumps(shown, default=_encode, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(encoded).hexdigest()[:16]


def _encode(value: object) -> object:
    if isinstance(value, frozenset):
        # Set order varies between processes (string hashing is salted); the digest must not.
        return sorted(value, key=str)
    if isinstance(value, tuple):
        return list(value)
    raise TypeError

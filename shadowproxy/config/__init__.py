"""Configuration loading: one YAML file plus CLI flags, validated once into ``Settings``.

Every problem raises ``ConfigError`` whose message is one line naming the
file and the key (``config.yaml: shadow.timeout_s: must be > 0``); the CLI
prints it and exits 2. Unknown keys are errors, so a typo never silently
falls back to a default. ``document`` puts the document together; each
section has its own module (``routes``, ``rules``, ``grpc``, ``tls``),
``reload`` decides what a SIGHUP applies and ``digest`` fingerprints the result.
"""

from shadowproxy.config.document import ADMIN_TOKEN_ENV, load_settings, settings_from_document
from shadowproxy.config.overrides import Overrides
from shadowproxy.config.reader import ConfigError, is_loopback, parse_address
from shadowproxy.config.reload import reloaded
from shadowproxy.config.routes import FORCE_LEGACY_ENV

__all__ = [
    "ADMIN_TOKEN_ENV",
    "FORCE_LEGACY_ENV",
    "ConfigError",
    "Overrides",
    "is_loopback",
    "load_settings",
    "parse_address",
    "reloaded",
    "settings_from_document",
]

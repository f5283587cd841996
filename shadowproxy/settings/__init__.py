"""The frozen settings value every runtime component receives, and the values it is made of.

``shadowproxy.config`` builds one ``Settings`` from YAML and flags, validated
once at start; nothing reads configuration from anywhere else. Pure values:
this package imports only the comparison rules and the standard library.
``proxy`` holds the listeners, TLS, upstream and shadow-path values;
``routes`` the routes and their cutover; ``evidence`` what is recorded;
``edges`` the gRPC and NATS data planes; ``whole`` the ``Settings`` value.
"""

from __future__ import annotations

from shadowproxy.settings.edges import (
    GrpcCardinality,
    GrpcMethodSpec,
    GrpcSettings,
    NatsEventSpec,
    NatsRequestSpec,
    NatsServer,
    NatsSettings,
)
from shadowproxy.settings.evidence import (
    CaptureSettings,
    EvidenceSettings,
    RedactSettings,
)
from shadowproxy.settings.proxy import (
    AdminSettings,
    ClientSettings,
    HostAddress,
    LegacySettings,
    ListenTLS,
    ShadowSettings,
    StreamSettings,
    UpstreamSettings,
    UpstreamTLS,
)
from shadowproxy.settings.routes import (
    MAX_LEARNED_ROUTE,
    CutoverSettings,
    IdentitySettings,
    RollbackSettings,
    RouteCapture,
    RouteIdentity,
    RouteMode,
    RouteSpec,
    RouteStream,
    WebSocketMode,
)
from shadowproxy.settings.whole import (
    Settings,
)

__all__ = [
    "MAX_LEARNED_ROUTE",
    "AdminSettings",
    "CaptureSettings",
    "ClientSettings",
    "CutoverSettings",
    "EvidenceSettings",
    "GrpcCardinality",
    "GrpcMethodSpec",
    "GrpcSettings",
    "HostAddress",
    "IdentitySettings",
    "LegacySettings",
    "ListenTLS",
    "NatsEventSpec",
    "NatsRequestSpec",
    "NatsServer",
    "NatsSettings",
    "RedactSettings",
    "RollbackSettings",
    "RouteCapture",
    "RouteIdentity",
    "RouteMode",
    "RouteSpec",
    "RouteStream",
    "Settings",
    "ShadowSettings",
    "StreamSettings",
    "UpstreamSettings",
    "UpstreamTLS",
    "WebSocketMode",
]

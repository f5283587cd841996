"""The gRPC listener of one worker: channels, the grpc.aio server and their lifecycle.

``GrpcProxy.start`` opens one channel per upstream (HTTP/2, over TLS with
``upstreams.tls``'s files when ``grpc.tls`` is set; no retries; legacy
without message size limits, shadow channels capped at
``shadow.compare_max_bytes`` so an oversized candidate answer is a
``too_large`` failure) and binds the server. Stopping comes in two steps so
the caller can order them around the HTTP listener sharing the task pool:
``stop`` stops accepting and drains in-flight calls, ``close`` closes the
channels after the pool's shadow work is done.
"""

from __future__ import annotations

import errno
from pathlib import Path

import grpc
import structlog

from shadowproxy.cutover.ownership import Ownership
from shadowproxy.grpcproxy.answering import Answering
from shadowproxy.grpcproxy.descriptors import Catalog, load_catalog
from shadowproxy.grpcproxy.forward import GrpcForwarder
from shadowproxy.grpcproxy.methods import MethodTable
from shadowproxy.grpcproxy.shadow import GrpcEvidence, GrpcShadow
from shadowproxy.settings import HostAddress, Settings, UpstreamTLS
from shadowproxy.shadow.comparisons import Comparisons
from shadowproxy.shadow.control import LagMonitor, ShadowSwitch
from shadowproxy.shadow.streams import StreamSlots
from shadowproxy.shadow.tasks import TaskPool
from shadowproxy.sinks.secrets import SecretFinder

__all__ = ["GrpcProxy", "method_table"]

log = structlog.get_logger(__name__)

_UNLIMITED = -1


def method_table(settings: Settings, catalog: Catalog | None) -> MethodTable:
    """The method table ``settings.grpc`` describes (which must be set)."""
    assert settings.grpc is not None
    return MethodTable(
        settings.grpc,
        catalog,
        default_sample_percent=settings.shadow.sample_percent,
        default_rules=settings.compare,
        max_routes=settings.max_routes,
        default_window=settings.streams,
        default_fallback=settings.cutover.fallback,
    )


def _credentials(tls: UpstreamTLS) -> grpc.ChannelCredentials:
    """TLS credentials from ``upstreams.tls``: its CAs (else gRPC's roots), its certificate."""

    def read(path: str | None) -> bytes | None:
        return None if path is None else Path(path).read_bytes()

    chain = read(tls.cert_file)
    return grpc.ssl_channel_credentials(
        root_certificates=read(tls.ca_file),
        # A key kept inside the certificate file is found there: PEM readers skip other blocks.
        private_key=read(tls.key_file) or chain,
        certificate_chain=chain,
    )


def _channel(
    target: str, max_receive: int, tls: grpc.ChannelCredentials | None
) -> grpc.aio.Channel:
    options = [
        ("grpc.enable_retries", 0),
        ("grpc.max_receive_message_length", max_receive),
        ("grpc.max_send_message_length", _UNLIMITED),
    ]
    if tls is None:
        return grpc.aio.insecure_channel(target, options=options)
    return grpc.aio.secure_channel(target, tls, options=options)


class GrpcProxy:
    """The gRPC listener; shares evidence, comparisons, switch, lag and task pool with HTTP."""

    def __init__(
        self,
        settings: Settings,
        *,
        pool: TaskPool,
        comparisons: Comparisons,
        evidence: GrpcEvidence,
        secrets: SecretFinder,
        switch: ShadowSwitch,
        lag: LagMonitor,
        streams: StreamSlots,
        ownership: Ownership | None = None,
    ) -> None:
        """Raises ``DescriptorError`` when the descriptor file cannot be used."""
        if settings.grpc is None:
            raise ValueError("settings.grpc is not set")
        grpc_settings = self._settings = settings.grpc
        self._catalog = (
            load_catalog(grpc_settings.descriptors) if grpc_settings.descriptors else None
        )
        tls = _credentials(settings.upstream_tls) if grpc_settings.tls else None
        cap = settings.shadow.compare_max_bytes
        # Answering clients: no size limit. Shadow copies: capped at the comparison's.
        legacy = _channel(grpc_settings.legacy, _UNLIMITED, tls)
        candidate = _channel(grpc_settings.candidate, _UNLIMITED, tls)
        shadows = [
            _channel(grpc_settings.candidate, cap, tls),
            _channel(grpc_settings.legacy, cap, tls),
        ]
        secondary = None
        if grpc_settings.secondary is not None:
            secondary = _channel(grpc_settings.secondary, cap, tls)
            shadows.append(secondary)
        self._channels = [legacy, candidate, *shadows]
        self.forwarder = GrpcForwarder(
            settings=grpc_settings,
            table=method_table(settings, self._catalog),
            legacy=legacy,
            candidate=candidate,
            shadow=GrpcShadow(
                settings=settings.shadow,
                pool=pool,
                candidate=shadows[0],
                legacy=shadows[1],
                secondary=secondary,
                comparisons=comparisons,
                evidence=evidence,
                switch=switch,
                lag=lag,
                streams=streams,
                ownership=ownership,
            ),
            answering=Answering(evidence, settings.admin.token_bytes),
            secrets=secrets,
            ownership=ownership,
            on_fallback=evidence.on_fallback,
        )
        self._server: grpc.aio.Server | None = None
        self._reuse_port = settings.workers > 1
        self._max_connections = settings.max_client_connections
        self.address: HostAddress | None = None

    def reconfigure(self, settings: Settings) -> None:
        """Swap methods, sampling and rules; listen address, upstreams and descriptors stay."""
        if settings.grpc is not None:
            self.forwarder.reconfigure(settings.grpc, method_table(settings, self._catalog))

    async def start(self) -> HostAddress:
        """Bind and start serving; raises ``OSError`` when the address cannot be bound."""
        listen = self._settings.listen
        server = grpc.aio.server(
            options=[
                ("grpc.so_reuseport", 1 if self._reuse_port else 0),
                # gRPC core closes connections past this on arrival (uncounted:
                # it tells nobody), as the HTTP listener does with its own.
                ("grpc.max_allowed_incoming_connections", self._max_connections),
                ("grpc.max_receive_message_length", _UNLIMITED),
                ("grpc.max_send_message_length", _UNLIMITED),
            ]
        )
        server.add_generic_rpc_handlers((self.forwarder,))
        try:
            port = server.add_insecure_port(str(listen))
        except RuntimeError:
            port = 0
        if port <= 0 and not (port == 0 and listen.port == 0):
            raise OSError(errno.EADDRINUSE, f"cannot bind the gRPC listener {listen}")
        await server.start()
        self._server = server
        self.address = HostAddress(listen.host, port)
        log.info(
            "grpc listening",
            grpc=str(self.address),
            legacy=self._settings.legacy,
            candidate=self._settings.candidate,
            descriptors=self._settings.descriptors,
        )
        return self.address

    async def stop(self, grace_s: float) -> None:
        """Stop accepting calls; in-flight ones get ``grace_s``, then are cancelled."""
        if self._server is not None:
            await self._server.stop(grace_s)
            self._server = None

    async def close(self) -> None:
        """Close the upstream channels (after the shadow pool has finished)."""
        for channel in self._channels:
            await channel.close(None)

"""NATS shadowing: request/reply subjects answered from legacy and mirrored, events matched.

The NATS data plane beside ``shadowproxy.http`` and ``shadowproxy.grpcproxy``
(it imports neither), on the shared shadow runtime (``shadowproxy.shadow``)
and evidence: the route of an exchange is its subject. Modules, each owning
one thing:

- ``messages``: NATS messages as observations, NATS failures as values;
- ``connections``: the connections, their credentials, counted drops;
- ``requests``: a request subject served in the queue group, forwarded, mirrored;
- ``matching``: events paired by correlation key within a window (pure);
- ``events``: event subjects subscribed, matched, compared, filed;
- ``sink``: what the NATS data plane reports to;
- ``proxy``: the data plane of one process and its lifecycle.

``shadowproxy.runtime.listeners`` starts it when ``nats`` is configured.
"""

from shadowproxy.natsproxy.proxy import NatsProxy

__all__ = ["NatsProxy"]

"""gRPC shadowing: a gRPC listener that does for gRPC what the HTTP proxy does for HTTP.

Calls are answered by the side that owns their method (legacy unless cutover
says otherwise) unchanged, read-only unary and server-streaming calls are mirrored
to the candidate (and secondary) off the hot path, and the answers go through
the same comparison core, JSONL evidence and metrics, with the full method
name (``/package.Service/Method``) as the route. Modules, each owning one
thing:

- ``status``: gRPC codes as observation statuses and metric status classes;
- ``descriptors``: descriptor sets, method cardinality and response types;
- ``messages``: response messages as JSON documents;
- ``metadata``: reserved keys, forwarding, metadata as headers;
- ``methods``: method names to routes, the mirror policy;
- ``answers``: one unary call and its observation, transport failures;
- ``shadow``: the gates and the mirror task (the reverse shadow's too);
- ``streams``: server-streaming calls' windows (the copy's read, decoding);
- ``answering``: who answers a call, relaying and counting its answer, the probe;
- ``relay``: streaming calls relayed from the answering side;
- ``forward``: the hot path (the generic handler, the method's ownership);
- ``server``: channels, the server and their lifecycle.

This package sits beside ``shadowproxy.http`` (never importing it), builds on
``shadowproxy.shadow`` (the task pool, switches, mirrors and comparisons both
share) and sits below ``shadowproxy.runtime.serve``, which starts it.
"""

from shadowproxy.grpcproxy.descriptors import Catalog, DescriptorError, MethodShape, load_catalog
from shadowproxy.grpcproxy.methods import GrpcMethod, MethodTable, reads_only
from shadowproxy.grpcproxy.server import GrpcProxy, method_table

__all__ = [
    "Catalog",
    "DescriptorError",
    "GrpcMethod",
    "GrpcProxy",
    "MethodShape",
    "MethodTable",
    "load_catalog",
    "method_table",
    "reads_only",
]

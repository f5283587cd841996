"""The HTTP data plane: the client-facing server, the hot path, the upstream client, the shadow.

In the order a request travels: ``server`` (the lean listener, with
``server_connection`` and ``server_request``) or, for anything unusual,
``handover`` (aiohttp's server); ``inbound`` (the request as the hot path sees
it); ``forward`` (answer from legacy or the candidate, stream back); ``headers``
and ``routing``; ``upstream`` with the HTTP/1.1 client (``h1``,
``h1_connection``, ``h1_response``); ``shadow`` (the HTTP mirror over
``shadowproxy.shadow``); ``websocket`` (the tunnel). Never imports gRPC.
"""

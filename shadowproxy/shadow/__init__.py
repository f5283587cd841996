"""The shadow runtime both data planes share: background tasks, switches, mirrors, comparisons.

``tasks`` (the one bounded task pool), ``control`` (the kill switch and loop
lag), ``mirror`` (admission, spawning, fetching the copies and filing the
evidence), ``comparisons`` (inline or in the comparison process) and
``compare_worker`` (that process). HTTP (``shadowproxy.http``) and gRPC
(``shadowproxy.grpcproxy``) build on it; it knows neither, nor cutover.
"""

"""A tiny exporter serving the contract metrics for the fleet-mode test.

Prints its port, serves zeros until a line arrives on stdin, then records a
fixed workload once, prints ``done`` and serves until stdin closes.
"""

from __future__ import annotations

import sys

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
ORDERS, PAYMENTS = ("/orders/{id}", "orders"), ("/pay", "payments")


def main() -> None:
    registry = CollectorRegistry()
    comparisons = Counter(
        "shadowproxy_comparisons", "verdicts", ["route", "domain", "verdict"], registry=registry
    )
    divergences = Counter(
        "shadowproxy_divergences", "classes", ["route", "domain", "class"], registry=registry
    )
    latency = Histogram(
        "shadowproxy_upstream_latency_seconds",
        "latency",
        ["upstream", "route"],
        buckets=BUCKETS,
        registry=registry,
    )
    errors = Counter(
        "shadowproxy_upstream_errors", "errors", ["upstream", "reason"], registry=registry
    )
    for route, domain in (ORDERS, PAYMENTS):
        for verdict in ("match", "diverged", "noise", "error"):
            comparisons.labels(route, domain, verdict)
        for cls in ("structural", "semantic", "timing"):
            divergences.labels(route, domain, cls)
        # Series must exist at zero before the workload: increase() ignores a
        # series' first sample, so one born with its final value would read as 0.
        for upstream in ("legacy", "candidate"):
            latency.labels(upstream, route)
    errors.labels("candidate", "timeout")
    server, _ = start_http_server(0, addr="127.0.0.1", registry=registry)
    print(server.server_port, flush=True)
    sys.stdin.readline()
    comparisons.labels(*ORDERS, "match").inc(3000)
    comparisons.labels(*ORDERS, "error").inc(1)
    errors.labels("candidate", "timeout").inc(1)
    comparisons.labels(*PAYMENTS, "match").inc(1497)
    comparisons.labels(*PAYMENTS, "diverged").inc(3)
    divergences.labels(*PAYMENTS, "structural").inc(3)
    for _ in range(200):
        latency.labels("legacy", ORDERS[0]).observe(0.004)
        latency.labels("candidate", ORDERS[0]).observe(0.004)
        latency.labels("legacy", PAYMENTS[0]).observe(0.004)
        latency.labels("candidate", PAYMENTS[0]).observe(0.04)
    print("done", flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    main()

"""The per-request cache of labelled metric children."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from shadowproxy.sinks.metrics import Children, Metrics


class TestChildren:
    """``Children.get`` is ``labels()`` without the per-call validation and lock."""

    def test_get_is_the_labelled_child(self, metrics: Metrics) -> None:
        """Counting through the cache moves the same sample ``labels()`` moves."""
        metrics.requests_by.get("/orders", "GET", "2xx").inc()
        metrics.requests_by.get("/orders", "GET", "2xx").inc()
        metrics.requests.labels("/orders", "GET", "2xx").inc()
        value = metrics.registry.get_sample_value(
            "shadowproxy_requests_total", {"route": "/orders", "method": "GET", "code_class": "2xx"}
        )
        assert value == 3
        assert metrics.requests_by.get("/orders", "GET", "2xx") is metrics.requests.labels(
            "/orders", "GET", "2xx"
        )

    def test_cache_is_bounded(self) -> None:
        """Past its bound the cache stops growing; every value still counts."""
        registry = CollectorRegistry()
        counter = Counter("things", "Things.", ("name",), registry=registry)
        children = Children(counter)
        for index in range(5000):
            children.get(f"n{index}").inc()
        assert len(children._children) == 4096
        assert registry.get_sample_value("things_total", {"name": "n4999"}) == 1

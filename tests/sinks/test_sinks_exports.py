"""Every sinks module declares exactly the names it exports."""

from __future__ import annotations

import importlib

import pytest

MODULES = [
    "shadowproxy.sinks",
    "shadowproxy.sinks.evidence",
    "shadowproxy.sinks.logs",
    "shadowproxy.sinks.metrics",
    "shadowproxy.sinks.records",
    "shadowproxy.sinks.redact",
    "shadowproxy.sinks.rollup",
    "shadowproxy.sinks.values",
    "shadowproxy.sinks.writer",
]


class TestExports:
    @pytest.mark.parametrize("name", MODULES)
    def test_all_names_exist_and_are_documented(self, name: str) -> None:
        """``__all__`` lists only defined names (docstrings: tests/test_layout.py, from the
        source, which the compiled build's modules do not keep)."""
        module = importlib.import_module(name)
        for export in module.__all__:
            assert hasattr(module, export), f"{name}.{export}"

    def test_facade_exports(self) -> None:
        """The package exports the facade the proxy and admin endpoint use."""
        import shadowproxy.sinks as sinks

        assert {"Evidence", "Metrics", "render_metrics", "multiprocess_registry"} <= set(
            sinks.__all__
        )

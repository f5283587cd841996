"""The bundled demo: legacy and candidate backends and an end-to-end run."""

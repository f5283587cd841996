"""shadowproxy: answer from legacy, mirror to the candidate, classify every divergence."""

__version__ = "0.1.0"

__all__ = ["__version__"]

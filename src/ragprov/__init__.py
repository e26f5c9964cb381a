"""ragprov: OpenTelemetry provenance, lineage and grounding signals for RAG and agents."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ragprov")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]

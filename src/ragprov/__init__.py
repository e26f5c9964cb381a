"""ragprov: OpenTelemetry provenance, lineage and grounding signals for RAG and agents.

The public names below are imported on first use, so ``import ragprov`` (which
``opentelemetry-instrument`` does at start-up through the entry points) stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("ragprov")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

if TYPE_CHECKING:
    from ragprov.feedback import record_feedback
    from ragprov.install import configure
    from ragprov.lineage import step
    from ragprov.processor import ProvenanceSpanProcessor
    from ragprov.stamping import stamp
    from ragprov.tools import tool

_LAZY = {
    "configure": "ragprov.install",
    "record_feedback": "ragprov.feedback",
    "step": "ragprov.lineage",
    "ProvenanceSpanProcessor": "ragprov.processor",
    "stamp": "ragprov.stamping",
    "tool": "ragprov.tools",
}

__all__ = [
    "ProvenanceSpanProcessor",
    "__version__",
    "configure",
    "record_feedback",
    "stamp",
    "step",
    "tool",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ragprov' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value

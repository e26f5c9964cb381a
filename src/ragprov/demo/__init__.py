"""``ragprov demo``: provenance of real retrievals on an embedded vector store, offline."""

from ragprov.demo.app import DemoResult, run_demo

__all__ = ["DemoResult", "run_demo"]

"""``ragprov demo``: a RAG app on embedded components, diagnosed by ragprov, offline."""

from ragprov.demo.app import AnswerReport, run_demo

__all__ = ["AnswerReport", "run_demo"]

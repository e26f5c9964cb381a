"""Signals results as ``rag.*`` span attributes: the one place that maps one to the other.

Undefined signals (``None``: diversity of a single chunk, utilisation of an empty answer …) are
left out rather than exported as a fake number, so a backend query such as
``rag.coverage_diversity < 0.3`` never matches a set where diversity means nothing.
"""

from __future__ import annotations

from opentelemetry.util.types import AttributeValue

from ragprov.semconv import attributes as attrs
from ragprov.signals import SetSignals, StepSignals

AttributeDict = dict[str, AttributeValue]


def set_signal_attributes(signals: SetSignals) -> AttributeDict:
    """Set-quality attributes of a retrieval span."""
    quality, similarity = signals.quality, signals.similarity
    attributes: AttributeDict = {
        attrs.RAG_QUALITY_METHOD: quality.method,
        attrs.RAG_STALE_CHUNK_COUNT: quality.stale_chunk_count,
        attrs.RAG_CONFLICT_CHUNK_COUNT: quality.conflict_chunk_count,
        attrs.RAG_SIMILARITY_METHOD: similarity.method,
    }
    _put(attributes, attrs.RAG_QUALITY_DENSITY, quality.quality_density)
    _put(attributes, attrs.RAG_COVERAGE_DIVERSITY, similarity.coverage_diversity)
    _put(attributes, attrs.RAG_REDUNDANCY_RATIO, similarity.redundancy_ratio)
    return attributes


def step_signal_attributes(signals: StepSignals) -> AttributeDict:
    """Behavioural attributes of a step span (utilisation, grounding, diagnosis)."""
    utilisation, grounding, diagnosis = signals.utilisation, signals.grounding, signals.diagnosis
    attributes: AttributeDict = {
        attrs.RAG_USED_CHUNK_IDS: list(utilisation.used_chunk_ids),
        attrs.RAG_USED_CHUNK_COUNT: utilisation.used_count,
        attrs.RAG_RETRIEVED_CHUNK_COUNT: utilisation.retrieved_count,
        attrs.RAG_UTILISATION_METHOD: utilisation.method,
        attrs.RAG_UTILISATION_THRESHOLD: utilisation.threshold,
        attrs.RAG_UTILISATION_RELIABLE: utilisation.reliable,
        attrs.RAG_UNCERTAINTY_ACKNOWLEDGED: grounding.uncertainty_acknowledged,
        attrs.RAG_DIAGNOSIS: diagnosis.category,
        attrs.RAG_DIAGNOSIS_REASON: diagnosis.reason,
    }
    _put(attributes, attrs.RAG_UTILISATION_RATIO, utilisation.ratio)
    _put(attributes, attrs.RAG_GROUNDING_STATUS, grounding.status)
    _put(attributes, attrs.RAG_TOOL_PROVIDED_DATA, grounding.tool_provided_data)
    _put(attributes, attrs.RAG_SOURCE_TO_RESPONSE_RATIO, grounding.source_to_response_ratio)
    return attributes


def _put(attributes: AttributeDict, key: str, value: AttributeValue | None) -> None:
    if value is not None:
        attributes[key] = value

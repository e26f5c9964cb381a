"""What the test apps share: a small fixed corpus, one retrieval span, and a report file.

Used by the app scripts next to it (run in a subprocess, as a user runs an app) and imported by
the tests to compute what the exported span must carry.
"""

from __future__ import annotations

import json
import os
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind

from ragprov import sidechannel
from ragprov.model import ChunkProvenance, RetrievalSetEnvelope

REPORT_ENV = "RAGPROV_TEST_REPORT"

DATA_SOURCE_ID = "handbook"
RETRIEVAL_SET_ID = "rs-zero-code-1"
QUERY = "How long do refunds take after a return is received?"

# (text, metadata, store id, score) in rank order; the metadata carries pre-ingestion quality.
CHUNKS: tuple[tuple[str, dict[str, Any], str, float], ...] = (
    (
        "Refunds are issued within 14 days after the warehouse receives the returned parcel.",
        {
            "chunk_id": "handbook-refunds-1",
            "source_document_id": "refund-policy",
            "semantic_density": 0.9,
            "completeness": 0.8,
            "faithfulness": 1.0,
            "freshness_status": "fresh",
        },
        "store-1",
        0.92,
    ),
    (
        "Gift cards purchased online cannot be exchanged for cash in any store.",
        {
            "chunk_id": "handbook-giftcards-3",
            "source_document_id": "gift-card-terms",
            "semantic_density": 0.7,
            "completeness": 0.6,
            "faithfulness": 0.8,
            "freshness_status": "stale",
        },
        "store-2",
        0.61,
    ),
    (
        "Warehouse staff inspect every returned parcel for damage before approving it.",
        {
            "chunk_id": "handbook-inspection-2",
            "source_document_id": "warehouse-manual",
            "semantic_density": 0.5,
            "completeness": 0.5,
            "faithfulness": 0.5,
            "conflict_flag": True,
        },
        "store-3",
        0.55,
    ),
)


def envelope() -> RetrievalSetEnvelope:
    """The retrieval's envelope (deterministic: fixed set id, ids from metadata)."""
    chunks = []
    for rank, (text, metadata, store_id, score) in enumerate(CHUNKS, start=1):
        chunk = ChunkProvenance.from_store(
            rank=rank, text=text, metadata=metadata, store_id=store_id, score=score
        )
        assert chunk is not None
        chunks.append(chunk)
    return RetrievalSetEnvelope.build(
        chunks,
        query_text=QUERY,
        data_source_id=DATA_SOURCE_ID,
        retrieval_set_id=RETRIEVAL_SET_ID,
    )


def app_attributes() -> dict[str, Any]:
    """What the app itself puts on the retrieval span (the exported span has more)."""
    return {
        "gen_ai.operation.name": "retrieval",
        "gen_ai.data_source.id": DATA_SOURCE_ID,
        **envelope().span_attributes(),
    }


def run_retrieval(tracer: trace.Tracer) -> None:
    """One GenAI retrieval span with provenance facts, chunk texts via the side channel."""
    with tracer.start_as_current_span(f"retrieval {DATA_SOURCE_ID}", kind=SpanKind.CLIENT) as span:
        span.set_attributes(app_attributes())
        sidechannel.record_retrieval(
            span, envelope(), [text for text, _, _, _ in CHUNKS], query_texts=[QUERY]
        )


def describe(processor: object) -> dict[str, Any]:
    """A span processor tree as class names (BatchSpanProcessor → its exporter)."""
    node: dict[str, Any] = {"class": type(processor).__name__}
    downstream = getattr(processor, "downstream", None)
    if downstream is not None:
        node["downstream"] = describe(downstream)
    children = getattr(processor, "_span_processors", None)
    if children is not None:
        node["processors"] = [describe(child) for child in children]
    exporter = getattr(processor, "span_exporter", None)
    if exporter is not None:
        node["exporter"] = type(exporter).__name__
    return node


def write_report() -> None:
    """Write how the SDK ended up configured to the file named by RAGPROV_TEST_REPORT."""
    path = os.environ.get(REPORT_ENV)
    if not path:
        return
    provider = trace.get_tracer_provider()
    active = getattr(provider, "_active_span_processor", None)
    try:
        from ragprov.distro import RagprovConfigurator

        ragprov_configurator_ran = RagprovConfigurator._instance is not None
    except ImportError:  # pragma: no cover - ragprov always importable in these tests
        ragprov_configurator_ran = False
    report = {
        "provider": type(provider).__name__,
        "processors": [describe(p) for p in getattr(active, "_span_processors", ())],
        "ragprov_configurator_ran": ragprov_configurator_ran,
        "OTEL_PYTHON_CONFIGURATOR": os.environ.get("OTEL_PYTHON_CONFIGURATOR"),
    }
    with open(path, "w", encoding="utf-8") as file:
        json.dump(report, file)

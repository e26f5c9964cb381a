"""Helpers that build, with the plain OpenTelemetry API, the spans an instrumented app emits.

They stand in for the instrumentors in processor tests: a retrieval span carrying the provenance
facts and its chunk texts in the side channel, an LLM step span with its prompt and answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Tracer

from ragprov import lineage, sidechannel
from ragprov.config import Settings
from ragprov.model import ChunkProvenance, RetrievalSetEnvelope
from ragprov.processor import ProvenanceSpanProcessor

COLLECTION = "reports"
MODEL = "test-model"


@dataclass
class Pipeline:
    """A tracer whose spans go through a ProvenanceSpanProcessor into memory."""

    tracer: Tracer
    exporter: InMemorySpanExporter
    processor: ProvenanceSpanProcessor
    provider: TracerProvider
    _spans: list[ReadableSpan] = field(default_factory=list)

    def spans(self) -> list[ReadableSpan]:
        assert self.processor.force_flush(10_000)
        return list(self.exporter.get_finished_spans())

    def span(self, name: str) -> ReadableSpan:
        matching = [span for span in self.spans() if span.name == name]
        assert len(matching) == 1, [span.name for span in self.spans()]
        return matching[0]

    def attributes(self, name: str) -> dict[str, Any]:
        return dict(self.span(name).attributes or {})


def make_pipeline(
    settings: Settings | None = None, span_limits: SpanLimits | None = None
) -> Pipeline:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(span_limits=span_limits)
    processor = ProvenanceSpanProcessor(SimpleSpanProcessor(exporter), settings=settings)
    provider.add_span_processor(processor)
    return Pipeline(provider.get_tracer("tests"), exporter, processor, provider)


def retrieve(
    tracer: Tracer,
    texts: Sequence[str],
    *,
    chunk_ids: Sequence[str] | None = None,
    metadata: Sequence[Mapping[str, Any]] | None = None,
    query: str | None = None,
    embeddings: Any = None,
) -> RetrievalSetEnvelope:
    """A retrieval span as the vector-store instrumentors make it."""
    with tracer.start_as_current_span(f"retrieval {COLLECTION}", kind=SpanKind.CLIENT) as span:
        chunks = []
        for rank, text in enumerate(texts, start=1):
            chunk_metadata = dict(metadata[rank - 1]) if metadata else {}
            if chunk_ids:
                chunk_metadata["chunk_id"] = chunk_ids[rank - 1]
            chunk = ChunkProvenance.from_store(
                rank=rank, text=text, metadata=chunk_metadata, score=1.0 - rank / 10
            )
            assert chunk is not None
            chunks.append(chunk)
        envelope = RetrievalSetEnvelope.build(
            chunks, query_text=query, step_id=lineage.current_step_id()
        )
        span.set_attributes(
            {
                "gen_ai.operation.name": "retrieval",
                "gen_ai.data_source.id": COLLECTION,
                **envelope.span_attributes(),
            }
        )
        sidechannel.record_retrieval(
            span, envelope, texts, embeddings=embeddings, query_texts=[query] if query else ()
        )
    return envelope


def chat(
    tracer: Tracer,
    prompt: str | None,
    answer: str | None,
    *,
    name: str = f"chat {MODEL}",
    extra: Mapping[str, Any] | None = None,
) -> None:
    """An LLM call span (official GenAI attributes); prompt and answer go to the side channel."""
    with tracer.start_as_current_span(name, kind=SpanKind.CLIENT) as span:
        span.set_attributes(
            {"gen_ai.operation.name": "chat", "gen_ai.request.model": MODEL, **(extra or {})}
        )
        if prompt is not None:
            sidechannel.record_step_input(span, [prompt])
        if answer is not None:
            sidechannel.record_step_output(span, answer)


def prompt(chunks: Sequence[str], question: str) -> str:
    context = "\n\n".join(chunks)
    return f"Answer from the context only.\n\nContext:\n{context}\n\nQuestion: {question}"


def pop_uuid(attributes: dict[str, Any], key: str) -> str:
    value = attributes.pop(key)
    assert isinstance(value, str)
    assert len(value) == 36
    return value


def approx(value: float) -> Any:
    return pytest.approx(value, abs=1e-4)


def only_span(exporter: InMemorySpanExporter) -> ReadableSpan:
    """The one span ``exporter`` holds."""
    (span,) = exporter.get_finished_spans()
    return span


def attributes(span: ReadableSpan) -> dict[str, Any]:
    """A span's attributes as a dict, sequences as lists (comparable with JSON and literals)."""
    return {
        key: list(value) if isinstance(value, tuple) else value
        for key, value in (span.attributes or {}).items()
    }

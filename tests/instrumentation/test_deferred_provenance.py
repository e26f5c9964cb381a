"""Where the provenance of a store query is computed: on the processor's worker when the span goes
to a ``ProvenanceSpanProcessor``, inline otherwise, with the same exported attributes either way.

Each test runs real embedded stores. "ended" is the span as the application thread ended it (seen
by a processor placed before ragprov's), "exported" what ragprov's processor forwarded.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from spans import attributes

from ragprov import ids, lineage
from ragprov.demo.embedding import HashingEmbedder
from ragprov.instrumentation._patching import PatchingInstrumentor
from ragprov.processor import ProvenanceSpanProcessor

EMBEDDER = HashingEmbedder(32)
SOLAR = "solar panels photovoltaic sunlight"
TEXTS = [
    "Solar panels convert sunlight into electricity with photovoltaic cells.",
    "Wind turbines generate electricity from moving air masses.",
    "The cake recipe needs flour, sugar and three fresh eggs.",
]
METADATAS: list[dict[str, Any]] = [
    {"source_document_id": "energy.pdf", "completeness": 0.9},
    {"chunk_id": "wind-1", "source_document_id": "wind.pdf"},
    {"topic": "food"},
]
#: What the application thread puts on a deferred retrieval span: the request, not the rows.
REQUEST_KEYS = {
    "gen_ai.operation.name",
    "db.system.name",
    "gen_ai.data_source.id",
    "gen_ai.retrieval.top_k",
}


# ----------------------------------------------------------------------------- stores

Query = Callable[[], Any]


def chromadb_query(tmp_path: Path) -> tuple[type[PatchingInstrumentor[Any]], Query]:
    import chromadb
    from chromadb.config import Settings

    from ragprov.instrumentation.chromadb import ChromaInstrumentor

    client = chromadb.EphemeralClient(settings=Settings(anonymized_telemetry=False))
    collection = client.create_collection(
        f"deferred_{uuid.uuid4().hex[:8]}",
        embedding_function=None,
        configuration={"hnsw": {"space": "cosine"}},
    )
    collection.add(
        ids=["d1", "d2", "d3"],
        documents=TEXTS,
        metadatas=METADATAS,  # type: ignore[arg-type]
        embeddings=EMBEDDER(TEXTS),
    )
    return ChromaInstrumentor, lambda: collection.query(
        query_embeddings=EMBEDDER([SOLAR]), n_results=3, include=["documents", "metadatas"]
    )


def qdrant_query(tmp_path: Path) -> tuple[type[PatchingInstrumentor[Any]], Query]:
    from qdrant_client import QdrantClient, models

    from ragprov.instrumentation.qdrant import QdrantInstrumentor

    client = QdrantClient(":memory:")
    client.create_collection(
        "deferred",
        vectors_config=models.VectorParams(size=32, distance=models.Distance.EUCLID),
    )
    payloads = [
        {"text": TEXTS[0], **METADATAS[0]},
        {"page_content": TEXTS[1], "metadata": METADATAS[1]},  # LangChain's shape
        {"_node_content": json.dumps({"text": TEXTS[2]}), **METADATAS[2]},  # LlamaIndex's
    ]
    client.upsert(
        "deferred",
        points=[
            models.PointStruct(id=index + 1, vector=vector, payload=payload)
            for index, (vector, payload) in enumerate(zip(EMBEDDER(TEXTS), payloads, strict=True))
        ],
    )
    query = EMBEDDER([SOLAR])[0]
    return QdrantInstrumentor, lambda: client.query_points(
        "deferred", query=query, limit=3, with_vectors=True
    )


def lancedb_query(tmp_path: Path) -> tuple[type[PatchingInstrumentor[Any]], Query]:
    import lancedb

    from ragprov.instrumentation.lancedb import LanceDBInstrumentor

    table = lancedb.connect(tmp_path / "lance").create_table(
        "deferred",
        data=[
            {"id": f"d{index}", "text": text, "vector": vector, **METADATAS[0]}
            for index, (text, vector) in enumerate(zip(TEXTS, EMBEDDER(TEXTS), strict=True))
        ],
    )
    query = EMBEDDER([SOLAR])[0]
    return (
        LanceDBInstrumentor,
        lambda: table.search(query).distance_type("cosine").limit(3).to_list(),
    )


STORES = {"chromadb": chromadb_query, "qdrant": qdrant_query, "lancedb": lancedb_query}


# ----------------------------------------------------------------------------- pipelines


@dataclass
class Run:
    inline: ReadableSpan  # no provenance processor: everything computed inline
    ended: ReadableSpan  # deferred, as the application thread ended it
    exported: ReadableSpan  # deferred, as ragprov's processor exported it
    scope: tuple[lineage.ScopeEntry, ...]  # the deferred run's lineage scope after the query


def run_both(instrumentor_class: type[PatchingInstrumentor[Any]], query: Query) -> Run:
    """The same query once without and once with a provenance processor."""
    inline_exporter = InMemorySpanExporter()
    inline_provider = TracerProvider()
    inline_provider.add_span_processor(SimpleSpanProcessor(inline_exporter))
    ended_exporter, exported_exporter = InMemorySpanExporter(), InMemorySpanExporter()
    deferred_provider = TracerProvider()
    deferred_provider.add_span_processor(SimpleSpanProcessor(ended_exporter))
    deferred_provider.add_span_processor(
        ProvenanceSpanProcessor(SimpleSpanProcessor(exported_exporter))
    )
    scope: tuple[lineage.ScopeEntry, ...] = ()
    for provider in (inline_provider, deferred_provider):
        instrumentor = instrumentor_class()
        instrumentor.instrument(tracer_provider=provider)
        try:
            with lineage.new_scope():
                query()
                scope = lineage.scope_snapshot()
        finally:
            instrumentor.uninstrument()
    deferred_provider.force_flush()
    deferred_provider.shutdown()
    (inline,) = inline_exporter.get_finished_spans()
    (ended,) = ended_exporter.get_finished_spans()
    (exported,) = exported_exporter.get_finished_spans()
    return Run(inline, ended, exported, scope)


@pytest.fixture(params=sorted(STORES))
def store_run(request: pytest.FixtureRequest, tmp_path: Path) -> Run:
    instrumentor_class, query = STORES[request.param](tmp_path)
    return run_both(instrumentor_class, query)


# ----------------------------------------------------------------------------- tests


def test_application_thread_ends_the_span_with_request_attributes_only(store_run: Run) -> None:
    assert set(attributes(store_run.ended)) == REQUEST_KEYS


def test_exported_provenance_equals_the_inline_computation(store_run: Run) -> None:
    inline, exported = attributes(store_run.inline), attributes(store_run.exported)
    assert inline["rag.chunk_ids"]  # the stores returned chunks
    del inline["rag.retrieval_set_id"]  # a new UUIDv7 per retrieval
    assert {key: exported[key] for key in inline} == inline


def test_exported_set_id_is_the_one_the_lineage_scope_recorded(store_run: Run) -> None:
    (entry,) = store_run.scope  # what links a later step in the same context to this set
    set_id = store_run.exported.attributes["rag.retrieval_set_id"]  # type: ignore[index]
    assert uuid.UUID(str(set_id)).version == 7
    assert (entry.kind, entry.record_id) == (lineage.RETRIEVAL, set_id)


def test_exported_chunk_set_hash_matches_the_exported_ids(store_run: Run) -> None:
    exported = attributes(store_run.exported)
    assert exported["rag.chunk_set_hash"] == ids.chunk_set_hash(exported["rag.chunk_ids"])


def test_worker_signals_use_the_deferred_chunk_texts(store_run: Run) -> None:
    exported = attributes(store_run.exported)
    assert exported["rag.redundancy_ratio"] == pytest.approx(0.0)  # three distinct texts
    assert exported["rag.similarity_method"] in ("embedding", "lexical")

"""End to end, in one process: a RAG app retrieves from chromadb, builds a prompt from the
chunks and asks openai (the local server) — with no ragprov call in the application code. The
instrumentors and the provenance processor, set up by the test, make the answer span say which
retrieval fed it, how much of it the answer used, and the diagnosis."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import chromadb
import openai
import pytest
from chromadb.config import Settings
from llm_support import LLMServer, Script
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from ragprov.demo import scenarios
from ragprov.demo.embedding import HashingEmbedder
from ragprov.instrumentation.chromadb import ChromaInstrumentor
from ragprov.instrumentation.openai import OpenAIInstrumentor
from ragprov.processor import ProvenanceSpanProcessor

EMBEDDER = HashingEmbedder(64)
QUESTION = "What do we know about Acme Robotics?"
MODEL = "gpt-test"


@dataclass
class Telemetry:
    provider: TracerProvider
    processor: ProvenanceSpanProcessor
    exporter: InMemorySpanExporter

    def spans(self) -> list[ReadableSpan]:
        assert self.processor.force_flush(10_000)
        return list(self.exporter.get_finished_spans())

    def span(self, name: str) -> ReadableSpan:
        matching = [span for span in self.spans() if span.name == name]
        assert len(matching) == 1, [span.name for span in self.spans()]
        return matching[0]


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    exporter = InMemorySpanExporter()
    processor = ProvenanceSpanProcessor(SimpleSpanProcessor(exporter))
    provider = TracerProvider()
    provider.add_span_processor(processor)
    chroma, llm = ChromaInstrumentor(), OpenAIInstrumentor()
    chroma.instrument(tracer_provider=provider)
    llm.instrument(tracer_provider=provider)
    yield Telemetry(provider, processor, exporter)
    llm.uninstrument()
    chroma.uninstrument()
    provider.shutdown()


@pytest.fixture(scope="module")
def chroma() -> Any:
    return chromadb.EphemeralClient(settings=Settings(anonymized_telemetry=False))


@pytest.fixture
def collection(chroma: Any) -> Any:
    created = chroma.create_collection(
        f"reports_{uuid.uuid4().hex[:12]}",
        embedding_function=None,
        metadata={"hnsw:space": "cosine"},
    )
    created.add(
        ids=[f"doc-{index}" for index in range(len(scenarios.DIVERSE))],
        documents=scenarios.DIVERSE,
        metadatas=[{"chunk_id": chunk_id} for chunk_id in scenarios.IDS],
        embeddings=EMBEDDER(scenarios.DIVERSE),
    )
    return created


# --------------------------------------------------------------------------- the application


def answer_question(collection: Any, client: openai.OpenAI, question: str, stream: bool) -> str:
    """A plain RAG app: retrieve, build the prompt, generate. Nothing of ragprov in it."""
    results = collection.query(query_embeddings=EMBEDDER([question]), n_results=5)
    context = "\n\n".join(results["documents"][0])
    messages = [
        {"role": "system", "content": "Answer from the context only."},
        {"role": "user", "content": f"Context:\n{context}\n\nQuestion: {question}"},
    ]
    if not stream:
        completion = client.chat.completions.create(model=MODEL, messages=messages)
        return str(completion.choices[0].message.content)
    chunks = client.chat.completions.create(model=MODEL, messages=messages, stream=True)
    return "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)


# --------------------------------------------------------------------------- the checks


@pytest.mark.parametrize(
    ("answer", "diagnosis", "ratio"),
    [(scenarios.ANSWER_USES_FOUR, "healthy", 0.8), (scenarios.ANSWER_USES_TWO, "navigation", 0.4)],
    ids=["uses_four_chunks", "uses_two_chunks"],
)
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_the_answer_span_says_which_retrieval_fed_it_and_how_much_was_used(
    stream: bool,
    answer: str,
    diagnosis: str,
    ratio: float,
    llm_server: LLMServer,
    telemetry: Telemetry,
    collection: Any,
) -> None:
    llm_server.script = Script(answer=answer)
    client = openai.OpenAI(base_url=llm_server.openai_url, api_key="test", max_retries=0)
    tracer = trace.get_tracer("app", tracer_provider=telemetry.provider)

    with tracer.start_as_current_span("request"):
        assert answer_question(collection, client, QUESTION, stream) == answer

    retrieval = telemetry.span(f"retrieval {collection.name}").attributes or {}
    chat = dict(telemetry.span(f"chat {MODEL}").attributes or {})
    assert chat["rag.ancestor_retrieval_set_ids"] == (retrieval["rag.retrieval_set_id"],)
    assert chat["rag.ancestor_chunk_set_hashes"] == (retrieval["rag.chunk_set_hash"],)
    assert chat["rag.lineage_method"] == "content_match"
    assert chat["rag.utilisation_ratio"] == pytest.approx(ratio)
    assert chat["rag.diagnosis"] == diagnosis
    root = telemetry.span("request").attributes or {}
    assert root["rag.diagnosis"] == diagnosis


def test_a_plain_script_without_a_request_span_links_too(
    llm_server: LLMServer, telemetry: Telemetry, collection: Any
) -> None:
    llm_server.script = Script(answer=scenarios.ANSWER_USES_FOUR)
    client = openai.OpenAI(base_url=llm_server.openai_url, api_key="test", max_retries=0)

    answer_question(collection, client, QUESTION, stream=True)

    retrieval = telemetry.span(f"retrieval {collection.name}").attributes or {}
    chat = dict(telemetry.span(f"chat {MODEL}").attributes or {})
    assert chat["rag.ancestor_retrieval_set_ids"] == (retrieval["rag.retrieval_set_id"],)
    assert chat["rag.diagnosis"] == "healthy"


def test_an_exported_answer_span_carries_no_content_by_default(
    llm_server: LLMServer, telemetry: Telemetry, collection: Any
) -> None:
    llm_server.script = Script(answer=scenarios.ANSWER_USES_FOUR)
    client = openai.OpenAI(base_url=llm_server.openai_url, api_key="test", max_retries=0)

    answer_question(collection, client, QUESTION, stream=False)

    exported = [
        str(value) for span in telemetry.spans() for value in (span.attributes or {}).values()
    ]
    assert not any(scenarios.DIVERSE[0][:40] in value for value in exported)
    assert not any(scenarios.ANSWER_USES_FOUR[:40] in value for value in exported)

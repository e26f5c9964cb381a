"""The LangChain instrumentor's purpose: a real LCEL RAG chain links its answer to its retrieval.

A Chroma retriever (langchain_chroma over an in-memory chromadb) and ChatOpenAI against the
local responder, through the provenance processor, with no ragprov or OpenTelemetry call in the
chain; and the retriever span that chromadb's call enriches rather than opening a second one.
Apart from tests/instrumentation/test_langchain.py and test_langchain_retriever.py so that the
oldest-version matrix can run those files with langchain-core alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import chromadb
import pytest
from chromadb.config import Settings
from langchain_chroma import Chroma
from langchain_core.documents import Document
from langchain_core.runnables import Runnable
from langchain_core.vectorstores import InMemoryVectorStore
from langchain_openai import ChatOpenAI
from langchain_support import HashingEmbeddings, retrieval_chain
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from ragprov import ids
from ragprov.demo.responder import running_responder
from ragprov.instrumentation.chromadb import ChromaInstrumentor
from ragprov.instrumentation.langchain import LangChainInstrumentor
from ragprov.instrumentation.openai import OpenAIInstrumentor
from ragprov.processor import ProvenanceSpanProcessor

DOCUMENTS = [
    Document(
        id="returns#1",
        page_content=(
            "Opened software, gift cards and personalised items cannot be returned. Damaged "
            "deliveries must be reported within 48 hours with a photograph of the packaging."
        ),
    ),
    Document(
        id="shipping#0",
        page_content=(
            "Standard shipping takes 3 to 5 business days within the European Union and costs "
            "4.90 euros; orders above 50 euros ship free of charge."
        ),
    ),
]
COLLECTION = "handbook"
WORKFLOW = "invoke_workflow RunnableSequence"
QUESTION = "Which items cannot be returned?"
ANSWER = "Opened software, gift cards and personalised items cannot be returned."


@dataclass
class RagChain:
    """The chain, and its spans as exported after the provenance processor."""

    chain: Runnable[str, str]
    processor: ProvenanceSpanProcessor
    exporter: InMemorySpanExporter

    def span(self, name: str) -> ReadableSpan:
        assert self.processor.force_flush(10_000)
        spans = self.exporter.get_finished_spans()
        matching = [span for span in spans if span.name == name]
        assert len(matching) == 1, [span.name for span in spans]
        return matching[0]

    def attributes(self, name: str) -> dict[str, Any]:
        return dict(self.span(name).attributes or {})


@pytest.fixture
def rag_chain() -> Iterator[RagChain]:
    """The retriever | prompt | ChatOpenAI chain, every instrumentor on a provenance pipeline."""
    exporter = InMemorySpanExporter()
    processor = ProvenanceSpanProcessor(SimpleSpanProcessor(exporter))
    provider = TracerProvider()
    provider.add_span_processor(processor)
    instrumentors = (ChromaInstrumentor(), OpenAIInstrumentor(), LangChainInstrumentor())
    for instrumentor in instrumentors:
        instrumentor.instrument(tracer_provider=provider)
    store = Chroma(
        collection_name=COLLECTION,
        embedding_function=HashingEmbeddings(),
        client=chromadb.EphemeralClient(settings=Settings(anonymized_telemetry=False)),
        collection_configuration={"hnsw": {"space": "cosine"}},
    )
    store.add_documents(DOCUMENTS)
    with running_responder({QUESTION: ANSWER}) as url:
        chain = rag_chain_over(store.as_retriever(search_kwargs={"k": 2}), url)
        yield RagChain(chain, processor, exporter)
    for instrumentor in reversed(instrumentors):
        instrumentor.uninstrument()
    store.delete_collection()
    provider.shutdown()


def rag_chain_over(retriever: Runnable[str, Any], url: str) -> Runnable[str, str]:
    """retriever | prompt | ChatOpenAI (against the local responder at ``url``)."""
    llm = ChatOpenAI(model="demo-model", base_url=url, api_key="test", max_retries=0)
    return retrieval_chain(retriever, llm)


def assert_answer_linked_to_its_retrieval(rag: RagChain) -> None:
    retrieval = rag.attributes(f"retrieval {COLLECTION}")
    chat = rag.attributes("chat demo-model")
    retrieval_set_id = retrieval["rag.retrieval_set_id"]
    assert chat["rag.ancestor_retrieval_set_ids"] == (retrieval_set_id,)
    assert chat["rag.lineage_method"] == "content_match"
    workflow = rag.span(WORKFLOW)
    assert workflow.parent is None
    assert workflow.attributes is not None
    assert workflow.attributes["rag.ancestor_retrieval_set_ids"] == (retrieval_set_id,)
    assert workflow.attributes["rag.diagnosis"] == chat["rag.diagnosis"]


def test_invoke_links_the_answer_to_the_retrieval_of_its_chain(rag_chain: RagChain) -> None:
    assert rag_chain.chain.invoke(QUESTION) == ANSWER

    assert_answer_linked_to_its_retrieval(rag_chain)


def test_astream_links_the_answer_to_the_retrieval_of_its_chain(
    rag_chain: RagChain, event_loop_runner: Callable[[Any], Any]
) -> None:
    async def read() -> str:
        return "".join([chunk async for chunk in rag_chain.chain.astream(QUESTION)])

    assert event_loop_runner(read()) == ANSWER

    assert_answer_linked_to_its_retrieval(rag_chain)


# ----------------------------------------------------------------------------- retriever spans


def test_chain_over_a_store_ragprov_does_not_instrument_links_its_answer_too() -> None:
    """LangChain's InMemoryVectorStore: only the retriever span carries the retrieval."""
    exporter = InMemorySpanExporter()
    processor = ProvenanceSpanProcessor(SimpleSpanProcessor(exporter))
    provider = TracerProvider()
    provider.add_span_processor(processor)
    instrumentors = (OpenAIInstrumentor(), LangChainInstrumentor())
    for instrumentor in instrumentors:
        instrumentor.instrument(tracer_provider=provider)
    store = InMemoryVectorStore(HashingEmbeddings())
    store.add_documents(DOCUMENTS)
    try:
        with running_responder({QUESTION: ANSWER}) as url:
            chain = rag_chain_over(store.as_retriever(search_kwargs={"k": 2}), url)
            assert chain.invoke(QUESTION) == ANSWER
    finally:
        for instrumentor in reversed(instrumentors):
            instrumentor.uninstrument()
    rag = RagChain(chain, processor, exporter)

    retrieval = rag.attributes("retrieval VectorStoreRetriever")
    chunk_ids = {ids.content_hash(document.page_content) for document in DOCUMENTS}
    assert set(retrieval["rag.chunk_ids"]) == chunk_ids
    chat = rag.attributes("chat demo-model")
    assert chat["rag.ancestor_retrieval_set_ids"] == (retrieval["rag.retrieval_set_id"],)
    assert chat["rag.lineage_method"] == "content_match"
    assert chat["rag.diagnosis"] == rag.attributes(WORKFLOW)["rag.diagnosis"]
    provider.shutdown()


@pytest.fixture
def chroma_retriever(
    tracer_provider: TracerProvider, unique_name: Callable[[str], str]
) -> Iterator[Any]:
    """A Chroma retriever, chromadb and LangChain instrumented, on a plain SDK pipeline."""
    instrumentors = (ChromaInstrumentor(), LangChainInstrumentor())
    for instrumentor in instrumentors:
        instrumentor.instrument(tracer_provider=tracer_provider)
    store = Chroma(
        collection_name=unique_name(COLLECTION),
        embedding_function=HashingEmbeddings(),
        client=chromadb.EphemeralClient(settings=Settings(anonymized_telemetry=False)),
        collection_configuration={"hnsw": {"space": "cosine"}},
    )
    store.add_documents(DOCUMENTS)
    yield store.as_retriever(search_kwargs={"k": 2})
    store.delete_collection()
    for instrumentor in reversed(instrumentors):
        instrumentor.uninstrument()


def test_chroma_call_enriches_the_retriever_span_instead_of_opening_a_second_one(
    chroma_retriever: Any, exporter: InMemorySpanExporter
) -> None:
    exporter.clear()  # the ingestion span of add_documents
    documents = chroma_retriever.invoke(QUESTION)

    (span,) = exporter.get_finished_spans()
    collection = chroma_retriever.vectorstore._collection.name
    assert span.name == f"retrieval {collection}"  # renamed after the store's collection
    found = {
        key: list(value) if isinstance(value, tuple) else value
        for key, value in (span.attributes or {}).items()
    }
    chunk_ids = [ids.content_hash(document.page_content) for document in documents]
    assert found.pop("rag.chunk_ids") == chunk_ids
    assert found.pop("rag.chunk_set_hash") == ids.chunk_set_hash(chunk_ids)
    assert isinstance(found.pop("rag.retrieval_set_id"), str)
    scores = found.pop("rag.chunk_scores")  # chromadb's distances, as similarities
    assert len(scores) == 2
    assert scores[0] >= scores[1]
    assert found == {
        "gen_ai.operation.name": "retrieval",
        "gen_ai.data_source.id": collection,
        "db.system.name": "chromadb",
        "gen_ai.retrieval.top_k": 2,
        "rag.chunk_id_method": "content_hash",
        "rag.retrieval_method": "dense",
        "rag.query_hash": ids.query_hash(QUESTION),  # the retriever's input: chromadb got vectors
    }


def test_mmr_retriever_span_lists_what_the_retriever_kept_not_the_candidates(
    chroma_retriever: Any, exporter: InMemorySpanExporter
) -> None:
    retriever = chroma_retriever.vectorstore.as_retriever(
        search_type="mmr", search_kwargs={"k": 1, "fetch_k": 2}
    )
    exporter.clear()
    (kept,) = retriever.invoke(QUESTION)  # chromadb was asked for fetch_k = 2

    (span,) = exporter.get_finished_spans()
    assert span.attributes is not None
    assert list(span.attributes["rag.chunk_ids"]) == [ids.content_hash(kept.page_content)]
    assert len(span.attributes["rag.chunk_scores"]) == 1  # the store's score of that chunk
    assert span.attributes["rag.retrieval_method"] == "reranked"

"""LangChain retrievers: one GenAI retrieval span per call, built from what the retriever returned
unless an instrumented store call inside enriches it (that case, with a real Chroma store, is in
test_langchain_lineage.py).

Real langchain-core retrievers only, so that the oldest-version matrix runs this file with
langchain-core alone: ``InMemoryVectorStore`` (a store ragprov does not instrument) and small
``BaseRetriever`` subclasses for behaviours no bundled retriever has (errors, rerank scores,
nesting).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.vectorstores import InMemoryVectorStore
from langchain_support import HashingEmbeddings
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import SpanKind, StatusCode
from spans import attributes, only_span

from ragprov import ids
from ragprov.config import CAPTURE_CONTENT_ENV
from ragprov.instrumentation.langchain import LangChainInstrumentor
from ragprov.processor import ProvenanceSpanProcessor

REFUNDS = "Customers may return any unused product within 30 days for a full refund."
SHIPPING = "Standard shipping takes 3 to 5 business days and costs 4.90 euros."
SUPPORT = "The support desk answers chat and email from 8:00 to 20:00 on weekdays."
QUESTION = "How many days do customers have to return a product for a refund?"


class FixedRetriever(BaseRetriever):
    """Returns the same documents for every query (a reranker's output, a web search …)."""

    documents: list[Document]
    k: int = 2

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        return self.documents[: self.k]


class PolicyError(Exception):
    pass


class FailingRetriever(BaseRetriever):
    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        raise PolicyError("index offline")


class FirstOnly(BaseRetriever):
    """Wraps another retriever and keeps its first document (a compression retriever's shape)."""

    base: BaseRetriever

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        return self.base.invoke(query)[:1]


@contextmanager
def langchain_instrumented(provider: TracerProvider) -> Iterator[None]:
    instrumentor = LangChainInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        yield
    finally:
        instrumentor.uninstrument()


@pytest.fixture
def instrumented(tracer_provider: TracerProvider) -> Iterator[None]:
    with langchain_instrumented(tracer_provider):
        yield


@pytest.fixture
def memory_store() -> InMemoryVectorStore:
    store = InMemoryVectorStore(HashingEmbeddings())
    store.add_documents(
        [
            Document(id="refunds", page_content=REFUNDS, metadata={"source_document_id": "faq"}),
            Document(id="shipping", page_content=SHIPPING),
            Document(id="support", page_content=SUPPORT),
        ]
    )
    return store


def pop_envelope(found: dict[str, Any], chunk_ids: list[str]) -> str:
    """Pop the envelope attributes every set has; returns the set id."""
    assert found.pop("rag.chunk_ids") == chunk_ids
    assert found.pop("rag.chunk_set_hash") == ids.chunk_set_hash(chunk_ids)
    set_id = found.pop("rag.retrieval_set_id")
    assert isinstance(set_id, str)
    assert set_id
    return set_id


# ----------------------------------------------------------------------------- the span


@pytest.mark.usefixtures("instrumented")
def test_retriever_over_an_uninstrumented_store_gets_a_retrieval_span_of_its_documents(
    memory_store: InMemoryVectorStore, exporter: InMemorySpanExporter
) -> None:
    documents = memory_store.as_retriever(search_kwargs={"k": 2}).invoke(QUESTION)

    span = only_span(exporter)
    assert (span.name, span.kind) == ("retrieval VectorStoreRetriever", SpanKind.CLIENT)
    found = attributes(span)
    chunk_ids = [ids.content_hash(document.page_content) for document in documents]
    assert documents[0].page_content == REFUNDS
    pop_envelope(found, chunk_ids)
    assert found == {
        "gen_ai.operation.name": "retrieval",
        "gen_ai.retrieval.top_k": 2,
        "rag.chunk_id_method": "content_hash",
        "rag.retrieval_method": "dense",
        "rag.query_hash": ids.query_hash(QUESTION),
        "rag.source_document_ids": ["faq", ""],
    }


@pytest.mark.usefixtures("instrumented")
def test_stamped_chunk_id_wins_over_the_content_hash(exporter: InMemorySpanExporter) -> None:
    stamped = Document(page_content=REFUNDS, metadata={"chunk_id": "faq#3"})
    FixedRetriever(documents=[stamped], k=1).invoke(QUESTION)

    found = attributes(only_span(exporter))
    assert (found["rag.chunk_ids"], found["rag.chunk_id_method"]) == (["faq#3"], "metadata")


@pytest.mark.usefixtures("instrumented")
def test_document_id_is_the_chunk_id_of_a_document_without_text(
    exporter: InMemorySpanExporter,
) -> None:
    FixedRetriever(documents=[Document(id="row-7", page_content="")], k=1).invoke(QUESTION)

    found = attributes(only_span(exporter))
    assert (found["rag.chunk_ids"], found["rag.chunk_id_method"]) == (["row-7"], "store_id")


@pytest.mark.usefixtures("instrumented")
def test_relevance_scores_in_metadata_become_chunk_scores(exporter: InMemorySpanExporter) -> None:
    reranked = [
        Document(page_content=REFUNDS, metadata={"relevance_score": 0.92}),
        Document(page_content=SHIPPING, metadata={"relevance_score": 0.31}),
    ]
    FixedRetriever(documents=reranked).invoke(QUESTION)

    assert attributes(only_span(exporter))["rag.chunk_scores"] == [0.92, 0.31]


@pytest.mark.usefixtures("instrumented")
def test_other_score_keys_are_not_read(exporter: InMemorySpanExporter) -> None:
    documents = [Document(page_content=REFUNDS, metadata={"score": 0.2})]  # maybe a distance
    FixedRetriever(documents=documents, k=1).invoke(QUESTION)

    assert "rag.chunk_scores" not in attributes(only_span(exporter))


@pytest.mark.usefixtures("instrumented")
def test_generic_retriever_is_named_after_its_name_with_its_own_k(
    exporter: InMemorySpanExporter,
) -> None:
    documents = [Document(page_content=text) for text in (REFUNDS, SHIPPING, SUPPORT)]
    FixedRetriever(documents=documents, k=3, name="faq search").invoke(QUESTION)

    span = only_span(exporter)
    found = attributes(span)
    assert span.name == "retrieval faq search"
    assert (found["gen_ai.retrieval.top_k"], found["rag.retrieval_method"]) == (3, "unknown")


@pytest.mark.usefixtures("instrumented")
def test_mmr_search_is_a_reranked_retrieval(
    memory_store: InMemoryVectorStore, exporter: InMemorySpanExporter
) -> None:
    retriever = memory_store.as_retriever(search_type="mmr", search_kwargs={"k": 2, "fetch_k": 3})
    documents = retriever.invoke(QUESTION)

    found = attributes(only_span(exporter))
    assert found["rag.retrieval_method"] == "reranked"
    assert found["rag.chunk_ids"] == [ids.content_hash(d.page_content) for d in documents]


@pytest.mark.usefixtures("instrumented")
def test_empty_result_is_an_empty_set(exporter: InMemorySpanExporter) -> None:
    assert FixedRetriever(documents=[]).invoke(QUESTION) == []

    found = attributes(only_span(exporter))
    assert found["rag.chunk_ids"] == []
    assert found["rag.chunk_set_hash"] == ids.chunk_set_hash([])


@pytest.mark.usefixtures("instrumented")
def test_async_invoke_gets_the_same_span(
    memory_store: InMemoryVectorStore,
    exporter: InMemorySpanExporter,
    event_loop_runner: Callable[[Any], Any],
) -> None:
    retriever = memory_store.as_retriever(search_kwargs={"k": 2})
    documents = event_loop_runner(retriever.ainvoke(QUESTION))

    span = only_span(exporter)
    assert span.name == "retrieval VectorStoreRetriever"
    chunk_ids = [ids.content_hash(document.page_content) for document in documents]
    assert attributes(span)["rag.chunk_ids"] == chunk_ids


@pytest.mark.usefixtures("instrumented")
def test_retriever_inside_a_retriever_is_a_child_span_with_its_own_set(
    memory_store: InMemoryVectorStore, exporter: InMemorySpanExporter
) -> None:
    base = memory_store.as_retriever(search_kwargs={"k": 2})
    (kept,) = FirstOnly(base=base).invoke(QUESTION)

    inner, outer = exporter.get_finished_spans()
    assert (inner.name, outer.name) == ("retrieval VectorStoreRetriever", "retrieval FirstOnly")
    assert inner.parent is not None
    assert outer.context is not None
    assert inner.parent.span_id == outer.context.span_id
    assert len(attributes(inner)["rag.chunk_ids"]) == 2
    assert attributes(outer)["rag.chunk_ids"] == [ids.content_hash(kept.page_content)]


# ----------------------------------------------------------------------------- pipeline


def test_deferred_through_the_processor_exports_the_same_envelope(
    memory_store: InMemoryVectorStore,
) -> None:
    exporter = InMemorySpanExporter()
    processor = ProvenanceSpanProcessor(SimpleSpanProcessor(exporter))
    provider = TracerProvider()
    provider.add_span_processor(processor)
    with langchain_instrumented(provider):
        documents = memory_store.as_retriever(search_kwargs={"k": 2}).invoke(QUESTION)
    assert processor.force_flush(10_000)
    provider.shutdown()

    found = attributes(only_span(exporter))
    chunk_ids = [ids.content_hash(document.page_content) for document in documents]
    pop_envelope(found, chunk_ids)
    assert found["rag.query_hash"] == ids.query_hash(QUESTION)
    assert found["rag.retrieval_method"] == "dense"
    assert "rag.coverage_diversity" in found  # the worker's set signals


@pytest.mark.usefixtures("instrumented")
def test_content_capture_exports_the_query_and_documents(
    memory_store: InMemoryVectorStore,
    exporter: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(CAPTURE_CONTENT_ENV, "true")
    memory_store.as_retriever(search_kwargs={"k": 1}).invoke(QUESTION)

    found = attributes(only_span(exporter))
    assert found["gen_ai.retrieval.query.text"] == QUESTION
    (document,) = json.loads(found["gen_ai.retrieval.documents"])
    assert document == {"id": ids.content_hash(REFUNDS), "content": REFUNDS}


@pytest.mark.usefixtures("instrumented")
def test_no_text_is_exported_without_content_capture(
    memory_store: InMemoryVectorStore, exporter: InMemorySpanExporter
) -> None:
    memory_store.as_retriever(search_kwargs={"k": 3}).invoke(QUESTION)

    exported = json.dumps(attributes(only_span(exporter)))
    assert all(text not in exported for text in (QUESTION, REFUNDS, SHIPPING, SUPPORT))


# ----------------------------------------------------------------------------- safety


@pytest.mark.usefixtures("instrumented")
def test_retriever_error_is_recorded_and_reraised_unchanged(
    exporter: InMemorySpanExporter,
) -> None:
    with pytest.raises(PolicyError, match="index offline"):
        FailingRetriever().invoke(QUESTION)

    span = only_span(exporter)
    assert span.status.status_code is StatusCode.ERROR
    assert attributes(span)["error.type"] == "PolicyError"
    assert [event.name for event in span.events] == ["exception"]
    assert "rag.chunk_ids" not in attributes(span)


@pytest.mark.usefixtures("instrumented")
def test_result_that_is_not_a_list_of_documents_is_returned_unchanged(
    exporter: InMemorySpanExporter,
) -> None:
    class OddRetriever(BaseRetriever):
        def _get_relevant_documents(self, query: str, *, run_manager: Any) -> Any:
            return iter([Document(page_content=REFUNDS)])

    result = OddRetriever().invoke(QUESTION)

    assert [document.page_content for document in result] == [REFUNDS]  # not consumed
    assert attributes(only_span(exporter))["rag.chunk_ids"] == []


@pytest.mark.usefixtures("instrumented")
def test_suppressed_instrumentation_opens_no_span(
    memory_store: InMemoryVectorStore, exporter: InMemorySpanExporter, suppressed: Any
) -> None:
    with suppressed():
        memory_store.as_retriever().invoke(QUESTION)

    assert exporter.get_finished_spans() == ()


def test_uninstrument_restores_the_retriever_methods(
    memory_store: InMemoryVectorStore,
    exporter: InMemorySpanExporter,
    tracer_provider: TracerProvider,
) -> None:
    originals = (BaseRetriever.__dict__["invoke"], BaseRetriever.__dict__["ainvoke"])
    instrumentor = LangChainInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    instrumentor.uninstrument()

    assert (BaseRetriever.__dict__["invoke"], BaseRetriever.__dict__["ainvoke"]) == originals
    memory_store.as_retriever().invoke(QUESTION)
    assert exporter.get_finished_spans() == ()


def test_sampled_out_call_returns_the_documents_and_exports_nothing(
    memory_store: InMemoryVectorStore,
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ALWAYS_OFF)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with langchain_instrumented(provider):
        documents = memory_store.as_retriever(search_kwargs={"k": 1}).invoke(QUESTION)

    assert [document.page_content for document in documents] == [REFUNDS]
    assert exporter.get_finished_spans() == ()

"""One retrieval call traced by ragprov and by another instrumentation is one retrieval event.

OpenInference traces a LangChain or LlamaIndex retriever call with its own ``RETRIEVER`` span,
which starts and ends inside the retriever method ragprov wraps. The provenance processor gives
that span the retrieval set id of ragprov's span (``lineage.share_open_retrieval``), so the
answer lists the retrieval once and its signals come from ragprov's record of the set.

Here the other instrumentation is a retriever that opens a span with OpenInference's attributes
around its search (the real OpenInference package runs in
tests/test_framework_coexistence_real.py). The store is LangChain's ``InMemoryVectorStore``, or a
real chromadb collection for a span that a store call enriches.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import chromadb
import pytest
from chromadb.config import Settings as ChromaSettings
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.vectorstores import InMemoryVectorStore
from langchain_support import HashingEmbeddings
from opentelemetry.trace import SpanKind, Tracer
from spans import Pipeline, chat, make_pipeline, prompt

from ragprov import ids
from ragprov.instrumentation._base import retrieval_span_scope
from ragprov.instrumentation.chromadb import ChromaInstrumentor
from ragprov.instrumentation.langchain import LangChainInstrumentor

REFUNDS = "Customers may return any unused product within 30 days for a full refund."
SHIPPING = "Standard shipping takes 3 to 5 business days and costs 4.90 euros."
SUPPORT = "The support desk answers chat and email from 8:00 to 20:00 on weekdays."
QUESTION = "How many days do customers have to return a product for a refund?"
ANSWER = "Customers may return any unused product within 30 days."
OTHER_SCOPE = "openinference.instrumentation.langchain"
FOREIGN = "VectorStoreRetriever"  # the name OpenInference gives the retriever's span


def foreign_retrieval(tracer: Tracer, documents: list[Document], *, content: bool = True) -> None:
    """A retrieval span with OpenInference's attributes (its content switch: ``content``)."""
    attributes: dict[str, Any] = {"openinference.span.kind": "RETRIEVER"}
    for index, document in enumerate(documents):
        prefix = f"retrieval.documents.{index}.document"
        attributes[f"{prefix}.id"] = str(document.id)
        if content:
            attributes[f"{prefix}.content"] = document.page_content
            attributes[f"{prefix}.metadata"] = json.dumps(document.metadata)
    with tracer.start_as_current_span(FOREIGN, attributes=attributes):
        pass


class TracedByAnother(BaseRetriever):
    """Searches a store and traces the search with another instrumentation's span(s), inside
    the retriever call (where OpenInference's callbacks run)."""

    store: InMemoryVectorStore
    other: Any  # the other instrumentation's tracer
    spans: int = 1
    content: bool = True

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        documents = self.store.similarity_search(query, k=2)
        for _ in range(self.spans):
            foreign_retrieval(self.other, documents, content=self.content)
        return documents


@pytest.fixture
def pipeline() -> Iterator[Pipeline]:
    pipeline = make_pipeline()
    instrumentor = LangChainInstrumentor()
    instrumentor.instrument(tracer_provider=pipeline.provider)
    yield pipeline
    instrumentor.uninstrument()
    pipeline.provider.shutdown()


@pytest.fixture
def store() -> InMemoryVectorStore:
    store = InMemoryVectorStore(HashingEmbeddings())
    store.add_documents(
        [
            Document(id="refunds", page_content=REFUNDS),
            Document(id="shipping", page_content=SHIPPING),
            Document(id="support", page_content=SUPPORT),
        ]
    )
    return store


def traced_by_another(pipeline: Pipeline, store: InMemoryVectorStore, **kwargs: Any) -> Any:
    other = pipeline.provider.get_tracer(OTHER_SCOPE)
    return TracedByAnother(store=store, other=other, **kwargs)


def retrieval_spans(pipeline: Pipeline) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """ragprov's retriever span, and the other instrumentation's spans, by attributes."""
    spans = pipeline.spans()
    (ours,) = [dict(s.attributes or {}) for s in spans if s.name == "retrieval TracedByAnother"]
    theirs = [dict(s.attributes or {}) for s in spans if s.name == FOREIGN]
    return ours, theirs


def test_span_of_another_instrumentation_inside_the_call_shares_the_set_id(
    pipeline: Pipeline, store: InMemoryVectorStore
) -> None:
    documents = traced_by_another(pipeline, store).invoke(QUESTION)

    ours, (theirs,) = retrieval_spans(pipeline)
    chunk_ids = [ids.content_hash(document.page_content) for document in documents]
    assert theirs["rag.retrieval_set_id"] == ours["rag.retrieval_set_id"]
    assert list(theirs["rag.chunk_ids"]) == list(ours["rag.chunk_ids"]) == chunk_ids
    assert theirs["rag.chunk_set_hash"] == ours["rag.chunk_set_hash"]


def test_answer_lists_the_retrieval_once(pipeline: Pipeline, store: InMemoryVectorStore) -> None:
    with pipeline.tracer.start_as_current_span("rag"):
        documents = traced_by_another(pipeline, store).invoke(QUESTION)
        chat(pipeline.tracer, prompt([d.page_content for d in documents], QUESTION), ANSWER)

    ours, _ = retrieval_spans(pipeline)
    answer = pipeline.attributes("chat test-model")
    assert answer["rag.ancestor_retrieval_set_ids"] == (ours["rag.retrieval_set_id"],)
    assert answer["rag.ancestor_chunk_set_hashes"] == (ours["rag.chunk_set_hash"],)
    assert answer["rag.lineage_method"] == "content_match"


def test_without_content_the_other_span_shares_the_id_and_ragprovs_set_is_the_record(
    pipeline: Pipeline, store: InMemoryVectorStore
) -> None:
    """The other span's documents are ids only (OpenInference's
    OPENINFERENCE_HIDE_RETRIEVAL_DOCUMENTS): its chunk ids are store ids, so its hash differs,
    but the answer's signals come from ragprov's record, which has the texts."""
    with pipeline.tracer.start_as_current_span("rag"):
        documents = traced_by_another(pipeline, store, content=False).invoke(QUESTION)
        chat(pipeline.tracer, prompt([d.page_content for d in documents], QUESTION), ANSWER)

    ours, (theirs,) = retrieval_spans(pipeline)
    assert theirs["rag.retrieval_set_id"] == ours["rag.retrieval_set_id"]
    store_ids = [str(document.id) for document in documents]
    assert list(theirs["rag.chunk_ids"]) == store_ids
    assert theirs["rag.chunk_set_hash"] == ids.chunk_set_hash(store_ids)
    answer = pipeline.attributes("chat test-model")
    assert answer["rag.ancestor_retrieval_set_ids"] == (ours["rag.retrieval_set_id"],)
    assert answer["rag.ancestor_chunk_set_hashes"] == (ours["rag.chunk_set_hash"],)
    assert answer["rag.utilisation_ratio"] > 0  # measured on ragprov's texts


def test_every_span_of_another_instrumentation_inside_the_call_shares_the_id(
    pipeline: Pipeline, store: InMemoryVectorStore
) -> None:
    """OpenInference traces a LlamaIndex retriever call with two nested spans (``retrieve``
    around ``_retrieve``): both are the call's retrieval."""
    with pipeline.tracer.start_as_current_span("rag"):
        documents = traced_by_another(pipeline, store, spans=2).invoke(QUESTION)
        chat(pipeline.tracer, prompt([d.page_content for d in documents], QUESTION), ANSWER)

    ours, (first, second) = retrieval_spans(pipeline)
    assert first["rag.retrieval_set_id"] == second["rag.retrieval_set_id"]
    assert first["rag.retrieval_set_id"] == ours["rag.retrieval_set_id"]
    answer = pipeline.attributes("chat test-model")
    assert answer["rag.ancestor_retrieval_set_ids"] == (ours["rag.retrieval_set_id"],)


def test_span_of_another_instrumentation_outside_any_retriever_call_has_its_own_id(
    pipeline: Pipeline, store: InMemoryVectorStore
) -> None:
    documents = store.as_retriever(search_kwargs={"k": 2}).invoke(QUESTION)
    foreign_retrieval(pipeline.provider.get_tracer(OTHER_SCOPE), documents)

    spans = {span.name: dict(span.attributes or {}) for span in pipeline.spans()}
    ours, theirs = spans["retrieval VectorStoreRetriever"], spans[FOREIGN]
    assert theirs["rag.retrieval_set_id"] != ours["rag.retrieval_set_id"]
    assert theirs["rag.chunk_set_hash"] == ours["rag.chunk_set_hash"]  # same chunks, two events


def test_nested_ragprov_retriever_spans_keep_their_own_ids(
    pipeline: Pipeline, store: InMemoryVectorStore
) -> None:
    """ragprov's own retrieval spans never take an open span's id, even without an envelope."""

    class Outer(BaseRetriever):
        inner: BaseRetriever

        def _get_relevant_documents(
            self, query: str, *, run_manager: CallbackManagerForRetrieverRun
        ) -> list[Document]:
            return self.inner.invoke(query)[:1]

    Outer(inner=store.as_retriever(search_kwargs={"k": 2})).invoke(QUESTION)

    spans = {span.name: dict(span.attributes or {}) for span in pipeline.spans()}
    outer, inner = spans["retrieval Outer"], spans["retrieval VectorStoreRetriever"]
    assert outer["rag.retrieval_set_id"] != inner["rag.retrieval_set_id"]


def test_span_enriched_by_a_store_call_shares_its_set_id() -> None:
    """A framework span that a chromadb query enriched: the other instrumentation's span of the
    same call takes the id of the set the store call left on it."""
    pipeline = make_pipeline()
    client = chromadb.EphemeralClient(settings=ChromaSettings(anonymized_telemetry=False))
    collection = client.create_collection(f"shared_{uuid.uuid4().hex[:8]}")
    collection.add(
        ids=["refunds", "shipping"],
        documents=[REFUNDS, SHIPPING],
        embeddings=HashingEmbeddings().embed_documents([REFUNDS, SHIPPING]),
    )
    instrumentor = ChromaInstrumentor()
    instrumentor.instrument(tracer_provider=pipeline.provider)
    try:
        framework = pipeline.tracer.start_span("retrieval framework", kind=SpanKind.CLIENT)
        with retrieval_span_scope(framework):
            collection.query(
                query_embeddings=[HashingEmbeddings().embed_query(QUESTION)], n_results=2
            )
            documents = [Document(id="refunds", page_content=REFUNDS)]
            foreign_retrieval(pipeline.provider.get_tracer(OTHER_SCOPE), documents)
        framework.end()
    finally:
        instrumentor.uninstrument()
        client.delete_collection(collection.name)

    spans = {span.name: dict(span.attributes or {}) for span in pipeline.spans()}
    assert set(spans) == {"retrieval framework", FOREIGN}  # the store call made no span
    ours, theirs = spans["retrieval framework"], spans[FOREIGN]
    assert theirs["rag.retrieval_set_id"] == ours["rag.retrieval_set_id"]
    assert ours["gen_ai.data_source.id"] == collection.name
    pipeline.provider.shutdown()

"""LlamaIndex retrievers: one GenAI retrieval span per ``retrieve`` / ``aretrieve`` call, built
from the returned nodes (an instrumented store underneath, chromadb, is covered by the example
tests in tests/test_examples.py, in the LlamaIndex venv).

Real llama-index-core objects only, so that the oldest-version matrix runs this file with
llama-index-core alone: a ``VectorStoreIndex`` over the default in-memory ``SimpleVectorStore``
(a store ragprov does not instrument) with an offline hashing embedding, and small
``BaseRetriever`` subclasses for behaviours no bundled retriever has (errors, fixed scores,
nesting). The index is built from nodes, not documents: no sentence splitter, hence no
tokenizer or NLTK data to fetch.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import pytest

pytest.importorskip("llama_index.core")

from llama_index.core import VectorStoreIndex
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.schema import IndexNode, NodeWithScore, QueryBundle, TextNode
from llamaindex_support import HashingEmbedding
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import SpanKind, StatusCode
from spans import attributes, only_span

from ragprov import ids
from ragprov.config import CAPTURE_CONTENT_ENV
from ragprov.instrumentation.llamaindex import LlamaIndexInstrumentor
from ragprov.processor import ProvenanceSpanProcessor

REFUNDS = "Customers may return any unused product within 30 days for a full refund."
SHIPPING = "Standard shipping takes 3 to 5 business days and costs 4.90 euros."
SUPPORT = "The support desk answers chat and email from 8:00 to 20:00 on weekdays."
QUESTION = "How many days do customers have to return a product for a refund?"

CheckExact = Callable[[Mapping[str, Any], Mapping[str, Any]], dict[str, Any]]


class FixedRetriever(BaseRetriever):
    """Returns the same nodes for every query (a reranker's output, a web search …)."""

    def __init__(self, nodes: list[NodeWithScore]) -> None:
        super().__init__()
        self.nodes = nodes

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return list(self.nodes)


class PolicyError(Exception):
    pass


class FailingRetriever(BaseRetriever):
    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        raise PolicyError("index offline")


class FirstOnly(BaseRetriever):
    """Wraps another retriever and keeps its first node (a postprocessing retriever's shape)."""

    def __init__(self, base: BaseRetriever) -> None:
        super().__init__()
        self.base = base

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return self.base.retrieve(query_bundle)[:1]


@contextmanager
def llamaindex_instrumented(provider: TracerProvider) -> Iterator[None]:
    instrumentor = LlamaIndexInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        yield
    finally:
        instrumentor.uninstrument()


@pytest.fixture
def instrumented(tracer_provider: TracerProvider) -> Iterator[None]:
    with llamaindex_instrumented(tracer_provider):
        yield


@pytest.fixture
def index() -> VectorStoreIndex:
    """Three nodes in the default in-memory vector store."""
    nodes = [
        TextNode(id_="refunds", text=REFUNDS, metadata={"source_document_id": "faq"}),
        TextNode(id_="shipping", text=SHIPPING),
        TextNode(id_="support", text=SUPPORT),
    ]
    return VectorStoreIndex(nodes, embed_model=HashingEmbedding())


def scored(text: str, score: float | None = None, **metadata: Any) -> NodeWithScore:
    return NodeWithScore(node=TextNode(text=text, metadata=metadata), score=score)


def content_hashes(nodes: list[NodeWithScore]) -> list[str]:
    return [ids.content_hash(scored.node.get_content()) for scored in nodes]


def is_child_of(child: ReadableSpan, parent: ReadableSpan) -> bool:
    return (
        child.parent is not None
        and parent.context is not None
        and child.parent.span_id == parent.context.span_id
    )


def is_set_id(value: object) -> bool:
    return isinstance(value, str) and bool(value)


# ----------------------------------------------------------------------------- the span


@pytest.mark.usefixtures("instrumented")
def test_index_retriever_over_the_default_store_gets_a_retrieval_span_of_its_nodes(
    index: VectorStoreIndex, exporter: InMemorySpanExporter, check_exact: CheckExact
) -> None:
    nodes = index.as_retriever(similarity_top_k=2).retrieve(QUESTION)

    span = only_span(exporter)
    assert (span.name, span.kind) == ("retrieval VectorIndexRetriever", SpanKind.CLIENT)
    assert [node.node_id for node in nodes] == ["refunds", nodes[1].node_id]
    chunk_ids = content_hashes(nodes)
    check_exact(
        attributes(span),
        {
            "gen_ai.operation.name": "retrieval",
            "gen_ai.retrieval.top_k": 2,
            "rag.chunk_ids": chunk_ids,
            "rag.chunk_set_hash": ids.chunk_set_hash(chunk_ids),
            "rag.chunk_id_method": "content_hash",
            "rag.chunk_scores": [node.score for node in nodes],
            "rag.retrieval_method": "dense",
            "rag.retrieval_set_id": is_set_id,
            "rag.query_hash": ids.query_hash(QUESTION),
            "rag.source_document_ids": ["faq", ""],
        },
    )


@pytest.mark.usefixtures("instrumented")
def test_query_bundle_is_read_as_its_query_string(
    index: VectorStoreIndex, exporter: InMemorySpanExporter
) -> None:
    bundle = QueryBundle(query_str=QUESTION, custom_embedding_strs=["refund policy"])
    index.as_retriever(similarity_top_k=1).retrieve(bundle)

    assert attributes(only_span(exporter))["rag.query_hash"] == ids.query_hash(QUESTION)


@pytest.mark.usefixtures("instrumented")
def test_stamped_chunk_id_wins_over_the_content_hash(exporter: InMemorySpanExporter) -> None:
    FixedRetriever([scored(REFUNDS, chunk_id="faq#3")]).retrieve(QUESTION)

    found = attributes(only_span(exporter))
    assert (found["rag.chunk_ids"], found["rag.chunk_id_method"]) == (["faq#3"], "metadata")


@pytest.mark.usefixtures("instrumented")
def test_node_id_is_the_chunk_id_of_a_node_without_text(exporter: InMemorySpanExporter) -> None:
    FixedRetriever([NodeWithScore(node=TextNode(id_="row-7", text=""))]).retrieve(QUESTION)

    found = attributes(only_span(exporter))
    assert (found["rag.chunk_ids"], found["rag.chunk_id_method"]) == (["row-7"], "store_id")


@pytest.mark.usefixtures("instrumented")
def test_node_scores_become_chunk_scores(exporter: InMemorySpanExporter) -> None:
    FixedRetriever([scored(REFUNDS, 0.92), scored(SHIPPING, 0.31)]).retrieve(QUESTION)

    assert attributes(only_span(exporter))["rag.chunk_scores"] == [0.92, 0.31]


@pytest.mark.usefixtures("instrumented")
def test_no_chunk_scores_unless_every_node_has_a_score(exporter: InMemorySpanExporter) -> None:
    FixedRetriever([scored(REFUNDS, 0.92), scored(SHIPPING)]).retrieve(QUESTION)

    assert "rag.chunk_scores" not in attributes(only_span(exporter))


@pytest.mark.usefixtures("instrumented")
def test_custom_retriever_is_named_after_its_class_without_top_k(
    exporter: InMemorySpanExporter, check_exact: CheckExact
) -> None:
    FixedRetriever([scored(SUPPORT)]).retrieve(QUESTION)

    span = only_span(exporter)
    assert span.name == "retrieval FixedRetriever"
    chunk_ids = [ids.content_hash(SUPPORT)]
    check_exact(
        attributes(span),
        {
            "gen_ai.operation.name": "retrieval",
            "rag.chunk_ids": chunk_ids,
            "rag.chunk_set_hash": ids.chunk_set_hash(chunk_ids),
            "rag.chunk_id_method": "content_hash",
            "rag.retrieval_method": "unknown",
            "rag.retrieval_set_id": is_set_id,
            "rag.query_hash": ids.query_hash(QUESTION),
        },
    )


@pytest.mark.usefixtures("instrumented")
def test_mmr_query_mode_is_a_reranked_retrieval(
    index: VectorStoreIndex, exporter: InMemorySpanExporter
) -> None:
    retriever = index.as_retriever(similarity_top_k=2, vector_store_query_mode="mmr")
    nodes = retriever.retrieve(QUESTION)

    found = attributes(only_span(exporter))
    assert (found["rag.retrieval_method"], found["gen_ai.retrieval.top_k"]) == ("reranked", 2)
    assert found["rag.chunk_ids"] == content_hashes(nodes)


@pytest.mark.usefixtures("instrumented")
def test_empty_result_is_an_empty_set(exporter: InMemorySpanExporter) -> None:
    assert FixedRetriever([]).retrieve(QUESTION) == []

    found = attributes(only_span(exporter))
    assert found["rag.chunk_ids"] == []
    assert found["rag.chunk_set_hash"] == ids.chunk_set_hash([])


@pytest.mark.usefixtures("instrumented")
def test_async_retrieve_gets_the_same_span(
    index: VectorStoreIndex,
    exporter: InMemorySpanExporter,
    event_loop_runner: Callable[[Any], Any],
) -> None:
    nodes = event_loop_runner(index.as_retriever(similarity_top_k=2).aretrieve(QUESTION))

    span = only_span(exporter)
    assert span.name == "retrieval VectorIndexRetriever"
    found = attributes(span)
    assert found["rag.chunk_ids"] == content_hashes(nodes)
    assert found["rag.chunk_scores"] == [node.score for node in nodes]


@pytest.mark.usefixtures("instrumented")
def test_retriever_inside_a_retriever_is_a_child_span_with_its_own_set(
    index: VectorStoreIndex, exporter: InMemorySpanExporter
) -> None:
    (kept,) = FirstOnly(index.as_retriever(similarity_top_k=2)).retrieve(QUESTION)

    inner, outer = exporter.get_finished_spans()
    assert (inner.name, outer.name) == ("retrieval VectorIndexRetriever", "retrieval FirstOnly")
    assert is_child_of(inner, outer)
    assert len(attributes(inner)["rag.chunk_ids"]) == 2
    assert attributes(outer)["rag.chunk_ids"] == [ids.content_hash(kept.node.get_content())]


@pytest.mark.usefixtures("instrumented")
def test_recursive_retrieval_through_an_index_node_is_a_child_span(
    index: VectorStoreIndex, exporter: InMemorySpanExporter
) -> None:
    """LlamaIndex's own nesting: a returned IndexNode pointing at a retriever is replaced by
    what that retriever returns."""
    pointer = IndexNode(text="the FAQ index", index_id="faq", obj=index.as_retriever())
    nodes = FixedRetriever([NodeWithScore(node=pointer, score=1.0)]).retrieve(QUESTION)

    inner, outer = exporter.get_finished_spans()
    assert inner.name == "retrieval VectorIndexRetriever"
    assert outer.name == "retrieval FixedRetriever"
    assert is_child_of(inner, outer)
    assert attributes(inner)["rag.chunk_ids"] == attributes(outer)["rag.chunk_ids"]
    assert attributes(outer)["rag.chunk_ids"] == content_hashes(nodes)


# ----------------------------------------------------------------------------- pipeline


def test_deferred_through_the_processor_exports_the_same_envelope(
    index: VectorStoreIndex,
) -> None:
    exporter = InMemorySpanExporter()
    processor = ProvenanceSpanProcessor(SimpleSpanProcessor(exporter))
    provider = TracerProvider()
    provider.add_span_processor(processor)
    with llamaindex_instrumented(provider):
        nodes = index.as_retriever(similarity_top_k=2).retrieve(QUESTION)
    assert processor.force_flush(10_000)
    provider.shutdown()

    found = attributes(only_span(exporter))
    chunk_ids = content_hashes(nodes)
    assert found["rag.chunk_ids"] == chunk_ids
    assert found["rag.chunk_set_hash"] == ids.chunk_set_hash(chunk_ids)
    assert is_set_id(found["rag.retrieval_set_id"])
    assert found["rag.query_hash"] == ids.query_hash(QUESTION)
    assert found["rag.retrieval_method"] == "dense"
    assert "rag.coverage_diversity" in found  # the worker's set signals


@pytest.mark.usefixtures("instrumented")
def test_content_capture_exports_the_query_and_nodes(
    index: VectorStoreIndex, exporter: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CAPTURE_CONTENT_ENV, "true")
    (node,) = index.as_retriever(similarity_top_k=1).retrieve(QUESTION)

    found = attributes(only_span(exporter))
    assert found["gen_ai.retrieval.query.text"] == QUESTION
    (document,) = json.loads(found["gen_ai.retrieval.documents"])
    assert document == {
        "id": ids.content_hash(REFUNDS),
        "content": REFUNDS,
        "score": pytest.approx(node.score),
    }


@pytest.mark.usefixtures("instrumented")
def test_no_text_is_exported_without_content_capture(
    index: VectorStoreIndex, exporter: InMemorySpanExporter
) -> None:
    index.as_retriever(similarity_top_k=3).retrieve(QUESTION)

    exported = json.dumps(attributes(only_span(exporter)))
    assert all(text not in exported for text in (QUESTION, REFUNDS, SHIPPING, SUPPORT))


# ----------------------------------------------------------------------------- safety


@pytest.mark.usefixtures("instrumented")
def test_retriever_error_is_recorded_and_reraised_unchanged(
    exporter: InMemorySpanExporter,
) -> None:
    with pytest.raises(PolicyError, match="index offline"):
        FailingRetriever().retrieve(QUESTION)

    span = only_span(exporter)
    assert span.status.status_code is StatusCode.ERROR
    assert attributes(span)["error.type"] == "PolicyError"
    assert [event.name for event in span.events] == ["exception"]
    assert "rag.chunk_ids" not in attributes(span)


@pytest.mark.usefixtures("instrumented")
def test_node_whose_content_cannot_be_read_is_returned_unchanged_under_its_id(
    exporter: InMemorySpanExporter,
) -> None:
    class UnreadableNode(TextNode):
        def get_content(self, *args: Any, **kwargs: Any) -> str:
            raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "not text")

    node = NodeWithScore(node=UnreadableNode(id_="blob-1", text=REFUNDS), score=0.5)
    (returned,) = FixedRetriever([node]).retrieve(QUESTION)

    assert returned is node
    found = attributes(only_span(exporter))
    assert (found["rag.chunk_ids"], found["rag.chunk_id_method"]) == (["blob-1"], "store_id")


@pytest.mark.usefixtures("instrumented")
def test_suppressed_instrumentation_opens_no_span(
    index: VectorStoreIndex, exporter: InMemorySpanExporter, suppressed: Any
) -> None:
    with suppressed():
        index.as_retriever().retrieve(QUESTION)

    assert exporter.get_finished_spans() == ()


def test_uninstrument_restores_the_retriever_methods(
    index: VectorStoreIndex, exporter: InMemorySpanExporter, tracer_provider: TracerProvider
) -> None:
    originals = (BaseRetriever.__dict__["retrieve"], BaseRetriever.__dict__["aretrieve"])
    instrumentor = LlamaIndexInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    instrumentor.uninstrument()

    assert (BaseRetriever.__dict__["retrieve"], BaseRetriever.__dict__["aretrieve"]) == originals
    index.as_retriever().retrieve(QUESTION)
    assert exporter.get_finished_spans() == ()


def test_sampled_out_call_returns_the_nodes_and_exports_nothing(index: VectorStoreIndex) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ALWAYS_OFF)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with llamaindex_instrumented(provider):
        nodes = index.as_retriever(similarity_top_k=1).retrieve(QUESTION)

    assert [node.node_id for node in nodes] == ["refunds"]
    assert exporter.get_finished_spans() == ()

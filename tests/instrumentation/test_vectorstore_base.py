"""The shared base of the store instrumentors, on a minimal in-process "store"."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

from ragprov import ids
from ragprov.instrumentation._base import (
    Chunk,
    IngestRequest,
    RetrievalRequest,
    RetrievalSet,
    StoreTracer,
    VectorStoreInstrumentor,
    record_metadata,
    record_text,
    retrieval_span_scope,
)


class TinyStore:
    """Answers each query with the documents that contain it."""

    def __init__(self, documents: list[str]) -> None:
        self.documents = documents

    def search(self, queries: list[str], k: int = 2) -> list[list[str]]:
        return [[doc for doc in self.documents if query in doc][:k] for query in queries]

    def write(self, documents: list[str]) -> int:
        self.documents.extend(documents)
        return len(documents)


ORIGINAL_SEARCH = TinyStore.__dict__["search"]
extracted: list[int] = []


def describe(store: TinyStore, args: tuple[Any, ...], kwargs: dict[str, Any]) -> RetrievalRequest:
    return RetrievalRequest("tiny", kwargs.get("k", 2))


def extract(
    store: TinyStore, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any
) -> list[RetrievalSet]:
    extracted.append(len(result))
    queries = args[0] if args else kwargs["queries"]
    return [
        RetrievalSet([Chunk(text=text, score=1.0) for text in texts], query_text=query)
        for query, texts in zip(queries, result, strict=True)
    ]


def describe_write(
    store: TinyStore, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> IngestRequest:
    return IngestRequest("tiny", "write", [Chunk(text=text) for text in args[0]])


class TinyInstrumentor(VectorStoreInstrumentor):
    db_system = "tiny"

    def instrumentation_dependencies(self) -> Collection[str]:
        return ()

    def _patch(self, store: StoreTracer) -> None:
        self._wrap(TinyStore, "search", store.retrieval_wrapper(describe, extract))
        self._wrap(TinyStore, "write", store.ingest_wrapper(describe_write))
        assert not self._wrap(TinyStore, "search", store.retrieval_wrapper(describe, extract))
        assert not self._wrap(TinyStore, "missing", store.retrieval_wrapper(describe, extract))


@pytest.fixture
def tiny(tracer_provider: TracerProvider) -> Iterator[TinyStore]:
    instrumentor = TinyInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    extracted.clear()
    yield TinyStore(["solar power", "solar heat", "wind power"])
    instrumentor.uninstrument()
    assert TinyStore.__dict__["search"] is ORIGINAL_SEARCH


def test_inner_call_enriches_once_then_creates_child_spans(
    tiny: TinyStore, tracer_provider: TracerProvider, finished: Any
) -> None:
    tracer = tracer_provider.get_tracer("framework")
    with tracer.start_as_current_span("retrieval framework") as outer:
        with retrieval_span_scope(outer) as slot:
            tiny.search(["solar"])
            assert slot.enriched
            tiny.search(["wind"])  # the slot is taken: a span of its own
        with retrieval_span_scope(outer) as batch_slot:
            tiny.search(["solar", "power"])  # a batch never enriches
            assert not batch_slot.enriched

    *children, framework = finished()
    assert framework.name == "retrieval framework"
    assert list(framework.attributes["rag.chunk_ids"]) == [
        ids.content_hash("solar power"),
        ids.content_hash("solar heat"),
    ]
    assert framework.attributes["rag.query_hash"] == ids.query_hash("solar")
    assert [span.name for span in children] == ["retrieval tiny"] * 3
    assert {span.parent.span_id for span in children} == {framework.context.span_id}
    assert [span.attributes["rag.query_hash"] for span in children] == [
        ids.query_hash(query) for query in ("wind", "solar", "power")
    ]


def test_sampled_out_spans_skip_result_extraction() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ALWAYS_OFF)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = TinyInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    extracted.clear()
    try:
        assert TinyStore(["solar"]).search(["solar"]) == [["solar"]]
        assert TinyStore([]).write(["a", "b"]) == 2
    finally:
        instrumentor.uninstrument()
    assert extracted == []
    assert exporter.get_finished_spans() == ()


def test_interrupts_in_the_instrumentation_propagate(
    tiny: TinyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("ragprov.instrumentation._base._apply_retrieval_set", interrupted)
    with pytest.raises(KeyboardInterrupt):
        tiny.search(["solar"])


def test_base_exceptions_from_the_instrumentation_are_swallowed(
    tiny: TinyStore, monkeypatch: pytest.MonkeyPatch, finished: Any
) -> None:
    class Panic(BaseException):  # what a Rust panic in a pyo3 client looks like
        pass

    def panicking(*args: Any, **kwargs: Any) -> None:
        raise Panic

    monkeypatch.setattr("ragprov.instrumentation._base._apply_retrieval_set", panicking)
    assert tiny.search(["solar"]) == [["solar power", "solar heat"]]
    assert len(finished()) == 1


def test_ingest_span_caps_chunk_ids(
    tiny: TinyStore, finished: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("ragprov.instrumentation._base.MAX_INGEST_CHUNK_IDS", 2)
    tiny.write(["one", "two"])
    tiny.write(["one", "two", "three"])

    small, large = finished()
    assert list(small.attributes["rag.chunk_ids"]) == [
        ids.content_hash("one"),
        ids.content_hash("two"),
    ]
    assert "rag.chunk_ids" not in large.attributes
    assert large.attributes["db.operation.batch.size"] == 3


def test_record_helpers() -> None:
    langchain = {"page_content": "text", "metadata": {"chunk_id": "c", "topic": "x"}, "topic": "y"}
    assert record_text(langchain) == "text"
    assert record_metadata(langchain) == {
        "page_content": "text",
        "metadata": {"chunk_id": "c", "topic": "x"},
        "chunk_id": "c",
        "topic": "x",
    }
    assert record_metadata(None) is None
    assert record_text({"_node_content": '{"text": "node"}'}) == "node"
    assert record_text({"_node_content": "[1]"}) is None


# ----------------------------------------------------------------------------- fast paths

"""The shared base of the store instrumentors, on a minimal in-process "store"."""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

from ragprov import ids, lineage
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
from ragprov.processor import ProvenanceSpanProcessor


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


# ----------------------------------------------------------------------------- deferred provenance


class ProcessorPipeline:
    """A provider whose spans go to a processor that sees them as the application thread ended
    them (``ended``), then to ragprov's processor (``exported``)."""

    def __init__(self) -> None:
        self.ended, self.exported = InMemorySpanExporter(), InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.ended))
        self.processor = ProvenanceSpanProcessor(SimpleSpanProcessor(self.exported))
        self.provider.add_span_processor(self.processor)

    def spans(self) -> tuple[list[ReadableSpan], list[ReadableSpan]]:
        self.provider.force_flush()
        return list(self.ended.get_finished_spans()), list(self.exported.get_finished_spans())


@pytest.fixture
def pipeline() -> Iterator[ProcessorPipeline]:
    pipeline = ProcessorPipeline()
    instrumentor = TinyInstrumentor()
    instrumentor.instrument(tracer_provider=pipeline.provider)
    with lineage.new_scope():
        yield pipeline
    instrumentor.uninstrument()
    pipeline.provider.shutdown()


def test_with_a_processor_the_span_ends_without_chunk_provenance(
    pipeline: ProcessorPipeline,
) -> None:
    TinyStore(["solar power", "wind power"]).search(["solar"])

    (ended,), (exported,) = pipeline.spans()
    assert "rag.chunk_ids" not in ended.attributes
    assert list(exported.attributes["rag.chunk_ids"]) == [ids.content_hash("solar power")]
    assert exported.attributes["rag.query_hash"] == ids.query_hash("solar")


def test_deferred_retrieval_exports_the_step_current_on_the_application_thread(
    pipeline: ProcessorPipeline,
) -> None:
    with lineage.step("answer", tracer_provider=pipeline.provider) as step:
        TinyStore(["solar power"]).search(["solar"])

    (ended, _), (exported, _) = pipeline.spans()
    assert "rag.step_id" not in ended.attributes  # the worker builds it into the envelope
    assert exported.attributes["rag.step_id"] == step.step_id


def test_deferred_batch_gives_each_query_its_own_envelope(pipeline: ProcessorPipeline) -> None:
    TinyStore(["solar power", "wind power"]).search(["solar", "wind"])

    ended, exported = pipeline.spans()  # the sibling span of the second query ends first
    assert all("rag.chunk_set_hash" not in span.attributes for span in ended)
    by_query = {
        span.attributes["rag.query_hash"]: list(span.attributes["rag.chunk_ids"])
        for span in exported
    }
    assert by_query == {
        ids.query_hash("solar"): [ids.content_hash("solar power")],
        ids.query_hash("wind"): [ids.content_hash("wind power")],
    }
    assert all("rag.retrieval_set_id" not in span.attributes for span in ended)
    set_ids = {span.attributes["rag.retrieval_set_id"] for span in exported}
    assert len(set_ids) == 2


def test_deferred_enrichment_of_a_framework_retrieval_span(pipeline: ProcessorPipeline) -> None:
    tracer = pipeline.provider.get_tracer("framework")
    with tracer.start_as_current_span("retrieval framework") as outer:
        with retrieval_span_scope(outer) as slot:
            TinyStore(["solar power"]).search(["solar"])
        assert slot.enriched

    (ended,), (exported,) = pipeline.spans()
    assert ended.attributes["db.system.name"] == "tiny"
    assert "rag.chunk_ids" not in ended.attributes
    assert list(exported.attributes["rag.chunk_ids"]) == [ids.content_hash("solar power")]


def test_content_capture_keeps_provenance_inline(
    pipeline: ProcessorPipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    TinyStore(["solar power"]).search(["solar"])

    (ended,), _ = pipeline.spans()
    chunk_id = ids.content_hash("solar power")
    assert list(ended.attributes["rag.chunk_ids"]) == [chunk_id]
    assert json.loads(str(ended.attributes["gen_ai.retrieval.documents"]))[0]["id"] == chunk_id


def test_a_processor_of_another_provider_leaves_provenance_inline(
    tiny: TinyStore, finished: Any
) -> None:
    other = ProcessorPipeline()  # a consumer exists, but not in the instrumented provider
    try:
        tiny.search(["solar"])
    finally:
        other.provider.shutdown()

    (span,) = finished()
    assert list(span.attributes["rag.chunk_ids"]) == [
        ids.content_hash("solar power"),
        ids.content_hash("solar heat"),
    ]


def test_a_reader_failing_on_the_worker_never_reaches_the_caller(
    pipeline: ProcessorPipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_reader() -> list[Chunk]:
        raise RuntimeError("unreadable rows")

    def extract_failing(*args: Any) -> list[RetrievalSet]:
        return [RetrievalSet(failing_reader, query_text="solar")]

    monkeypatch.setattr(f"{__name__}.extract", extract_failing)
    instrumentor = TinyInstrumentor()  # re-instrument so the wrapper picks up the new extract
    instrumentor.uninstrument()
    instrumentor.instrument(tracer_provider=pipeline.provider)

    assert TinyStore(["solar power"]).search(["solar"]) == [["solar power"]]
    (ended,), (exported,) = pipeline.spans()
    assert exported.attributes == ended.attributes  # forwarded as it ended, not lost
    assert pipeline.processor.stats()["spans_forwarded_unenriched_error"] == 1

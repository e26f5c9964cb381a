"""ProvenanceSpanProcessor mechanics: faithful copies, limits, ordering, bounds, flush, shutdown."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from spans import MODEL, Pipeline, chat, make_pipeline, prompt, retrieve

from ragprov import lineage, sidechannel
from ragprov.config import Settings
from ragprov.demo import scenarios
from ragprov.processor import ProvenanceSpanProcessor
from ragprov.signals import distinctive_tokens

CHAT = f"chat {MODEL}"


@pytest.fixture
def pipeline() -> Iterator[Pipeline]:
    pipeline = make_pipeline()
    with lineage.new_scope():
        yield pipeline
    pipeline.provider.shutdown()


def test_spans_without_provenance_pass_through_unchanged(pipeline: Pipeline) -> None:
    with pipeline.tracer.start_as_current_span("plain", attributes={"http.method": "GET"}):
        pass
    (span,) = pipeline.spans()
    assert dict(span.attributes or {}) == {"http.method": "GET"}


def test_copy_keeps_everything_but_adds_attributes_and_links() -> None:
    exporter = InMemorySpanExporter()
    resource = Resource.create({"service.name": "rag-app"})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(ProvenanceSpanProcessor(SimpleSpanProcessor(exporter)))
    tracer = provider.get_tracer("scope-name", "1.2.3")
    with lineage.new_scope():
        retrieve(tracer, scenarios.DIVERSE)
        existing_link = Link(tracer.start_span("other").get_span_context(), {"why": "test"})
        with tracer.start_as_current_span(
            CHAT, kind=SpanKind.CLIENT, links=[existing_link]
        ) as span:
            span.set_attributes({"gen_ai.operation.name": "chat"})
            span.add_event("gen_ai.choice", {"index": 0})
            span.set_status(Status(StatusCode.ERROR, "rate limited"))
            sidechannel.record_step_output(span, scenarios.ANSWER_USES_FOUR)
        original = span
    provider.force_flush()
    (exported,) = [s for s in exporter.get_finished_spans() if s.name == CHAT]
    assert exported is not original
    assert exported.context == original.context
    assert exported.parent == original.parent
    assert exported.kind is SpanKind.CLIENT
    assert exported.resource is resource
    assert exported.instrumentation_scope is not None
    assert (exported.instrumentation_scope.name, exported.instrumentation_scope.version) == (
        "scope-name",
        "1.2.3",
    )
    assert (exported.start_time, exported.end_time) == (original.start_time, original.end_time)
    assert exported.status.status_code is StatusCode.ERROR
    assert exported.status.description == "rate limited"
    assert [(event.name, dict(event.attributes or {})) for event in exported.events] == [
        ("gen_ai.choice", {"index": 0})
    ]
    assert exported.links[0] is existing_link
    assert len(exported.links) == 2
    assert "rag.diagnosis" in (exported.attributes or {})
    provider.shutdown()


def test_attribute_limit_never_evicts_the_spans_own_attributes() -> None:
    pipeline = make_pipeline(span_limits=SpanLimits(max_span_attributes=4))
    with lineage.new_scope():
        retrieve(pipeline.tracer, scenarios.DIVERSE)
        chat(
            pipeline.tracer,
            None,
            scenarios.ANSWER_USES_FOUR,
            extra={"gen_ai.response.model": MODEL, "gen_ai.usage.input_tokens": 10},
        )
    exported = pipeline.span(CHAT)
    attributes = dict(exported.attributes or {})
    assert {"gen_ai.operation.name", "gen_ai.request.model", "gen_ai.response.model"} <= set(
        attributes
    )
    assert attributes["gen_ai.usage.input_tokens"] == 10
    assert len(attributes) == 4
    stats = pipeline.processor.stats()
    assert stats["attributes_not_added_at_limit"] > 0
    assert exported.dropped_attributes == stats["attributes_not_added_at_limit"]
    pipeline.provider.shutdown()


def test_spans_reach_the_downstream_processor_in_the_order_they_ended(pipeline: Pipeline) -> None:
    for index in range(50):
        with pipeline.tracer.start_as_current_span(f"span {index}"):
            pass
    assert [span.name for span in pipeline.spans()] == [f"span {index}" for index in range(50)]


class _BlockingProcessor(SpanProcessor):
    """Blocks the worker on the first span until released; records what it receives."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.blocked = threading.Event()
        self.received: list[ReadableSpan] = []

    def on_end(self, span: ReadableSpan) -> None:
        if span.name == "first":
            self.blocked.set()
            self.release.wait(10)
        self.received.append(span)


def test_full_queue_forwards_spans_unenriched_and_counts_them() -> None:
    downstream = _BlockingProcessor()
    processor = ProvenanceSpanProcessor(downstream, settings=Settings(max_queue_size=2))
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("tests")
    with tracer.start_as_current_span("first"):
        pass
    assert downstream.blocked.wait(10)
    for index in range(5):
        with tracer.start_as_current_span(f"later {index}"):
            pass
    downstream.release.set()
    assert processor.force_flush(10_000)
    assert sorted(span.name for span in downstream.received) == sorted(
        ["first", *(f"later {index}" for index in range(5))]
    )
    assert processor.stats()["spans_forwarded_unenriched_queue_full"] == 3
    provider.shutdown()


def test_accepts_work_while_running_with_room_in_the_queue(pipeline: Pipeline) -> None:
    assert pipeline.processor.accepts_work() is True


def test_does_not_accept_work_when_the_queue_is_full() -> None:
    downstream = _BlockingProcessor()
    processor = ProvenanceSpanProcessor(downstream, settings=Settings(max_queue_size=2))
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("tests")
    with tracer.start_as_current_span("first"):
        pass
    assert downstream.blocked.wait(10)
    with tracer.start_as_current_span("queued 1"):
        pass
    assert processor.accepts_work() is True
    with tracer.start_as_current_span("queued 2"):
        pass
    assert processor.accepts_work() is False
    downstream.release.set()
    assert processor.force_flush(10_000)
    assert processor.accepts_work() is True
    provider.shutdown()


def test_does_not_accept_work_after_shutdown() -> None:
    pipeline = make_pipeline()
    pipeline.processor.shutdown()
    assert pipeline.processor.accepts_work() is False


def test_enrichment_errors_forward_the_span_unenriched(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(item: Any) -> Any:
        raise RuntimeError("bug")

    monkeypatch.setattr(pipeline.processor._enricher, "enrich", broken)
    with pipeline.tracer.start_as_current_span(
        "span", attributes={"gen_ai.operation.name": "chat"}
    ):
        pass
    (span,) = pipeline.spans()
    assert dict(span.attributes or {}) == {"gen_ai.operation.name": "chat"}
    assert pipeline.processor.stats()["spans_forwarded_unenriched_error"] == 1


def test_shutdown_drains_every_queued_span() -> None:
    pipeline = make_pipeline()
    with lineage.new_scope():
        for _ in range(20):
            retrieve(pipeline.tracer, scenarios.DIVERSE)
    pipeline.processor.shutdown()
    exported = pipeline.exporter.get_finished_spans()
    assert len(exported) == 20
    assert all("rag.quality_density" in (span.attributes or {}) for span in exported)


def test_after_shutdown_spans_pass_through_and_text_is_not_kept() -> None:
    pipeline = make_pipeline()
    pipeline.processor.shutdown()
    assert not sidechannel.is_active()
    with lineage.new_scope():
        retrieve(pipeline.tracer, scenarios.DIVERSE)
    assert sidechannel.pending() == (0, 0)


def test_side_channel_text_is_released_once_processed(pipeline: Pipeline) -> None:
    retrieve(pipeline.tracer, scenarios.DIVERSE)
    chat(pipeline.tracer, prompt(scenarios.DIVERSE, "q"), scenarios.ANSWER_USES_FOUR)
    pipeline.spans()
    assert sidechannel.pending() == (0, 0)


def test_trace_state_is_released_when_the_root_ends(pipeline: Pipeline) -> None:
    with pipeline.tracer.start_as_current_span("request"):
        retrieve(pipeline.tracer, scenarios.DIVERSE)
        chat(pipeline.tracer, prompt(scenarios.DIVERSE, "q"), scenarios.ANSWER_USES_FOUR)
    pipeline.spans()
    stats = pipeline.processor.stats()
    assert (stats["traces_in_memory"], stats["records_in_memory"], stats["state_bytes"]) == (
        0,
        0,
        0,
    )


def test_foreign_openinference_spans_are_understood(pipeline: Pipeline) -> None:
    documents: dict[str, Any] = {"openinference.span.kind": "RETRIEVER"}
    for index, text in enumerate(scenarios.DIVERSE):
        documents[f"retrieval.documents.{index}.document.id"] = f"node-{index}"
        documents[f"retrieval.documents.{index}.document.content"] = text
        documents[f"retrieval.documents.{index}.document.score"] = 0.9 - index / 10
        documents[f"retrieval.documents.{index}.document.metadata"] = (
            f'{{"chunk_id": "{scenarios.IDS[index]}"}}'
        )
    llm = {
        "openinference.span.kind": "LLM",
        "llm.input_messages.0.message.content": prompt(scenarios.DIVERSE, "q"),
        "llm.output_messages.0.message.content": scenarios.ANSWER_USES_TWO,
    }
    with pipeline.tracer.start_as_current_span("query"):
        with pipeline.tracer.start_as_current_span("retrieve", attributes=documents):
            pass
        with pipeline.tracer.start_as_current_span("llm", attributes=llm):
            pass
    retrieval = pipeline.attributes("retrieve")
    assert retrieval["rag.chunk_ids"] == tuple(scenarios.IDS)
    assert retrieval["rag.chunk_id_method"] == "metadata"
    answer = pipeline.attributes("llm")
    assert answer["rag.ancestor_retrieval_set_ids"] == (retrieval["rag.retrieval_set_id"],)
    assert answer["rag.transformation_type"] == "generation"
    assert answer["rag.diagnosis"] == "navigation"


def test_foreign_official_genai_spans_are_understood(pipeline: Pipeline) -> None:
    import json

    documents = json.dumps(
        [
            {"id": str(index), "score": 0.5, "content": text}
            for index, text in enumerate(scenarios.DIVERSE)
        ]
    )
    messages_in = json.dumps(
        [{"role": "user", "parts": [{"type": "text", "content": prompt(scenarios.DIVERSE, "q")}]}]
    )
    messages_out = json.dumps(
        [{"role": "assistant", "parts": [{"type": "text", "content": scenarios.ANSWER_USES_FOUR}]}]
    )
    with pipeline.tracer.start_as_current_span("request"):
        with pipeline.tracer.start_as_current_span(
            "retrieval kb",
            attributes={
                "gen_ai.operation.name": "retrieval",
                "gen_ai.retrieval.documents": documents,
            },
        ):
            pass
        with pipeline.tracer.start_as_current_span(
            "chat m",
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.input.messages": messages_in,
                "gen_ai.output.messages": messages_out,
            },
        ):
            pass
    answer = pipeline.attributes("chat m")
    assert answer["rag.lineage_method"] == "content_match"
    assert answer["rag.diagnosis"] == "healthy"


def test_processor_stats_count_enriched_spans(pipeline: Pipeline) -> None:
    retrieve(pipeline.tracer, scenarios.DIVERSE)
    pipeline.spans()
    stats = pipeline.processor.stats()
    assert stats["spans_enqueued"] == 1
    assert stats["spans_enriched"] == 1


def test_counters_are_exported_as_otel_metrics(monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry import metrics
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    monkeypatch.setattr(metrics, "get_meter", MeterProvider(metric_readers=[reader]).get_meter)
    pipeline = make_pipeline()
    with lineage.new_scope():
        retrieve(pipeline.tracer, scenarios.DIVERSE)
    pipeline.spans()
    data = reader.get_metrics_data()
    assert data is not None
    points = {
        (metric.name, tuple(sorted(dict(point.attributes or {}).items()))): point.value
        for resource_metrics in data.resource_metrics
        for scope_metrics in resource_metrics.scope_metrics
        for metric in scope_metrics.metrics
        for point in metric.data.data_points  # type: ignore[union-attr]
    }
    assert points[("ragprov.processor.spans", (("ragprov.outcome", "enriched"),))] == 1
    assert (
        points[("ragprov.processor.evictions", (("ragprov.bound", "traces_evicted_by_age"),))] == 0
    )
    pipeline.provider.shutdown()


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_a_forked_child_starts_its_own_worker() -> None:
    import os

    pipeline = make_pipeline()
    with lineage.new_scope():
        retrieve(pipeline.tracer, scenarios.DIVERSE)  # starts the parent's worker
        pipeline.spans()
        child = os.fork()
        if child == 0:  # the child: its spans must still be enriched and exported
            try:
                pipeline.exporter.clear()
                retrieve(pipeline.tracer, scenarios.DIVERSE)
                (span,) = pipeline.spans()
                os._exit(0 if "rag.quality_density" in (span.attributes or {}) else 1)
            except BaseException:
                os._exit(2)
        _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    pipeline.provider.shutdown()


def test_an_idle_worker_releases_traces_whose_root_never_ends() -> None:
    import time as time_module

    pipeline = make_pipeline(settings=Settings(trace_ttl_seconds=0.2))
    with lineage.new_scope():
        root = pipeline.tracer.start_span("request")  # never ended
        from opentelemetry import trace

        with trace.use_span(root, end_on_exit=False):
            retrieve(pipeline.tracer, scenarios.DIVERSE)
        pipeline.spans()
        assert pipeline.processor.stats()["traces_in_memory"] == 1
        deadline = time_module.monotonic() + 10
        while pipeline.processor.stats()["traces_in_memory"] and time_module.monotonic() < deadline:
            time_module.sleep(0.05)
    stats = pipeline.processor.stats()
    assert (stats["traces_in_memory"], stats["records_in_memory"]) == (0, 0)
    assert stats["traces_evicted_by_age"] == 1
    pipeline.provider.shutdown()


@pytest.mark.parametrize(
    ("chunk_ids", "counted"),
    [(["a", "b"], ["alpha bravo", "charlie delta"]), (["a", "a"], ["alpha bravo"])],
)
def test_source_to_response_ratio_counts_each_chunk_id_once(
    pipeline: Pipeline, chunk_ids: list[str], counted: list[str]
) -> None:
    texts = ["alpha bravo", "charlie delta"]
    retrieve(pipeline.tracer, texts, chunk_ids=chunk_ids)
    chat(pipeline.tracer, prompt(texts, "which?"), "alpha echo")
    attributes = pipeline.attributes(CHAT)
    sources = len(distinctive_tokens(" ".join(counted)))
    assert attributes["rag.source_to_response_ratio"] == 2 / sources

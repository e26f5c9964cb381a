"""The side channel: nothing kept without a consumer, bounded while pending, never raising."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import NonRecordingSpan, Span, Tracer

from ragprov import sidechannel
from ragprov.model import RetrievalSetEnvelope


@pytest.fixture
def tracer() -> Tracer:
    return TracerProvider().get_tracer("tests")


@pytest.fixture
def consumer() -> Iterator[None]:
    sidechannel.attach_consumer()
    yield
    sidechannel.configure_bounds()
    sidechannel.detach_consumer()


def key(span: Span) -> tuple[int, int]:
    context = span.get_span_context()
    return context.trace_id, context.span_id


def test_nothing_is_kept_without_a_consumer(tracer: Tracer) -> None:
    assert not sidechannel.is_active()
    span = tracer.start_span("chat")
    sidechannel.record_step_output(span, "answer")
    assert sidechannel.pending() == (0, 0)
    assert sidechannel.take(*key(span)) is None


@pytest.mark.usefixtures("consumer")
def test_step_output_pieces_are_concatenated_in_order(tracer: Tracer) -> None:
    span = tracer.start_span("chat")
    sidechannel.record_step_input(span, ["system prompt", "user question"])
    for piece in ("Stream", "ed ", "answer"):
        sidechannel.record_step_output(span, piece)
    payload = sidechannel.take(*key(span))
    assert isinstance(payload, sidechannel.StepPayload)
    assert payload.input_texts == ["system prompt", "user question"]
    assert payload.output_text == "Streamed answer"
    assert sidechannel.pending() == (0, 0)


@pytest.mark.usefixtures("consumer")
def test_tool_result_is_judged_on_the_returned_object(tracer: Tracer) -> None:
    empty, full, failed = (tracer.start_span(name) for name in ("a", "b", "c"))
    sidechannel.record_tool_result(empty, [])
    sidechannel.record_tool_result(full, {"rows": [1, 2]})
    sidechannel.record_tool_result(failed, None, error=TimeoutError("slow"))
    results = [sidechannel.take(*key(span)) for span in (empty, full, failed)]
    assert [
        (payload.tool_provided_data, payload.tool_error)
        for payload in results
        if isinstance(payload, sidechannel.StepPayload)
    ] == [(False, None), (True, None), (False, "TimeoutError")]


@pytest.mark.usefixtures("consumer")
def test_retrieval_payload_keeps_texts_in_rank_order(tracer: Tracer) -> None:
    span = tracer.start_span("retrieval")
    envelope = RetrievalSetEnvelope.build([])
    sidechannel.record_retrieval(span, envelope, ["a", None, b"bytes"], query_texts=["q"])  # type: ignore[list-item]
    payload = sidechannel.take(*key(span))
    assert isinstance(payload, sidechannel.RetrievalPayload)
    assert payload.chunk_texts == ("a", None, None)
    assert payload.query_texts == ("q",)


def resolver(calls: list[int], texts: tuple[str | None, ...] = ("a", None)) -> Any:
    """A deferred retrieval's build function that counts its calls."""

    def resolve() -> sidechannel.ResolvedRetrieval:
        calls.append(1)
        return RetrievalSetEnvelope.build([]), texts, None

    return resolve


@pytest.mark.usefixtures("consumer")
def test_deferred_retrieval_is_built_once_on_first_access(tracer: Tracer) -> None:
    span = tracer.start_span("retrieval")
    calls: list[int] = []
    assert sidechannel.record_deferred_retrieval(
        span, resolver(calls), retrieval_set_id="set-1", query_texts=["q"]
    )
    payload = sidechannel.take(*key(span))
    assert isinstance(payload, sidechannel.RetrievalPayload)
    assert payload.deferred
    assert payload.retrieval_set_id == "set-1"
    assert calls == []
    assert payload.chunk_texts == ("a", None)
    assert payload.envelope.chunk_ids == ()
    assert payload.embeddings is None
    assert payload.query_texts == ("q",)
    assert calls == [1]


def test_deferred_retrieval_is_refused_without_a_consumer(tracer: Tracer) -> None:
    calls: list[int] = []
    assert not sidechannel.record_deferred_retrieval(
        tracer.start_span("r"), resolver(calls), retrieval_set_id="set-1"
    )
    assert calls == []


@pytest.mark.usefixtures("consumer")
def test_deferred_retrieval_evicted_at_once_is_refused(tracer: Tracer) -> None:
    sidechannel.configure_bounds(max_chars=10)
    span = tracer.start_span("retrieval")
    assert not sidechannel.record_deferred_retrieval(
        span, resolver([]), retrieval_set_id="set-1", chars=11
    )
    assert sidechannel.take(*key(span)) is None


@pytest.mark.usefixtures("consumer")
def test_complete_retrieval_payload_is_not_deferred(tracer: Tracer) -> None:
    span = tracer.start_span("retrieval")
    sidechannel.record_retrieval(span, RetrievalSetEnvelope.build([]), [])
    payload = sidechannel.take(*key(span))
    assert isinstance(payload, sidechannel.RetrievalPayload)
    assert not payload.deferred


@pytest.mark.usefixtures("consumer")
def test_non_recording_spans_are_ignored() -> None:
    sampled_out = TracerProvider(sampler=ALWAYS_OFF).get_tracer("t").start_span("chat")
    sidechannel.record_step_output(sampled_out, "answer")
    sidechannel.record_step_output(NonRecordingSpan(sampled_out.get_span_context()), "answer")
    assert sidechannel.pending() == (0, 0)


@pytest.mark.usefixtures("consumer")
def test_pending_spans_are_bounded_by_count(tracer: Tracer) -> None:
    sidechannel.configure_bounds(max_spans=3)
    evicted_before = sidechannel.stats.evicted_by_count
    spans = [tracer.start_span(f"s{index}") for index in range(5)]
    for span in spans:
        sidechannel.record_step_output(span, "x")
    assert sidechannel.pending() == (3, 3)
    assert sidechannel.stats.evicted_by_count - evicted_before == 2
    assert sidechannel.take(*key(spans[0])) is None
    assert sidechannel.take(*key(spans[4])) is not None
    for span in spans[2:4]:
        sidechannel.take(*key(span))


@pytest.mark.usefixtures("consumer")
def test_pending_text_is_bounded_by_size(tracer: Tracer) -> None:
    sidechannel.configure_bounds(max_chars=10)
    evicted_before = sidechannel.stats.evicted_by_size
    first, second = tracer.start_span("a"), tracer.start_span("b")
    sidechannel.record_step_output(first, "123456")
    sidechannel.record_step_output(second, "123456")
    assert sidechannel.pending() == (1, 6)
    assert sidechannel.stats.evicted_by_size - evicted_before == 1
    sidechannel.take(*key(second))


@pytest.mark.usefixtures("consumer")
def test_pending_text_is_bounded_by_age(tracer: Tracer) -> None:
    sidechannel.configure_bounds(ttl_seconds=0.0)
    evicted_before = sidechannel.stats.evicted_by_age
    first, second = tracer.start_span("a"), tracer.start_span("b")
    sidechannel.record_step_output(first, "old")
    sidechannel.record_step_output(second, "new")
    assert sidechannel.take(*key(first)) is None
    assert sidechannel.stats.evicted_by_age - evicted_before >= 1
    sidechannel.take(*key(second))


@pytest.mark.usefixtures("consumer")
def test_a_broken_span_never_raises() -> None:
    class Broken(NonRecordingSpan):
        def is_recording(self) -> bool:
            raise RuntimeError("broken")

    span = Broken(NonRecordingSpan(None).get_span_context())  # type: ignore[arg-type]
    sidechannel.record_step_output(span, "answer")
    sidechannel.record_tool_result(span, "output")
    assert sidechannel.pending() == (0, 0)


def test_last_consumer_leaving_releases_pending_text(tracer: Tracer) -> None:
    sidechannel.attach_consumer()
    sidechannel.record_step_output(tracer.start_span("chat"), "answer")
    assert sidechannel.pending() == (1, 6)
    sidechannel.detach_consumer()
    assert sidechannel.pending() == (0, 0)

"""Lineage: explicit steps, scope without a parent span, no leakage, baggage across processes."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
from opentelemetry import context as otel_context
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from spans import MODEL, Pipeline, chat, make_pipeline, prompt, retrieve

import ragprov
from ragprov import lineage
from ragprov.demo import scenarios

CHAT = f"chat {MODEL}"


@pytest.fixture
def pipeline() -> Iterator[Pipeline]:
    pipeline = make_pipeline()
    with lineage.new_scope():
        yield pipeline
    pipeline.provider.shutdown()


def answers_by_name(pipeline: Pipeline) -> dict[str, dict[str, object]]:
    return {
        span.name: dict(span.attributes or {})
        for span in pipeline.spans()
        if span.name.startswith("chat")
    }


def test_plain_script_links_by_scope_without_a_parent_span(pipeline: Pipeline) -> None:
    envelope = retrieve(pipeline.tracer, scenarios.DIVERSE, chunk_ids=scenarios.IDS)
    chat(pipeline.tracer, None, scenarios.ANSWER_USES_FOUR)  # prompt text unknown
    answer = pipeline.attributes(CHAT)
    assert pipeline.span(CHAT).parent is None
    assert answer["rag.lineage_method"] == "scope"
    assert answer["rag.ancestor_retrieval_set_ids"] == (envelope.retrieval_set_id,)
    assert answer["rag.diagnosis"] == "healthy"


def test_plain_script_links_by_content_without_a_parent_span(pipeline: Pipeline) -> None:
    envelope = retrieve(pipeline.tracer, scenarios.DIVERSE, chunk_ids=scenarios.IDS)
    chat(pipeline.tracer, prompt(scenarios.DIVERSE, "q"), scenarios.ANSWER_USES_TWO)
    answer = pipeline.attributes(CHAT)
    assert answer["rag.lineage_method"] == "content_match"
    assert answer["rag.ancestor_retrieval_set_ids"] == (envelope.retrieval_set_id,)


def test_content_match_picks_the_set_quoted_in_the_prompt(pipeline: Pipeline) -> None:
    with pipeline.tracer.start_as_current_span("request"):
        retrieve(pipeline.tracer, scenarios.NEAR_DUPLICATES)
        quoted = retrieve(pipeline.tracer, scenarios.DIVERSE, chunk_ids=scenarios.IDS)
        chat(pipeline.tracer, prompt(scenarios.DIVERSE[1:3], "q"), scenarios.ANSWER_USES_TWO)
    answer = pipeline.attributes(CHAT)
    assert answer["rag.ancestor_retrieval_set_ids"] == (quoted.retrieval_set_id,)


def test_step_without_any_retrieval_gets_no_lineage_or_signals(pipeline: Pipeline) -> None:
    chat(pipeline.tracer, "Say hello", "Hello there, friend!")
    answer = pipeline.attributes(CHAT)
    assert {key for key in answer if key.startswith("rag.")} == {
        "rag.step_id",
        "rag.transformation_type",
    }


def test_explicit_step_declares_its_inputs(pipeline: Pipeline) -> None:
    first = retrieve(pipeline.tracer, scenarios.DIVERSE[:2])
    retrieve(pipeline.tracer, scenarios.DIVERSE[2:])
    with ragprov.step(
        "summarise", inputs=[first], transformation_type="summarize",
        tracer_provider=pipeline.provider,
    ) as handle:  # fmt: skip
        handle.record_output(scenarios.DIVERSE[0])
    attributes = pipeline.attributes("step summarise")
    assert attributes["rag.step_id"] == handle.step_id
    assert attributes["rag.transformation_type"] == "summarize"
    assert attributes["rag.lineage_method"] == "explicit"
    assert attributes["rag.ancestor_retrieval_set_ids"] == (first.retrieval_set_id,)


def test_retrieval_inside_a_step_records_the_step_id(pipeline: Pipeline) -> None:
    with ragprov.step("lookup", tracer_provider=pipeline.provider) as handle:
        retrieve(pipeline.tracer, scenarios.DIVERSE)
    assert pipeline.attributes("retrieval reports")["rag.step_id"] == handle.step_id
    assert lineage.current_step_id() is None


def test_step_decorator_records_arguments_and_return_value(pipeline: Pipeline) -> None:
    envelope = retrieve(pipeline.tracer, scenarios.DIVERSE, chunk_ids=scenarios.IDS)

    @ragprov.step("answer", transformation_type="generation", tracer_provider=pipeline.provider)
    def answer(context: str) -> str:
        return scenarios.ANSWER_USES_FOUR

    assert answer(prompt(scenarios.DIVERSE, "q")) == scenarios.ANSWER_USES_FOUR
    attributes = pipeline.attributes("step answer")
    assert attributes["rag.lineage_method"] == "content_match"
    assert attributes["rag.ancestor_retrieval_set_ids"] == (envelope.retrieval_set_id,)
    assert attributes["rag.diagnosis"] == "healthy"


def test_async_step_decorator(pipeline: Pipeline) -> None:
    @ragprov.step("async answer", tracer_provider=pipeline.provider)
    async def answer() -> str:
        await asyncio.sleep(0)
        return "done"

    assert asyncio.run(answer()) == "done"
    assert "rag.step_id" in pipeline.attributes("step async answer")


def test_concurrent_tasks_link_only_their_own_retrievals(pipeline: Pipeline) -> None:
    async def request(index: int) -> str:
        texts = [f"{chunk} (edition {index})" for chunk in scenarios.DIVERSE]
        envelope = retrieve(pipeline.tracer, texts)
        await asyncio.sleep(0.01)  # let the other tasks retrieve in between
        chat(pipeline.tracer, None, scenarios.ANSWER_USES_FOUR, name=f"chat {index}")
        return envelope.retrieval_set_id

    async def main() -> list[str]:
        return list(await asyncio.gather(*(request(index) for index in range(4))))

    expected = asyncio.run(main())
    answers = answers_by_name(pipeline)
    for index, retrieval_set_id in enumerate(expected):
        assert answers[f"chat {index}"]["rag.ancestor_retrieval_set_ids"] == (retrieval_set_id,)


def test_threads_link_only_their_own_retrievals(pipeline: Pipeline) -> None:
    results: dict[int, str] = {}
    barrier = threading.Barrier(3)

    def worker(index: int) -> None:
        envelope = retrieve(pipeline.tracer, [f"{chunk} #{index}" for chunk in scenarios.DIVERSE])
        barrier.wait()
        chat(pipeline.tracer, None, scenarios.ANSWER_USES_FOUR, name=f"chat {index}")
        results[index] = envelope.retrieval_set_id

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    answers = answers_by_name(pipeline)
    for index, retrieval_set_id in results.items():
        assert answers[f"chat {index}"]["rag.ancestor_retrieval_set_ids"] == (retrieval_set_id,)


def test_scope_does_not_leak_into_a_later_request_of_the_same_thread(pipeline: Pipeline) -> None:
    retrieve(pipeline.tracer, scenarios.DIVERSE)  # an earlier, parentless retrieval
    with pipeline.tracer.start_as_current_span("request"):
        chat(pipeline.tracer, None, "A confident answer about something else entirely.")
    answer = pipeline.attributes(CHAT)
    assert "rag.ancestor_retrieval_set_ids" not in answer
    assert "rag.diagnosis" not in answer


def test_new_scope_forgets_earlier_retrievals(pipeline: Pipeline) -> None:
    retrieve(pipeline.tracer, scenarios.DIVERSE)
    with lineage.new_scope():
        chat(pipeline.tracer, None, scenarios.ANSWER_USES_FOUR)
    assert "rag.ancestor_retrieval_set_ids" not in pipeline.attributes(CHAT)


def test_ancestors_travel_in_baggage_to_another_process() -> None:
    upstream, downstream = make_pipeline(), make_pipeline()
    propagator = CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])
    carrier: dict[str, str] = {}
    with lineage.new_scope():
        envelope = retrieve(upstream.tracer, scenarios.DIVERSE)
        with upstream.tracer.start_as_current_span("call service"):
            propagator.inject(carrier, context=lineage.inject_ancestors())
    assert lineage.BAGGAGE_KEY in carrier["baggage"]

    with lineage.new_scope():
        chat(downstream.tracer, None, scenarios.ANSWER_USES_FOUR, name="chat remote")
        # What a server instrumentation does with an incoming request.
        token = otel_context.attach(propagator.extract(carrier))
        try:
            with downstream.tracer.start_as_current_span("handler"):
                chat(downstream.tracer, None, scenarios.ANSWER_USES_FOUR)
        finally:
            otel_context.detach(token)
    answer = downstream.attributes(CHAT)
    assert answer["rag.ancestor_retrieval_set_ids"] == (envelope.retrieval_set_id,)
    assert answer["rag.lineage_method"] == "scope"
    assert "rag.ancestor_retrieval_set_ids" not in downstream.attributes("chat remote")
    upstream.provider.shutdown()
    downstream.provider.shutdown()


def test_inject_ancestors_without_scope_leaves_baggage_empty() -> None:
    with lineage.new_scope():
        assert lineage.ancestors_from_baggage(lineage.inject_ancestors()) == ()


def test_scope_bounds_retrievals_and_steps_separately() -> None:
    with lineage.new_scope():
        lineage.note(lineage.ScopeEntry(lineage.RETRIEVAL, "r", 1, 1, 0.0))
        for index in range(lineage.MAX_SCOPE_STEPS + 10):
            lineage.note(lineage.ScopeEntry(lineage.STEP, str(index), 1, index, 0.0))
        scope = lineage.scope_snapshot(now=1.0)
    assert [entry.record_id for entry in scope if entry.kind == lineage.RETRIEVAL] == ["r"]
    steps = [entry.record_id for entry in scope if entry.kind == lineage.STEP]
    assert steps == [str(index) for index in range(10, lineage.MAX_SCOPE_STEPS + 10)]


def test_scope_keeps_the_most_recent_retrievals() -> None:
    with lineage.new_scope():
        for index in range(lineage.MAX_SCOPE_RETRIEVALS + 5):
            lineage.note(lineage.ScopeEntry(lineage.RETRIEVAL, str(index), 1, index, 0.0))
        scope = lineage.scope_snapshot(now=1.0)
    assert len(scope) == lineage.MAX_SCOPE_RETRIEVALS
    assert scope[0].record_id == "5"


def test_old_scope_entries_are_not_offered() -> None:
    with lineage.new_scope():
        lineage.note(lineage.ScopeEntry(lineage.RETRIEVAL, "old", 1, 1, 0.0))
        lineage.note(lineage.ScopeEntry(lineage.RETRIEVAL, "new", 1, 2, 500.0))
        scope = lineage.scope_snapshot(now=lineage.SCOPE_TTL_SECONDS + 100.0)
        assert [entry.record_id for entry in scope] == ["new"]


def test_old_scope_entries_noted_out_of_order_are_not_offered() -> None:
    with lineage.new_scope():
        lineage.note(lineage.ScopeEntry(lineage.RETRIEVAL, "new", 1, 1, 500.0))
        lineage.note(lineage.ScopeEntry(lineage.RETRIEVAL, "old", 1, 2, 0.0))
        lineage.note(lineage.ScopeEntry(lineage.STEP, "old step", 1, 3, 1.0))
        scope = lineage.scope_snapshot(now=lineage.SCOPE_TTL_SECONDS + 100.0)
        assert [entry.record_id for entry in scope] == ["new"]


def test_old_steps_are_not_offered_while_retrievals_are() -> None:
    with lineage.new_scope():
        lineage.note(lineage.ScopeEntry(lineage.STEP, "old step", 1, 1, 0.0))
        lineage.note(lineage.ScopeEntry(lineage.RETRIEVAL, "new", 1, 2, 500.0))
        scope = lineage.scope_snapshot(now=lineage.SCOPE_TTL_SECONDS + 100.0)
        assert [entry.record_id for entry in scope] == ["new"]

"""LangChainInstrumentor: one workflow span, current for the whole run of a chain.

Real langchain-core runnables only (the oldest-version matrix runs this file with langchain-core
alone); test_langchain_lineage.py runs a real LCEL RAG chain through the provenance processor.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from langchain_core.runnables import (
    Runnable,
    RunnableLambda,
    RunnableParallel,
    RunnablePassthrough,
    RunnableSequence,
    RunnableWithFallbacks,
)
from langchain_core.runnables.retry import RunnableRetry
from opentelemetry.instrumentation.dependencies import get_dependency_conflicts
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.trace import SpanKind, StatusCode

from ragprov.instrumentation import _patching as patching
from ragprov.instrumentation import langchain as instrumentation
from ragprov.instrumentation.langchain import LangChainInstrumentor

ENTRY_POINTS = ("invoke", "ainvoke", "batch", "abatch", "stream", "astream")
ORIGINALS = {
    (owner, name): owner.__dict__[name]
    for owner in (RunnableSequence, RunnableParallel, RunnableWithFallbacks, RunnableRetry)
    for name in ENTRY_POINTS
    if name in owner.__dict__
}
WORKFLOW = "invoke_workflow RunnableSequence"


def shout(text: str) -> str:
    return text.upper()


def exclaim(text: str) -> str:
    return text + "!"


def words(text: str) -> Iterator[str]:
    yield from text.split()


class PolicyError(Exception):
    pass


def shouting_chain() -> Runnable[str, str]:
    return RunnableLambda(shout) | RunnableLambda(exclaim)


@pytest.fixture
def instrumented(tracer_provider: TracerProvider) -> Iterator[LangChainInstrumentor]:
    instrumentor = LangChainInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    yield instrumentor
    instrumentor.uninstrument()


@pytest.fixture
def traced_step(tracer_provider: TracerProvider) -> Runnable[str, str]:
    """A step that opens a span, as an instrumented library called by the step would."""
    tracer = tracer_provider.get_tracer("app")

    def step(text: str) -> str:
        with tracer.start_as_current_span("step"):
            return text.upper()

    return RunnableLambda(step)


@pytest.fixture
def traced_chain(traced_step: Runnable[str, str]) -> Runnable[str, str]:
    return traced_step | RunnableLambda(exclaim)


def by_name(spans: list[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [span for span in spans if span.name == name]


def workflow_over_steps(
    spans: list[ReadableSpan], steps: int, name: str = WORKFLOW
) -> ReadableSpan:
    """The one workflow span, after checking that the ``steps`` step spans are its children."""
    (workflow,) = by_name(spans, name)
    step_spans = by_name(spans, "step")
    assert len(step_spans) == steps
    for step in step_spans:
        assert_child_of(step, workflow)
    return workflow


def assert_child_of(child: ReadableSpan, parent: ReadableSpan) -> None:
    assert child.parent is not None
    assert parent.context is not None
    assert child.parent.span_id == parent.context.span_id
    assert child.parent.trace_id == parent.context.trace_id


# ----------------------------------------------------------------------------- the span


def test_invoke_opens_one_workflow_span_with_exact_attributes(
    instrumented: Any, finished: Any, check_exact: Any
) -> None:
    assert shouting_chain().invoke("refunds") == "REFUNDS!"

    (span,) = finished()
    assert span.name == WORKFLOW
    assert span.kind is SpanKind.INTERNAL
    assert span.parent is None
    assert span.status.status_code is StatusCode.UNSET
    check_exact(
        span.attributes,
        {"gen_ai.operation.name": "invoke_workflow", "gen_ai.workflow.name": "RunnableSequence"},
    )


def test_the_run_name_of_the_config_names_the_workflow(instrumented: Any, finished: Any) -> None:
    shouting_chain().invoke("refunds", {"run_name": "answer question"})
    shouting_chain().with_config(run_name="rewrite").invoke("refunds")

    first, second = finished()
    assert first.name == "invoke_workflow answer question"
    assert first.attributes is not None
    assert first.attributes["gen_ai.workflow.name"] == "answer question"
    assert second.name == "invoke_workflow rewrite"


def test_spans_of_every_step_are_children_of_the_workflow_span(
    instrumented: Any, finished: Any, traced_step: Runnable[str, str]
) -> None:
    # The parallel branches run in worker threads, each step in a copy of the context.
    chain = RunnableParallel(first=traced_step, second=traced_step) | RunnableLambda(
        lambda branches: branches["first"] + branches["second"]
    )
    assert chain.invoke("a") == "AA"

    workflow_over_steps(finished(), steps=2)


def test_nested_runs_open_no_span_of_their_own(
    instrumented: Any, finished: Any, traced_chain: Runnable[str, str]
) -> None:
    outer = RunnableParallel(text=RunnablePassthrough()) | RunnableLambda(
        lambda value: traced_chain.invoke(value["text"])
    )
    assert outer.invoke("a") == "A!"

    spans = finished()
    workflow_over_steps(spans, steps=1)
    assert len(spans) == 2


def test_a_parallel_run_on_its_own_opens_a_span(
    instrumented: Any, finished: Any, traced_step: Runnable[str, str]
) -> None:
    assert RunnableParallel(text=traced_step).invoke("a") == {"text": "A"}

    workflow_over_steps(finished(), steps=1, name="invoke_workflow RunnableParallel<text>")


def test_a_run_under_an_application_span_is_its_child(
    instrumented: Any, finished: Any, tracer_provider: TracerProvider
) -> None:
    with tracer_provider.get_tracer("app").start_as_current_span("request"):
        shouting_chain().invoke("refunds")

    workflow, request = finished()
    assert workflow.name == WORKFLOW
    assert_child_of(workflow, request)


def test_the_attempts_of_a_retried_chain_are_one_workflow(
    instrumented: Any, finished: Any, traced_step: Runnable[str, str]
) -> None:
    attempts: list[str] = []

    def flaky(text: str) -> str:
        attempts.append(text)
        if len(attempts) == 1:
            raise ConnectionError("try again")
        return text

    chain = (traced_step | RunnableLambda(flaky)).with_retry(
        stop_after_attempt=2, wait_exponential_jitter=False
    )
    assert chain.invoke("a") == "A"

    # A retry binding has the name of the chain it binds.
    workflow = workflow_over_steps(finished(), steps=2)
    assert workflow.status.status_code is StatusCode.UNSET


def test_a_chain_and_its_fallback_are_one_workflow(
    instrumented: Any,
    finished: Any,
    traced_step: Runnable[str, str],
    traced_chain: Runnable[str, str],
) -> None:
    def fail(text: str) -> str:
        raise ConnectionError("model unavailable")

    chain = (traced_step | RunnableLambda(fail)).with_fallbacks([traced_chain])
    assert chain.invoke("a") == "A!"

    spans = finished()
    workflow_over_steps(spans, steps=2, name="invoke_workflow RunnableWithFallbacks")
    assert len(spans) == 3


# ----------------------------------------------------------------------------- entry points


def test_ainvoke_opens_one_span_current_in_its_task(
    instrumented: Any,
    finished: Any,
    traced_chain: Runnable[str, str],
    event_loop_runner: Callable[[Any], Any],
) -> None:
    assert event_loop_runner(traced_chain.ainvoke("a")) == "A!"

    workflow_over_steps(finished(), steps=1)


def test_concurrent_ainvokes_are_separate_workflows(
    instrumented: Any, finished: Any, event_loop_runner: Callable[[Any], Any]
) -> None:
    chain = shouting_chain()

    async def both() -> list[str]:
        return list(await asyncio.gather(chain.ainvoke("a"), chain.ainvoke("b")))

    assert event_loop_runner(both()) == ["A!", "B!"]
    first, second = finished()
    assert first.context is not None
    assert second.context is not None
    assert first.context.trace_id != second.context.trace_id


def test_batch_is_one_workflow_for_all_inputs(
    instrumented: Any, finished: Any, traced_chain: Runnable[str, str]
) -> None:
    assert traced_chain.batch(["a", "b"]) == ["A!", "B!"]

    workflow_over_steps(finished(), steps=2)


def test_abatch_is_one_workflow_for_all_inputs(
    instrumented: Any,
    finished: Any,
    traced_chain: Runnable[str, str],
    event_loop_runner: Callable[[Any], Any],
) -> None:
    assert event_loop_runner(traced_chain.abatch(["a", "b"])) == ["A!", "B!"]

    workflow_over_steps(finished(), steps=2)


def test_a_stream_span_ends_when_the_stream_is_exhausted(
    instrumented: Any, finished: Any, traced_chain: Runnable[str, str]
) -> None:
    stream = traced_chain.stream("a")
    assert finished() == []

    assert list(stream) == ["A!"]
    workflow = workflow_over_steps(finished(), steps=1)
    assert workflow.status.status_code is StatusCode.UNSET


def test_closing_a_stream_early_ends_its_span(instrumented: Any, finished: Any) -> None:
    stream = (RunnableLambda(shout) | RunnableLambda(words)).stream("one two three")
    assert next(stream) == "ONE"
    assert finished() == []
    stream.close()

    (workflow,) = finished()
    assert workflow.name == WORKFLOW
    assert workflow.status.status_code is StatusCode.UNSET


def test_an_abandoned_stream_ends_its_span_when_collected(instrumented: Any, finished: Any) -> None:
    for word in (RunnableLambda(shout) | RunnableLambda(words)).stream("one two three"):
        assert word == "ONE"
        break
    gc.collect()

    (workflow,) = finished()
    assert workflow.name == WORKFLOW


def test_an_astream_span_ends_when_the_stream_is_exhausted(
    instrumented: Any,
    finished: Any,
    traced_chain: Runnable[str, str],
    event_loop_runner: Callable[[Any], Any],
) -> None:
    async def read() -> list[str]:
        return [chunk async for chunk in traced_chain.astream("a")]

    assert event_loop_runner(read()) == ["A!"]
    workflow_over_steps(finished(), steps=1)


def test_astream_events_run_under_one_workflow_span(
    instrumented: Any,
    finished: Any,
    traced_chain: Runnable[str, str],
    event_loop_runner: Callable[[Any], Any],
) -> None:
    async def events() -> list[str]:
        return [event["event"] async for event in traced_chain.astream_events("a", version="v2")]

    assert event_loop_runner(events())[-1] == "on_chain_end"
    workflow_over_steps(finished(), steps=1)


# ----------------------------------------------------------------------------- failures


def test_a_failed_run_is_recorded_and_the_same_exception_reraised(
    instrumented: Any, finished: Any
) -> None:
    boom = PolicyError("no such policy")

    def fail(text: str) -> str:
        raise boom

    with pytest.raises(PolicyError) as raised:
        (RunnableLambda(shout) | RunnableLambda(fail)).invoke("refunds")

    assert raised.value is boom
    (workflow,) = finished()
    assert workflow.status.status_code is StatusCode.ERROR
    assert workflow.attributes is not None
    assert workflow.attributes["error.type"] == "PolicyError"
    assert [event.name for event in workflow.events] == ["exception"]


def test_a_failed_stream_is_recorded_and_the_same_exception_reraised(
    instrumented: Any, finished: Any
) -> None:
    boom = PolicyError("no such policy")

    def fail(text: str) -> str:
        raise boom

    stream = (RunnableLambda(shout) | RunnableLambda(fail)).stream("refunds")
    with pytest.raises(PolicyError) as raised:
        list(stream)

    assert raised.value is boom
    (workflow,) = finished()
    assert workflow.status.status_code is StatusCode.ERROR
    assert workflow.attributes is not None
    assert workflow.attributes["error.type"] == "PolicyError"


def test_instrumentation_errors_are_swallowed_and_logged_once(
    instrumented: Any,
    finished: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(*args: Any) -> str:
        raise RuntimeError("instrumentation bug")

    monkeypatch.setattr(instrumentation, "_workflow_name", broken)
    monkeypatch.setattr(patching, "_logged_once", set())
    with caplog.at_level(logging.DEBUG, logger="ragprov.instrumentation"):
        assert shouting_chain().invoke("a") == "A!"
        assert list(shouting_chain().stream("b")) == ["B!"]

    assert finished() == []
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1


def test_suppression_key_means_no_span(
    instrumented: Any, finished: Any, suppressed: Any, traced_chain: Runnable[str, str]
) -> None:
    with suppressed():
        assert traced_chain.invoke("a") == "A!"

    assert by_name(finished(), WORKFLOW) == []


def test_uninstrument_restores_the_original_methods(
    tracer_provider: TracerProvider, finished: Any
) -> None:
    instrumentor = LangChainInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    assert RunnableSequence.__dict__["invoke"] is not ORIGINALS[(RunnableSequence, "invoke")]
    instrumentor.uninstrument()

    for (owner, name), original in ORIGINALS.items():
        assert owner.__dict__[name] is original, f"{owner.__name__}.{name}"
    shouting_chain().invoke("a")
    assert finished() == []


def test_supported_versions_and_entry_point() -> None:
    from importlib.metadata import entry_points

    dependencies = LangChainInstrumentor().instrumentation_dependencies()
    assert list(dependencies) == ["langchain-core >= 0.3"]
    assert get_dependency_conflicts(dependencies) is None  # the installed (newest) version fits
    (entry_point,) = entry_points(group="opentelemetry_instrumentor", name="ragprov_langchain")
    assert entry_point.load() is LangChainInstrumentor


# ----------------------------------------------------------------------------- lineage

"""One LLM span per call when another GenAI instrumentation traces the same client.

ragprov's wrapper sits at the client's request path, inside higher-level instrumentations. When
the current span is their GenAI span for this call, ragprov adds exactly ``rag.step_id`` and
``rag.transformation_type`` to it (plus requested tool calls) and keys the side channel on it.
Each test compares the other instrumentation's span with and without ragprov.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import openai
import pytest
import wrapt
from llm_support import ANSWER, LLMServer, Script, ToolCall, is_uuid7, pop_exact
from opentelemetry.instrumentation import openai_v2 as openai_v2_package
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor as OpenAIV2Instrumentor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.trace import NoOpTracerProvider, SpanKind, StatusCode

from ragprov import sidechannel
from ragprov.instrumentation.anthropic import AnthropicInstrumentor
from ragprov.instrumentation.openai import OpenAIInstrumentor

MODEL = "gpt-test"
SYSTEM = "Answer from the context only."
QUESTION = "What was Acme Robotics' revenue in 2024?"
MESSAGES = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}]
RAGPROV_STEP = {"rag.step_id": is_uuid7, "rag.transformation_type": "generation"}
# Values that differ from one call to the next.
VOLATILE = {"gen_ai.response.time_to_first_chunk"}

Payloads = Callable[[ReadableSpan], sidechannel.StepPayload | None]


def only_span(spans: Callable[[], list[ReadableSpan]]) -> ReadableSpan:
    finished = spans()
    assert len(finished) == 1, [(span.name, span.instrumentation_scope) for span in finished]
    return finished[0]


def plus(baseline: ReadableSpan, extra: dict[str, Any]) -> dict[str, Any]:
    """The baseline span's attributes (volatile values only checked present) plus ``extra``."""
    expected: dict[str, Any] = {
        key: (lambda _: True) if key in VOLATILE else value
        for key, value in (baseline.attributes or {}).items()
    }
    return {**expected, **extra}


# --------------------------------------------------------------------------- openai-v2


@pytest.fixture(params=["latest_conventions", "legacy_conventions"])
def openai_v2(
    request: pytest.FixtureRequest,
    tracer_provider: TracerProvider,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[None]:
    """opentelemetry-instrumentation-openai-v2 in its two code paths (util-genai handler spans,
    or its own ``start_as_current_span``)."""
    legacy = request.param == "legacy_conventions"
    monkeypatch.setattr(openai_v2_package, "is_experimental_mode", lambda: not legacy)
    instrumentor = OpenAIV2Instrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    yield
    instrumentor.uninstrument()


@pytest.fixture
def with_ragprov(tracer_provider: TracerProvider) -> Iterator[Callable[[], None]]:
    """Call it to instrument openai with ragprov too (after a baseline call without it)."""
    instrumentor = OpenAIInstrumentor()
    yield lambda: instrumentor.instrument(tracer_provider=tracer_provider)
    instrumentor.uninstrument()


@pytest.fixture
def client(llm_server: LLMServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=llm_server.openai_url, api_key="test", max_retries=0)


def chat(client: openai.OpenAI, stream: bool) -> str:
    result = client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=stream)
    if not stream:
        return str(result.choices[0].message.content)
    return "".join(chunk.choices[0].delta.content or "" for chunk in result if chunk.choices)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_openai_v2_keeps_its_span_and_ragprov_adds_the_step(
    stream: bool,
    openai_v2: None,
    with_ragprov: Callable[[], None],
    client: openai.OpenAI,
    spans: Callable[[], list[ReadableSpan]],
    side_channel: Payloads,
) -> None:
    assert chat(client, stream) == ANSWER
    baseline = only_span(spans)
    assert baseline.instrumentation_scope is not None
    assert not baseline.instrumentation_scope.name.startswith("ragprov")
    side_channel(baseline)
    with_ragprov()

    assert chat(client, stream) == ANSWER

    span = spans()[1]
    assert len(spans()) == 2  # the baseline and this call: one span per call
    assert span.name == baseline.name == f"chat {MODEL}"
    assert span.kind is SpanKind.CLIENT
    assert span.instrumentation_scope == baseline.instrumentation_scope
    pop_exact(span.attributes or {}, plus(baseline, RAGPROV_STEP))
    payload = side_channel(span)
    assert payload is not None
    assert (payload.input_texts, payload.output_text) == ([SYSTEM, QUESTION], ANSWER)


def test_openai_v2_records_the_error_and_ragprov_adds_only_the_step(
    llm_server: LLMServer,
    openai_v2: None,
    with_ragprov: Callable[[], None],
    client: openai.OpenAI,
    spans: Callable[[], list[ReadableSpan]],
) -> None:
    llm_server.script = Script(status=500)
    with pytest.raises(openai.InternalServerError):
        chat(client, False)
    baseline = only_span(spans)
    with_ragprov()

    with pytest.raises(openai.InternalServerError):
        chat(client, False)

    span = spans()[1]
    assert span.status.status_code is StatusCode.ERROR
    assert len(span.events) == len(baseline.events)
    pop_exact(span.attributes or {}, plus(baseline, RAGPROV_STEP))


def test_tool_calls_are_added_to_the_openai_v2_span(
    llm_server: LLMServer,
    openai_v2: None,
    with_ragprov: Callable[[], None],
    client: openai.OpenAI,
    spans: Callable[[], list[ReadableSpan]],
) -> None:
    with_ragprov()
    llm_server.script = Script(answer="", tool_calls=(ToolCall("call_1", "search", {}),))

    client.chat.completions.create(model=MODEL, messages=MESSAGES)

    attributes = dict(only_span(spans).attributes or {})
    assert attributes["rag.requested_tool_call_ids"] == ("call_1",)
    assert attributes["rag.requested_tool_names"] == ("search",)


def test_openai_v2_embeddings_spans_are_left_alone(
    openai_v2: None,
    with_ragprov: Callable[[], None],
    client: openai.OpenAI,
    spans: Callable[[], list[ReadableSpan]],
) -> None:
    client.embeddings.create(model="embed-test", input="a")
    baseline = only_span(spans)
    with_ragprov()

    client.embeddings.create(model="embed-test", input="a")

    span = spans()[1]
    assert len(spans()) == 2
    assert span.instrumentation_scope == baseline.instrumentation_scope
    pop_exact(span.attributes or {}, plus(baseline, {}))


def test_calls_openai_v2_does_not_trace_get_a_ragprov_span(
    openai_v2: None,
    with_ragprov: Callable[[], None],
    client: openai.OpenAI,
    spans: Callable[[], list[ReadableSpan]],
) -> None:
    with_ragprov()

    client.responses.create(model=MODEL, input=QUESTION)

    span = only_span(spans)
    assert span.instrumentation_scope is not None
    assert span.instrumentation_scope.name == "ragprov.instrumentation.openai"


# --------------------------------------------------------------------------- anthropic's own spans

ANTHROPIC_ARGUMENTS: dict[str, Any] = {
    "model": "claude-test",
    "max_tokens": 64,
    "system": SYSTEM,
    "messages": [{"role": "user", "content": QUESTION}],
}


@pytest.fixture
def traced_anthropic(llm_server: LLMServer, tracer_provider: TracerProvider) -> anthropic.Anthropic:
    """A client whose own OpenTelemetry tracing is on (as with a global SDK tracer provider)."""
    return anthropic.Anthropic(
        base_url=llm_server.url,
        api_key="test",
        max_retries=0,
        open_telemetry={"tracer_provider": tracer_provider},
    )


@pytest.fixture
def anthropic_ragprov(tracer_provider: TracerProvider) -> Iterator[Callable[[], None]]:
    instrumentor = AnthropicInstrumentor()
    yield lambda: instrumentor.instrument(tracer_provider=tracer_provider)
    instrumentor.uninstrument()


def create(client: anthropic.Anthropic, how: str) -> str:
    if how == "json":
        message = client.messages.create(**ANTHROPIC_ARGUMENTS)
        return "".join(block.text for block in message.content if block.type == "text")
    if how == "stream":
        events = client.messages.create(**ANTHROPIC_ARGUMENTS, stream=True)
        return "".join(
            event.delta.text
            for event in events
            if event.type == "content_block_delta" and event.delta.type == "text_delta"
        )
    with client.messages.stream(**ANTHROPIC_ARGUMENTS) as stream:
        return stream.get_final_text()


@pytest.mark.parametrize("how", ["json", "stream", "stream_helper"])
def test_anthropics_own_span_gets_the_step_and_the_answer(
    how: str,
    traced_anthropic: anthropic.Anthropic,
    anthropic_ragprov: Callable[[], None],
    spans: Callable[[], list[ReadableSpan]],
    side_channel: Payloads,
) -> None:
    assert create(traced_anthropic, how) == ANSWER
    baseline = only_span(spans)
    assert baseline.name == "anthropic.messages.create"
    side_channel(baseline)
    anthropic_ragprov()

    assert create(traced_anthropic, how) == ANSWER

    span = spans()[1]
    assert len(spans()) == 2
    assert span.instrumentation_scope == baseline.instrumentation_scope
    pop_exact(span.attributes or {}, plus(baseline, RAGPROV_STEP))
    payload = side_channel(span)
    assert payload is not None
    assert (payload.input_texts, payload.output_text) == ([SYSTEM, QUESTION], ANSWER)


def test_tool_uses_are_added_to_anthropics_own_span(
    llm_server: LLMServer,
    traced_anthropic: anthropic.Anthropic,
    anthropic_ragprov: Callable[[], None],
    spans: Callable[[], list[ReadableSpan]],
) -> None:
    anthropic_ragprov()
    llm_server.script = Script(tool_calls=(ToolCall("toolu_1", "search", {"q": "x"}),))

    create(traced_anthropic, "stream")

    attributes = dict(only_span(spans).attributes or {})
    assert attributes["rag.requested_tool_call_ids"] == ("toolu_1",)
    assert attributes["rag.requested_tool_names"] == ("search",)


def test_an_llm_span_around_the_call_is_enriched_through_anthropics_no_op_span(
    llm_server: LLMServer,
    tracer_provider: TracerProvider,
    anthropic_ragprov: Callable[[], None],
    spans: Callable[[], list[ReadableSpan]],
    side_channel: Payloads,
) -> None:
    """anthropic's own tracing with a no-op tracer (no SDK provider set globally) makes a
    non-recording span current during the request; the span around the call is found through it
    (tests/llm/test_llm_coexistence_real.py runs OpenInference's anthropic instrumentation)."""
    anthropic_ragprov()
    client = anthropic.Anthropic(
        base_url=llm_server.url,
        api_key="test",
        max_retries=0,
        open_telemetry={"tracer_provider": NoOpTracerProvider()},
    )
    other = tracer_provider.get_tracer("another.instrumentation")

    marks = {"openinference.span.kind": "LLM"}

    with other.start_as_current_span("messages.create", attributes=marks):
        assert create(client, "json") == ANSWER

    span = only_span(spans)
    pop_exact(span.attributes or {}, {**marks, **RAGPROV_STEP})
    payload = side_channel(span)
    assert payload is not None
    assert (payload.input_texts, payload.output_text) == ([SYSTEM, QUESTION], ANSWER)


# --------------------------------------------------------------------------- by span attributes


@pytest.mark.parametrize(
    "marks",
    [
        {"openinference.span.kind": "LLM"},
        {"llm.request.type": "chat"},
        {"gen_ai.operation.name": "chat"},
    ],
    ids=["openinference", "openllmetry", "genai"],
)
def test_a_current_llm_span_of_another_instrumentation_is_enriched(
    marks: dict[str, str],
    tracer_provider: TracerProvider,
    with_ragprov: Callable[[], None],
    client: openai.OpenAI,
    spans: Callable[[], list[ReadableSpan]],
    side_channel: Payloads,
) -> None:
    with_ragprov()
    other = tracer_provider.get_tracer("another.instrumentation")

    with other.start_as_current_span("ChatCompletion", attributes=marks):
        chat(client, stream=False)

    span = only_span(spans)
    pop_exact(span.attributes or {}, {**marks, **RAGPROV_STEP})
    payload = side_channel(span)
    assert payload is not None
    assert payload.output_text == ANSWER


@pytest.mark.parametrize(
    "marks",
    [{"gen_ai.operation.name": "invoke_agent"}, {"rag.step_id": "an-enclosing-step"}, {}],
    ids=["agent_span", "already_a_step", "plain_span"],
)
def test_other_current_spans_get_a_ragprov_child_span(
    marks: dict[str, str],
    tracer_provider: TracerProvider,
    with_ragprov: Callable[[], None],
    client: openai.OpenAI,
    spans: Callable[[], list[ReadableSpan]],
) -> None:
    with_ragprov()
    other = tracer_provider.get_tracer("another.instrumentation")

    with other.start_as_current_span("agent", attributes=marks) as parent:
        chat(client, stream=False)

    llm_span, outer = spans()
    assert llm_span.name == f"chat {MODEL}"
    assert llm_span.parent is not None
    assert llm_span.parent.span_id == parent.get_span_context().span_id
    assert outer.attributes == marks


# --------------------------------------------------------------------------- a subclass wrapper


@pytest.fixture
def subclass_wrapper(tracer_provider: TracerProvider) -> Iterator[None]:
    """What OpenInference does (tests/llm/test_llm_coexistence_real.py runs the real one): a
    wrapt wrapper of ``OpenAI.request`` on the subclass, current LLM span around the call,
    set up before ragprov."""
    other = tracer_provider.get_tracer("subclass.instrumentation")

    def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        with other.start_as_current_span("ChatCompletion") as span:
            span.set_attribute("openinference.span.kind", "LLM")
            return wrapped(*args, **kwargs)

    wrapt.wrap_function_wrapper(openai.OpenAI, "request", wrapper)
    yield
    del openai.OpenAI.request


def test_ragprov_slips_beneath_a_wrapper_of_the_subclass_request(
    subclass_wrapper: None,
    with_ragprov: Callable[[], None],
    client: openai.OpenAI,
    spans: Callable[[], list[ReadableSpan]],
    side_channel: Payloads,
) -> None:
    with_ragprov()

    chat(client, stream=False)

    span = only_span(spans)
    pop_exact(span.attributes or {}, {"openinference.span.kind": "LLM", **RAGPROV_STEP})
    payload = side_channel(span)
    assert payload is not None
    assert (payload.input_texts, payload.output_text) == ([SYSTEM, QUESTION], ANSWER)


def test_uninstrumenting_ragprov_gives_the_subclass_wrapper_the_original_back(
    subclass_wrapper: None, tracer_provider: TracerProvider
) -> None:
    original = vars(openai.OpenAI)["request"].__wrapped__
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    assert vars(openai.OpenAI)["request"].__wrapped__ is not original

    instrumentor.uninstrument()

    assert vars(openai.OpenAI)["request"].__wrapped__ is original

"""The anthropic instrumentor, with the real client against the local server.

The client's own tracing is off here (``open_telemetry=False``), so ragprov makes the span;
test_llm_coexistence.py covers the client with its own spans on.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import pytest
from anthropic import _base_client
from llm_support import (
    ANSWER,
    INPUT_TOKENS,
    OUTPUT_TOKENS,
    RESPONSE_MODEL_SUFFIX,
    TIMEOUT_SECONDS,
    LLMServer,
    Script,
    Suppressed,
    ToolCall,
    is_seconds,
    is_uuid7,
    json_equal,
    pop_exact,
)
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.trace import SpanKind, StatusCode

from ragprov import sidechannel
from ragprov.config import CAPTURE_CONTENT_ENV
from ragprov.instrumentation.anthropic import AnthropicInstrumentor

MODEL = "claude-test"
SYSTEM = "Answer from the context only."
QUESTION = "What was Acme Robotics' revenue in 2024?"
ARGUMENTS: dict[str, Any] = {
    "model": MODEL,
    "max_tokens": 128,
    "system": SYSTEM,
    "messages": [{"role": "user", "content": QUESTION}],
    "stop_sequences": ["END"],
    # anthropic 2.x has no sampling parameters of its own; sent as extra body, they are reported.
    "extra_body": {"temperature": 0.2, "top_k": 40},
}
OUTCOMES = {
    "ok": Script(),
    "http_400": Script(status=400),
    "http_500": Script(status=500),
    "timeout": Script(delay=TIMEOUT_SECONDS + 0.3),
}
ERRORS: dict[str, type[Exception]] = {
    "http_400": anthropic.BadRequestError,
    "http_500": anthropic.InternalServerError,
    "timeout": anthropic.APITimeoutError,
}
ORIGINALS = {
    (owner, name): vars(owner)[name]
    for owner, name in (
        (_base_client.SyncAPIClient, "_request"),
        (_base_client.AsyncAPIClient, "_request"),
        (_base_client, "finish_api_call_span"),
    )
}


@pytest.fixture
def instrumented(tracer_provider: TracerProvider) -> Iterator[AnthropicInstrumentor]:
    instrumentor = AnthropicInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    yield instrumentor
    instrumentor.uninstrument()


@pytest.fixture
def client(llm_server: LLMServer, instrumented: AnthropicInstrumentor) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=llm_server.url, api_key="test", max_retries=0, open_telemetry=False
    )


@pytest.fixture
def async_client(
    llm_server: LLMServer, instrumented: AnthropicInstrumentor
) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(
        base_url=llm_server.url, api_key="test", max_retries=0, open_telemetry=False
    )


def one_span(spans: Callable[[], list[ReadableSpan]]) -> ReadableSpan:
    finished = spans()
    assert len(finished) == 1, [span.name for span in finished]
    return finished[0]


def read_message(result: Any, stream: bool) -> str:
    if not stream:
        return "".join(block.text for block in result.content if block.type == "text")
    return "".join(
        event.delta.text
        for event in result
        if event.type == "content_block_delta" and event.delta.type == "text_delta"
    )


async def aread_message(result: Any, stream: bool) -> str:
    if not stream:
        return read_message(result, False)
    return "".join(
        [
            event.delta.text
            async for event in result
            if event.type == "content_block_delta" and event.delta.type == "text_delta"
        ]
    )


def request_attributes(server: LLMServer, *, stream: bool) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "anthropic",
        "gen_ai.request.model": MODEL,
        "server.address": server.host,
        "server.port": server.port,
        "gen_ai.request.max_tokens": 128,
        "gen_ai.request.temperature": 0.2,
        "gen_ai.request.top_k": 40.0,
        "gen_ai.request.stop_sequences": ["END"],
        "rag.step_id": is_uuid7,
        "rag.transformation_type": "generation",
    }
    if stream:
        attributes["gen_ai.request.stream"] = True
    return attributes


def response_attributes(*, stream: bool) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "gen_ai.response.id": "msg_test",
        "gen_ai.response.model": MODEL + RESPONSE_MODEL_SUFFIX,
        "gen_ai.response.finish_reasons": ["end_turn"],
        # Anthropic's input_tokens exclude cached tokens; the convention adds them back.
        "gen_ai.usage.input_tokens": INPUT_TOKENS + 4,
        "gen_ai.usage.output_tokens": OUTPUT_TOKENS,
        "gen_ai.usage.cache_read.input_tokens": 4,
        "gen_ai.usage.cache_creation.input_tokens": 0,
    }
    if stream:
        attributes["gen_ai.response.time_to_first_chunk"] = is_seconds
    return attributes


@pytest.mark.parametrize("capture", [False, True], ids=["content_off", "content_on"])
@pytest.mark.parametrize("outcome", list(OUTCOMES))
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_message_is_one_genai_span_and_one_step(
    mode: str,
    stream: bool,
    outcome: str,
    capture: bool,
    llm_server: LLMServer,
    client: anthropic.Anthropic,
    async_client: anthropic.AsyncAnthropic,
    run: Callable[[Any], Any],
    spans: Callable[[], list[ReadableSpan]],
    side_channel: Callable[[ReadableSpan], sidechannel.StepPayload | None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if capture:
        monkeypatch.setenv(CAPTURE_CONTENT_ENV, "true")
    llm_server.script = OUTCOMES[outcome]
    arguments = {**ARGUMENTS, "stream": stream}
    if outcome == "timeout":
        arguments["timeout"] = TIMEOUT_SECONDS

    error: BaseException | None = None
    try:
        if mode == "sync":
            answer = read_message(client.messages.create(**arguments), stream)
        else:

            async def call() -> str:
                return await aread_message(await async_client.messages.create(**arguments), stream)

            answer = run(call())
    except Exception as raised:
        error = raised

    span = one_span(spans)
    assert span.name == f"chat {MODEL}"
    assert span.kind is SpanKind.CLIENT
    expected = request_attributes(llm_server, stream=stream)
    if capture:
        expected["gen_ai.system_instructions"] = json_equal([{"type": "text", "content": SYSTEM}])
        expected["gen_ai.input.messages"] = json_equal(
            [{"role": "user", "parts": [{"type": "text", "content": QUESTION}]}]
        )
    payload = side_channel(span)
    assert payload is not None
    assert payload.input_texts == [SYSTEM, QUESTION]

    if outcome == "ok":
        assert error is None
        assert answer == ANSWER
        expected.update(response_attributes(stream=stream))
        if capture:
            expected["gen_ai.output.messages"] = json_equal(
                [
                    {
                        "role": "assistant",
                        "parts": [{"type": "text", "content": ANSWER}],
                        "finish_reason": "stop",
                    }
                ]
            )
        assert span.status.status_code is StatusCode.UNSET
        assert payload.output_text == ANSWER
    else:
        assert type(error) is ERRORS[outcome]
        expected["error.type"] = ERRORS[outcome].__qualname__
        assert span.status.status_code is StatusCode.ERROR
        assert [event.name for event in span.events] == ["exception"]
        assert payload.output_text is None
    pop_exact(span.attributes or {}, expected)


# --------------------------------------------------------------------------- messages.stream()


def test_the_message_stream_helper_is_one_span_with_the_final_text(
    client: anthropic.Anthropic,
    spans: Callable[[], list[ReadableSpan]],
    side_channel: Callable[[ReadableSpan], sidechannel.StepPayload | None],
) -> None:
    with client.messages.stream(**ARGUMENTS) as stream:
        assert spans() == []
        final = stream.get_final_message()

    assert final.content[0].text == ANSWER  # type: ignore[union-attr]
    span = one_span(spans)
    attributes = dict(span.attributes or {})
    assert attributes["gen_ai.request.stream"] is True
    assert attributes["gen_ai.usage.output_tokens"] == OUTPUT_TOKENS
    payload = side_channel(span)
    assert payload is not None
    assert payload.output_text == ANSWER


def test_a_message_stream_left_early_ends_its_span_on_exit(
    client: anthropic.Anthropic,
    spans: Callable[[], list[ReadableSpan]],
    side_channel: Callable[[ReadableSpan], sidechannel.StepPayload | None],
) -> None:
    with client.messages.stream(**ARGUMENTS) as stream:
        first = next(iter(stream.text_stream))

    payload = side_channel(one_span(spans))
    assert payload is not None
    assert payload.output_text == first


def test_the_async_message_stream_helper_is_one_span(
    async_client: anthropic.AsyncAnthropic,
    run: Callable[[Any], Any],
    spans: Callable[[], list[ReadableSpan]],
    side_channel: Callable[[ReadableSpan], sidechannel.StepPayload | None],
) -> None:
    async def scenario() -> str:
        async with async_client.messages.stream(**ARGUMENTS) as stream:
            return "".join([text async for text in stream.text_stream])

    assert run(scenario()) == ANSWER
    payload = side_channel(one_span(spans))
    assert payload is not None
    assert payload.output_text == ANSWER


def test_a_raw_stream_dropped_unread_ends_its_span_when_collected(
    client: anthropic.Anthropic, spans: Callable[[], list[ReadableSpan]]
) -> None:
    stream = client.messages.create(**ARGUMENTS, stream=True)
    next(stream)

    del stream
    gc.collect()

    assert one_span(spans).status.status_code is StatusCode.UNSET


def test_with_raw_response_is_one_span(
    client: anthropic.Anthropic,
    spans: Callable[[], list[ReadableSpan]],
    side_channel: Callable[[ReadableSpan], sidechannel.StepPayload | None],
) -> None:
    raw = client.messages.with_raw_response.create(**ARGUMENTS)

    assert read_message(raw.parse(), False) == ANSWER
    payload = side_channel(one_span(spans))
    assert payload is not None
    assert payload.output_text == ANSWER


# --------------------------------------------------------------------------- tool use


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_requested_tool_uses_are_recorded_for_the_next_steps_tool_spans(
    stream: bool,
    llm_server: LLMServer,
    client: anthropic.Anthropic,
    spans: Callable[[], list[ReadableSpan]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(CAPTURE_CONTENT_ENV, "true")
    call = ToolCall("toolu_1", "search_reports", {"query": "Acme revenue 2024"})
    llm_server.script = Script(answer="Let me search.", tool_calls=(call,))

    read_message(client.messages.create(**ARGUMENTS, stream=stream), stream)

    attributes = dict(one_span(spans).attributes or {})
    assert attributes["rag.requested_tool_call_ids"] == ("toolu_1",)
    assert attributes["rag.requested_tool_names"] == ("search_reports",)
    assert attributes["gen_ai.response.finish_reasons"] == ("tool_use",)
    assert json_equal(
        [
            {
                "role": "assistant",
                "parts": [
                    {"type": "text", "content": "Let me search."},
                    {
                        "type": "tool_call",
                        "id": "toolu_1",
                        "name": "search_reports",
                        "arguments": {"query": "Acme revenue 2024"},
                    },
                ],
                "finish_reason": "tool_call",
            }
        ]
    )(attributes["gen_ai.output.messages"])


def test_tool_results_in_the_history_are_input_text(
    client: anthropic.Anthropic,
    spans: Callable[[], list[ReadableSpan]],
    side_channel: Callable[[ReadableSpan], sidechannel.StepPayload | None],
) -> None:
    messages = [
        {"role": "user", "content": QUESTION},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_1", "name": "search", "input": {}}],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "Revenue: $12.4M."}
            ],
        },
    ]

    client.messages.create(model=MODEL, max_tokens=64, messages=messages)

    payload = side_channel(one_span(spans))
    assert payload is not None
    assert payload.input_texts == [QUESTION, "Revenue: $12.4M."]


# --------------------------------------------------------------------------- safety


def test_suppressed_instrumentation_creates_no_span(
    client: anthropic.Anthropic, spans: Callable[[], list[ReadableSpan]]
) -> None:
    with Suppressed():
        message = client.messages.create(**ARGUMENTS)

    assert read_message(message, False) == ANSWER
    assert spans() == []


def test_other_api_calls_pass_through_without_a_span(
    client: anthropic.Anthropic, spans: Callable[[], list[ReadableSpan]]
) -> None:
    with pytest.raises(anthropic.APIStatusError):
        client.messages.count_tokens(model=MODEL, messages=ARGUMENTS["messages"])

    assert spans() == []


def test_uninstrument_restores_the_original_functions(tracer_provider: TracerProvider) -> None:
    instrumentor = AnthropicInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    assert all(vars(owner)[name] is not original for (owner, name), original in ORIGINALS.items())

    instrumentor.uninstrument()

    assert all(vars(owner)[name] is original for (owner, name), original in ORIGINALS.items())

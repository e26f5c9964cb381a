"""The openai instrumentor, with the real client against the local server.

Each LLM call is one ``chat {model}`` span (kind CLIENT) with the GenAI request and response
attributes, a ``rag.step_id`` and ``rag.transformation_type = generation``; the prompt texts and
the answer go to the provenance side channel, and become attributes only with content capture.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import openai
import pytest
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
from openai._base_client import AsyncAPIClient, SyncAPIClient
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import SpanKind, StatusCode

from ragprov import sidechannel
from ragprov.config import CAPTURE_CONTENT_ENV
from ragprov.instrumentation import openai as ragprov_openai
from ragprov.instrumentation._llm import LLMTracer
from ragprov.instrumentation._llm_model import ResultTypes, Route
from ragprov.instrumentation._llm_streams import SyncStreamProxy
from ragprov.instrumentation.openai import OpenAIInstrumentor

MODEL = "gpt-test"
SYSTEM = "Answer from the context only."
QUESTION = "What was Acme Robotics' revenue in 2024?"
MESSAGES = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}]
PARAMETERS = {"temperature": 0.2, "top_p": 0.9, "max_tokens": 128, "stop": ["END"]}

OUTCOMES = {
    "ok": Script(),
    "http_400": Script(status=400),
    "http_500": Script(status=500),
    "timeout": Script(delay=TIMEOUT_SECONDS + 0.3),
}
ERRORS: dict[str, type[Exception]] = {
    "http_400": openai.BadRequestError,
    "http_500": openai.InternalServerError,
    "timeout": openai.APITimeoutError,
}

SYNC_ORIGINAL = SyncAPIClient.__dict__["request"]
ASYNC_ORIGINAL = AsyncAPIClient.__dict__["request"]


@pytest.fixture
def instrumented(tracer_provider: TracerProvider) -> Iterator[OpenAIInstrumentor]:
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    yield instrumentor
    instrumentor.uninstrument()


@pytest.fixture
def client(llm_server: LLMServer, instrumented: OpenAIInstrumentor) -> openai.OpenAI:
    return openai.OpenAI(base_url=llm_server.openai_url, api_key="test", max_retries=0)


@pytest.fixture
def async_client(llm_server: LLMServer, instrumented: OpenAIInstrumentor) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=llm_server.openai_url, api_key="test", max_retries=0)


def one_span(spans: Callable[[], list[ReadableSpan]]) -> ReadableSpan:
    finished = spans()
    assert len(finished) == 1, [span.name for span in finished]
    return finished[0]


def chat_request_attributes(server: LLMServer, *, stream: bool = False) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": MODEL,
        "server.address": server.host,
        "server.port": server.port,
        "openai.api.type": "chat_completions",
        "gen_ai.request.temperature": 0.2,
        "gen_ai.request.top_p": 0.9,
        "gen_ai.request.max_tokens": 128,
        "gen_ai.request.stop_sequences": ["END"],
        "rag.step_id": is_uuid7,
        "rag.transformation_type": "generation",
    }
    if stream:
        attributes["gen_ai.request.stream"] = True
    return attributes


def chat_response_attributes(*, stream: bool = False) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "gen_ai.response.id": "chatcmpl-test",
        "gen_ai.response.model": MODEL + RESPONSE_MODEL_SUFFIX,
        "gen_ai.response.finish_reasons": ["stop"],
        "gen_ai.usage.input_tokens": INPUT_TOKENS,
        "gen_ai.usage.output_tokens": OUTPUT_TOKENS,
        "openai.response.system_fingerprint": "fp_test",
    }
    if stream:
        attributes["gen_ai.response.time_to_first_chunk"] = is_seconds
    return attributes


INPUT_MESSAGES = [
    {"role": "system", "parts": [{"type": "text", "content": SYSTEM}]},
    {"role": "user", "parts": [{"type": "text", "content": QUESTION}]},
]


def output_messages(text: str, finish_reason: str = "stop") -> list[dict[str, Any]]:
    return [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": text}],
            "finish_reason": finish_reason,
        }
    ]


def read_chat(result: Any, stream: bool) -> str:
    if not stream:
        return str(result.choices[0].message.content)
    return "".join(chunk.choices[0].delta.content or "" for chunk in result if chunk.choices)


async def aread_chat(result: Any, stream: bool) -> str:
    if not stream:
        return str(result.choices[0].message.content)
    return "".join(
        [chunk.choices[0].delta.content or "" async for chunk in result if chunk.choices]
    )


# --------------------------------------------------------------------------- the matrix


@pytest.mark.parametrize("capture", [False, True], ids=["content_off", "content_on"])
@pytest.mark.parametrize("outcome", list(OUTCOMES))
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_chat_completion_is_one_genai_span_and_one_step(
    mode: str,
    stream: bool,
    outcome: str,
    capture: bool,
    llm_server: LLMServer,
    client: openai.OpenAI,
    async_client: openai.AsyncOpenAI,
    run: Callable[[Any], Any],
    spans: Callable[[], list[ReadableSpan]],
    side_channel: Callable[[ReadableSpan], sidechannel.StepPayload | None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if capture:
        monkeypatch.setenv(CAPTURE_CONTENT_ENV, "true")
    llm_server.script = OUTCOMES[outcome]
    arguments: dict[str, Any] = {"model": MODEL, "messages": MESSAGES, **PARAMETERS}
    if stream:
        arguments.update(stream=True, stream_options={"include_usage": True})
    if outcome == "timeout":
        arguments["timeout"] = TIMEOUT_SECONDS

    error: BaseException | None = None
    try:
        if mode == "sync":
            answer = read_chat(client.chat.completions.create(**arguments), stream)
        else:

            async def call() -> str:
                return await aread_chat(
                    await async_client.chat.completions.create(**arguments), stream
                )

            answer = run(call())
    except Exception as raised:
        error = raised

    span = one_span(spans)
    assert span.name == f"chat {MODEL}"
    assert span.kind is SpanKind.CLIENT
    assert span.instrumentation_scope is not None
    assert span.instrumentation_scope.name == "ragprov.instrumentation.openai"
    expected = chat_request_attributes(llm_server, stream=stream)
    if capture:
        expected["gen_ai.input.messages"] = json_equal(INPUT_MESSAGES)
    payload = side_channel(span)
    assert payload is not None
    assert payload.input_texts == [SYSTEM, QUESTION]

    if outcome == "ok":
        assert error is None
        assert answer == ANSWER
        expected.update(chat_response_attributes(stream=stream))
        if capture:
            expected["gen_ai.output.messages"] = json_equal(output_messages(ANSWER))
        assert span.status.status_code is StatusCode.UNSET
        assert span.events == ()
        assert payload.output_text == ANSWER
    else:
        assert type(error) is ERRORS[outcome]
        expected["error.type"] = ERRORS[outcome].__qualname__
        assert span.status.status_code is StatusCode.ERROR
        assert [event.name for event in span.events] == ["exception"]
        assert payload.output_text is None
    pop_exact(span.attributes or {}, expected)


def test_content_stays_out_of_attributes_unless_capture_is_on(
    client: openai.OpenAI, spans: Callable[[], list[ReadableSpan]]
) -> None:
    client.chat.completions.create(model=MODEL, messages=MESSAGES)

    attributes = one_span(spans).attributes or {}
    assert not any(ANSWER in str(value) or QUESTION in str(value) for value in attributes.values())


# --------------------------------------------------------------------------- streams


def test_a_stream_closed_early_ends_its_span_with_the_text_read_so_far(
    client: openai.OpenAI,
    spans: Callable[[], list[ReadableSpan]],
    side_channel: Callable[[ReadableSpan], sidechannel.StepPayload | None],
) -> None:
    stream = client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
    next(stream)  # the role chunk
    first = next(stream).choices[0].delta.content
    assert spans() == []

    stream.close()

    span = one_span(spans)
    assert span.status.status_code is StatusCode.UNSET
    payload = side_channel(span)
    assert payload is not None
    assert payload.output_text == first


def test_a_stream_read_in_two_loops_is_one_span_with_the_whole_answer(
    client: openai.OpenAI,
    spans: Callable[[], list[ReadableSpan]],
    side_channel: Callable[[ReadableSpan], sidechannel.StepPayload | None],
) -> None:
    stream = client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
    for _ in stream:
        break
    assert spans() == []

    assert read_chat(stream, True) == ANSWER

    payload = side_channel(one_span(spans))
    assert payload is not None
    assert payload.output_text == ANSWER


def test_a_stream_left_in_a_loop_and_dropped_ends_its_span(
    client: openai.OpenAI, spans: Callable[[], list[ReadableSpan]]
) -> None:
    def first_words() -> str:
        stream = client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
        for chunk in stream:
            if chunk.choices[0].delta.content:
                return str(chunk.choices[0].delta.content)
        return ""

    assert ANSWER.startswith(first_words())
    gc.collect()

    assert one_span(spans).status.status_code is StatusCode.UNSET


def test_a_stream_used_as_a_context_manager_ends_its_span_on_exit(
    client: openai.OpenAI, spans: Callable[[], list[ReadableSpan]]
) -> None:
    with client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True) as stream:
        assert isinstance(stream, openai.Stream)
        next(stream)
        assert spans() == []

    assert one_span(spans).attributes["gen_ai.response.id"] == "chatcmpl-test"  # type: ignore[index]


def test_a_stream_dropped_unread_ends_its_span_when_collected(
    client: openai.OpenAI,
    spans: Callable[[], list[ReadableSpan]],
    side_channel: Callable[[ReadableSpan], sidechannel.StepPayload | None],
) -> None:
    stream = client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
    next(stream)
    text = next(stream).choices[0].delta.content

    del stream
    gc.collect()

    payload = side_channel(one_span(spans))
    assert payload is not None
    assert payload.output_text == text


def test_async_streams_end_their_span_when_closed_exited_or_collected(
    async_client: openai.AsyncOpenAI,
    run: Callable[[Any], Any],
    spans: Callable[[], list[ReadableSpan]],
) -> None:
    async def scenario() -> None:
        closed = await async_client.chat.completions.create(
            model=MODEL, messages=MESSAGES, stream=True
        )
        await closed.__anext__()
        await closed.close()
        assert len(spans()) == 1

        async with await async_client.chat.completions.create(
            model=MODEL, messages=MESSAGES, stream=True
        ) as exited:
            assert isinstance(exited, openai.AsyncStream)
            await exited.__anext__()
        assert len(spans()) == 2

        dropped = await async_client.chat.completions.create(
            model=MODEL, messages=MESSAGES, stream=True
        )
        await dropped.__anext__()
        await dropped.close()  # the HTTP response; the span would also end on collection
        del dropped
        gc.collect()
        assert len(spans()) == 3

        collected = await async_client.chat.completions.create(
            model=MODEL, messages=MESSAGES, stream=True
        )
        await collected.__anext__()
        del collected
        gc.collect()
        assert len(spans()) == 4

    run(scenario())
    assert [span.status.status_code for span in spans()] == [StatusCode.UNSET] * 4


def test_the_stream_helper_is_observed_through_the_stream_it_reads(
    client: openai.OpenAI,
    spans: Callable[[], list[ReadableSpan]],
    side_channel: Callable[[ReadableSpan], sidechannel.StepPayload | None],
) -> None:
    with client.chat.completions.stream(model=MODEL, messages=MESSAGES) as stream:
        final = stream.get_final_completion()

    assert final.choices[0].message.content == ANSWER
    span = one_span(spans)
    attributes = dict(span.attributes or {})
    assert attributes["gen_ai.request.stream"] is True
    assert attributes["gen_ai.response.finish_reasons"] == ("stop",)
    payload = side_channel(span)
    assert payload is not None
    assert payload.output_text == ANSWER


def test_a_sampled_out_call_returns_the_clients_own_stream(
    llm_server: LLMServer, side_channel: Callable[[ReadableSpan], Any]
) -> None:
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=TracerProvider(sampler=ALWAYS_OFF))
    try:
        client = openai.OpenAI(base_url=llm_server.openai_url, api_key="test", max_retries=0)
        stream = client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
        assert type(stream) is openai.Stream
        assert read_chat(stream, True) == ANSWER
    finally:
        instrumentor.uninstrument()


# --------------------------------------------------------------------------- other entry points


def test_parse_with_a_response_format_is_a_chat_span(
    client: openai.OpenAI, spans: Callable[[], list[ReadableSpan]]
) -> None:
    completion = client.chat.completions.parse(
        model=MODEL, messages=MESSAGES, response_format={"type": "json_object"}
    )

    assert completion.choices[0].message.content == ANSWER
    attributes = dict(one_span(spans).attributes or {})
    assert attributes["gen_ai.output.type"] == "json"
    assert attributes["gen_ai.response.id"] == "chatcmpl-test"


def test_every_chat_parameter_the_body_sets_is_a_request_attribute(
    llm_server: LLMServer, client: openai.OpenAI, spans: Callable[[], list[ReadableSpan]]
) -> None:
    client.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        temperature=1,
        top_p=0.5,
        frequency_penalty=0.1,
        presence_penalty=-0.2,
        max_tokens=128,
        max_completion_tokens=64,
        seed=7,
        n=2,
        stop="END",
        response_format={"type": "text"},
        service_tier="flex",
    )

    request_attributes = {
        key: value
        for key, value in (one_span(spans).attributes or {}).items()
        if key.startswith(("gen_ai.request.", "gen_ai.output.", "openai.request."))
    }
    assert request_attributes == {
        "gen_ai.request.model": MODEL,
        "gen_ai.request.temperature": 1.0,
        "gen_ai.request.top_p": 0.5,
        "gen_ai.request.frequency_penalty": 0.1,
        "gen_ai.request.presence_penalty": -0.2,
        "gen_ai.request.max_tokens": 64,  # max_completion_tokens wins over max_tokens
        "gen_ai.request.seed": 7,
        "gen_ai.request.choice.count": 2,
        "gen_ai.request.stop_sequences": ("END",),
        "gen_ai.output.type": "text",
        "openai.request.service_tier": "flex",
    }


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_with_raw_response_is_one_span_whether_or_not_it_is_parsed(
    stream: bool,
    client: openai.OpenAI,
    spans: Callable[[], list[ReadableSpan]],
    side_channel: Callable[[ReadableSpan], sidechannel.StepPayload | None],
) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=MESSAGES, stream=stream
    )

    assert raw.headers["x-request-id"] == "req_test"
    assert read_chat(raw.parse(), stream) == ANSWER
    span = one_span(spans)
    assert span.attributes["gen_ai.response.finish_reasons"] == ("stop",)  # type: ignore[index]
    payload = side_channel(span)
    assert payload is not None
    assert payload.output_text == ANSWER


def test_with_streaming_response_ends_its_span_when_parsed(
    client: openai.OpenAI, spans: Callable[[], list[ReadableSpan]]
) -> None:
    with client.chat.completions.with_streaming_response.create(
        model=MODEL, messages=MESSAGES
    ) as response:
        assert spans() == []
        assert response.parse().choices[0].message.content == ANSWER
        assert len(spans()) == 1

    assert one_span(spans).attributes["gen_ai.response.id"] == "chatcmpl-test"  # type: ignore[index]


def test_with_streaming_response_left_unparsed_ends_its_span_on_close(
    client: openai.OpenAI, spans: Callable[[], list[ReadableSpan]]
) -> None:
    with client.chat.completions.with_streaming_response.create(
        model=MODEL, messages=MESSAGES
    ) as response:
        assert response.status_code == 200

    span = one_span(spans)
    assert "gen_ai.response.id" not in (span.attributes or {})
    assert span.status.status_code is StatusCode.UNSET


# --------------------------------------------------------------------------- responses API


def responses_attributes(server: LLMServer, *, stream: bool) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": MODEL,
        "server.address": server.host,
        "server.port": server.port,
        "openai.api.type": "responses",
        "gen_ai.request.max_tokens": 64,
        "rag.step_id": is_uuid7,
        "rag.transformation_type": "generation",
        "gen_ai.response.id": "resp_test",
        "gen_ai.response.model": MODEL + RESPONSE_MODEL_SUFFIX,
        "gen_ai.response.finish_reasons": ["stop"],
        "gen_ai.usage.input_tokens": INPUT_TOKENS,
        "gen_ai.usage.output_tokens": OUTPUT_TOKENS,
        "gen_ai.usage.cache_read.input_tokens": 0,
        "gen_ai.usage.reasoning.output_tokens": 0,
    }
    if stream:
        attributes["gen_ai.request.stream"] = True
        attributes["gen_ai.response.time_to_first_chunk"] = is_seconds
    return attributes


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_responses_call_is_a_chat_span_with_its_instructions_as_input(
    mode: str,
    stream: bool,
    llm_server: LLMServer,
    client: openai.OpenAI,
    async_client: openai.AsyncOpenAI,
    run: Callable[[Any], Any],
    spans: Callable[[], list[ReadableSpan]],
    side_channel: Callable[[ReadableSpan], sidechannel.StepPayload | None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(CAPTURE_CONTENT_ENV, "true")
    arguments: dict[str, Any] = {
        "model": MODEL,
        "instructions": SYSTEM,
        "input": QUESTION,
        "max_output_tokens": 64,
        "stream": stream,
    }

    if mode == "sync":
        result = client.responses.create(**arguments)
        text = "".join(getattr(e, "delta", "") for e in result) if stream else result.output_text
    else:

        async def call() -> str:
            result = await async_client.responses.create(**arguments)
            if not stream:
                return str(result.output_text)
            return "".join([getattr(event, "delta", "") async for event in result])

        text = run(call())

    assert text == ANSWER
    span = one_span(spans)
    assert span.name == f"chat {MODEL}"
    expected = responses_attributes(llm_server, stream=stream)
    expected["gen_ai.system_instructions"] = json_equal([{"type": "text", "content": SYSTEM}])
    expected["gen_ai.input.messages"] = json_equal(
        [{"role": "user", "parts": [{"type": "text", "content": QUESTION}]}]
    )
    expected["gen_ai.output.messages"] = json_equal(output_messages(ANSWER))
    pop_exact(span.attributes or {}, expected)
    payload = side_channel(span)
    assert payload is not None
    assert (payload.input_texts, payload.output_text) == ([SYSTEM, QUESTION], ANSWER)


def test_the_responses_stream_helper_is_one_span(
    client: openai.OpenAI, spans: Callable[[], list[ReadableSpan]]
) -> None:
    with client.responses.stream(model=MODEL, input=QUESTION) as stream:
        final = stream.get_final_response()

    assert final.output_text == ANSWER
    assert one_span(spans).attributes["gen_ai.response.id"] == "resp_test"  # type: ignore[index]


def test_a_failed_responses_call_records_the_error(
    llm_server: LLMServer, client: openai.OpenAI, spans: Callable[[], list[ReadableSpan]]
) -> None:
    llm_server.script = Script(status=500)

    with pytest.raises(openai.InternalServerError):
        client.responses.create(model=MODEL, input=QUESTION)

    span = one_span(spans)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "InternalServerError"  # type: ignore[index]


# --------------------------------------------------------------------------- tool calls

TOOL_CALLS = (
    ToolCall("call_1", "search_reports", {"query": "Acme revenue 2024"}),
    ToolCall("call_2", "get_weather", {"city": "Berlin"}),
)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_requested_tool_calls_are_recorded_for_the_next_steps_tool_spans(
    stream: bool,
    llm_server: LLMServer,
    client: openai.OpenAI,
    spans: Callable[[], list[ReadableSpan]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(CAPTURE_CONTENT_ENV, "true")
    llm_server.script = Script(answer="", tool_calls=TOOL_CALLS)

    read_chat(client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=stream), stream)

    attributes = dict(one_span(spans).attributes or {})
    assert attributes["rag.requested_tool_call_ids"] == ("call_1", "call_2")
    assert attributes["rag.requested_tool_names"] == ("search_reports", "get_weather")
    assert attributes["gen_ai.response.finish_reasons"] == ("tool_calls",)
    assert json.loads(str(attributes["gen_ai.output.messages"])) == [
        {
            "role": "assistant",
            "parts": [
                {"type": "tool_call", "id": call.id, "name": call.name, "arguments": call.arguments}
                for call in TOOL_CALLS
            ],
            "finish_reason": "tool_call",
        }
    ]


def test_responses_function_calls_are_recorded_too(
    llm_server: LLMServer, client: openai.OpenAI, spans: Callable[[], list[ReadableSpan]]
) -> None:
    llm_server.script = Script(answer="", tool_calls=TOOL_CALLS[:1])

    client.responses.create(model=MODEL, input=QUESTION)

    attributes = dict(one_span(spans).attributes or {})
    assert attributes["rag.requested_tool_call_ids"] == ("call_1",)
    assert attributes["rag.requested_tool_names"] == ("search_reports",)
    assert attributes["gen_ai.response.finish_reasons"] == ("tool_call",)


def test_tool_results_in_the_history_are_input_text(
    client: openai.OpenAI,
    spans: Callable[[], list[ReadableSpan]],
    side_channel: Callable[[ReadableSpan], sidechannel.StepPayload | None],
) -> None:
    history = [
        *MESSAGES,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "search_reports", "arguments": "{}"},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "Revenue was $12.4M."},
    ]

    client.chat.completions.create(model=MODEL, messages=history)

    payload = side_channel(one_span(spans))
    assert payload is not None
    assert payload.input_texts == [SYSTEM, QUESTION, "Revenue was $12.4M."]


# --------------------------------------------------------------------------- embeddings


def test_embeddings_get_an_embeddings_span_that_is_not_a_step(
    llm_server: LLMServer,
    client: openai.OpenAI,
    spans: Callable[[], list[ReadableSpan]],
    side_channel: Callable[[ReadableSpan], sidechannel.StepPayload | None],
) -> None:
    result = client.embeddings.create(model="embed-test", input=["a", "b"], dimensions=3)

    assert len(result.data) == 2
    span = one_span(spans)
    assert span.name == "embeddings embed-test"
    assert span.kind is SpanKind.CLIENT
    pop_exact(
        span.attributes or {},
        {
            "gen_ai.operation.name": "embeddings",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "embed-test",
            "server.address": llm_server.host,
            "server.port": llm_server.port,
            "gen_ai.embeddings.dimension.count": 3,
            "gen_ai.request.encoding_formats": ["base64"],
            "gen_ai.response.model": "embed-test",
            "gen_ai.usage.input_tokens": 5,
        },
    )
    assert side_channel(span) is None


# --------------------------------------------------------------------------- safety


def test_other_api_calls_pass_through_without_a_span(
    llm_server: LLMServer, client: openai.OpenAI, spans: Callable[[], list[ReadableSpan]]
) -> None:
    with pytest.raises(openai.APIStatusError):
        client.models.list()  # the local server has no GET endpoints

    assert spans() == []


def test_suppressed_instrumentation_creates_no_span(
    client: openai.OpenAI,
    spans: Callable[[], list[ReadableSpan]],
) -> None:
    with Suppressed():
        completion = client.chat.completions.create(model=MODEL, messages=MESSAGES)

    assert completion.choices[0].message.content == ANSWER
    assert spans() == []


def test_uninstrument_restores_the_original_methods(tracer_provider: TracerProvider) -> None:
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    assert SyncAPIClient.__dict__["request"] is not SYNC_ORIGINAL
    assert AsyncAPIClient.__dict__["request"] is not ASYNC_ORIGINAL

    instrumentor.uninstrument()

    assert SyncAPIClient.__dict__["request"] is SYNC_ORIGINAL
    assert AsyncAPIClient.__dict__["request"] is ASYNC_ORIGINAL


def fake_options(path: str = "/chat/completions") -> SimpleNamespace:
    return SimpleNamespace(
        method="post", url=path, json_data={"model": MODEL, "messages": MESSAGES}, extra_json=None
    )


def test_the_clients_exception_reaches_the_caller_as_the_same_object(
    tracer_provider: TracerProvider, spans: Callable[[], list[ReadableSpan]]
) -> None:
    tracer = LLMTracer(
        ragprov_openai._OpenAIAdapter(ResultTypes()), tracer_provider.get_tracer("tests")
    )
    wrapper = tracer.sync_wrapper()
    failure = ConnectionError("the network is down")

    def request(*args: Any, **kwargs: Any) -> Any:
        raise failure

    with pytest.raises(ConnectionError) as raised:
        wrapper(request, SimpleNamespace(), (object, fake_options()), {})

    assert raised.value is failure
    assert one_span(spans).attributes["error.type"] == "ConnectionError"  # type: ignore[index]


def test_instrumentation_errors_are_logged_once_and_never_break_the_call(
    client: openai.OpenAI,
    spans: Callable[[], list[ReadableSpan]],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(*args: Any) -> Any:
        raise RuntimeError("a bug in ragprov")

    chat = ragprov_openai.ROUTES["/chat/completions"]
    monkeypatch.setitem(
        ragprov_openai.ROUTES,
        "/chat/completions",
        Route(chat.operation, chat.describe, broken, broken),
    )

    completion = client.chat.completions.create(model=MODEL, messages=MESSAGES)
    stream = client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)

    assert completion.choices[0].message.content == ANSWER
    assert isinstance(stream, SyncStreamProxy)
    assert read_chat(stream, True) == ANSWER
    assert len(spans()) == 2  # both spans still end
    assert [record.levelname for record in caplog.records].count("WARNING") <= 2

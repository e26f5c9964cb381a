"""Instrumentation of the ``openai`` client: chat completions, responses and embeddings.

**One choke point.** Every API call of ``OpenAI`` / ``AsyncOpenAI`` (and Azure) goes through
``SyncAPIClient.request`` / ``AsyncAPIClient.request`` in ``openai/_base_client.py``: it receives
the request options (method, URL path, JSON body) and the ``stream`` flag, runs the retries, and
returns the parsed response, the ``Stream`` / ``AsyncStream`` of a streamed call, or the raw
response of ``with_raw_response`` / ``with_streaming_response``. ragprov patches only these two
methods and dispatches on the path:

* ``POST /chat/completions`` — ``chat.completions.create`` (``stream=True`` too),
  ``chat.completions.parse`` and ``chat.completions.stream`` (its ``ChatCompletionStream`` reads
  the stream ``request`` returned, so the same proxy observes it) → ``chat {model}``,
  ``openai.api.type = chat_completions``;
* ``POST /responses`` — ``responses.create`` / ``parse`` / ``stream`` → ``chat {model}`` (the
  GenAI convention's operation for inference), ``openai.api.type = responses``;
* ``POST /embeddings`` → ``embeddings {model}`` (not a step: no ``rag.step_id``, no side channel).

Any other path passes through untouched. Because the patch sits at the request path, a
higher-level instrumentation of the same client (opentelemetry-instrumentation-openai-v2,
OpenLLMetry) has its span current when ragprov runs: ragprov then adds its step attributes to
that span instead of creating a second one (see ``docs/llm-clients.md``).

``gen_ai.response.finish_reasons`` are OpenAI's own values for chat completions (``stop``,
``length``, ``tool_calls`` …); a Responses API call reports ``stop`` (``tool_call`` when it
requested function calls) when completed, the ``incomplete_details.reason`` when incomplete,
``error`` when failed. Usage comes from the response, or from the final chunk of a stream
(``stream_options={"include_usage": True}``).

Usage: ``OpenAIInstrumentor().instrument(tracer_provider=...)`` or ``opentelemetry-instrument``
(entry point ``ragprov_openai``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any

from opentelemetry import trace

from ragprov.instrumentation._genai_names import (
    CHAT_OPERATION,
    EMBEDDINGS_OPERATION,
    GEN_AI_EMBEDDINGS_DIMENSION_COUNT,
    GEN_AI_OUTPUT_TYPE,
    GEN_AI_REQUEST_CHOICE_COUNT,
    GEN_AI_REQUEST_ENCODING_FORMATS,
    GEN_AI_REQUEST_FREQUENCY_PENALTY,
    GEN_AI_REQUEST_MAX_TOKENS,
    GEN_AI_REQUEST_PRESENCE_PENALTY,
    GEN_AI_REQUEST_SEED,
    GEN_AI_REQUEST_STOP_SEQUENCES,
    GEN_AI_REQUEST_TEMPERATURE,
    GEN_AI_REQUEST_TOP_P,
    GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
)
from ragprov.instrumentation._llm import LLMClientInstrumentor, LLMTracer
from ragprov.instrumentation._llm_coexistence import SpanInFrame, slip_beneath, unslip
from ragprov.instrumentation._llm_model import (
    LLMRequest,
    LLMResponse,
    NullAccumulator,
    ResultTypes,
    Route,
    TextBuffer,
    as_int,
    as_number,
    as_str,
    get,
    text_parts,
    tool_arguments,
)
from ragprov.model import AttributeValue

SUPPORTED_VERSIONS = ("openai >= 1.40, < 4",)
PROVIDER = "openai"
AZURE_PROVIDER = "azure.ai.openai"

OPENAI_API_TYPE = "openai.api.type"
OPENAI_REQUEST_SERVICE_TIER = "openai.request.service_tier"
OPENAI_RESPONSE_SERVICE_TIER = "openai.response.service_tier"
OPENAI_RESPONSE_SYSTEM_FINGERPRINT = "openai.response.system_fingerprint"

# Output-message finish reasons of the GenAI JSON schema, from OpenAI's.
_FINISH_REASONS = {"tool_calls": "tool_call", "function_call": "tool_call"}


class OpenAIInstrumentor(LLMClientInstrumentor):
    """GenAI spans and provenance steps for the openai client (sync and async)."""

    library = "openai"

    def instrumentation_dependencies(self) -> Collection[str]:
        return SUPPORTED_VERSIONS

    def _patch(self, tracer: trace.Tracer) -> None:
        import openai
        from openai import _base_client, _legacy_response, _response

        azure: tuple[type, ...] = ()
        try:
            from openai.lib.azure import BaseAzureClient

            azure = (BaseAzureClient,)
        except ImportError:
            pass
        types = ResultTypes(
            raw=(_legacy_response.LegacyAPIResponse, _response.BaseAPIResponse),
            streams=(openai.Stream,),
            async_streams=(openai.AsyncStream,),
        )
        adapter = _OpenAIAdapter(types, azure_types=azure)
        llm = LLMTracer(adapter, tracer)
        self._wrap(_base_client.SyncAPIClient, "request", llm.sync_wrapper())
        self._wrap(_base_client.AsyncAPIClient, "request", llm.async_wrapper())
        # OpenInference wraps OpenAI.request / AsyncOpenAI.request on the subclasses.
        self._slipped = [
            *slip_beneath((openai.OpenAI,), "request", _base_client.SyncAPIClient),
            *slip_beneath((openai.AsyncOpenAI,), "request", _base_client.AsyncAPIClient),
        ]

    def _uninstrument(self, **kwargs: Any) -> None:
        unslip(getattr(self, "_slipped", ()))
        self._slipped = []
        super()._uninstrument(**kwargs)


class _OpenAIAdapter:
    def __init__(self, types: ResultTypes, azure_types: tuple[type, ...] = ()) -> None:
        self.types = types
        self.exposes_call = False
        self.hidden_spans: tuple[SpanInFrame, ...] = ()
        self._azure_types = azure_types

    def route(self, method: str, path: str) -> Route | None:
        if method != "post" and method.lower() != "post":
            return None
        return ROUTES.get(path)

    def provider_name(self, client: Any) -> str:
        if self._azure_types and isinstance(client, self._azure_types):
            return AZURE_PROVIDER
        return PROVIDER


# --------------------------------------------------------------------------- shared readers


def _content_texts(content: Any) -> list[str]:
    """Texts of a message's content: a string, or a list of text parts (``text`` /
    ``input_text`` / ``output_text``); other parts (images, audio, files) carry no text."""
    if isinstance(content, str):
        return [content] if content else []
    if not isinstance(content, list):
        return []
    texts = []
    for part in content:
        if get(part, "type") in ("text", "input_text", "output_text"):
            text = get(part, "text")
            if isinstance(text, str) and text:
                texts.append(text)
    return texts


def _set_number(attributes: dict[str, AttributeValue], key: str, value: Any) -> None:
    number = as_number(value)
    if number is not None:
        attributes[key] = number


def _set_int(attributes: dict[str, AttributeValue], key: str, value: Any) -> None:
    number = as_int(value)
    if number is not None:
        attributes[key] = number


def _stop_sequences(value: Any) -> list[str] | None:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(item, str) for item in value):
        return list(value)
    return None


def _output_type(format_type: Any) -> str | None:
    if format_type in ("json_schema", "json_object"):
        return "json"
    return "text" if format_type == "text" else None


def _service_tier(attributes: dict[str, AttributeValue], value: Any) -> None:
    if isinstance(value, str) and value != "auto":
        attributes[OPENAI_REQUEST_SERVICE_TIER] = value


def _response_extras(response: LLMResponse, body: Any) -> None:
    service_tier = as_str(get(body, "service_tier"))
    if service_tier:
        response.attributes[OPENAI_RESPONSE_SERVICE_TIER] = service_tier
    fingerprint = as_str(get(body, "system_fingerprint"))
    if fingerprint:
        response.attributes[OPENAI_RESPONSE_SYSTEM_FINGERPRINT] = fingerprint


def _usage(response: LLMResponse, usage: Any, input_key: str, output_key: str) -> None:
    if usage is None:
        return
    response.input_tokens = as_int(get(usage, input_key))
    response.output_tokens = as_int(get(usage, output_key))
    cached = as_int(get(get(usage, f"{input_key}_details"), "cached_tokens"))
    if cached is not None:
        response.attributes[GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = cached
    reasoning = as_int(get(get(usage, f"{output_key}_details"), "reasoning_tokens"))
    if reasoning is not None:
        response.attributes[GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] = reasoning


def _tool_call_part(call_id: Any, name: Any, arguments: Any) -> dict[str, Any]:
    return {
        "type": "tool_call",
        "id": call_id,
        "name": name,
        "arguments": tool_arguments(arguments),
    }


# --------------------------------------------------------------------------- chat completions


def _chat_max_tokens(attributes: dict[str, AttributeValue], value: Any) -> None:
    # max_completion_tokens replaces the deprecated max_tokens; it wins when both are set.
    if as_int(value):
        attributes[GEN_AI_REQUEST_MAX_TOKENS] = value


def _chat_legacy_max_tokens(attributes: dict[str, AttributeValue], value: Any) -> None:
    number = as_int(value)
    if number is not None:
        attributes.setdefault(GEN_AI_REQUEST_MAX_TOKENS, number)


def _chat_choice_count(attributes: dict[str, AttributeValue], value: Any) -> None:
    choices = as_int(value)
    if choices is not None and choices != 1:
        attributes[GEN_AI_REQUEST_CHOICE_COUNT] = choices


def _chat_stop(attributes: dict[str, AttributeValue], value: Any) -> None:
    stop = _stop_sequences(value)
    if stop:
        attributes[GEN_AI_REQUEST_STOP_SEQUENCES] = stop


def _chat_response_format(attributes: dict[str, AttributeValue], value: Any) -> None:
    output_type = _output_type(get(value, "type"))
    if output_type:
        attributes[GEN_AI_OUTPUT_TYPE] = output_type


def _number_reader(key: str) -> Callable[[dict[str, AttributeValue], Any], None]:
    return lambda attributes, value: _set_number(attributes, key, value)


#: Request attributes of a chat completion, by body key.
_CHAT_PARAMETERS: dict[str, Callable[[dict[str, AttributeValue], Any], None]] = {
    "temperature": _number_reader(GEN_AI_REQUEST_TEMPERATURE),
    "top_p": _number_reader(GEN_AI_REQUEST_TOP_P),
    "frequency_penalty": _number_reader(GEN_AI_REQUEST_FREQUENCY_PENALTY),
    "presence_penalty": _number_reader(GEN_AI_REQUEST_PRESENCE_PENALTY),
    "max_completion_tokens": _chat_max_tokens,
    "max_tokens": _chat_legacy_max_tokens,
    "seed": lambda attributes, value: _set_int(attributes, GEN_AI_REQUEST_SEED, value),
    "n": _chat_choice_count,
    "stop": _chat_stop,
    "response_format": _chat_response_format,
    "service_tier": _service_tier,
}


def _describe_chat(body: Mapping[str, Any], capture: bool) -> LLMRequest:
    request = LLMRequest(model=as_str(body.get("model")))
    attributes = request.attributes
    attributes[OPENAI_API_TYPE] = "chat_completions"
    # Only the parameters the body has are read (most calls set none or a few).
    for key, value in body.items():
        reader = _CHAT_PARAMETERS.get(key)
        if reader is not None:
            reader(attributes, value)

    messages = body.get("messages")
    input_messages: list[dict[str, Any]] = []
    for message in messages if isinstance(messages, list) else ():
        texts = _content_texts(get(message, "content"))
        request.input_texts.extend(texts)
        if capture:
            input_messages.append(_chat_input_message(message, texts))
    if capture:
        request.input_messages = input_messages
    return request


def _chat_input_message(message: Any, texts: list[str]) -> dict[str, Any]:
    role = get(message, "role") or "user"
    if role == "tool":
        parts: list[dict[str, Any]] = [
            {
                "type": "tool_call_response",
                "id": get(message, "tool_call_id"),
                "response": "".join(texts),
            }
        ]
    else:
        parts = text_parts(texts)
        for call in get(message, "tool_calls") or ():
            function = get(call, "function")
            parts.append(
                _tool_call_part(get(call, "id"), get(function, "name"), get(function, "arguments"))
            )
    return {"role": role, "parts": parts}


def _read_chat(body: Any, capture: bool) -> LLMResponse:
    response = LLMResponse(response_id=as_str(get(body, "id")), model=as_str(get(body, "model")))
    choices = get(body, "choices") or ()
    output_messages: list[dict[str, Any]] = []
    for position, choice in enumerate(choices):
        message = get(choice, "message")
        content = as_str(get(message, "content")) or ""
        finish_reason = as_str(get(choice, "finish_reason"))
        if finish_reason:
            response.finish_reasons.append(finish_reason)
        calls = [
            (
                get(call, "id"),
                get(get(call, "function"), "name"),
                get(get(call, "function"), "arguments"),
            )
            for call in get(message, "tool_calls") or ()
        ]
        if position == 0:
            response.output_text = content
            response.tool_calls = [(str(call_id), str(name)) for call_id, name, _ in calls]
        if capture:
            parts = text_parts([content] if content else [])
            parts.extend(_tool_call_part(*call) for call in calls)
            output_messages.append(_output_message(parts, finish_reason))
    _usage(response, get(body, "usage"), "prompt_tokens", "completion_tokens")
    _response_extras(response, body)
    if capture:
        response.output_messages = output_messages
    return response


def _function_call(call: Any) -> tuple[Any, Any, Any]:
    function = get(call, "function")
    return get(call, "id"), get(function, "name"), get(function, "arguments")


def _output_message(parts: list[dict[str, Any]], finish_reason: str | None) -> dict[str, Any]:
    reason = _FINISH_REASONS.get(finish_reason or "", finish_reason or "stop")
    return {"role": "assistant", "parts": parts, "finish_reason": reason}


class _ChatAccumulator:
    """Accumulates ``ChatCompletionChunk`` events (once per chunk: keep it lean)."""

    __slots__ = ("_answer", "_calls", "_capture", "_finish", "_first", "_others", "_usage")

    def __init__(self, capture: bool) -> None:
        self._capture = capture
        self._first: Any = None
        self._answer = TextBuffer()
        self._others: dict[int, list[str]] = {}
        self._finish: dict[int, str] = {}
        # (choice index, tool-call index) → [id, name, argument pieces]
        self._calls: dict[tuple[int, int], list[Any]] = {}
        self._usage: Any = None

    def feed(self, chunk: Any) -> str | None:
        if self._first is None:
            self._first = chunk
        text = None
        for choice in chunk.choices:
            delta = choice.delta
            if delta is not None:
                content = delta.content
                if content:
                    if choice.index == 0:
                        self._answer.add(content)
                        text = content
                    elif self._capture:
                        self._others.setdefault(choice.index, []).append(content)
                if delta.tool_calls:
                    self._tool_deltas(choice.index, delta.tool_calls)
            if choice.finish_reason:
                self._finish[choice.index] = choice.finish_reason
        usage = chunk.usage
        if usage is not None:
            self._usage = usage
        return text

    def _tool_deltas(self, choice: int, deltas: Any) -> None:
        for delta in deltas:
            key = (choice, get(delta, "index") or 0)
            function = get(delta, "function")
            call = self._calls.get(key)
            if call is None:
                call = self._calls[key] = [get(delta, "id"), get(function, "name"), []]
            else:
                call[0] = call[0] or get(delta, "id")
                call[1] = call[1] or get(function, "name")
            arguments = get(function, "arguments")
            if arguments and self._capture:
                call[2].append(arguments)

    def tool_calls(self) -> list[tuple[str, str]]:
        return [
            (str(call[0]), str(call[1]))
            for (choice, _), call in self._calls.items()
            if choice == 0 and call[0] and call[1]
        ]

    def result(self) -> LLMResponse:
        first = self._first
        response = LLMResponse(
            response_id=as_str(get(first, "id")),
            model=as_str(get(first, "model")),
            output_text=self._answer.text(),
            tool_calls=self.tool_calls(),
        )
        response.finish_reasons = [self._finish[index] for index in sorted(self._finish)]
        _usage(response, self._usage, "prompt_tokens", "completion_tokens")
        if first is not None:
            _response_extras(response, first)
        if self._capture:
            indexes = sorted({0, *self._others, *self._finish} if first is not None else set())
            messages = []
            for index in indexes:
                text = response.output_text if index == 0 else "".join(self._others.get(index, []))
                parts = text_parts([text] if text else [])
                parts.extend(
                    _tool_call_part(call[0], call[1], "".join(call[2]))
                    for (choice, _), call in sorted(self._calls.items())
                    if choice == index
                )
                messages.append(_output_message(parts, self._finish.get(index)))
            response.output_messages = messages
        return response


# --------------------------------------------------------------------------- responses


def _describe_responses(body: Mapping[str, Any], capture: bool) -> LLMRequest:
    request = LLMRequest(model=as_str(body.get("model")))
    attributes = request.attributes
    attributes[OPENAI_API_TYPE] = "responses"
    _set_number(attributes, GEN_AI_REQUEST_TEMPERATURE, body.get("temperature"))
    _set_number(attributes, GEN_AI_REQUEST_TOP_P, body.get("top_p"))
    _set_int(attributes, GEN_AI_REQUEST_MAX_TOKENS, body.get("max_output_tokens"))
    output_type = _output_type(get(get(body.get("text"), "format"), "type"))
    if output_type:
        attributes[GEN_AI_OUTPUT_TYPE] = output_type
    _service_tier(attributes, body.get("service_tier"))

    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions:
        request.input_texts.append(instructions)
        if capture:
            request.system_instructions = text_parts([instructions])
    items = body.get("input")
    input_messages: list[dict[str, Any]] = []
    if isinstance(items, str):
        items = [{"role": "user", "content": items}]
    for item in items if isinstance(items, list) else ():
        item_type = get(item, "type")
        if item_type == "function_call_output":
            texts = _content_texts(get(item, "output"))
            request.input_texts.extend(texts)
            if capture:
                part = {"type": "tool_call_response", "id": get(item, "call_id")}
                part["response"] = "".join(texts)
                input_messages.append({"role": "tool", "parts": [part]})
        elif item_type == "function_call":
            if capture:
                call = _tool_call_part(
                    get(item, "call_id"), get(item, "name"), get(item, "arguments")
                )
                input_messages.append({"role": "assistant", "parts": [call]})
        elif item_type in (None, "message"):
            texts = _content_texts(get(item, "content"))
            request.input_texts.extend(texts)
            if capture:
                input_messages.append(
                    {"role": get(item, "role") or "user", "parts": text_parts(texts)}
                )
    if capture:
        request.input_messages = input_messages
    return request


def _responses_call(item: Any) -> tuple[Any, Any, Any]:
    return get(item, "call_id"), get(item, "name"), get(item, "arguments")


def _read_responses(body: Any, capture: bool) -> LLMResponse:
    response = LLMResponse(response_id=as_str(get(body, "id")), model=as_str(get(body, "model")))
    texts: list[str] = []
    calls: list[tuple[Any, Any, Any]] = []
    for item in get(body, "output") or ():
        item_type = get(item, "type")
        if item_type == "message":
            texts.extend(_content_texts(get(item, "content")))
        elif item_type == "function_call":
            calls.append(_responses_call(item))
    response.output_text = "".join(texts)
    response.tool_calls = [(str(call_id), str(name)) for call_id, name, _ in calls]
    finish_reason = _responses_finish_reason(body, bool(calls))
    if finish_reason:
        response.finish_reasons = [finish_reason]
    _usage(response, get(body, "usage"), "input_tokens", "output_tokens")
    _response_extras(response, body)
    if capture:
        parts = text_parts([response.output_text] if response.output_text else [])
        parts.extend(_tool_call_part(*call) for call in calls)
        message = {"role": "assistant", "parts": parts, "finish_reason": finish_reason or "stop"}
        response.output_messages = [message]
    return response


def _responses_finish_reason(body: Any, has_calls: bool) -> str | None:
    status = as_str(get(body, "status"))
    if status == "completed":
        return "tool_call" if has_calls else "stop"
    if status == "incomplete":
        return as_str(get(get(body, "incomplete_details"), "reason")) or "incomplete"
    if status == "failed":
        return "error"
    return status


class _ResponsesAccumulator:
    """Accumulates Responses API stream events; the final ``response.completed`` /
    ``incomplete`` / ``failed`` event carries the whole response."""

    __slots__ = ("_answer", "_calls", "_capture", "_final", "_started")

    def __init__(self, capture: bool) -> None:
        self._capture = capture
        self._answer = TextBuffer()
        self._calls: list[tuple[str, str]] = []
        self._started: Any = None
        self._final: Any = None

    def feed(self, event: Any) -> str | None:
        event_type = event.type
        if event_type == "response.output_text.delta":
            delta: str = event.delta
            if delta:
                self._answer.add(delta)
                return delta
            return None
        if event_type == "response.output_item.added":
            item = event.item
            if get(item, "type") == "function_call":
                self._calls.append((str(get(item, "call_id")), str(get(item, "name"))))
        elif event_type in ("response.completed", "response.incomplete", "response.failed"):
            self._final = event.response
        elif event_type == "response.created":
            self._started = event.response
        return None

    def tool_calls(self) -> list[tuple[str, str]]:
        return self._calls

    def result(self) -> LLMResponse:
        text = self._answer.text()
        if self._final is not None:
            response = _read_responses(self._final, self._capture)
            response.output_text = text or response.output_text
            return response
        started = self._started
        return LLMResponse(
            response_id=as_str(get(started, "id")),
            model=as_str(get(started, "model")),
            output_text=text,
            tool_calls=list(self._calls),
        )


# --------------------------------------------------------------------------- embeddings


def _describe_embeddings(body: Mapping[str, Any], capture: bool) -> LLMRequest:
    request = LLMRequest(model=as_str(body.get("model")))
    _set_int(request.attributes, GEN_AI_EMBEDDINGS_DIMENSION_COUNT, body.get("dimensions"))
    encoding = body.get("encoding_format")
    if isinstance(encoding, str):
        request.attributes[GEN_AI_REQUEST_ENCODING_FORMATS] = [encoding]
    return request


def _read_embeddings(body: Any, capture: bool) -> LLMResponse:
    response = LLMResponse(model=as_str(get(body, "model")))
    response.input_tokens = as_int(get(get(body, "usage"), "prompt_tokens"))
    return response


ROUTES: dict[str, Route] = {
    "/chat/completions": Route(CHAT_OPERATION, _describe_chat, _read_chat, _ChatAccumulator),
    "/responses": Route(
        CHAT_OPERATION, _describe_responses, _read_responses, _ResponsesAccumulator
    ),
    "/embeddings": Route(
        EMBEDDINGS_OPERATION, _describe_embeddings, _read_embeddings, lambda _: NullAccumulator()
    ),
}

"""Instrumentation of the ``anthropic`` client: ``messages.create`` and ``messages.stream``.

**Choke point.** Every API call of ``Anthropic`` / ``AsyncAnthropic`` (and the Bedrock, Vertex
and Foundry clients) goes through ``SyncAPIClient._request`` / ``AsyncAPIClient._request`` in
``anthropic/_base_client.py``. It receives the *prepared* request options (body with
``extra_body`` merged and one-shot iterators materialised), the ``stream`` flag, runs the
retries and the middleware chain, and returns the parsed ``Message``, the ``Stream`` /
``AsyncStream`` of events, or a raw ``APIResponse``. ``messages.create(stream=True)`` returns
that stream; ``messages.stream()``'s ``MessageStreamManager`` builds its ``MessageStream`` around
it and reads every event through it (``close()`` too), so the same proxy observes both — the
accumulated final message included. ragprov dispatches on ``POST /v1/messages``; any other path
passes through.

Why ``_request`` and not the public ``request``: anthropic 2.x traces its own API calls
(``open_telemetry`` client option, on by default when a global tracer provider is set). Its span
(``gen_ai.operation.name = chat``) is started in ``request`` and is current while ``_request``
runs, so ragprov finds it there and enriches it instead of creating a second LLM span — the
coexistence rule of ``docs/llm-clients.md``.

**The extra patch.** For a non-streamed call the SDK ends its span *inside* ``_request``,
right after reading the response (``finish_api_call_span`` in ``_base_client``), i.e. before
``_request`` returns to ragprov: too late to hand the answer to the side channel keyed on that
span. ragprov therefore also wraps the module-level ``finish_api_call_span`` that ``_request``
calls: when it is about to end the span of the current ragprov call, the answer is recorded
first. Streams need nothing extra: their text is recorded as it is read, before the SDK ends its
span at the end of the body.

**Looking through the SDK's no-op span.** Without an SDK tracer provider set globally, the SDK's
tracing gets the global no-op tracer, whose span does not record but carries the context of the
span around the call, and makes it current in ``request``. That hides another instrumentation's
span (OpenInference's ``messages.create``) from ragprov in ``_request``; so ragprov also wraps
``request`` to remember the span current when the client was called, and looks through a
non-recording span with that span's context (``_llm_coexistence.foreign_llm_span``).

**Spans kept out of the context.** OpenLLMetry's anthropic instrumentation never makes its span
current, and OpenInference's ``messages.stream()`` span is not current when the stream manager
sends the request; both keep the span in their wrapper's frame, which is on the stack while
``_request`` runs. The adapter lists those frames (``ANTHROPIC_SPANS_IN_FRAMES``), and ragprov
enriches the span it finds there (``_llm_coexistence.SpanInFrame``).

``gen_ai.usage.input_tokens`` follows the Anthropic convention: ``input_tokens +
cache_read_input_tokens + cache_creation_input_tokens``. ``gen_ai.response.finish_reasons`` are
Anthropic's ``stop_reason`` values (``end_turn``, ``max_tokens``, ``tool_use`` …). The ``system``
prompt is content of ``gen_ai.system_instructions`` (and input text for the side channel).

Usage: ``AnthropicInstrumentor().instrument(tracer_provider=...)`` or ``opentelemetry-instrument``
(entry point ``ragprov_anthropic``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping
from typing import Any

from opentelemetry import trace

from ragprov.instrumentation._genai_names import (
    CHAT_OPERATION,
    GEN_AI_OUTPUT_TYPE,
    GEN_AI_REQUEST_MAX_TOKENS,
    GEN_AI_REQUEST_STOP_SEQUENCES,
    GEN_AI_REQUEST_TEMPERATURE,
    GEN_AI_REQUEST_TOP_K,
    GEN_AI_REQUEST_TOP_P,
    GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
    GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
)
from ragprov.instrumentation._llm import (
    LLMClientInstrumentor,
    LLMTracer,
)
from ragprov.instrumentation._llm_call import (
    current_call,
)
from ragprov.instrumentation._llm_coexistence import (
    ANTHROPIC_SPANS_IN_FRAMES,
    remember_caller_span,
    remember_caller_span_async,
)
from ragprov.instrumentation._llm_model import (
    LLMRequest,
    LLMResponse,
    ResultTypes,
    Route,
    TextBuffer,
    as_int,
    as_number,
    as_str,
    get,
    text_parts,
)
from ragprov.instrumentation._patching import log_once

SUPPORTED_VERSIONS = ("anthropic >= 2.0, < 3",)
PROVIDER = "anthropic"

# Output-message finish reasons of the GenAI JSON schema, from Anthropic's stop reasons.
_FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "tool_use": "tool_call",
    "refusal": "content_filter",
}


class AnthropicInstrumentor(LLMClientInstrumentor):
    """GenAI spans and provenance steps for the anthropic client (sync and async)."""

    library = "anthropic"

    def instrumentation_dependencies(self) -> Collection[str]:
        return SUPPORTED_VERSIONS

    def _patch(self, tracer: trace.Tracer) -> None:
        import anthropic
        from anthropic import _base_client, _response

        types = ResultTypes(
            raw=(_response.BaseAPIResponse,),
            streams=(anthropic.Stream,),
            async_streams=(anthropic.AsyncStream,),
        )
        adapter = _AnthropicAdapter(types)
        llm = LLMTracer(adapter, tracer)
        self._wrap(_base_client.SyncAPIClient, "_request", llm.sync_wrapper())
        self._wrap(_base_client.AsyncAPIClient, "_request", llm.async_wrapper())
        # Without an SDK tracer provider, the client's own tracing makes a non-recording span
        # current in request(), hiding another instrumentation's span around the call.
        self._wrap(_base_client.SyncAPIClient, "request", remember_caller_span)
        self._wrap(_base_client.AsyncAPIClient, "request", remember_caller_span_async)
        if hasattr(_base_client, "finish_api_call_span"):
            self._wrap(_base_client, "finish_api_call_span", _native_finish_wrapper(adapter))


class _AnthropicAdapter:
    def __init__(self, types: ResultTypes) -> None:
        self.types = types
        self.exposes_call = True
        self.hidden_spans = ANTHROPIC_SPANS_IN_FRAMES

    def route(self, method: str, path: str) -> Route | None:
        if path == "/v1/messages" and method.lower() == "post":
            return MESSAGES
        return None

    def provider_name(self, client: Any) -> str:
        name = getattr(client, "_gen_ai_provider_name", None)
        return name if isinstance(name, str) and name else PROVIDER


def _native_finish_wrapper(
    adapter: _AnthropicAdapter,
) -> Callable[[Callable[..., Any], Any, tuple[Any, ...], dict[str, Any]], Any]:
    """``finish_api_call_span(client, span, result)``: record the answer on the SDK's span of the
    current ragprov call before the SDK ends it."""

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: Any
    ) -> Any:
        try:
            call = current_call()
            span = kwargs.get("span", args[1] if len(args) > 1 else None)
            if call is not None and not call.owned and call.span is span:
                result = kwargs.get("result", args[2] if len(args) > 2 else None)
                if get(result, "error") is None:
                    call.record_native(get(result, "data"))
        except Exception:
            log_once("could not record an anthropic response on the SDK's span")
        return wrapped(*args, **kwargs)

    return wrapper


# --------------------------------------------------------------------------- request


def _block_texts(content: Any) -> list[str]:
    """Texts of a content value: a string, or text blocks (``tool_result`` blocks count with
    their own content); images, documents and tool-use blocks carry no text."""
    if isinstance(content, str):
        return [content] if content else []
    if not isinstance(content, list):
        return []
    texts: list[str] = []
    for block in content:
        block_type = get(block, "type")
        if block_type == "text":
            text = get(block, "text")
            if isinstance(text, str) and text:
                texts.append(text)
        elif block_type == "tool_result":
            texts.extend(_block_texts(get(block, "content")))
    return texts


def _describe_messages(body: Mapping[str, Any], capture: bool) -> LLMRequest:
    request = LLMRequest(model=as_str(body.get("model")))
    attributes = request.attributes
    max_tokens = as_int(body.get("max_tokens"))
    if max_tokens is not None:
        attributes[GEN_AI_REQUEST_MAX_TOKENS] = max_tokens
    for key, name in (
        (GEN_AI_REQUEST_TEMPERATURE, "temperature"),
        (GEN_AI_REQUEST_TOP_P, "top_p"),
        (GEN_AI_REQUEST_TOP_K, "top_k"),
    ):
        number = as_number(body.get(name))
        if number is not None:
            attributes[key] = number
    stop = body.get("stop_sequences")
    if isinstance(stop, list) and stop and all(isinstance(item, str) for item in stop):
        attributes[GEN_AI_REQUEST_STOP_SEQUENCES] = list(stop)
    output_format = get(body.get("output_config"), "format") or body.get("output_format")
    if get(output_format, "type") == "json_schema":
        attributes[GEN_AI_OUTPUT_TYPE] = "json"

    system = _block_texts(body.get("system"))
    request.input_texts.extend(system)
    if capture and system:
        request.system_instructions = text_parts(system)
    messages = body.get("messages")
    input_messages: list[dict[str, Any]] = []
    for message in messages if isinstance(messages, list) else ():
        content = get(message, "content")
        request.input_texts.extend(_block_texts(content))
        if capture:
            input_messages.append(_input_message(get(message, "role") or "user", content))
    if capture:
        request.input_messages = input_messages
    return request


def _input_message(role: str, content: Any) -> dict[str, Any]:
    if not isinstance(content, list):
        return {"role": role, "parts": text_parts(_block_texts(content))}
    parts: list[dict[str, Any]] = []
    for block in content:
        block_type = get(block, "type")
        if block_type == "text":
            parts.extend(text_parts(_block_texts([block])))
        elif block_type == "tool_use":
            parts.append(_tool_call_part(block))
        elif block_type == "tool_result":
            response = "".join(_block_texts(get(block, "content")))
            parts.append(
                {
                    "type": "tool_call_response",
                    "id": get(block, "tool_use_id"),
                    "response": response,
                }
            )
    return {"role": role, "parts": parts}


def _tool_call_part(block: Any) -> dict[str, Any]:
    return {
        "type": "tool_call",
        "id": get(block, "id"),
        "name": get(block, "name"),
        "arguments": get(block, "input"),
    }


# --------------------------------------------------------------------------- response


def _set_usage(response: LLMResponse, usage: Any) -> None:
    if usage is None:
        return
    uncached = as_int(get(usage, "input_tokens"))
    cache_read = as_int(get(usage, "cache_read_input_tokens"))
    cache_creation = as_int(get(usage, "cache_creation_input_tokens"))
    if uncached is not None:
        response.input_tokens = uncached + (cache_read or 0) + (cache_creation or 0)
    if cache_read is not None:
        response.attributes[GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = cache_read
    if cache_creation is not None:
        response.attributes[GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS] = cache_creation
    output = as_int(get(usage, "output_tokens"))
    if output is not None:
        response.output_tokens = output


def _output_message(parts: list[dict[str, Any]], stop_reason: str | None) -> dict[str, Any]:
    reason = _FINISH_REASONS.get(stop_reason or "", stop_reason or "stop")
    return {"role": "assistant", "parts": parts, "finish_reason": reason}


def _read_message(body: Any, capture: bool) -> LLMResponse:
    response = LLMResponse(response_id=as_str(get(body, "id")), model=as_str(get(body, "model")))
    texts: list[str] = []
    parts: list[dict[str, Any]] = []
    for block in get(body, "content") or ():
        block_type = get(block, "type")
        if block_type == "text":
            text = get(block, "text")
            if isinstance(text, str) and text:
                texts.append(text)
                parts.append({"type": "text", "content": text})
        elif block_type == "tool_use":
            response.tool_calls.append((str(get(block, "id")), str(get(block, "name"))))
            parts.append(_tool_call_part(block))
    response.output_text = "".join(texts)
    stop_reason = as_str(get(body, "stop_reason"))
    if stop_reason:
        response.finish_reasons = [stop_reason]
    _set_usage(response, get(body, "usage"))
    if capture:
        response.output_messages = [_output_message(parts, stop_reason)]
    return response


class _MessageAccumulator:
    """Accumulates raw message stream events (``message_start``, ``content_block_*``,
    ``message_delta``, ``message_stop``)."""

    __slots__ = ("_blocks", "_capture", "_message", "_stop_reason", "_tool_calls", "_usage")

    def __init__(self, capture: bool) -> None:
        self._capture = capture
        self._message: Any = None
        # index → [type, text, tool-use block, input JSON pieces]
        self._blocks: dict[int, list[Any]] = {}
        self._tool_calls: list[tuple[str, str]] = []
        self._stop_reason: str | None = None
        self._usage: dict[str, Any] = {}

    def feed(self, event: Any) -> str | None:
        event_type = event.type
        if event_type == "content_block_delta":
            delta = event.delta
            if delta.type == "text_delta":
                text: str = delta.text
                block = self._blocks.get(event.index)
                if block is not None:
                    block[1].add(text)
                return text or None
            if delta.type == "input_json_delta" and self._capture:
                block = self._blocks.get(event.index)
                if block is not None:
                    block[3].append(delta.partial_json)
            return None
        if event_type == "content_block_start":
            content_block = event.content_block
            block_type = get(content_block, "type")
            self._blocks[event.index] = [block_type, TextBuffer(), content_block, []]
            if block_type == "tool_use":
                call_id, name = get(content_block, "id"), get(content_block, "name")
                self._tool_calls.append((str(call_id), str(name)))
        elif event_type == "message_start":
            self._message = event.message
            self._take_usage(get(self._message, "usage"))
        elif event_type == "message_delta":
            self._stop_reason = as_str(get(event.delta, "stop_reason")) or self._stop_reason
            self._take_usage(event.usage)
        return None

    def _take_usage(self, usage: Any) -> None:
        for key in (
            "input_tokens",
            "output_tokens",
            "cache_read_input_tokens",
            "cache_creation_input_tokens",
        ):
            value = get(usage, key)
            if value is not None:
                self._usage[key] = value

    def tool_calls(self) -> list[tuple[str, str]]:
        return self._tool_calls

    def result(self) -> LLMResponse:
        message = self._message
        response = LLMResponse(
            response_id=as_str(get(message, "id")),
            model=as_str(get(message, "model")),
            tool_calls=list(self._tool_calls),
        )
        texts: list[str] = []
        parts: list[dict[str, Any]] = []
        for index in sorted(self._blocks):
            block_type, buffer, block, json_pieces = self._blocks[index]
            if block_type == "text":
                text = buffer.text()
                texts.append(text)
                if text:
                    parts.append({"type": "text", "content": text})
            elif block_type == "tool_use" and self._capture:
                part = _tool_call_part(block)
                if json_pieces:
                    try:
                        part["arguments"] = json.loads("".join(json_pieces))
                    except ValueError:
                        part["arguments"] = "".join(json_pieces)
                parts.append(part)
        response.output_text = "".join(texts)
        if self._stop_reason:
            response.finish_reasons = [self._stop_reason]
        _set_usage(response, self._usage or None)
        if self._capture:
            response.output_messages = [_output_message(parts, self._stop_reason)]
        return response


MESSAGES = Route(CHAT_OPERATION, _describe_messages, _read_message, _MessageAccumulator)

"""Shared machinery of the LLM-client instrumentors (``openai``, ``anthropic``).

A client module only knows its client: where its single request path is, which URL paths are
LLM calls (a :class:`Route` per path), how to read a request body (:class:`LLMRequest`), a
response (:class:`LLMResponse`) and a stream of events (:class:`StreamAccumulator`). Everything
else lives here:

* **the span** — one GenAI inference span per call, ``{gen_ai.operation.name}
  {gen_ai.request.model}``, kind CLIENT, request attributes at creation (so samplers see them),
  response attributes at the end, ``rag.step_id`` and ``rag.transformation_type = generation``.
  Embeddings calls get an ``embeddings {model}`` span and are not steps;
* **the side channel** — the text of every input message goes to the provenance processor with
  :func:`ragprov.sidechannel.record_step_input`, the answer with
  :func:`~ragprov.sidechannel.record_step_output`; content becomes attributes
  (``gen_ai.input.messages``, ``gen_ai.output.messages``, ``gen_ai.system_instructions``) only
  when content capture is on;
* **streams** — a stream the client returns is handed back inside a proxy
  (:class:`SyncStreamProxy`, :class:`AsyncStreamProxy`) that feeds each event to the route's
  accumulator; the span ends when the stream is exhausted, closed, fails, or is garbage-collected;
* **raw responses** — ``with_raw_response`` / ``with_streaming_response`` results: a body that is
  already read is read as JSON at once; otherwise the span follows ``parse()`` / ``close()``;
* **coexistence** — see :func:`foreign_llm_span`: when another instrumentation's GenAI span for
  this call is current, no span is created; that span gets ``rag.step_id`` and
  ``rag.transformation_type`` and the side channel is keyed on it;
* **safety** — the wrapped call runs exactly once with its own arguments; its result (or the
  proxy around it) and its exceptions reach the caller unchanged; errors of the instrumentation
  itself are logged once and swallowed; the suppress-instrumentation key is respected.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import wrapt
from opentelemetry import context as otel_context
from opentelemetry import trace

# instrumentor.py starts with a file-level "# type: ignore", so mypy sees no names in it.
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from ragprov import __version__, ids, sidechannel
from ragprov.config import capture_content_enabled
from ragprov.instrumentation._patching import PatchingInstrumentor, log_once
from ragprov.model import AttributeValue
from ragprov.semconv import attributes as attrs
from ragprov.semconv.attributes import RagTransformationTypeValues

_logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------- attribute names

# GenAI attributes. The Python semantic-conventions package marks the gen_ai.* names as moved to
# the GenAI conventions repository, so they are spelled here once.
GEN_AI_OPERATION_NAME = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME = "gen_ai.provider.name"
GEN_AI_REQUEST_MODEL = "gen_ai.request.model"
GEN_AI_REQUEST_TEMPERATURE = "gen_ai.request.temperature"
GEN_AI_REQUEST_TOP_P = "gen_ai.request.top_p"
GEN_AI_REQUEST_TOP_K = "gen_ai.request.top_k"
GEN_AI_REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
GEN_AI_REQUEST_STOP_SEQUENCES = "gen_ai.request.stop_sequences"
GEN_AI_REQUEST_FREQUENCY_PENALTY = "gen_ai.request.frequency_penalty"
GEN_AI_REQUEST_PRESENCE_PENALTY = "gen_ai.request.presence_penalty"
GEN_AI_REQUEST_SEED = "gen_ai.request.seed"
GEN_AI_REQUEST_CHOICE_COUNT = "gen_ai.request.choice.count"
GEN_AI_REQUEST_STREAM = "gen_ai.request.stream"
GEN_AI_REQUEST_ENCODING_FORMATS = "gen_ai.request.encoding_formats"
GEN_AI_EMBEDDINGS_DIMENSION_COUNT = "gen_ai.embeddings.dimension.count"
GEN_AI_OUTPUT_TYPE = "gen_ai.output.type"
GEN_AI_RESPONSE_ID = "gen_ai.response.id"
GEN_AI_RESPONSE_MODEL = "gen_ai.response.model"
GEN_AI_RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK = "gen_ai.response.time_to_first_chunk"
GEN_AI_USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS = "gen_ai.usage.cache_read.input_tokens"
GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS = "gen_ai.usage.cache_creation.input_tokens"
GEN_AI_USAGE_REASONING_OUTPUT_TOKENS = "gen_ai.usage.reasoning.output_tokens"
GEN_AI_INPUT_MESSAGES = "gen_ai.input.messages"
GEN_AI_OUTPUT_MESSAGES = "gen_ai.output.messages"
GEN_AI_SYSTEM_INSTRUCTIONS = "gen_ai.system_instructions"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
ERROR_TYPE = "error.type"

CHAT_OPERATION = "chat"
EMBEDDINGS_OPERATION = "embeddings"


# Other instrumentations' marks of an LLM (inference) or embeddings span.
_OPENINFERENCE_SPAN_KIND = "openinference.span.kind"
_OPENLLMETRY_REQUEST_TYPE = "llm.request.type"
_FOREIGN_INFERENCE_OPERATIONS = frozenset({"chat", "text_completion", "generate_content"})

GENERATION = RagTransformationTypeValues.GENERATION.value


# --------------------------------------------------------------------------- data


def get(value: Any, key: str) -> Any:
    """``value[key]`` for a dict, ``value.key`` for an object, ``None`` when absent.

    Responses arrive as client models (parsed) or as plain JSON (a raw response's body); request
    bodies as dicts. Readers use this one accessor for both.
    """
    if isinstance(value, dict):
        return value.get(key)
    return getattr(value, key, None)


def as_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def as_number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def as_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def json_text(value: Any) -> str:
    """Compact JSON for a content attribute (values JSON cannot hold become their ``str()``)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def tool_arguments(value: Any) -> Any:
    """Tool-call arguments for a message part: the JSON object a string holds, else the value."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


@dataclass(slots=True)
class LLMRequest:
    """What is known about an LLM call before it runs (read from the request body)."""

    model: str | None
    attributes: dict[str, AttributeValue] = field(default_factory=dict)
    """Request attributes other than operation, provider, model and server."""
    input_texts: list[str] = field(default_factory=list)
    """Text of every input message, system included, in order (for the side channel)."""
    input_messages: list[dict[str, Any]] | None = None
    """``gen_ai.input.messages`` (only built when content capture is on)."""
    system_instructions: list[dict[str, Any]] | None = None
    """``gen_ai.system_instructions`` (only built when content capture is on)."""


@dataclass(slots=True)
class LLMResponse:
    """What an LLM call returned, read from a response or accumulated from a stream."""

    response_id: str | None = None
    model: str | None = None
    finish_reasons: list[str] = field(default_factory=list)
    input_tokens: int | None = None
    output_tokens: int | None = None
    attributes: dict[str, AttributeValue] = field(default_factory=dict)
    """Further response attributes (cache and reasoning tokens, service tier …)."""
    output_text: str = ""
    """The answer: text of the first choice (for the side channel)."""
    tool_calls: list[tuple[str, str]] = field(default_factory=list)
    """(call id, tool name) of each tool call the model requested."""
    output_messages: list[dict[str, Any]] | None = None
    """``gen_ai.output.messages`` (only built when content capture is on)."""


class TextBuffer:
    """Streamed text, concatenated as it arrives.

    Appending to a short string and moving it to a list once it passes a few KB keeps copying
    bounded, and lets the pieces be freed at once (keeping every piece alive costs more, per
    event, than the concatenation).
    """

    __slots__ = ("_blocks", "_tail")

    BLOCK_CHARS = 4096

    def __init__(self) -> None:
        self._blocks: list[str] = []
        self._tail = ""

    def add(self, text: str) -> None:
        tail = self._tail + text
        if len(tail) > self.BLOCK_CHARS:
            self._blocks.append(tail)
            tail = ""
        self._tail = tail

    def text(self) -> str:
        if not self._blocks:
            return self._tail
        return "".join(self._blocks) + self._tail


class StreamAccumulator(Protocol):
    """Reads a stream's events one by one (must be cheap: it runs once per event)."""

    def feed(self, event: Any) -> str | None:
        """Take one event; return the answer text it adds (first choice only), if any."""

    def tool_calls(self) -> list[tuple[str, str]]:
        """Tool calls seen so far (id, name)."""

    def result(self) -> LLMResponse:
        """Everything accumulated (``output_text`` included)."""


@dataclass(frozen=True, slots=True)
class Route:
    """An LLM endpoint of a client: how to describe its requests and read its responses."""

    operation: str
    describe: Callable[[Mapping[str, Any], bool], LLMRequest]
    """(request body, capture content) → request."""
    read: Callable[[Any, bool], LLMResponse]
    """(response model or JSON body, capture content) → response."""
    accumulator: Callable[[bool], StreamAccumulator]
    """(capture content) → a fresh accumulator for a streamed response."""

    @property
    def is_step(self) -> bool:
        return self.operation != EMBEDDINGS_OPERATION


@dataclass(frozen=True, slots=True)
class ResultTypes:
    """The client's classes of what its request path returns, besides parsed models."""

    raw: tuple[type, ...] = ()
    """``with_raw_response`` / ``with_streaming_response`` results."""
    streams: tuple[type, ...] = ()
    """Streams of events (iterated with ``__next__``)."""
    async_streams: tuple[type, ...] = ()
    """Async streams of events (``__anext__``)."""


# --------------------------------------------------------------------------- content capture


# --------------------------------------------------------------------------- coexistence


def foreign_llm_span(operation: str) -> Span | None:
    """The current span, when it is another instrumentation's GenAI span for this very call.

    ragprov's wrapper sits at the client's request path, *inside* instrumentations that wrap the
    resource methods (``chat.completions.create``) or the client's own tracing. Their span is
    current while the request runs. It is taken as the span of this call when it is recording,
    was not made by ragprov (it has no ``rag.step_id`` yet), and says it is an inference span
    (``gen_ai.operation.name`` chat / text_completion / generate_content, OpenInference span
    kind ``LLM``, OpenLLMetry ``llm.request.type`` chat / completion) or, for an embeddings call,
    an embeddings span.
    """
    span = trace.get_current_span()
    if not span.is_recording():
        return None
    attributes = getattr(span, "attributes", None)
    if not isinstance(attributes, Mapping) or attrs.RAG_STEP_ID in attributes:
        return None
    operation_name = attributes.get(GEN_AI_OPERATION_NAME)
    kind = attributes.get(_OPENINFERENCE_SPAN_KIND)
    request_type = attributes.get(_OPENLLMETRY_REQUEST_TYPE)
    if operation == EMBEDDINGS_OPERATION:
        matches = (
            operation_name == EMBEDDINGS_OPERATION
            or kind == "EMBEDDING"
            or request_type == "embedding"
        )
    else:
        matches = (
            operation_name in _FOREIGN_INFERENCE_OPERATIONS
            or kind == "LLM"
            or request_type in ("chat", "completion")
        )
    return span if matches else None


# --------------------------------------------------------------------------- the call


def _is_fatal(error: BaseException) -> bool:
    return isinstance(error, (KeyboardInterrupt, SystemExit, GeneratorExit, asyncio.CancelledError))


def record_error(span: Span, error: BaseException) -> None:
    """Status ERROR, ``error.type`` (the exception's qualified class name), the exception event.

    Anything but an ``Exception`` (a cancellation, an interrupt) stops the call without being
    an error of it: the span just ends.
    """
    if not isinstance(error, Exception):
        return
    try:
        span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, f"{type(error).__qualname__}: {error}"))
        span.set_attribute(ERROR_TYPE, type(error).__qualname__)
    except Exception:
        log_once("could not record an error on an LLM span")


_current_call: contextvars.ContextVar[LLMCall | None] = contextvars.ContextVar(
    "ragprov_llm_call", default=None
)


def current_call() -> LLMCall | None:
    """The ragprov LLM call running in this context (for hooks inside the client)."""
    return _current_call.get()


class LLMCall:
    """One instrumented request: started before the client sends it, finished when its response
    (or the stream it returned) is done.

    ``owned`` — ragprov created the span and ends it; otherwise the span belongs to another
    instrumentation: ragprov only adds its step attributes and side-channel text, never ends it,
    and records streamed text as it arrives (that span may end as soon as the body is read).
    """

    __slots__ = (
        "_accumulator",
        "_first_chunk_ns",
        "_observe",
        "_output_done",
        "_start_ns",
        "_tokens",
        "_tool_calls_set",
        "capture",
        "finished",
        "owned",
        "route",
        "span",
        "types",
    )

    def __init__(
        self, span: Span, owned: bool, route: Route, capture: bool, types: ResultTypes
    ) -> None:
        self.span = span
        self.types = types
        self.owned = owned
        self.route = route
        self.capture = capture
        self.finished = False
        self._start_ns = time.monotonic_ns()
        self._first_chunk_ns = 0
        self._output_done = False
        self._accumulator: StreamAccumulator | None = None
        self._observe: Callable[[Any], object] | None = None
        self._tool_calls_set = 0
        self._tokens: tuple[Any, Any] | None = None

    # ---- context

    def attach(self, expose: bool) -> None:
        """Make the call current: its span (when owned), and the call itself for
        :func:`current_call` when ``expose`` (a client hook needs it)."""
        context_token = None
        if self.owned:
            context_token = otel_context.attach(trace.set_span_in_context(self.span))
        call_token = _current_call.set(self) if expose else None
        self._tokens = (context_token, call_token)

    def detach(self) -> None:
        tokens, self._tokens = self._tokens, None
        if tokens is None:
            return
        context_token, call_token = tokens
        try:
            if call_token is not None:
                _current_call.reset(call_token)
            if context_token is not None:
                otel_context.detach(context_token)
        except Exception:
            log_once("could not restore the context after an LLM call")

    # ---- outcomes of the request

    def failed(self, error: BaseException) -> None:
        """The client raised: the error is recorded on an owned span, which ends."""
        self.detach()
        self.end(error)

    def succeeded(self, result: Any) -> Any:
        """The client returned ``result``: finish now, or hand back a proxy that finishes later.

        Never raises; on an internal error the span ends and ``result`` is returned as it is.
        """
        self.detach()
        try:
            if self.owned and not self.span.is_recording():
                self.end(None)  # sampled out: nothing to record, no proxy
                return result
            if isinstance(result, self.types.raw):
                return self._raw_response(result)
            return self.handle_parsed(result)
        except BaseException as error:
            if _is_fatal(error):
                raise
            log_once("could not record an LLM response")
            self.end(None)
            return result

    def handle_parsed(self, result: Any) -> Any:
        """A parsed result: a stream gets a proxy, anything else is read and finishes the call."""
        if isinstance(result, self.types.streams):
            return SyncStreamProxy(result, self)
        if isinstance(result, self.types.async_streams):
            return AsyncStreamProxy(result, self)
        self.complete(self.route.read(result, self.capture))
        return result

    def _raw_response(self, response: Any) -> Any:
        """``with_raw_response`` / ``with_streaming_response``: read a body that was already read
        (its JSON); otherwise follow ``parse()`` and ``close()``."""
        body = _read_body(response)
        if body is not None:
            self.complete(self.route.read(body, self.capture))
            return response
        return RawResponseProxy(response, self)

    def record_native(self, data: Any) -> None:
        """The client's own tracing is about to end this call's (foreign) span with ``data``:
        record the answer now, while the span is still open. Streams are recorded as read."""
        if self.finished or self._output_done or data is None:
            return
        types = self.types
        if isinstance(data, (*types.streams, *types.async_streams)):
            return
        body = _read_body(data) if isinstance(data, types.raw) else data
        if body is not None:
            self._record_output(self.route.read(body, self.capture))

    # ---- streams

    def observer(self) -> Callable[[Any], object]:
        """The function that takes each event of the stream (call at the first event).

        For an owned span it is the accumulator's ``feed`` itself: one call per event, the text
        recorded at the end. For another instrumentation's span, each text delta goes to the side
        channel as it arrives (that span may end as soon as the body is read).
        """
        if self._observe is not None:
            return self._observe
        self._first_chunk_ns = time.monotonic_ns()
        accumulator = self._accumulator = self.route.accumulator(self.capture)
        if self.owned:
            self._observe = accumulator.feed
            return self._observe

        def observe(event: Any) -> None:
            text = accumulator.feed(event)
            if text:
                sidechannel.record_step_output(self.span, text)
                self._output_done = True
            self._set_tool_calls(accumulator.tool_calls())

        self._observe = observe
        return observe

    def observe_failed(self) -> Callable[[Any], object]:
        """An event could not be read: log once, ignore the rest of the stream."""
        log_once("could not read an LLM stream event")
        self._accumulator = _NullAccumulator()
        self._observe = _ignore
        return _ignore

    def stream_event(self, event: Any) -> None:
        """One event of the stream, for ``__next__`` / ``__anext__`` (never raises)."""
        try:
            self.observer()(event)
        except Exception:
            self.observe_failed()

    def stream_end(self, error: BaseException | None) -> None:
        """The stream was exhausted, closed, failed or dropped (never raises)."""
        if self.finished:
            return
        try:
            accumulator = self._accumulator
            response = None if accumulator is None else accumulator.result()
            if response is not None and self._first_chunk_ns and self.owned:
                seconds = (self._first_chunk_ns - self._start_ns) / 1e9
                response.attributes[GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] = seconds
            if response is not None and error is None:
                self.complete(response)
            elif response is not None:
                self._record_output(response)
        except Exception:
            log_once("could not record an LLM stream")
        self.end(error)

    # ---- finishing

    def complete(self, response: LLMResponse) -> None:
        """Record the response (side channel, attributes) and end an owned span."""
        self._record_output(response)
        if self.owned:
            try:
                self.span.set_attributes(_response_attributes(response, self.capture))
            except Exception:
                log_once("could not record LLM response attributes")
        self.end(None)

    def _record_output(self, response: LLMResponse) -> None:
        if self.route.is_step and not self._output_done:
            self._output_done = True
            sidechannel.record_step_output(self.span, response.output_text)
        if self.route.is_step:
            self._set_tool_calls(response.tool_calls)

    def _set_tool_calls(self, tool_calls: list[tuple[str, str]]) -> None:
        if len(tool_calls) <= self._tool_calls_set or not self.span.is_recording():
            return
        self._tool_calls_set = len(tool_calls)
        self.span.set_attributes(
            {
                attrs.RAG_REQUESTED_TOOL_CALL_IDS: [call_id for call_id, _ in tool_calls],
                attrs.RAG_REQUESTED_TOOL_NAMES: [name for _, name in tool_calls],
            }
        )

    def end(self, error: BaseException | None) -> None:
        if self.finished:
            return
        self.finished = True
        if not self.owned:
            return  # the other instrumentation records its errors and ends its span
        if error is not None:
            record_error(self.span, error)
        try:
            self.span.end()
        except Exception:
            log_once("could not end an LLM span")


def _ignore(event: Any) -> None:
    return None


class _NullAccumulator:
    """Stands in for an accumulator that failed: the stream goes on, unobserved."""

    def feed(self, event: Any) -> str | None:
        return None

    def tool_calls(self) -> list[tuple[str, str]]:
        return []

    def result(self) -> LLMResponse:
        return LLMResponse()


def _read_body(response: Any) -> Any:
    """The JSON body of a raw response whose body was already read, else None (a stream, or a
    ``with_streaming_response`` body not read yet)."""
    http_response = getattr(response, "http_response", None)
    if http_response is None:
        return None
    try:
        content = http_response.content  # raises when the body was not read yet
    except Exception:
        return None
    return json.loads(content) if content else None


def _response_attributes(response: LLMResponse, capture: bool) -> dict[str, AttributeValue]:
    attributes: dict[str, AttributeValue] = {}
    if response.response_id:
        attributes[GEN_AI_RESPONSE_ID] = response.response_id
    if response.model:
        attributes[GEN_AI_RESPONSE_MODEL] = response.model
    if response.finish_reasons:
        attributes[GEN_AI_RESPONSE_FINISH_REASONS] = list(response.finish_reasons)
    if response.input_tokens is not None:
        attributes[GEN_AI_USAGE_INPUT_TOKENS] = response.input_tokens
    if response.output_tokens is not None:
        attributes[GEN_AI_USAGE_OUTPUT_TOKENS] = response.output_tokens
    attributes.update(response.attributes)
    if capture and response.output_messages is not None:
        attributes[GEN_AI_OUTPUT_MESSAGES] = json_text(response.output_messages)
    return attributes


# --------------------------------------------------------------------------- proxies


class SyncStreamProxy(wrapt.ObjectProxy[Any]):
    """The client's stream, observed: every event is fed to the call; the call finishes when
    the stream is exhausted, fails, is closed (``close()``, ``with``) or garbage-collected.
    ``isinstance`` checks and every other attribute see the client's own stream."""

    def __init__(self, stream: Any, call: LLMCall) -> None:
        super().__init__(stream)
        self._self_call = call

    def __iter__(self) -> Iterator[Any]:
        return self._self_events()

    def _self_events(self) -> Iterator[Any]:
        # A generator calling the accumulator directly: resuming it costs less than a __next__
        # call per event, and there is one Python call per event.
        call = self._self_call
        observe: Callable[[Any], object] | None = None
        try:
            for event in self.__wrapped__:
                try:
                    if observe is None:
                        observe = call.observer()
                    observe(event)
                except Exception:
                    observe = call.observe_failed()
                yield event
        except GeneratorExit:
            # The loop stopped (break) or was dropped: the stream may still be read on, and
            # ends when exhausted, closed or collected.
            raise
        except BaseException as error:
            call.stream_end(error)
            raise
        call.stream_end(None)

    def __next__(self) -> Any:
        try:
            event = self.__wrapped__.__next__()
        except StopIteration:
            self._self_call.stream_end(None)
            raise
        except BaseException as error:
            self._self_call.stream_end(error)
            raise
        self._self_call.stream_event(event)
        return event

    def __enter__(self) -> SyncStreamProxy:
        self.__wrapped__.__enter__()
        return self

    def __exit__(self, *exc_info: Any) -> Any:
        try:
            return self.__wrapped__.__exit__(*exc_info)
        finally:
            self._self_call.stream_end(None)

    def close(self) -> Any:
        try:
            return self.__wrapped__.close()
        finally:
            self._self_call.stream_end(None)

    def __del__(self) -> None:
        call = getattr(self, "_self_call", None)
        if call is not None and not call.finished:
            call.stream_end(None)


class AsyncStreamProxy(wrapt.ObjectProxy[Any]):
    """The async twin of :class:`SyncStreamProxy`."""

    def __init__(self, stream: Any, call: LLMCall) -> None:
        super().__init__(stream)
        self._self_call = call

    def __aiter__(self) -> AsyncStreamProxy:
        return self

    async def __anext__(self) -> Any:
        try:
            event = await self.__wrapped__.__anext__()
        except StopAsyncIteration:
            self._self_call.stream_end(None)
            raise
        except BaseException as error:
            self._self_call.stream_end(error)
            raise
        self._self_call.stream_event(event)
        return event

    async def __aenter__(self) -> AsyncStreamProxy:
        await self.__wrapped__.__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> Any:
        try:
            return await self.__wrapped__.__aexit__(*exc_info)
        finally:
            self._self_call.stream_end(None)

    async def close(self) -> Any:
        try:
            return await self.__wrapped__.close()
        finally:
            self._self_call.stream_end(None)

    def __del__(self) -> None:
        call = getattr(self, "_self_call", None)
        if call is not None and not call.finished:
            call.stream_end(None)


class RawResponseProxy(wrapt.ObjectProxy[Any]):
    """A raw response whose body is not read yet (a stream, or ``with_streaming_response``):
    ``parse()`` returns the parsed result (a stream comes back observed) and finishes the call;
    ``close()`` or garbage collection end it without a response."""

    def __init__(self, response: Any, call: LLMCall) -> None:
        super().__init__(response)
        self._self_call = call

    def parse(self, *args: Any, **kwargs: Any) -> Any:
        call = self._self_call
        try:
            result = self.__wrapped__.parse(*args, **kwargs)
        except BaseException as error:
            call.stream_end(error)
            raise
        if inspect.isawaitable(result):
            return self._await_parsed(result)
        return self._parsed(result)

    async def _await_parsed(self, awaitable: Any) -> Any:
        try:
            result = await awaitable
        except BaseException as error:
            self._self_call.stream_end(error)
            raise
        return self._parsed(result)

    def _parsed(self, result: Any) -> Any:
        call = self._self_call
        if call.finished:
            return result
        try:
            return call.handle_parsed(result)
        except Exception:
            log_once("could not record an LLM response")
            call.end(None)
            return result

    def close(self) -> Any:
        result = self.__wrapped__.close()
        if inspect.isawaitable(result):
            return self._await_close(result)
        self._self_call.stream_end(None)
        return result

    async def _await_close(self, awaitable: Any) -> Any:
        try:
            return await awaitable
        finally:
            self._self_call.stream_end(None)

    def __del__(self) -> None:
        call = getattr(self, "_self_call", None)
        if call is not None and not call.finished:
            call.stream_end(None)


# --------------------------------------------------------------------------- tracer


Wrapper = Callable[[Callable[..., Any], Any, tuple[Any, ...], dict[str, Any]], Any]


class ClientAdapter(Protocol):
    """What a client module tells the tracer about its client."""

    #: What the client's request path returns besides parsed models.
    types: ResultTypes
    #: Whether a hook inside the client reads :func:`current_call` during the request.
    exposes_call: bool

    def route(self, method: str, path: str) -> Route | None:
        """The LLM route of a request, or None for any other API call."""

    def provider_name(self, client: Any) -> str:
        """``gen_ai.provider.name`` of a client instance."""


@dataclass(slots=True)
class LLMTracer:
    """Creates the LLM spans of one client library with one tracer."""

    adapter: ClientAdapter
    tracer: trace.Tracer

    def begin(self, client: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> LLMCall | None:
        """Start the call of ``client.request(cast_to, options, *, stream=...)``; None when it
        is not an LLM call, instrumentation is suppressed, or something went wrong."""
        if not is_instrumentation_enabled():
            return None
        try:
            options = kwargs.get("options", args[1] if len(args) > 1 else None)
            route = self.adapter.route(str(get(options, "method") or ""), str(get(options, "url")))
            if route is None:
                return None
            foreign = foreign_llm_span(route.operation)
            if foreign is not None and not route.is_step:
                return None  # another instrumentation traces this embeddings call
            body = _body(options)
            capture = foreign is None and capture_content_enabled()
            request = route.describe(body, capture)
            if foreign is not None:
                call = LLMCall(foreign, False, route, False, self.adapter.types)
                foreign.set_attributes(
                    {
                        attrs.RAG_STEP_ID: ids.new_step_id(),
                        attrs.RAG_TRANSFORMATION_TYPE: GENERATION,
                    }
                )
            else:
                stream = bool(kwargs.get("stream", False))
                span = self._start_span(client, route, request, stream, capture)
                call = LLMCall(span, True, route, capture, self.adapter.types)
            if route.is_step:
                sidechannel.record_step_input(call.span, request.input_texts)
            call.attach(self.adapter.exposes_call)
            return call
        except BaseException as error:
            if _is_fatal(error):
                raise
            log_once("could not start an LLM span")
            return None

    def _start_span(
        self, client: Any, route: Route, request: LLMRequest, stream: bool, capture: bool
    ) -> Span:
        attributes: dict[str, AttributeValue] = {
            GEN_AI_OPERATION_NAME: route.operation,
            GEN_AI_PROVIDER_NAME: self.adapter.provider_name(client),
        }
        if request.model:
            attributes[GEN_AI_REQUEST_MODEL] = request.model
        attributes.update(_server_attributes(client))
        attributes.update(request.attributes)
        if stream:
            attributes[GEN_AI_REQUEST_STREAM] = True
        if route.is_step:
            attributes[attrs.RAG_STEP_ID] = ids.new_step_id()
            attributes[attrs.RAG_TRANSFORMATION_TYPE] = GENERATION
        if capture:
            if request.input_messages is not None:
                attributes[GEN_AI_INPUT_MESSAGES] = json_text(request.input_messages)
            if request.system_instructions:
                attributes[GEN_AI_SYSTEM_INSTRUCTIONS] = json_text(request.system_instructions)
        name = f"{route.operation} {request.model}" if request.model else route.operation
        return self.tracer.start_span(
            name,
            kind=SpanKind.CLIENT,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        )

    def sync_wrapper(self) -> Wrapper:
        def wrapper(
            wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: Any
        ) -> Any:
            call = self.begin(instance, args, kwargs)
            if call is None:
                return wrapped(*args, **kwargs)
            try:
                result = wrapped(*args, **kwargs)
            except BaseException as error:
                call.failed(error)
                raise
            return call.succeeded(result)

        return wrapper

    def async_wrapper(self) -> Wrapper:
        async def wrapper(
            wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: Any
        ) -> Any:
            call = self.begin(instance, args, kwargs)
            if call is None:
                return await wrapped(*args, **kwargs)
            try:
                result = await wrapped(*args, **kwargs)
            except BaseException as error:
                call.failed(error)
                raise
            return call.succeeded(result)

        return wrapper


def _body(options: Any) -> Mapping[str, Any]:
    """The JSON body of the request options, with ``extra_body`` merged over it."""
    body = get(options, "json_data")
    extra = get(options, "extra_json")
    if not isinstance(body, Mapping):
        return dict(extra) if isinstance(extra, Mapping) else {}
    if isinstance(extra, Mapping) and extra:
        return {**body, **extra}
    return body


_server_cache: tuple[object, dict[str, AttributeValue]] = (None, {})


def _server_attributes(client: Any) -> dict[str, AttributeValue]:
    """``server.address`` / ``server.port`` of the client's base URL (the last one is cached:
    a client's URL object rarely changes)."""
    global _server_cache
    url = getattr(client, "base_url", None)
    cached_url, cached = _server_cache
    if url is cached_url and url is not None:
        return cached
    host = getattr(url, "host", None)
    if not isinstance(host, str) or not host:
        return {}
    port = getattr(url, "port", None)
    if not isinstance(port, int):
        port = 80 if getattr(url, "scheme", None) == "http" else 443
    attributes: dict[str, AttributeValue] = {SERVER_ADDRESS: host, SERVER_PORT: port}
    _server_cache = (url, attributes)
    return attributes


# --------------------------------------------------------------------------- instrumentor


class LLMClientInstrumentor(PatchingInstrumentor[trace.Tracer]):
    """Base of the LLM-client instrumentors: subclasses set :attr:`library` and implement
    :meth:`_patch` (import the client library there, never at module level), calling
    :meth:`_wrap` for each patched function with the tracer they get.
    """

    def _context(self, tracer_provider: trace.TracerProvider | None) -> trace.Tracer:
        return trace.get_tracer(
            f"ragprov.instrumentation.{self.library}", __version__, tracer_provider
        )


def warn_if_shadowed(classes: Iterable[type], name: str, base: type) -> None:
    """Log once when a client class has its own ``name`` (another instrumentation patched it
    on the subclass before ragprov was instrumented): those clients bypass ragprov's patch."""
    for cls in classes:
        if cls is not base and name in vars(cls):
            _logger.warning(
                "ragprov: %s.%s was patched by another instrumentation before ragprov; calls "
                "through it are not seen by ragprov (instrument ragprov first)",
                cls.__qualname__,
                name,
            )


def text_parts(texts: Sequence[str]) -> list[dict[str, Any]]:
    """Message parts of plain texts."""
    return [{"type": "text", "content": text} for text in texts]

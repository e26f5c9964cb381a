"""One instrumented LLM request, from before it is sent until its response is read.

:class:`LLMCall` makes its span current while the client runs, records the outcome — response
attributes on a span ragprov owns, the answer and requested tool calls on any span — and ends an
owned span. The side channel gets the answer with
:func:`ragprov.sidechannel.record_step_output`. A stream or a raw response whose body is not read
yet is handed back inside a proxy (:mod:`ragprov.instrumentation._llm_streams`) that finishes the
call later.
"""

from __future__ import annotations

import contextvars
import json
import time
from collections.abc import Callable
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span

from ragprov import sidechannel
from ragprov.instrumentation._genai_names import (
    GEN_AI_OUTPUT_MESSAGES,
    GEN_AI_RESPONSE_FINISH_REASONS,
    GEN_AI_RESPONSE_ID,
    GEN_AI_RESPONSE_MODEL,
    GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK,
    GEN_AI_USAGE_INPUT_TOKENS,
    GEN_AI_USAGE_OUTPUT_TOKENS,
)
from ragprov.instrumentation._llm_model import (
    LLMResponse,
    NullAccumulator,
    ResultTypes,
    Route,
    StreamAccumulator,
    json_text,
)
from ragprov.instrumentation._llm_streams import (
    AsyncStreamProxy,
    RawResponseProxy,
    SyncStreamProxy,
)
from ragprov.instrumentation._patching import is_fatal, log_once, record_error
from ragprov.model import AttributeValue
from ragprov.semconv import attributes as attrs

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
            if is_fatal(error):
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
        self._accumulator = NullAccumulator()  # the stream goes on, unobserved
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

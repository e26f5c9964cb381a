"""The LLM-client instrumentors' tracer: one span (or one enriched span) per LLM call.

A client module only knows its client: where its single request path is, which URL paths are
LLM calls (a :class:`~ragprov.instrumentation._llm_model.Route` per path), how to read a request
body, a response and a stream of events (:mod:`~ragprov.instrumentation._llm_model`). The rest is
shared, one job per module:

* here — :class:`LLMTracer` wraps the request path: it starts one GenAI inference span per call,
  ``{gen_ai.operation.name} {gen_ai.request.model}``, kind CLIENT, request attributes at creation
  (so samplers see them), ``rag.step_id`` and ``rag.transformation_type = generation``
  (embeddings calls get an ``embeddings {model}`` span and are not steps), and hands the text of
  every input message to the provenance processor
  (:func:`ragprov.sidechannel.record_step_input`); content becomes attributes
  (``gen_ai.input.messages``, ``gen_ai.system_instructions``) only when content capture is on;
* :mod:`~ragprov.instrumentation._llm_call` — the call until its response is read: outcome,
  answer to the side channel, response attributes, the span's end;
* :mod:`~ragprov.instrumentation._llm_streams` — proxies around streams and raw responses;
* :mod:`~ragprov.instrumentation._llm_coexistence` — when another instrumentation's GenAI span
  for this call is current (or held by its wrapper on the stack), no span is created: that span
  gets ``rag.step_id`` and ``rag.transformation_type`` and the side channel is keyed on it;
* :mod:`~ragprov.instrumentation._genai_names` — attribute names.

Safety: the wrapped call runs exactly once with its own arguments; its result (or the proxy
around it) and its exceptions reach the caller unchanged; errors of the instrumentation itself
are logged once and swallowed; the suppress-instrumentation key is respected.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from opentelemetry import trace

# instrumentor.py starts with a file-level "# type: ignore", so mypy sees no names in it.
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.trace import Span, SpanKind

from ragprov import __version__, ids, sidechannel
from ragprov.config import capture_content_enabled
from ragprov.instrumentation._genai_names import (
    GEN_AI_INPUT_MESSAGES,
    GEN_AI_OPERATION_NAME,
    GEN_AI_PROVIDER_NAME,
    GEN_AI_REQUEST_MODEL,
    GEN_AI_REQUEST_STREAM,
    GEN_AI_SYSTEM_INSTRUCTIONS,
    GENERATION,
    SERVER_ADDRESS,
    SERVER_PORT,
)
from ragprov.instrumentation._llm_call import LLMCall
from ragprov.instrumentation._llm_coexistence import SpanInFrame, foreign_llm_span
from ragprov.instrumentation._llm_model import LLMRequest, ResultTypes, Route, get, json_text
from ragprov.instrumentation._patching import PatchingInstrumentor, Wrapper, is_fatal, log_once
from ragprov.model import AttributeValue
from ragprov.semconv import attributes as attrs


class ClientAdapter(Protocol):
    """What a client module tells the tracer about its client."""

    #: What the client's request path returns besides parsed models.
    types: ResultTypes
    #: Whether a hook inside the client reads :func:`current_call` during the request.
    exposes_call: bool
    #: Other instrumentations of the client that keep their span of a call out of the context.
    hidden_spans: tuple[SpanInFrame, ...]

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
            foreign = foreign_llm_span(route.operation, self.adapter.hidden_spans)
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
            if is_fatal(error):
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

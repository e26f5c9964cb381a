"""Coexistence with other GenAI instrumentations of the same client: one LLM span per call.

* :func:`foreign_llm_span` — is the current span another instrumentation's LLM span for this
  very call? Then ragprov enriches it instead of creating its own.
* :class:`SpanInFrame` — an instrumentation that does not make its span current while the
  request is sent (OpenLLMetry's anthropic instrumentation, OpenInference's
  ``messages.stream()``): its wrapper is still on the call stack while the
  request runs, so ragprov finds that span in the wrapper's frame and enriches it.
* :func:`slip_beneath` — an instrumentation that patched the client's request path on a
  subclass (OpenInference wraps ``OpenAI.request``) hides ragprov's patch on the base class;
  ragprov then puts its wrapper beneath theirs, so their span is current when ragprov runs.
"""

from __future__ import annotations

import contextvars
import logging
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import FrameType
from typing import Any

import wrapt
from opentelemetry import trace
from opentelemetry.trace import Span

from ragprov import foreign
from ragprov.instrumentation._genai_names import EMBEDDINGS_OPERATION
from ragprov.semconv import attributes as attrs

_logger = logging.getLogger(__name__)

# What every wrapt wrapper derives from: BaseObjectProxy since wrapt 2 (its ObjectProxy is a
# subclass that function wrappers are not), ObjectProxy before.
_PROXY: type[Any] = getattr(wrapt, "BaseObjectProxy", wrapt.ObjectProxy)

_caller_span: contextvars.ContextVar[Span | None] = contextvars.ContextVar(
    "ragprov_llm_caller_span", default=None
)


@dataclass(frozen=True, slots=True)
class SpanInFrame:
    """Where another instrumentation keeps the span of a call it does not make current: in a
    local of one of its functions (``functions`` of ``module``), whose frame is on the call stack
    while the client's request runs. ``read`` takes that frame's locals and returns the span."""

    module: str
    functions: frozenset[str]
    read: Callable[[Mapping[str, Any]], Any]


#: The anthropic instrumentations that keep their span out of the context while ragprov runs:
#:
#: * OpenLLMetry's (opentelemetry-instrumentation-anthropic, checked with 0.62.4) never makes its
#:   span current: ``_wrap`` / ``_awrap`` around ``Messages.create`` and ``stream`` hold it in
#:   ``span``; ``messages.stream()`` sends the request later, from its stream manager's
#:   ``__enter__`` / ``__aenter__``, which holds it in ``self._span``;
#: * OpenInference's (openinference-instrumentation-anthropic, checked with 3.1.0) makes its
#:   ``messages.stream()`` span current only inside ``stream()``; the request is sent later from
#:   its manager proxy's ``__enter__`` / ``__aenter__``, which holds it in
#:   ``self._self_with_span._span``.
ANTHROPIC_SPANS_IN_FRAMES: tuple[SpanInFrame, ...] = (
    SpanInFrame(
        "opentelemetry.instrumentation.anthropic",
        frozenset({"_wrap", "_awrap"}),
        lambda frame_locals: frame_locals.get("span"),
    ),
    SpanInFrame(
        "opentelemetry.instrumentation.anthropic.streaming",
        frozenset({"__enter__", "__aenter__"}),
        lambda frame_locals: getattr(frame_locals.get("self"), "_span", None),
    ),
    SpanInFrame(
        "openinference.instrumentation.anthropic._wrappers",
        frozenset({"__enter__", "__aenter__"}),
        lambda frame_locals: getattr(
            getattr(frame_locals.get("self"), "_self_with_span", None), "_span", None
        ),
    ),
)

# How far up the stack an instrumentation's wrapper is looked for: it sits a fixed number of the
# client's own frames (about a dozen) above the request path, whatever the application's depth.
_MAX_FRAMES = 48


def foreign_llm_span(operation: str, hidden: tuple[SpanInFrame, ...] = ()) -> Span | None:
    """Another instrumentation's GenAI span for this very call: the current span, or one kept
    in a frame described by ``hidden``.

    ragprov's wrapper sits at the client's request path, *inside* instrumentations that wrap the
    resource methods (``chat.completions.create``) or the client's own tracing. Their span is
    current while the request runs — or, for those that never make it current, is a local of
    their wrapper's frame on the stack (:class:`SpanInFrame`). It is taken as the span of this
    call when it is recording, was not made by ragprov (it has no ``rag.step_id`` yet), and says
    it is an inference span (:func:`ragprov.foreign.is_generation`: ``gen_ai.operation.name``
    chat / text_completion / generate_content, OpenInference span kind ``LLM``, OpenLLMetry
    ``llm.request.type`` chat / completion) or, for an embeddings call, an embeddings span.
    """
    span = trace.get_current_span()
    if not span.is_recording():
        caller = _caller_span.get()
        # A client's own tracing without an SDK tracer provider (anthropic's, through the global
        # no-op tracer) makes current a non-recording span that carries the context of the span
        # around the call: look through it to the span current when the client was called.
        if caller is not None and caller.get_span_context() == span.get_span_context():
            span = caller
    if _is_foreign_llm_span(span, operation):
        return span
    if hidden:
        held = _span_in_frames(hidden)
        if held is not None and _is_foreign_llm_span(held, operation):
            return held
    return None


def _is_foreign_llm_span(span: Span, operation: str) -> bool:
    if not span.is_recording():
        return False
    attributes = getattr(span, "attributes", None)
    if not isinstance(attributes, Mapping) or attrs.RAG_STEP_ID in attributes:
        return False
    if operation == EMBEDDINGS_OPERATION:
        return foreign.is_embeddings(attributes)
    return foreign.is_generation(attributes)


def _span_in_frames(hidden: tuple[SpanInFrame, ...]) -> Span | None:
    """The span held by the innermost frame on the stack that ``hidden`` describes.

    Costs one dictionary look-up per entry when the other instrumentation is not imported; else
    a walk of at most :data:`_MAX_FRAMES` frames, comparing each one's globals and code name.
    """
    namespaces = [
        (vars(module), entry)
        for entry in hidden
        if (module := sys.modules.get(entry.module)) is not None
    ]
    if not namespaces:
        return None
    frame: FrameType | None = sys._getframe(1)
    for _ in range(_MAX_FRAMES):
        if frame is None:
            return None
        for namespace, entry in namespaces:
            if frame.f_globals is namespace and frame.f_code.co_name in entry.functions:
                try:
                    span = entry.read(frame.f_locals)
                except Exception:  # their object, not ours: a failing read means no span
                    return None
                return span if isinstance(span, Span) else None
        frame = frame.f_back
    return None


def remember_caller_span(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """A wrapt wrapper of a client's public request method: the span current at the call is
    what :func:`foreign_llm_span` looks through a client's non-recording span to."""
    token = _caller_span.set(trace.get_current_span())
    try:
        return wrapped(*args, **kwargs)
    finally:
        _caller_span.reset(token)


async def remember_caller_span_async(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """The async twin of :func:`remember_caller_span`."""
    token = _caller_span.set(trace.get_current_span())
    try:
        return await wrapped(*args, **kwargs)
    finally:
        _caller_span.reset(token)


#: (another instrumentation's wrapper, what it wrapped before, ragprov's patch it wraps now).
Slipped = tuple[Any, Any, Any]


def slip_beneath(classes: Iterable[type], name: str, base: type) -> list[Slipped]:
    """Put ragprov's patch of ``base.name`` beneath other instrumentations' wrappers of it on
    client subclasses; call right after patching ``base``.

    OpenInference wraps ``OpenAI.request`` on the subclass: its wrapper calls the function it
    found, the base's original, so calls would skip ragprov's patch of the base. When such a
    wrapper (a wrapt proxy, possibly several stacked) ends at the base's original function, its
    innermost ``__wrapped__`` becomes ragprov's patch: theirs runs first, its span is current
    when ragprov runs, and ragprov enriches it. Anything else that shadows the base is logged.
    Returns what :func:`unslip` needs to undo it.
    """
    patched = vars(base).get(name)
    original = getattr(patched, "__wrapped__", None)
    slipped: list[Slipped] = []
    for cls in classes:
        if cls is base or name not in vars(cls):
            continue
        innermost = _innermost_proxy(vars(cls)[name])
        if original is not None and innermost is not None and innermost.__wrapped__ is original:
            innermost.__wrapped__ = patched
            slipped.append((innermost, original, patched))
            continue
        _logger.warning(
            "ragprov: %s.%s was replaced by another instrumentation before ragprov; calls "
            "through it are not seen by ragprov (instrument ragprov first)",
            cls.__qualname__,
            name,
        )
    return slipped


def unslip(slipped: Iterable[Slipped]) -> None:
    """Undo :func:`slip_beneath` where the other wrapper still wraps ragprov's patch."""
    for proxy, original, patched in slipped:
        if proxy.__wrapped__ is patched:
            proxy.__wrapped__ = original


def _innermost_proxy(value: Any) -> Any:
    """The innermost of stacked wrapt proxies, or None when ``value`` is not one."""
    if not isinstance(value, _PROXY):
        return None
    while isinstance(value.__wrapped__, _PROXY):
        value = value.__wrapped__
    return value

"""Retrieval spans of framework retrievers (LangChain's ``BaseRetriever``, LlamaIndex's).

A framework module knows its retriever class: its name, ``top_k``, retrieval method and how to
read what it returned into :class:`Returned` rows. Everything else lives here:

* one GenAI retrieval span per call (``retrieval {retriever name}``, kind ``CLIENT``,
  ``gen_ai.operation.name = retrieval``), open with a
  :class:`~ragprov.lineage.RetrievalSlot` in context while the retriever runs;
* when an instrumented store call runs inside it, that call **enriches** the span (store
  attributes; the span is renamed ``retrieval {collection}``) instead of making a second
  retrieval span — the rule of :data:`~ragprov.lineage.RETRIEVAL_SPAN_KEY` — and
  the span's set is the store's chunks narrowed to what the retriever returned, in its order
  (an MMR search fetches more candidates than it keeps; a score threshold drops some): each
  returned item is matched by text to the store's chunk, whose id, score and metadata it keeps;
* otherwise the set is what the retriever returned, read as chunks (chunk id from the metadata
  ``chunk_id``, else the content hash, else the item's own id);
* the query text is hashed into ``rag.query_hash`` (exported only with content capture);
* a retriever called inside another one gets its own span, a child of the outer one; the same
  retriever re-entered within its own call opens no second span;
* errors: status ERROR and the exception event, the exception reaches the caller unchanged;
  the instrumentation's own failures are logged once and swallowed; a sampled-out call copies
  nothing.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.trace import SpanKind

from ragprov.config import capture_content_enabled
from ragprov.instrumentation._base import (
    GEN_AI_RETRIEVAL_TOP_K,
    RETRIEVAL_OPERATION,
    Chunk,
    RetrievalSet,
    _apply_retrieval_set,
    settle_slot,
)
from ragprov.instrumentation._genai_names import GEN_AI_OPERATION_NAME
from ragprov.instrumentation._patching import Wrapper, log_once, record_error
from ragprov.lineage import RETRIEVAL_SPAN_KEY, RetrievalSlot
from ragprov.model import AttributeValue
from ragprov.semconv.attributes import RagRetrievalMethodValues

Returned = list[Any]
"""What a retriever returned, copied on the application thread (the caller may change it after
the call, while the processor's worker reads it): one flat list with four items per returned
item, in order — its own id, its text, a copy of its metadata (or None), its score (or None)."""


@dataclass(frozen=True, slots=True)
class RetrieverKind:
    """What a framework module tells about its retrievers."""

    framework: str  # in log messages
    name: Callable[[Any], str]
    top_k: Callable[[Any], int | None]
    method: Callable[[Any], RagRetrievalMethodValues]
    query: Callable[[tuple[Any, ...], dict[str, Any]], str | None]
    returned: Callable[[Any], Returned]


#: The retriever whose call is traced in this context: the same retriever re-entered opens no
#: second span.
_RETRIEVER_KEY = otel_context.create_key("ragprov-framework-retriever")


class _RetrieverCall:
    """The span of one retriever call and the slot that lets a store call enrich it."""

    __slots__ = ("_token", "kind", "slot", "span")

    def __init__(self, tracer: trace.Tracer, kind: RetrieverKind, retriever: Any) -> None:
        self.kind = kind
        attributes: dict[str, AttributeValue] = {GEN_AI_OPERATION_NAME: RETRIEVAL_OPERATION}
        top_k = kind.top_k(retriever)
        if top_k is not None:
            attributes[GEN_AI_RETRIEVAL_TOP_K] = top_k
        self.span = tracer.start_span(
            f"{RETRIEVAL_OPERATION} {kind.name(retriever)}",
            kind=SpanKind.CLIENT,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        )
        # One context for the call: the span current, the slot a store call enriches (what
        # _base.retrieval_span_scope sets) and this retriever.
        self.slot = RetrievalSlot(self.span)
        context = trace.set_span_in_context(self.span)
        context = otel_context.set_value(RETRIEVAL_SPAN_KEY, self.slot, context)
        context = otel_context.set_value(_RETRIEVER_KEY, retriever, context)
        self._token = otel_context.attach(context)

    def _leave(self) -> None:
        otel_context.detach(self._token)

    def fail(self, error: BaseException) -> None:
        try:
            self._leave()
        finally:
            record_error(self.span, error)
            self.span.end()

    def finish(
        self, retriever: Any, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any
    ) -> None:
        kind = self.kind
        try:
            self._leave()
            if not self.span.is_recording():  # sampled out: nothing would record the set
                return
            returned = kind.returned(result)
            query, method = kind.query(args, kwargs), kind.method(retriever)
            if self.slot.enriched:
                self._name_after_data_source()
                settle_slot(self.slot, functools.partial(_returned_only, returned, query, method))
            else:
                retrieval_set = RetrievalSet(
                    functools.partial(chunks_of, returned),
                    query,
                    method,
                    text_chars=sum(len(text) for text in returned[1::4] if text),
                )
                _apply_retrieval_set(
                    self.span, retrieval_set, None, capture_content_enabled(), self.slot.set_id()
                )
        except Exception:
            log_once(f"could not record a {kind.framework} retrieval")
        finally:
            self.span.end()

    def _name_after_data_source(self) -> None:
        """A store call enriched the span: it now stands for that call, and is named like the
        store's own retrieval spans (``retrieval {collection}``, the id the call left in the
        slot with its set)."""
        data_source_id = self.slot.pending[1] if self.slot.pending is not None else None
        if data_source_id:
            self.span.update_name(f"{RETRIEVAL_OPERATION} {data_source_id}")


def _begin(tracer: trace.Tracer, kind: RetrieverKind, retriever: Any) -> _RetrieverCall | None:
    if otel_context.get_value(_RETRIEVER_KEY) is retriever or not is_instrumentation_enabled():
        return None
    try:
        return _RetrieverCall(tracer, kind, retriever)
    except Exception:
        log_once(f"could not start a {kind.framework} retrieval span")
        return None


def retriever_wrapper(tracer: trace.Tracer, kind: RetrieverKind) -> Wrapper:
    """A wrapt wrapper for a synchronous retriever method."""

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        call = _begin(tracer, kind, instance)
        if call is None:
            return wrapped(*args, **kwargs)
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as error:
            call.fail(error)
            raise
        call.finish(instance, args, kwargs, result)
        return result

    return wrapper


def async_retriever_wrapper(tracer: trace.Tracer, kind: RetrieverKind) -> Wrapper:
    """A wrapt wrapper for a coroutine retriever method: the span starts when the coroutine is
    awaited, in its task."""

    async def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        call = _begin(tracer, kind, instance)
        if call is None:
            return await wrapped(*args, **kwargs)
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException as error:
            call.fail(error)
            raise
        call.finish(instance, args, kwargs, result)
        return result

    return wrapper


# --------------------------------------------------------------------------- sets


def chunks_of(returned: Returned) -> list[Chunk]:
    """The chunks of :data:`Returned` rows (a :data:`~ragprov.instrumentation._base.ChunkReader`,
    which may run on the processor's worker)."""
    chunks = []
    for index in range(0, len(returned), 4):
        store_id, text, metadata, score = returned[index : index + 4]
        chunks.append(Chunk(store_id=store_id, text=text, metadata=metadata, score=score))
    return chunks


def _returned_only(
    returned: Returned,
    query: str | None,
    method: RagRetrievalMethodValues,
    store_set: RetrievalSet,
) -> RetrievalSet:
    """The enriching store call's set narrowed to what the retriever returned, in its order
    (see the module docstring); a reranked retriever's method replaces the store's."""

    def read() -> list[Chunk]:
        by_text: dict[str | None, Chunk] = {}
        for chunk in store_set.read_chunks():
            by_text.setdefault(chunk.text, chunk)
        return [by_text.get(chunk.text, chunk) for chunk in chunks_of(returned)]

    reranked = method is RagRetrievalMethodValues.RERANKED
    return RetrievalSet(
        read,
        store_set.query_text if store_set.query_text is not None else query,
        method if reranked else store_set.retrieval_method,
        store_set.top_k,
        store_set.text_chars,
    )

"""LangChain retrievers: one GenAI retrieval span per ``BaseRetriever.invoke`` / ``ainvoke``.

A retriever is where a LangChain app retrieves, whatever is underneath: a vector store ragprov
instruments (chromadb, qdrant, lancedb, pinecone), one it does not (FAISS, pgvector,
Elasticsearch, LangChain's ``InMemoryVectorStore`` …), a BM25 index or a web search. The span
(``retrieval {retriever name}``, kind ``CLIENT``, ``gen_ai.operation.name = retrieval``) is
open as a :class:`~ragprov.instrumentation._base.RetrievalSlot` while the retriever runs:

* when an instrumented store call runs inside it, that call **enriches** the span (store
  attributes, the provenance envelope, the chunk texts; the span is renamed
  ``retrieval {collection}``) instead of making a second retrieval span — the rule of
  :data:`~ragprov.instrumentation._base.RETRIEVAL_SPAN_KEY`. The set is the store's chunks
  narrowed to the documents the retriever returned, in their order (an MMR search fetches
  ``fetch_k`` candidates and keeps ``k``; a score threshold drops some);
* otherwise the span's set is the documents the retriever returned, in order: chunk id from
  ``metadata["chunk_id"]``, else the content hash of ``page_content``, else ``Document.id``;
  ``rag.chunk_scores`` when every document has a numeric ``metadata["relevance_score"]`` (what
  LangChain's rerankers and compressors set); ``rag.retrieval_method`` ``dense`` for a vector
  store retriever (``reranked`` with ``search_type="mmr"``), else ``unknown``. The input string
  is the query text (hashed into ``rag.query_hash``; exported only with content capture).

``gen_ai.retrieval.top_k`` is a vector store retriever's ``search_kwargs["k"]`` (LangChain's
default 4), else the retriever's own integer ``k`` if it has one. A retriever called inside
another one (a compression or multi-query retriever around a base retriever) gets its own
span, a child of the outer one: the outer span's set is what the outer retriever returned. The
same retriever re-entered in its own call (an async retriever falling back to its sync method)
opens no second span.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.trace import SpanKind

from ragprov.config import capture_content_enabled
from ragprov.instrumentation._base import (
    GEN_AI_DATA_SOURCE_ID,
    GEN_AI_RETRIEVAL_TOP_K,
    RETRIEVAL_OPERATION,
    RETRIEVAL_SPAN_KEY,
    Chunk,
    RetrievalSet,
    RetrievalSlot,
    _apply_retrieval_set,
    as_float,
    as_text,
    positive_int,
    settle_slot,
)
from ragprov.instrumentation._genai_names import GEN_AI_OPERATION_NAME
from ragprov.instrumentation._patching import Wrapper, call_argument, log_once, record_error
from ragprov.model import AttributeValue
from ragprov.semconv.attributes import RagRetrievalMethodValues

#: The metadata key of a document's relevance to the query (LangChain's rerankers and
#: document compressors set it); other score keys are not read, as some integrations put
#: distances there.
RELEVANCE_SCORE_KEY = "relevance_score"

#: The retriever whose call is traced in this context: the same retriever re-entered opens no
#: second span.
_RETRIEVER_KEY = otel_context.create_key("ragprov-langchain-retriever")


class _RetrieverCall:
    """The span of one retriever call and the scope that lets a store call enrich it."""

    __slots__ = ("_token", "slot", "span")

    def __init__(self, tracer: trace.Tracer, retriever: Any) -> None:
        attributes: dict[str, AttributeValue] = {GEN_AI_OPERATION_NAME: RETRIEVAL_OPERATION}
        top_k = _top_k(retriever)
        if top_k is not None:
            attributes[GEN_AI_RETRIEVAL_TOP_K] = top_k
        self.span = tracer.start_span(
            f"{RETRIEVAL_OPERATION} {_retriever_name(retriever)}",
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

    def finish(self, retriever: Any, query: Any, documents: Any) -> None:
        try:
            self._leave()
            if not self.span.is_recording():  # sampled out: nothing would record the set
                return
            rows = _rows(documents)
            if self.slot.enriched:
                self._name_after_data_source()
                narrow = functools.partial(
                    _returned_only, rows, as_text(query), _retrieval_method(retriever)
                )
                settle_slot(self.slot, narrow)
            else:
                retrieval_set = RetrievalSet(
                    functools.partial(_chunks, rows),
                    as_text(query),
                    _retrieval_method(retriever),
                    text_chars=sum(len(text) for text in rows[1::3] if text),
                )
                _apply_retrieval_set(self.span, retrieval_set, None, capture_content_enabled())
        except Exception:
            log_once("could not record a LangChain retrieval")
        finally:
            self.span.end()

    def _name_after_data_source(self) -> None:
        """A store call enriched the span: it now stands for that call, and is named like the
        store's own retrieval spans (``retrieval {collection}``)."""
        span_attributes = getattr(self.span, "attributes", None) or {}
        data_source_id = span_attributes.get(GEN_AI_DATA_SOURCE_ID)
        if isinstance(data_source_id, str) and data_source_id:
            self.span.update_name(f"{RETRIEVAL_OPERATION} {data_source_id}")


def _begin(tracer: trace.Tracer, retriever: Any) -> _RetrieverCall | None:
    if otel_context.get_value(_RETRIEVER_KEY) is retriever or not is_instrumentation_enabled():
        return None
    try:
        return _RetrieverCall(tracer, retriever)
    except Exception:
        log_once("could not start a LangChain retrieval span")
        return None


def retriever_wrapper(tracer: trace.Tracer) -> Wrapper:
    """``BaseRetriever.invoke``."""

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        call = _begin(tracer, instance)
        if call is None:
            return wrapped(*args, **kwargs)
        try:
            documents = wrapped(*args, **kwargs)
        except BaseException as error:
            call.fail(error)
            raise
        call.finish(instance, call_argument(args, kwargs, "input", 0), documents)
        return documents

    return wrapper


def async_retriever_wrapper(tracer: trace.Tracer) -> Wrapper:
    """``BaseRetriever.ainvoke``: the span starts when the coroutine is awaited, in its task."""

    async def traced(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        call = _begin(tracer, instance)
        if call is None:
            return await wrapped(*args, **kwargs)
        try:
            documents = await wrapped(*args, **kwargs)
        except BaseException as error:
            call.fail(error)
            raise
        call.finish(instance, call_argument(args, kwargs, "input", 0), documents)
        return documents

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Coroutine[Any, Any, Any]:
        return traced(wrapped, instance, args, kwargs)

    return wrapper


# --------------------------------------------------------------------------- reading


def _retriever_name(retriever: Any) -> str:
    name = getattr(retriever, "name", None)  # set with name=... or with_config(run_name=...)
    return name if isinstance(name, str) and name else type(retriever).__name__


def _is_vector_store_retriever(retriever: Any) -> bool:
    return hasattr(retriever, "vectorstore") and isinstance(
        getattr(retriever, "search_kwargs", None), Mapping
    )


def _top_k(retriever: Any) -> int | None:
    if _is_vector_store_retriever(retriever):
        return positive_int(retriever.search_kwargs.get("k", 4))
    return positive_int(getattr(retriever, "k", None))


def _retrieval_method(retriever: Any) -> RagRetrievalMethodValues:
    if not _is_vector_store_retriever(retriever):
        return RagRetrievalMethodValues.UNKNOWN
    if getattr(retriever, "search_type", None) == "mmr":  # re-scored for diversity
        return RagRetrievalMethodValues.RERANKED
    return RagRetrievalMethodValues.DENSE


def _rows(documents: Any) -> list[Any]:
    """What the worker needs of the returned documents, copied on the application thread (the
    caller may change a document's metadata after the call): one flat list, ``id``, text and a
    copy of the metadata per document, in order."""
    if not isinstance(documents, Sequence):
        return []
    rows: list[Any] = []
    for document in documents:
        metadata = getattr(document, "metadata", None)
        rows += (
            getattr(document, "id", None),
            as_text(getattr(document, "page_content", None)),
            dict(metadata) if isinstance(metadata, Mapping) else None,
        )
    return rows


def _returned_only(
    rows: list[Any],
    query: str | None,
    method: RagRetrievalMethodValues,
    store_set: RetrievalSet,
) -> RetrievalSet:
    """The store's set narrowed to the documents the retriever returned, in their order: an MMR
    search asks the store for ``fetch_k`` candidates and keeps ``k`` (its method is then the
    retriever's, ``reranked``), a score threshold drops some. Each document is matched to the
    store's chunk of the same text, whose id, score and metadata it keeps; a document the store
    did not return is read as it is."""

    def read() -> list[Chunk]:
        by_text: dict[str | None, Chunk] = {}
        for chunk in store_set.read_chunks():
            by_text.setdefault(chunk.text, chunk)
        returned = _chunks(rows)
        return [by_text.get(chunk.text, chunk) for chunk in returned]

    reranked = method is RagRetrievalMethodValues.RERANKED
    return RetrievalSet(
        read,
        store_set.query_text if store_set.query_text is not None else query,
        method if reranked else store_set.retrieval_method,
        store_set.top_k,
        store_set.text_chars,
    )


def _chunks(rows: list[Any]) -> list[Chunk]:
    """The chunks of :func:`_rows` (a :data:`~ragprov.instrumentation._base.ChunkReader`, which
    may run on the processor's worker)."""
    chunks = []
    for index in range(0, len(rows), 3):
        store_id, text, metadata = rows[index : index + 3]
        score = as_float(metadata.get(RELEVANCE_SCORE_KEY)) if metadata else None
        chunks.append(Chunk(store_id=store_id, text=text, metadata=metadata, score=score))
    return chunks

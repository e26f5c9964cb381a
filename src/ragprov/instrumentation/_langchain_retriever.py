"""LangChain retrievers: one GenAI retrieval span per ``BaseRetriever.invoke`` / ``ainvoke``.

A retriever is where a LangChain app retrieves, whatever is underneath: a vector store ragprov
instruments (chromadb, qdrant, lancedb, pinecone), one it does not (FAISS, pgvector,
Elasticsearch, LangChain's ``InMemoryVectorStore`` …), a BM25 index or a web search. The span
(``retrieval {retriever name}``, kind ``CLIENT``, ``gen_ai.operation.name = retrieval``) is
open while the retriever runs (:mod:`ragprov.instrumentation._framework_retrieval`):

* when an instrumented store call runs inside it, that call **enriches** the span (store
  attributes, the provenance envelope, the chunk texts; the span is renamed
  ``retrieval {collection}``) instead of making a second retrieval span — the rule of
  :data:`~ragprov.lineage.RETRIEVAL_SPAN_KEY`. The set is the store's chunks
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

from collections.abc import Mapping, Sequence
from typing import Any

from ragprov.instrumentation._base import as_float, as_text, positive_int
from ragprov.instrumentation._framework_retrieval import RetrieverKind, Returned
from ragprov.instrumentation._patching import call_argument
from ragprov.semconv.attributes import RagRetrievalMethodValues

#: The metadata key of a document's relevance to the query (LangChain's rerankers and
#: document compressors set it); other score keys are not read, as some integrations put
#: distances there.
RELEVANCE_SCORE_KEY = "relevance_score"


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


def _query(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    return as_text(call_argument(args, kwargs, "input", 0))


def _returned(documents: Any) -> Returned:
    """The returned ``Document`` objects: ``id``, ``page_content``, metadata and its
    ``relevance_score``."""
    if not isinstance(documents, Sequence):
        return []
    returned: Returned = []
    for document in documents:
        metadata = getattr(document, "metadata", None)
        metadata = dict(metadata) if isinstance(metadata, Mapping) else None
        returned += (
            getattr(document, "id", None),
            as_text(getattr(document, "page_content", None)),
            metadata,
            as_float(metadata.get(RELEVANCE_SCORE_KEY)) if metadata else None,
        )
    return returned


LANGCHAIN_RETRIEVERS = RetrieverKind(
    framework="LangChain",
    name=_retriever_name,
    top_k=_top_k,
    method=_retrieval_method,
    query=_query,
    returned=_returned,
)

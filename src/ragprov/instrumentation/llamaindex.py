"""Instrumentation of LlamaIndex (``llama-index-core``): one retrieval span per retriever call.

LlamaIndex runs a query engine's retrieval and LLM call in the caller's context, so they link as
in a plain script; what it needs from ragprov is the retrieval itself when the vector store is
one ragprov does not instrument — above all its default, the in-memory ``SimpleVectorStore``
of ``VectorStoreIndex.from_documents``. Patched: ``BaseRetriever.retrieve`` and ``aretrieve``
(every retriever: ``index.as_retriever()``, the one a query engine runs, BM25, fusion,
recursive …). The span and its rules are those of
:mod:`ragprov.instrumentation._framework_retrieval`:

* name ``retrieval {retriever class}`` (``retrieval VectorIndexRetriever``), or
  ``retrieval {collection}`` when an instrumented store call underneath (chromadb, qdrant,
  lancedb, pinecone) enriched it, with the store's set narrowed to the nodes returned;
* otherwise the set is the returned nodes, in order: chunk id from ``metadata["chunk_id"]``,
  else the content hash of the node's text (``node.get_content()``), else ``node.node_id``;
  ``rag.chunk_scores`` from ``NodeWithScore.score`` when every node has one (LlamaIndex's
  vector stores report similarities, higher = closer);
* ``gen_ai.retrieval.top_k`` is a vector index retriever's ``similarity_top_k``;
  ``rag.retrieval_method`` follows its query mode (``default`` dense, ``sparse``,
  ``hybrid``/``semantic_hybrid``, ``mmr`` reranked), else ``unknown``;
* the query string (or a ``QueryBundle``'s ``query_str``) is the query text, hashed into
  ``rag.query_hash`` and exported only with content capture.

Usage: ``LlamaIndexInstrumentor().instrument(tracer_provider=...)`` or
``opentelemetry-instrument`` (entry point ``ragprov_llamaindex``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from opentelemetry import trace

from ragprov import __version__
from ragprov.instrumentation._base import as_float, as_text, positive_int
from ragprov.instrumentation._framework_retrieval import (
    RetrieverKind,
    Returned,
    async_retriever_wrapper,
    retriever_wrapper,
)
from ragprov.instrumentation._patching import PatchingInstrumentor, call_argument
from ragprov.semconv.attributes import RagRetrievalMethodValues

SUPPORTED_VERSIONS = ("llama-index-core >= 0.11",)

Method = RagRetrievalMethodValues

#: VectorStoreQueryMode value → retrieval method (modes not listed: unknown).
QUERY_MODES = {
    "default": Method.DENSE,
    "sparse": Method.SPARSE,
    "text_search": Method.SPARSE,
    "hybrid": Method.HYBRID,
    "semantic_hybrid": Method.HYBRID,
    "mmr": Method.RERANKED,
}


class LlamaIndexInstrumentor(PatchingInstrumentor[trace.Tracer]):
    """A retrieval span around each LlamaIndex retriever call."""

    library = "llama-index"

    def instrumentation_dependencies(self) -> Collection[str]:
        return SUPPORTED_VERSIONS

    def _context(self, tracer_provider: trace.TracerProvider | None) -> trace.Tracer:
        return trace.get_tracer("ragprov.instrumentation.llamaindex", __version__, tracer_provider)

    def _patch(self, tracer: trace.Tracer) -> None:
        from llama_index.core.base.base_retriever import BaseRetriever

        self._wrap(BaseRetriever, "retrieve", retriever_wrapper(tracer, LLAMAINDEX_RETRIEVERS))
        self._wrap(
            BaseRetriever, "aretrieve", async_retriever_wrapper(tracer, LLAMAINDEX_RETRIEVERS)
        )


def _name(retriever: Any) -> str:
    return type(retriever).__name__


def _top_k(retriever: Any) -> int | None:
    return positive_int(getattr(retriever, "_similarity_top_k", None))


def _method(retriever: Any) -> RagRetrievalMethodValues:
    mode = getattr(retriever, "_vector_store_query_mode", None)
    return QUERY_MODES.get(str(getattr(mode, "value", mode)), Method.UNKNOWN)


def _query(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    query = call_argument(args, kwargs, "str_or_query_bundle", 0)
    return as_text(getattr(query, "query_str", query))


def _returned(nodes: Any) -> Returned:
    """The returned ``NodeWithScore`` objects: the node's id, text, metadata, and the score."""
    if not isinstance(nodes, Sequence):
        return []
    returned: Returned = []
    for scored in nodes:
        node = getattr(scored, "node", None)
        metadata = getattr(node, "metadata", None)
        try:
            text = as_text(node.get_content()) if node is not None else None
        except Exception:  # a node type whose content cannot be read as text
            text = None
        returned += (
            getattr(node, "node_id", None),
            text,
            dict(metadata) if isinstance(metadata, Mapping) else None,
            as_float(getattr(scored, "score", None)),
        )
    return returned


LLAMAINDEX_RETRIEVERS = RetrieverKind(
    framework="LlamaIndex",
    name=_name,
    top_k=_top_k,
    method=_method,
    query=_query,
    returned=_returned,
)

"""Shared by the LlamaIndex tests: an offline embedding model (needs llama-index-core alone)."""

from __future__ import annotations

from llama_index.core.base.embeddings.base import BaseEmbedding

from ragprov.demo.embedding import HashingEmbedder

# LlamaIndex's own MockEmbedding gives every text the same vector: no ranking to test.
_EMBEDDER = HashingEmbedder(64)


class HashingEmbedding(BaseEmbedding):
    """The demo's offline embedder as a LlamaIndex embedding model."""

    def _get_text_embedding(self, text: str) -> list[float]:
        return _EMBEDDER([text])[0]

    def _get_query_embedding(self, query: str) -> list[float]:
        return _EMBEDDER([query])[0]

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)

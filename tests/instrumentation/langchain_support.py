"""Shared by the LangChain tests: an offline embedding model (needs langchain-core alone)."""

from __future__ import annotations

from langchain_core.embeddings import Embeddings

from ragprov.demo.embedding import HashingEmbedder


class HashingEmbeddings(Embeddings):
    """The demo's offline embedder as a LangChain embedding model."""

    embedder = HashingEmbedder(64)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embedder(texts)

    def embed_query(self, text: str) -> list[float]:
        return self.embedder([text])[0]

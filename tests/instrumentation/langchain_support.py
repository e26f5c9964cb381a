"""Shared by the LangChain tests (needs langchain-core alone): an offline embedding model, and
the retriever | prompt | chat model chain of the RAG tests."""

from __future__ import annotations

from typing import Any

from langchain_core.embeddings import Embeddings
from langchain_core.language_models import BaseChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable, RunnablePassthrough

from ragprov.demo.embedding import HashingEmbedder


class HashingEmbeddings(Embeddings):
    """The demo's offline embedder as a LangChain embedding model."""

    embedder = HashingEmbedder(64)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embedder(texts)

    def embed_query(self, text: str) -> list[float]:
        return self.embedder([text])[0]


PROMPT = ChatPromptTemplate.from_messages(
    [("human", "Context:\n{context}\n\nQuestion: {question}")]
)


def retrieval_chain(retriever: Runnable[str, Any], llm: BaseChatModel) -> Runnable[str, str]:
    """retriever | prompt | ``llm``: the retrieved texts are the prompt's context."""
    return (
        {
            "context": retriever
            | (lambda documents: "\n\n".join(d.page_content for d in documents)),
            "question": RunnablePassthrough(),
        }
        | PROMPT
        | llm
        | StrOutputParser()
    )

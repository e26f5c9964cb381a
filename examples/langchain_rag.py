"""A LangChain RAG chain: a Chroma vector store as retriever, ChatOpenAI for the answer (LCEL).

It imports nothing from ragprov, nor from OpenTelemetry. ragprov's instrumentation (installed
beside the app) does the rest: LangChain calls chromadb and the openai client underneath, whose
spans carry the provenance, and the LangChain instrumentor opens one workflow span around the
chain's run, so that both calls land in one trace and are linked:

    OTEL_TRACES_EXPORTER=console OTEL_METRICS_EXPORTER=none OTEL_LOGS_EXPORTER=none \\
        opentelemetry-instrument python examples/langchain_rag.py

Look for: on `retrieval handbook`, rag.retrieval_set_id, rag.chunk_set_hash, rag.chunk_ids,
rag.chunk_scores, rag.source_document_ids; on `chat <model>`, rag.ancestor_retrieval_set_ids
(= that retrieval's id), rag.lineage_method, rag.utilisation_ratio, rag.diagnosis; on the root
span `invoke_workflow answer question` (named after the run's `run_name`), the same diagnosis.

Needs `pip install 'ragprov[chromadb,openai,langchain]'`. The LLM is whatever OPENAI_BASE_URL /
OPENAI_API_KEY / OPENAI_MODEL point at (the tests start a local OpenAI-compatible responder).
Embeddings come from a tiny hashing function so that the example runs offline; use your real
embedding model (e.g. langchain_openai.OpenAIEmbeddings) instead.
"""

from __future__ import annotations

import hashlib
import os
import re

import chromadb
import numpy as np
from chromadb.config import Settings
from langchain_chroma import Chroma
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnablePassthrough
from langchain_openai import ChatOpenAI

DOCUMENTS = [
    Document(
        id="returns#0",
        page_content=(
            "Customers may return any unused product within 30 days of delivery for a full "
            "refund. Refunds are issued to the original payment method within 5 business days."
        ),
        metadata={"source_document_id": "returns"},
    ),
    Document(
        id="returns#1",
        page_content=(
            "Opened software, gift cards and personalised items cannot be returned. Damaged "
            "deliveries must be reported within 48 hours with a photograph of the packaging."
        ),
        metadata={"source_document_id": "returns"},
    ),
    Document(
        id="shipping#0",
        page_content=(
            "Standard shipping takes 3 to 5 business days within the European Union and costs "
            "4.90 euros; orders above 50 euros ship free of charge."
        ),
        metadata={"source_document_id": "shipping"},
    ),
    Document(
        id="support#0",
        page_content=(
            "The support desk answers chat and email from 8:00 to 20:00 CET on weekdays. "
            "Premium subscribers also get phone support on Saturdays."
        ),
        metadata={"source_document_id": "support"},
    ),
]
QUESTION = "Which items cannot be returned, and how soon must damage be reported?"

PROMPT = ChatPromptTemplate.from_messages(
    [
        ("system", "Answer from the context only."),
        ("human", "Context:\n{context}\n\nQuestion: {question}"),
    ]
)


class HashingEmbeddings(Embeddings):
    """A stand-in embedding model: hashed words, L2-normalised (offline, deterministic)."""

    def __init__(self, dimensions: int = 256) -> None:
        self.dimensions = dimensions

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        vectors = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w{4,}", text.lower()):
                digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
                vectors[row, int.from_bytes(digest, "big") % self.dimensions] += 1.0
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-9)
        return vectors.tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


def format_docs(documents: list[Document]) -> str:
    return "\n\n".join(document.page_content for document in documents)


def main() -> None:
    store = Chroma(
        collection_name="handbook",
        embedding_function=HashingEmbeddings(),
        client=chromadb.EphemeralClient(settings=Settings(anonymized_telemetry=False)),
        collection_configuration={"hnsw": {"space": "cosine"}},
    )
    store.add_documents(DOCUMENTS)
    llm = ChatOpenAI(
        model=os.environ.get("OPENAI_MODEL", "demo-model"),
        base_url=os.environ.get("OPENAI_BASE_URL"),
        api_key=os.environ.get("OPENAI_API_KEY", "not-needed-for-a-local-server"),
        max_retries=0,
    )
    chain = (
        {
            "context": store.as_retriever(search_kwargs={"k": 2}) | format_docs,
            "question": RunnablePassthrough(),
        }
        | PROMPT
        | llm
        | StrOutputParser()
    )
    # run_name names the run for LangChain's callbacks and the workflow span.
    print(chain.invoke(QUESTION, {"run_name": "answer question"}))


if __name__ == "__main__":
    main()

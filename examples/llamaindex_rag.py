"""A LlamaIndex RAG app: a VectorStoreIndex over Chroma, a query engine, an OpenAI-compatible LLM.

It imports nothing from ragprov. LlamaIndex calls chromadb and the openai client underneath, and
ragprov's instrumentation of those two and of LlamaIndex's retriever (installed beside the app)
adds the provenance: the retriever's span, enriched by chromadb's call, carries the retrieval.

    OTEL_TRACES_EXPORTER=console OTEL_METRICS_EXPORTER=none OTEL_LOGS_EXPORTER=none \\
        opentelemetry-instrument python examples/llamaindex_rag.py

Look for: on `retrieval handbook`, rag.retrieval_set_id, rag.chunk_set_hash, rag.chunk_scores,
rag.source_document_ids (read from LlamaIndex's node metadata); on `chat <model>`,
rag.ancestor_retrieval_set_ids (= that retrieval's id), rag.lineage_method,
rag.utilisation_ratio, rag.diagnosis.

Needs `pip install 'ragprov[chromadb,openai,llamaindex]'` (llama-index-llms-openai requires
openai < 3, so pip picks a 2.x client). The LLM is whatever OPENAI_BASE_URL / OPENAI_API_KEY /
OPENAI_MODEL point at (the tests start a local OpenAI-compatible responder); OpenAILike takes any
model name. Embeddings come from a tiny hashing model so that the example runs offline; use your
real embedding model instead. LlamaIndex's tokenizer (tiktoken) and sentence splitter (nltk)
read the data files llama-index-core ships, so nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import os
import re

import chromadb
import numpy as np
from chromadb.config import Settings as ChromaSettings
from llama_index.core import Document, Settings, StorageContext, VectorStoreIndex
from llama_index.core.embeddings import BaseEmbedding
from llama_index.core.llms import ChatMessage, MessageRole
from llama_index.core.prompts import ChatPromptTemplate
from llama_index.llms.openai_like import OpenAILike
from llama_index.vector_stores.chroma import ChromaVectorStore

DOCUMENTS = [
    ("warranty", "Warranty claims need the order number and a description of the fault."),
    ("warranty", "Replacement devices ship within 10 business days of the claim's approval."),
    ("support", "The support desk answers chat and email from 8:00 to 20:00 CET on weekdays."),
    ("shipping", "Express delivery arrives the next business day when ordered before 14:00 CET."),
]
QUESTION = "What do I need for a warranty claim, and how fast is the replacement shipped?"

# Our own prompt instead of LlamaIndex's default (which ends in `Query: ...`): the local
# responder the tests use answers the line starting with `Question:`.
QA_PROMPT = ChatPromptTemplate(
    [
        ChatMessage(role=MessageRole.SYSTEM, content="Answer from the context only."),
        ChatMessage(
            role=MessageRole.USER, content="Context:\n{context_str}\n\nQuestion: {query_str}"
        ),
    ]
)


class HashingEmbedding(BaseEmbedding):
    """A stand-in embedding model: hashed words, L2-normalised (offline, deterministic)."""

    dimensions: int = 256

    def _embed(self, text: str) -> list[float]:
        vector = np.zeros(self.dimensions, dtype=np.float32)
        for word in re.findall(r"\w{4,}", text.lower()):
            digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
            vector[int.from_bytes(digest, "big") % self.dimensions] += 1.0
        return (vector / max(float(np.linalg.norm(vector)), 1e-9)).tolist()

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._embed(text)

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._embed(query)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._embed(query)


def main() -> None:
    Settings.embed_model = HashingEmbedding()
    Settings.llm = OpenAILike(
        model=os.environ.get("OPENAI_MODEL", "demo-model"),
        api_base=os.environ.get("OPENAI_BASE_URL"),
        api_key=os.environ.get("OPENAI_API_KEY", "not-needed-for-a-local-server"),
        is_chat_model=True,
        context_window=8192,
        max_retries=0,
    )
    store = chromadb.EphemeralClient(settings=ChromaSettings(anonymized_telemetry=False))
    collection = store.get_or_create_collection(
        "handbook", configuration={"hnsw": {"space": "cosine"}}
    )
    index = VectorStoreIndex.from_documents(
        [
            Document(text=text, metadata={"source_document_id": source})
            for source, text in DOCUMENTS
        ],
        storage_context=StorageContext.from_defaults(
            vector_store=ChromaVectorStore(chroma_collection=collection)
        ),
    )
    engine = index.as_query_engine(similarity_top_k=3, text_qa_template=QA_PROMPT)
    print(engine.query(QUESTION))


if __name__ == "__main__":
    main()

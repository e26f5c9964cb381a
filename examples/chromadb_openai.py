"""A plain RAG script: chromadb for retrieval, the openai client for the answer.

It imports nothing from ragprov. Run it under OpenTelemetry's zero-code instrumentation and
ragprov (installed beside it) adds provenance, lineage and a diagnosis to its spans:

    OTEL_TRACES_EXPORTER=console OTEL_METRICS_EXPORTER=none OTEL_LOGS_EXPORTER=none \\
        opentelemetry-instrument python examples/chromadb_openai.py

Look for: on `retrieval handbook`, rag.retrieval_set_id, rag.chunk_set_hash, rag.chunk_ids,
rag.chunk_scores, rag.quality_density, rag.coverage_diversity; on `chat <model>`,
rag.ancestor_retrieval_set_ids (= that retrieval's id), rag.utilisation_ratio, rag.diagnosis.

The LLM is whatever OPENAI_BASE_URL / OPENAI_API_KEY / OPENAI_MODEL point at (the tests start a
local OpenAI-compatible responder). Embeddings come from a tiny hashing function so that the
example runs offline; use your real embedding model instead.
"""

from __future__ import annotations

import hashlib
import os
import re

import chromadb
import numpy as np
from chromadb.config import Settings
from openai import OpenAI

DOCUMENTS = {
    "returns#0": (
        "Customers may return any unused product within 30 days of delivery for a full refund. "
        "Refunds are issued to the original payment method within 5 business days."
    ),
    "returns#1": (
        "Opened software, gift cards and personalised items cannot be returned. Damaged "
        "deliveries must be reported within 48 hours with a photograph of the packaging."
    ),
    "shipping#0": (
        "Standard shipping takes 3 to 5 business days within the European Union and costs "
        "4.90 euros; orders above 50 euros ship free of charge."
    ),
    "support#0": (
        "The support desk answers chat and email from 8:00 to 20:00 CET on weekdays. Premium "
        "subscribers also get phone support on Saturdays."
    ),
}
QUESTION = "How long do customers have to return a product, and how are refunds paid?"


def embed(texts: list[str], dimensions: int = 256) -> list[list[float]]:
    """A stand-in embedding: hashed words, L2-normalised (offline, deterministic)."""
    vectors = np.zeros((len(texts), dimensions), dtype=np.float32)
    for row, text in enumerate(texts):
        for word in re.findall(r"\w{4,}", text.lower()):
            digest = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "big")
            vectors[row, digest % dimensions] += 1.0
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-9)
    return vectors.tolist()


def main() -> None:
    store = chromadb.EphemeralClient(settings=Settings(anonymized_telemetry=False))
    collection = store.get_or_create_collection(
        "handbook", configuration={"hnsw": {"space": "cosine"}}, embedding_function=None
    )
    collection.add(
        ids=list(DOCUMENTS),
        documents=list(DOCUMENTS.values()),
        embeddings=embed(list(DOCUMENTS.values())),
        metadatas=[{"source_document_id": key.split("#")[0]} for key in DOCUMENTS],
    )
    result = collection.query(query_embeddings=embed([QUESTION]), n_results=3)
    context = "\n\n".join(result["documents"][0])

    llm = OpenAI(
        base_url=os.environ.get("OPENAI_BASE_URL"),
        api_key=os.environ.get("OPENAI_API_KEY", "not-needed-for-a-local-server"),
        max_retries=0,
    )
    completion = llm.chat.completions.create(
        model=os.environ.get("OPENAI_MODEL", "demo-model"),
        messages=[
            {"role": "system", "content": "Answer from the context only."},
            {"role": "user", "content": f"Context:\n{context}\n\nQuestion: {QUESTION}"},
        ],
    )
    print(completion.choices[0].message.content)


if __name__ == "__main__":
    main()

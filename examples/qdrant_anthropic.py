"""A plain RAG script: qdrant (in memory) for retrieval, the anthropic client for the answer.

It imports nothing from ragprov. Run it under OpenTelemetry's zero-code instrumentation:

    OTEL_TRACES_EXPORTER=console OTEL_METRICS_EXPORTER=none OTEL_LOGS_EXPORTER=none \\
        opentelemetry-instrument python examples/qdrant_anthropic.py

Look for: on `retrieval handbook`, rag.chunk_ids, rag.chunk_scores (qdrant's cosine scores),
rag.source_document_ids, rag.quality_density; on the anthropic call's span (the SDK's own
`anthropic.messages.create` when its tracing is on, else ragprov's `chat <model>`), the lineage
(rag.ancestor_retrieval_set_ids), rag.utilisation_ratio and rag.diagnosis.

The LLM is whatever ANTHROPIC_BASE_URL / ANTHROPIC_API_KEY / ANTHROPIC_MODEL point at (the tests
start a local Anthropic-compatible responder). Embeddings come from a tiny hashing function so
that the example runs offline; use your real embedding model instead.
"""

from __future__ import annotations

import hashlib
import os
import re

import anthropic
import numpy as np
from qdrant_client import QdrantClient
from qdrant_client.models import Distance, PointStruct, VectorParams

DIMENSIONS = 256
DOCUMENTS = [
    ("warranty", "Warranty claims need the order number and a description of the fault."),
    ("warranty", "Replacement devices ship within 10 business days of the claim's approval."),
    ("support", "The support desk answers chat and email from 8:00 to 20:00 CET on weekdays."),
    ("shipping", "Express delivery arrives the next business day when ordered before 14:00 CET."),
]
QUESTION = "What do I need for a warranty claim, and how fast is the replacement shipped?"


def embed(text: str) -> list[float]:
    """A stand-in embedding: hashed words, L2-normalised (offline, deterministic)."""
    vector = np.zeros(DIMENSIONS, dtype=np.float32)
    for word in re.findall(r"\w{4,}", text.lower()):
        digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
        vector[int.from_bytes(digest, "big") % DIMENSIONS] += 1.0
    return (vector / max(float(np.linalg.norm(vector)), 1e-9)).tolist()


def main() -> None:
    store = QdrantClient(":memory:")
    store.create_collection(
        "handbook", vectors_config=VectorParams(size=DIMENSIONS, distance=Distance.COSINE)
    )
    store.upsert(
        "handbook",
        points=[
            PointStruct(
                id=index, vector=embed(text), payload={"text": text, "source_document_id": source}
            )
            for index, (source, text) in enumerate(DOCUMENTS)
        ],
    )
    hits = store.query_points("handbook", query=embed(QUESTION), limit=3, with_payload=True)
    context = "\n\n".join(str((point.payload or {}).get("text", "")) for point in hits.points)

    llm = anthropic.Anthropic(
        base_url=os.environ.get("ANTHROPIC_BASE_URL"),
        api_key=os.environ.get("ANTHROPIC_API_KEY", "not-needed-for-a-local-server"),
        max_retries=0,
    )
    message = llm.messages.create(
        model=os.environ.get("ANTHROPIC_MODEL", "demo-model"),
        max_tokens=300,
        system="Answer from the context only.",
        messages=[{"role": "user", "content": f"Context:\n{context}\n\nQuestion: {QUESTION}"}],
    )
    print("".join(block.text for block in message.content if block.type == "text"))


if __name__ == "__main__":
    main()

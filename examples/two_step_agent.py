"""A two-step agent: retrieve, let the model rewrite the question, retrieve again, answer.

It imports nothing from ragprov. Under `opentelemetry-instrument` ragprov links the steps: the
second retrieval's query is the rewrite step's output, so the final answer lists BOTH retrieval
sets in rag.ancestor_retrieval_set_ids (the second directly, the first through the rewrite):

    OTEL_TRACES_EXPORTER=console OTEL_METRICS_EXPORTER=none OTEL_LOGS_EXPORTER=none \\
        opentelemetry-instrument python examples/two_step_agent.py

Look for: two `retrieval reports` spans; `chat <model>` for the rewrite, with the first set as
ancestor; `chat <model>` for the answer, with both sets, rag.lineage_method and rag.diagnosis.
The LLM is whatever OPENAI_BASE_URL / OPENAI_API_KEY / OPENAI_MODEL point at.
"""

from __future__ import annotations

import hashlib
import os
import re
from typing import Any

import chromadb
import numpy as np
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings
from chromadb.config import Settings
from openai import OpenAI

REPORTS = [
    "Acme Robotics reported revenue of $12.4M for fiscal 2023, up 26.6% from the previous year.",
    "At the end of 2023 the company employed 214 people in Berlin, Austin and Kraków.",
    "The Palletbot X2 lifts loads of up to 450 kg and navigates warehouse aisles with lidar.",
    "Management named the supply of lithium battery cells as the main operational risk; a "
    "second supplier in South Korea was qualified in November 2023.",
    "For 2024 the board expects revenue between $15M and $16M and a new assembly line in Wrocław.",
]
QUESTION = "What could slow Acme down next year?"
REWRITE = "Rewrite this question as a short search query for the reports: " + QUESTION


class HashingEmbedding(EmbeddingFunction[Documents]):
    """A stand-in embedding model: hashed words, L2-normalised (offline, deterministic)."""

    def __init__(self, dimensions: int = 256) -> None:
        self.dimensions = dimensions

    def __call__(self, input: Documents) -> Embeddings:
        vectors = np.zeros((len(input), self.dimensions), dtype=np.float32)
        for row, text in enumerate(input):
            for word in re.findall(r"\w{4,}", text.lower()):
                digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
                vectors[row, int.from_bytes(digest, "big") % self.dimensions] += 1.0
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-9)
        return list(vectors)

    @staticmethod
    def name() -> str:
        return "example-hashing"

    def get_config(self) -> dict[str, Any]:
        return {"dimensions": self.dimensions}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> HashingEmbedding:
        return HashingEmbedding(int(config.get("dimensions", 256)))


def ask(llm: OpenAI, context: list[str], question: str) -> str:
    completion = llm.chat.completions.create(
        model=os.environ.get("OPENAI_MODEL", "demo-model"),
        messages=[
            {"role": "system", "content": "Use the context only."},
            {
                "role": "user",
                "content": "Context:\n" + "\n\n".join(context) + f"\n\nQuestion: {question}",
            },
        ],
    )
    return str(completion.choices[0].message.content or "")


def main() -> None:
    store = chromadb.EphemeralClient(settings=Settings(anonymized_telemetry=False))
    reports = store.get_or_create_collection(
        "reports",
        embedding_function=HashingEmbedding(),
        configuration={"hnsw": {"space": "cosine"}},
    )
    reports.add(ids=[f"report-{i}" for i in range(len(REPORTS))], documents=REPORTS)
    llm = OpenAI(
        base_url=os.environ.get("OPENAI_BASE_URL"),
        api_key=os.environ.get("OPENAI_API_KEY", "not-needed-for-a-local-server"),
        max_retries=0,
    )

    first = reports.query(query_texts=[QUESTION], n_results=2)["documents"][0]
    search_query = ask(llm, first, REWRITE)  # step 1: the model writes the search query
    second = reports.query(query_texts=[search_query], n_results=2)["documents"][0]
    print(ask(llm, second, QUESTION))  # step 2: the answer, from the second retrieval


if __name__ == "__main__":
    main()

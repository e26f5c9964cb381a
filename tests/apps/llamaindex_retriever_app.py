"""A LlamaIndex app on the default in-memory vector store (which ragprov does not instrument):
one retriever call, sync then async. No ragprov or OpenTelemetry call.

Run as a user would, in the LlamaIndex venv of tests/test_examples.py:
``opentelemetry-instrument python tests/apps/llamaindex_retriever_app.py``. Prints one JSON line:
for each call, the returned nodes as ``[node id, text, score]``; the spans follow (console
exporter).
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from llama_index.core import Document, VectorStoreIndex

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
from llamaindex_rag import HashingEmbedding

QUESTION = "How long do customers have to return a product for a refund?"
DOCUMENTS = [
    Document(
        text="Customers may return any unused product within 30 days for a full refund.",
        metadata={"source_document_id": "returns"},
    ),
    Document(text="Standard shipping takes 3 to 5 business days and costs 4.90 euros."),
    Document(text="The support desk answers chat and email from 8:00 to 20:00 on weekdays."),
]


def main() -> None:
    index = VectorStoreIndex.from_documents(DOCUMENTS, embed_model=HashingEmbedding())
    retriever = index.as_retriever(similarity_top_k=2)
    calls = [retriever.retrieve(QUESTION), asyncio.run(retriever.aretrieve(QUESTION))]
    print(
        json.dumps(
            [
                [[scored.node.node_id, scored.node.get_content(), scored.score] for scored in nodes]
                for nodes in calls
            ]
        )
    )


if __name__ == "__main__":
    main()

"""A LangChain or LlamaIndex app traced by OpenInference's instrumentation of that framework,
with or without ragprov's.

Run by tests/test_framework_coexistence_real.py in the virtual environment that has
OpenInference (``.venv-coexistence``)::

    python framework_coexistence_app.py {langchain|llamaindex} PLACE

PLACE is ``none``: OpenInference's instrumentor alone (ragprov's OpenAI instrumentor still runs,
so that the answer is a step either way); ``first`` / ``last``: ragprov's instrumentor of the
framework before / after it. Spans go through ragprov's ``ProvenanceSpanProcessor``.

LangChain: the app retrieves from ``InMemoryVectorStore`` (which ragprov does not instrument:
ragprov's retriever span carries the returned documents) with ``invoke`` and ``ainvoke``, then
runs the same retriever in a retriever | prompt | ChatOpenAI chain (``chain``, ``achain``).
LlamaIndex: ``retrieve`` and ``aretrieve`` on the default in-memory vector index, then
``answer``: a retrieval whose nodes an OpenAI chat call reads (LlamaIndex's OpenAI LLM needs
openai < 3, so the client is called directly, as a custom query engine would). Chat calls go
to a local responder. Each call runs in a scope of its own (``lineage.new_scope``, as a request
handler would run it); the app prints, per call, the answer and every finished span (name,
scope, ids, attributes) as one JSON document. OpenInference reads its own settings from the
environment (``OPENINFERENCE_HIDE_RETRIEVAL_DOCUMENTS``).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
from langchain_core.documents import Document
from langchain_core.vectorstores import InMemoryVectorStore
from langchain_openai import ChatOpenAI
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from ragprov import ProvenanceSpanProcessor, lineage
from ragprov.demo.responder import running_responder
from ragprov.instrumentation.openai import OpenAIInstrumentor

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "instrumentation"))
from langchain_support import HashingEmbeddings, retrieval_chain
from llamaindex_support import HashingEmbedding

QUESTION = "How long does standard shipping take?"
ANSWER = "Standard shipping takes 3 to 5 business days within the European Union."
DOCUMENTS = [
    Document(id="shipping#0", page_content=ANSWER),
    Document(
        id="returns#1",
        page_content="Opened software and gift cards cannot be returned after purchase.",
    ),
    Document(
        id="refunds#2",
        page_content="Refunds are issued to the original payment method within 14 days.",
    ),
]
K = 2


def describe(span: ReadableSpan) -> dict[str, Any]:
    assert span.context is not None
    return {
        "name": span.name,
        "scope": span.instrumentation_scope.name if span.instrumentation_scope else None,
        "span_id": span.context.span_id,
        "parent_id": span.parent.span_id if span.parent else None,
        "attributes": {
            key: list(value) if isinstance(value, tuple) else value
            for key, value in (span.attributes or {}).items()
        },
    }


Calls = dict[str, Callable[[], Any]]


def langchain_calls(url: str) -> Calls:
    store = InMemoryVectorStore(HashingEmbeddings())
    store.add_documents(DOCUMENTS)
    retriever = store.as_retriever(search_kwargs={"k": K})
    chain = retrieval_chain(
        retriever, ChatOpenAI(model="demo-model", base_url=url, api_key="test", max_retries=0)
    )
    return {
        "invoke": lambda: [d.id for d in retriever.invoke(QUESTION)],
        "ainvoke": lambda: [d.id for d in asyncio.run(retriever.ainvoke(QUESTION))],
        "chain": lambda: chain.invoke(QUESTION),
        "achain": lambda: asyncio.run(chain.ainvoke(QUESTION)),
    }


def llamaindex_calls(url: str) -> Calls:
    from llama_index.core import VectorStoreIndex
    from llama_index.core.schema import TextNode

    nodes = [TextNode(id_=str(d.id), text=d.page_content) for d in DOCUMENTS]
    index = VectorStoreIndex(nodes, embed_model=HashingEmbedding())
    retriever = index.as_retriever(similarity_top_k=K)
    client = openai.OpenAI(base_url=url, api_key="test", max_retries=0)

    def answer() -> str:
        context = "\n\n".join(scored.node.get_content() for scored in retriever.retrieve(QUESTION))
        completion = client.chat.completions.create(
            model="demo-model",
            messages=[{"role": "user", "content": f"Context:\n{context}\n\nQuestion: {QUESTION}"}],
        )
        return str(completion.choices[0].message.content)

    return {
        "retrieve": lambda: [scored.node.node_id for scored in retriever.retrieve(QUESTION)],
        "aretrieve": lambda: [
            scored.node.node_id for scored in asyncio.run(retriever.aretrieve(QUESTION))
        ],
        "answer": answer,
    }


def instrumentors(framework: str) -> tuple[BaseInstrumentor, BaseInstrumentor]:
    """ragprov's and OpenInference's instrumentor of ``framework``."""
    if framework == "langchain":
        from openinference.instrumentation.langchain import LangChainInstrumentor as Theirs

        from ragprov.instrumentation.langchain import LangChainInstrumentor as Ours
    else:
        from openinference.instrumentation.llama_index import LlamaIndexInstrumentor as Theirs

        from ragprov.instrumentation.llamaindex import LlamaIndexInstrumentor as Ours
    return Ours(), Theirs()


def main(framework: str, place: str) -> None:
    exporter = InMemorySpanExporter()
    processor = ProvenanceSpanProcessor(SimpleSpanProcessor(exporter))
    provider = TracerProvider()
    provider.add_span_processor(processor)
    ours, theirs = instrumentors(framework)
    active: list[BaseInstrumentor] = [OpenAIInstrumentor(), theirs]
    if place == "first":
        active.insert(0, ours)
    elif place == "last":
        active.append(ours)
    for instrumentor in active:
        instrumentor.instrument(tracer_provider=provider)

    report: dict[str, Any] = {}
    with running_responder({QUESTION: ANSWER}) as url:
        calls = langchain_calls(url) if framework == "langchain" else llamaindex_calls(url)
        for name, call in calls.items():
            exporter.clear()
            with lineage.new_scope():  # one request each, as a request handler would run it
                answer = call()
            assert processor.force_flush(10_000)
            report[name] = {
                "answer": answer,
                "spans": [describe(span) for span in exporter.get_finished_spans()],
            }
    for instrumentor in reversed(active):
        instrumentor.uninstrument()
    processor.shutdown()
    json.dump(report, sys.stdout, indent=1)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

"""A LangChain app traced by OpenInference's LangChain instrumentation, with or without ragprov's.

Run by tests/test_framework_coexistence_real.py in the virtual environment that has
OpenInference (``.venv-coexistence``)::

    python framework_coexistence_app.py PLACE

PLACE is ``none``: OpenInference's instrumentor alone (ragprov's OpenAI instrumentor still runs,
so that the answer is a step either way); ``first`` / ``last``: ragprov's LangChain instrumentor
before / after it. Spans go through ragprov's ``ProvenanceSpanProcessor``.

The app retrieves from LangChain's ``InMemoryVectorStore`` (which ragprov does not instrument:
ragprov's retriever span carries the returned documents) with ``invoke`` and ``ainvoke``, then runs
the same retriever in a retriever | prompt | ChatOpenAI chain against a local responder, each
call in a scope of its own (``lineage.new_scope``, as a request handler would run it), and
prints, per call, the answer and every finished span (name, scope, ids, attributes) as one JSON
document. OpenInference reads its own settings from the environment
(``OPENINFERENCE_HIDE_RETRIEVAL_DOCUMENTS``).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from langchain_core.documents import Document
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnablePassthrough
from langchain_core.vectorstores import InMemoryVectorStore
from langchain_openai import ChatOpenAI
from openinference.instrumentation.langchain import LangChainInstrumentor as OpenInference
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from ragprov import ProvenanceSpanProcessor, lineage
from ragprov.demo.responder import running_responder
from ragprov.instrumentation.langchain import LangChainInstrumentor
from ragprov.instrumentation.openai import OpenAIInstrumentor

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "instrumentation"))
from langchain_support import HashingEmbeddings

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
PROMPT = ChatPromptTemplate.from_messages(
    [("human", "Context:\n{context}\n\nQuestion: {question}")]
)


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


def main(place: str) -> None:
    exporter = InMemorySpanExporter()
    processor = ProvenanceSpanProcessor(SimpleSpanProcessor(exporter))
    provider = TracerProvider()
    provider.add_span_processor(processor)
    ours = LangChainInstrumentor()
    instrumentors = [OpenAIInstrumentor(), OpenInference()]
    if place == "first":
        instrumentors.insert(0, ours)
    elif place == "last":
        instrumentors.append(ours)
    for instrumentor in instrumentors:
        instrumentor.instrument(tracer_provider=provider)

    store = InMemoryVectorStore(HashingEmbeddings())
    store.add_documents(DOCUMENTS)
    retriever = store.as_retriever(search_kwargs={"k": K})
    report: dict[str, Any] = {}
    with running_responder({QUESTION: ANSWER}) as url:
        llm = ChatOpenAI(model="demo-model", base_url=url, api_key="test", max_retries=0)
        chain = (
            {
                "context": retriever
                | (lambda documents: "\n\n".join(d.page_content for d in documents)),
                "question": RunnablePassthrough(),
            }
            | PROMPT
            | llm
            | StrOutputParser()
        )
        calls: dict[str, Callable[[], Any]] = {
            "invoke": lambda: [d.id for d in retriever.invoke(QUESTION)],
            "ainvoke": lambda: [d.id for d in asyncio.run(retriever.ainvoke(QUESTION))],
            "chain": lambda: chain.invoke(QUESTION),
            "achain": lambda: asyncio.run(chain.ainvoke(QUESTION)),
        }
        for name, call in calls.items():
            exporter.clear()
            with lineage.new_scope():  # one request each, as a request handler would run it
                answer = call()
            assert processor.force_flush(10_000)
            report[name] = {
                "answer": answer,
                "spans": [describe(span) for span in exporter.get_finished_spans()],
            }
    for instrumentor in reversed(instrumentors):
        instrumentor.uninstrument()
    processor.shutdown()
    json.dump(report, sys.stdout, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])

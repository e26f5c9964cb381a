#!/usr/bin/env python3
"""Application-thread cost of the LangChain retriever span.

    .venv/bin/python benchmarks/bench_langchain.py [--quick]

A k = 10 ``retriever.invoke`` on LangChain's ``InMemoryVectorStore`` (200 documents of ~400
characters, 64-dimensional hash embeddings; a store ragprov does not instrument, so the span's
set is built from the returned documents), bare and with ``LangChainInstrumentor`` on a
``ProvenanceSpanProcessor`` whose worker is paused while the clock runs (as in
bench_vectorstores.py: what is timed is exactly what the application thread pays). Interleaved
rounds, the application thread's CPU time, medians; prints the added time and the ratio.
"""

from __future__ import annotations

import gc
import statistics
import sys
import time

from _support import NoopExporter, PausedWorker
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import InMemoryVectorStore
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from ragprov.demo.embedding import HashingEmbedder
from ragprov.instrumentation.langchain import LangChainInstrumentor
from ragprov.processor import ProvenanceSpanProcessor

K = 10


class HashingEmbeddings(Embeddings):
    embedder = HashingEmbedder(64)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embedder(texts)

    def embed_query(self, text: str) -> list[float]:
        return self.embedder([text])[0]


def main(argv: list[str]) -> int:
    rounds, calls = (5, 100) if "--quick" in argv else (11, 300)
    store = InMemoryVectorStore(HashingEmbeddings())
    store.add_documents(
        [
            Document(page_content=f"document {index} about topic {index % 17}. " * 14)
            for index in range(200)
        ]
    )
    retriever = store.as_retriever(search_kwargs={"k": K})
    processor = ProvenanceSpanProcessor(SimpleSpanProcessor(NoopExporter()))
    provider = TracerProvider()
    provider.add_span_processor(processor)
    instrumentor = LangChainInstrumentor()
    samples: dict[str, list[float]] = {"bare": [], "ragprov": []}
    for round_index in range(rounds):
        for mode in ("bare", "ragprov") if round_index % 2 else ("ragprov", "bare"):
            if mode == "ragprov":
                instrumentor.instrument(tracer_provider=provider)
            retriever.invoke("warm up")
            gc.collect()
            with PausedWorker(processor):
                start = time.thread_time_ns()
                for index in range(calls):
                    retriever.invoke(f"what about topic {index % 17}?")
                samples[mode].append((time.thread_time_ns() - start) / calls / 1000)
            if mode == "ragprov":
                instrumentor.uninstrument()
    processor.shutdown()
    bare, ours = (statistics.median(samples[mode]) for mode in ("bare", "ragprov"))
    print(
        f"LangChain retriever.invoke, k = {K}, InMemoryVectorStore, {rounds} rounds x {calls}, "
        f"application-thread CPU: bare {bare:.1f} µs, with ragprov {ours:.1f} µs, "
        f"added {ours - bare:.1f} µs ({ours / bare:.2f}x)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

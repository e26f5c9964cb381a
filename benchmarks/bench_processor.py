#!/usr/bin/env python3
"""Benchmarks of the ProvenanceSpanProcessor: application-thread cost, worker throughput, memory.

    .venv/bin/python benchmarks/bench_processor.py [--quick]

Prints one table; docs/performance.md ("Span processor") records a run. Three measurements:

1. **Application thread** — the time to start and end a span, measured in interleaved rounds on
   three tracer providers with a no-op exporter: the bare SDK (``SimpleSpanProcessor``), the
   bare SDK behind ``ProvenanceSpanProcessor`` (plain span: the classification + enqueue path),
   and the same with an LLM step span carrying a prompt and answer in the side channel. The
   worker is paused during the timed rounds so that it does not compete for the interpreter
   lock; what is timed is exactly what the application thread pays.
2. **Worker time** — per trace (request → retrieval of k = 10 chunks → an answer whose prompt
   quotes them), and the answer step's share (the same traces without the answer, subtracted).
3. **Memory** — tracemalloc of the processor state with 500 traces in flight (10 chunks of 2 KB
   each), then after their roots end.
"""

from __future__ import annotations

import gc
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np
from _support import NoopExporter, PausedWorker
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Tracer

from ragprov import lineage, sidechannel
from ragprov.model import ChunkProvenance, RetrievalSetEnvelope
from ragprov.processor import ProvenanceSpanProcessor

RNG = np.random.default_rng(7)
WORDS = [
    "".join(RNG.choice(list("abcdefghijklmnopqrstuvwxyz"), size=int(RNG.integers(4, 10))))
    for _ in range(4000)
]


def text(chars: int) -> str:
    """Random prose-like text: 60 % words from a 4000-word vocabulary, 40 % "the"."""
    count = chars // 4 + 8
    picks = RNG.integers(0, len(WORDS), size=count)
    filler = RNG.random(count) >= 0.6
    words = ["the" if stop else WORDS[pick] for pick, stop in zip(picks, filler, strict=True)]
    return " ".join(words)[:chars]


def tracer_for(processor: Any) -> Tracer:
    provider = TracerProvider()
    provider.add_span_processor(processor)
    return provider.get_tracer("bench")


def plain_span(tracer: Tracer) -> None:
    with tracer.start_as_current_span("work", attributes={"a": 1, "b": "x", "c": 2.0}):
        pass


def llm_span(prompt: str, answer: str) -> Callable[[Tracer], None]:
    def run(tracer: Tracer) -> None:
        with tracer.start_as_current_span(
            "chat m", attributes={"gen_ai.operation.name": "chat"}
        ) as span:
            sidechannel.record_step_input(span, [prompt])
            sidechannel.record_step_output(span, answer)

    return run


def per_call_us(function: Callable[[Tracer], None], tracer: Tracer, calls: int) -> float:
    """Mean µs per call, with the cyclic GC off while timing (as timeit does): the paused
    worker lets thousands of queued spans pile up, which would otherwise make every collection
    slower than anything a running worker, which drains its queue, ever sees."""
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter_ns()
        for _ in range(calls):
            function(tracer)
        return (time.perf_counter_ns() - start) / calls / 1000
    finally:
        gc.enable()


def application_thread(rounds: int, calls: int) -> dict[str, float]:
    bare = tracer_for(SimpleSpanProcessor(NoopExporter()))
    provenance = ProvenanceSpanProcessor(SimpleSpanProcessor(NoopExporter()))
    wrapped = tracer_for(provenance)
    prompt, answer = text(10 * 500), text(1000)
    llm = llm_span(prompt, answer)
    samples: dict[str, list[float]] = {"bare": [], "ragprov plain": [], "ragprov llm": []}
    for _ in range(rounds):
        samples["bare"].append(per_call_us(plain_span, bare, calls))
        with PausedWorker(provenance):
            samples["ragprov plain"].append(per_call_us(plain_span, wrapped, calls))
        with PausedWorker(provenance):
            samples["ragprov llm"].append(per_call_us(llm, wrapped, calls))
    provenance.shutdown()
    return {name: statistics.median(values) for name, values in samples.items()}


def retrieval_span(tracer: Tracer, chunks: list[str]) -> None:
    with tracer.start_as_current_span(
        "retrieval", attributes={"gen_ai.operation.name": "retrieval"}
    ) as span:
        provenance = [ChunkProvenance.from_store(rank=i + 1, text=t) for i, t in enumerate(chunks)]
        envelope = RetrievalSetEnvelope.build([c for c in provenance if c is not None])
        span.set_attributes(envelope.span_attributes())
        sidechannel.record_retrieval(span, envelope, chunks)


def worker_ms_per_trace(traces: int, k: int, chunk_chars: int, *, with_answer: bool) -> float:
    """Worker time per trace (request → retrieval of k chunks [→ answer quoting them]), in ms."""
    processor = ProvenanceSpanProcessor(SimpleSpanProcessor(NoopExporter()))
    tracer = tracer_for(processor)
    corpus = [[text(chunk_chars) for _ in range(k)] for _ in range(traces)]
    answers = [" ".join(chunk[:150] for chunk in chunks[:7]) for chunks in corpus]
    with lineage.new_scope(), PausedWorker(processor):
        for chunks, answer in zip(corpus, answers, strict=True):
            with tracer.start_as_current_span("request"):
                retrieval_span(tracer, chunks)
                if with_answer:
                    llm_span("Context:\n" + "\n\n".join(chunks) + "\nQuestion: ?", answer)(tracer)
        start = time.perf_counter()
    elapsed = time.perf_counter() - start  # PausedWorker.__exit__ drained the queue
    stats = processor.stats()
    processor.shutdown()
    assert stats["spans_enriched"] == traces * (3 if with_answer else 2), stats
    return elapsed / traces * 1000


def memory(traces: int, k: int, chunk_chars: int) -> dict[str, float]:
    processor = ProvenanceSpanProcessor(SimpleSpanProcessor(NoopExporter()))
    tracer = tracer_for(processor)
    corpus = [[text(chunk_chars) for _ in range(k)] for _ in range(traces)]
    gc.collect()
    tracemalloc.start()
    baseline = tracemalloc.get_traced_memory()[0]
    roots = []
    with lineage.new_scope():
        for chunks in corpus:
            root = tracer.start_span("request")
            roots.append(root)
            with trace.use_span(root, end_on_exit=False):
                retrieval_span(tracer, chunks)
        processor.force_flush(600_000)
        gc.collect()
        in_flight = tracemalloc.get_traced_memory()[0] - baseline
        state_bytes = processor.stats()["state_bytes"]
        for root in roots:
            root.end()
        processor.force_flush(600_000)
    roots.clear()
    gc.collect()
    after = tracemalloc.get_traced_memory()[0] - baseline
    stats = processor.stats()
    tracemalloc.stop()
    processor.shutdown()
    return {
        "in_flight_mib": in_flight / 2**20,
        "state_estimate_mib": state_bytes / 2**20,
        "after_end_mib": after / 2**20,
        "traces_after": stats["traces_in_memory"],
        "records_after": stats["records_in_memory"],
    }


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    rounds, calls, traces = (5, 2000, 200) if quick else (15, 5000, 1000)
    print(f"ragprov processor benchmark, Python {sys.version.split()[0]}, quick={quick}")

    app = application_thread(rounds, calls)
    print("\n1. Application thread, per span start+end (median of interleaved rounds)")
    for name, value in app.items():
        print(f"   {name:<16} {value:7.2f} µs")
    print(f"   added by ragprov, plain span      {app['ragprov plain'] - app['bare']:6.2f} µs")
    print(f"   added by ragprov, LLM step + text {app['ragprov llm'] - app['bare']:6.2f} µs")

    print("\n2. Worker time per trace: request -> retrieval of k = 10 chunks -> answer")
    for chunk_chars in (500, 2000):
        retrieval_only = worker_ms_per_trace(traces, 10, chunk_chars, with_answer=False)
        full = worker_ms_per_trace(traces, 10, chunk_chars, with_answer=True)
        step = full - retrieval_only
        print(
            f"   chunks of {chunk_chars:>4} chars: trace {full:.3f} ms "
            f"({1000 / full:,.0f} traces/s), of which the answer step {step:.3f} ms "
            f"({1000 / step:,.0f} answer steps/s)"
        )

    count = 100 if quick else 500
    mem = memory(count, 10, 2000)
    print(f"\n3. Memory, {count} traces in flight, 10 chunks of 2 KB each")
    print(f"   in flight (tracemalloc)   {mem['in_flight_mib']:.2f} MiB")
    print(f"   state estimate            {mem['state_estimate_mib']:.2f} MiB")
    print(
        f"   after the roots ended     {mem['after_end_mib']:.2f} MiB "
        f"(traces {mem['traces_after']}, records {mem['records_after']})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

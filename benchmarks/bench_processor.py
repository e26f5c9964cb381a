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
   quotes them), and the answer step's share (the same traces without the answer, subtracted),
   in interleaved rounds (median reported): elapsed time to drain the queue, and the worker
   thread's CPU time (its own clock, which time spent waiting for a core on a loaded machine
   does not inflate).
3. **Memory** — tracemalloc of the processor state with 500 traces in flight (10 chunks of 2 KB
   each), then after their roots end.
"""

from __future__ import annotations

import gc
import os
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
from ragprov.signals import tokens

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


def worker_ms_per_trace(
    traces: int, k: int, chunk_chars: int, *, with_answer: bool
) -> tuple[float, float]:
    """Worker time per trace (request → retrieval of k chunks [→ answer quoting them]), in ms:
    elapsed, and the worker thread's CPU time."""
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
        worker = processor._worker
        assert worker is not None
        assert worker.ident is not None
        worker_clock = time.pthread_getcpuclockid(worker.ident)
        start, cpu_start = time.perf_counter(), time.clock_gettime(worker_clock)
    # PausedWorker.__exit__ drained the queue
    elapsed, cpu = time.perf_counter() - start, time.clock_gettime(worker_clock) - cpu_start
    stats = processor.stats()
    processor.shutdown()
    assert stats["spans_enriched"] == traces * (3 if with_answer else 2), stats
    return elapsed / traces * 1000, cpu / traces * 1000


def worker_rounds(rounds: int, traces: int, k: int) -> dict[int, dict[str, float]]:
    """Medians over interleaved rounds, per chunk size: per-trace and per-answer-step ms."""
    samples: dict[int, dict[str, list[float]]] = {}
    for _ in range(rounds):
        for chunk_chars in (500, 2000):
            bare_wall, bare_cpu = worker_ms_per_trace(traces, k, chunk_chars, with_answer=False)
            full_wall, full_cpu = worker_ms_per_trace(traces, k, chunk_chars, with_answer=True)
            sample = samples.setdefault(chunk_chars, {})
            for name, value in (
                ("trace", full_wall),
                ("step", full_wall - bare_wall),
                ("trace_cpu", full_cpu),
                ("step_cpu", full_cpu - bare_cpu),
            ):
                sample.setdefault(name, []).append(value)
    return {
        chunk_chars: {name: statistics.median(values) for name, values in sample.items()}
        for chunk_chars, sample in samples.items()
    }


def memory(traces: int, k: int, chunk_chars: int) -> dict[str, float]:
    processor = ProvenanceSpanProcessor(SimpleSpanProcessor(NoopExporter()))
    tracer = tracer_for(processor)
    corpus = [[text(chunk_chars) for _ in range(k)] for _ in range(traces)]
    # Empty token and line memos, so that what the earlier sections left in them (or freed from
    # them when a full memo is cleared) does not count here: their growth during the run does.
    tokens.clear_memos()
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
    rounds, calls = (5, 2000) if quick else (15, 5000)
    worker_round_count, worker_traces = (3, 100) if quick else (9, 300)
    print(f"ragprov processor benchmark, Python {sys.version.split()[0]}, quick={quick}")
    print("load average at start: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))

    app = application_thread(rounds, calls)
    print("\n1. Application thread, per span start+end (median of interleaved rounds)")
    for name, value in app.items():
        print(f"   {name:<16} {value:7.2f} µs")
    print(f"   added by ragprov, plain span      {app['ragprov plain'] - app['bare']:6.2f} µs")
    print(f"   added by ragprov, LLM step + text {app['ragprov llm'] - app['bare']:6.2f} µs")

    print(
        "\n2. Worker time per trace: request -> retrieval of k = 10 chunks -> answer "
        f"(median of {worker_round_count} interleaved rounds of {worker_traces} traces)"
    )
    for chunk_chars, worker in worker_rounds(worker_round_count, worker_traces, 10).items():
        for label, suffix in (("elapsed   ", ""), ("worker CPU", "_cpu")):
            full, step = worker["trace" + suffix], worker["step" + suffix]
            print(
                f"   chunks of {chunk_chars:>4} chars, {label}: trace {full:.3f} ms "
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
    print("load average at end:   {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

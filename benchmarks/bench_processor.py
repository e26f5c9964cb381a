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


#: Numbers as answers and documents write them (3 % of the words, so most lines have some):
#: counts, years, amounts, percentages, magnitudes. Text with digits takes the tokenizer's
#: number path, which text without digits never reaches.
NUMBERS = [
    form.format(int(RNG.integers(1, 999)), int(RNG.integers(0, 99)))
    for form in ("{0}", "{0}.{1}%", "${0}.{1}M", "{0},{1:03d}", "20{1:02d}", "{0}.{1} million")
    for _ in range(200)
]


def text(chars: int) -> str:
    """Random prose-like text: 57 % words from a 4000-word vocabulary, 3 % numbers, 40 % "the",
    a full stop after every 15th word."""
    count = chars // 4 + 8
    picks = RNG.integers(0, len(WORDS), size=count)
    kinds = RNG.random(count)
    words = [
        "the" if kind >= 0.6 else NUMBERS[pick % len(NUMBERS)] if kind < 0.03 else WORDS[pick]
        for pick, kind in zip(picks, kinds, strict=True)
    ]
    for index in range(14, count, 15):
        words[index] += "."
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


def timed_items(processor: ProvenanceSpanProcessor) -> dict[str, list[float]]:
    """Have the worker record its CPU time per span it processes (enrich, copy, forward), in ms,
    by kind: "step", "retrieval", "root" (the request span) or "other"."""
    samples: dict[str, list[float]] = {}
    process = processor._process

    def timed(item: Any) -> None:
        start = time.thread_time()
        process(item)
        kind = item.role or ("root" if item.is_local_root else "other")
        samples.setdefault(kind, []).append((time.thread_time() - start) * 1000)

    processor._process = timed  # type: ignore[method-assign]
    return samples


def worker_ms_per_trace(
    traces: int, k: int, chunk_chars: int, *, with_answer: bool
) -> tuple[float, float, dict[str, float]]:
    """Worker time per trace (request → retrieval of k chunks [→ answer quoting them]), in ms:
    elapsed, the worker thread's CPU time, and the median CPU time per span by kind."""
    processor = ProvenanceSpanProcessor(SimpleSpanProcessor(NoopExporter()))
    items = timed_items(processor)
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
    medians = {kind: statistics.median(values) for kind, values in items.items()}
    return elapsed / traces * 1000, cpu / traces * 1000, medians


def worker_rounds(rounds: int, traces: int, k: int) -> dict[int, dict[str, float]]:
    """Medians over interleaved rounds, per chunk size: per-trace and per-answer-step ms.

    The answer step's share is measured two ways: the difference of two whole runs (with and
    without the answer; noisy, as it subtracts two totals), and per span ("step_span"): the
    median CPU time of an answer span plus what it adds to its request span (the mirrored
    final answer), each a median over the round's 300 spans.
    """
    samples: dict[int, dict[str, list[float]]] = {}
    for _ in range(rounds):
        for chunk_chars in (500, 2000):
            bare_wall, bare_cpu, bare = worker_ms_per_trace(
                traces, k, chunk_chars, with_answer=False
            )
            full_wall, full_cpu, full = worker_ms_per_trace(
                traces, k, chunk_chars, with_answer=True
            )
            sample = samples.setdefault(chunk_chars, {})
            for name, value in (
                ("trace", full_wall),
                ("step", full_wall - bare_wall),
                ("trace_cpu", full_cpu),
                ("step_cpu", full_cpu - bare_cpu),
                ("step_span", full["step"] + full["root"] - bare["root"]),
                ("retrieval_span", full["retrieval"]),
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
        span, retrieval = worker["step_span"], worker["retrieval_span"]
        print(
            f"   chunks of {chunk_chars:>4} chars, per span CPU: answer step {span:.3f} ms "
            f"({1000 / span:,.0f} answer steps/s), retrieval span {retrieval:.3f} ms"
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

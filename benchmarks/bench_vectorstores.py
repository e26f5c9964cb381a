#!/usr/bin/env python3
"""Per-query overhead of the vector-store instrumentation on the application thread, compared
with OpenLLMetry's instrumentation of the same stores.

    .venv-bench/bin/python benchmarks/bench_vectorstores.py [--quick] [--stores chromadb,qdrant]
    .venv-bench/bin/python benchmarks/bench_vectorstores.py --profile qdrant   # cProfile ragprov
    .venv-bench/bin/python benchmarks/bench_vectorstores.py --floor   # + a bare span's cost
    .venv-bench/bin/python benchmarks/bench_vectorstores.py --clock cpu  # on a loaded machine
    .venv-bench/bin/python benchmarks/bench_vectorstores.py --decompose  # qdrant, by part
    .venv-bench/bin/python benchmarks/bench_vectorstores.py --openllmetry-through-ragprov
    .venv-bench/bin/python benchmarks/bench_vectorstores.py --pipeline batch

OpenLLMetry (``opentelemetry-instrumentation-chromadb``, ``-qdrant``, ``-lancedb``) is not a
dependency of ragprov and is not installed in the project's ``.venv``: the comparison runs in a
separate environment, ``.venv-bench``::

    python3 -m venv .venv-bench
    .venv-bench/bin/pip install -e ".[chromadb,qdrant,lancedb]" \\
        "opentelemetry-instrumentation-chromadb==0.62.*" \\
        "opentelemetry-instrumentation-qdrant==0.62.*" \\
        "opentelemetry-instrumentation-lancedb==0.62.*"

Where they are absent (e.g. ``.venv/bin/python``) the OpenLLMetry rows are skipped with a note.

What is timed: a k = 10 dense query on each embedded store (chromadb ``EphemeralClient``,
``QdrantClient(":memory:")``, lancedb on a temporary directory), 2,000 chunks of ~400 characters
with metadata, 64-dimensional hash embeddings, in one process, in three modes:

* ``bare`` — no instrumentation;
* ``ragprov`` — ragprov's instrumentor, its spans going to ``ProvenanceSpanProcessor`` in front
  of a ``SimpleSpanProcessor`` with a no-op exporter. The processor's worker is paused while the
  queries are timed (as in bench_processor.py), so what is measured is exactly what the
  application thread pays: the wrapper, span creation, copying the result rows, the
  side-channel hand-off and the enqueue. The chunk ids, set hash and envelope (built by the
  worker when a provenance processor is attached) and the signals are computed afterwards, off
  the clock; the last column counts the exported ragprov spans that carry the envelope
  (``rag.retrieval_set_id``, ``rag.chunk_set_hash``, non-empty ``rag.chunk_ids``);
* ``openllmetry`` — OpenLLMetry's instrumentor, its spans going to a ``SimpleSpanProcessor``
  with a no-op exporter (its default settings: chromadb result events included); with
  ``--openllmetry-through-ragprov``, through a ``ProvenanceSpanProcessor`` too, as in an
  application that runs both; ``--pipeline batch`` puts a ``BatchSpanProcessor`` behind both;
* ``floor`` (with ``--floor``) — no instrumentor: the query wrapped in a span with the request
  attributes of a deferred ragprov retrieval span (the four request attributes), through its own
  ``ProvenanceSpanProcessor``: the part of ragprov's cost that is the span and the processor.

Each round instruments, times ``calls`` queries and uninstruments, for each mode in a rotating
order; the table shows medians over the rounds, the time each instrumentation adds to a bare
query (the median over rounds of the difference to the bare run of the same round, so that slow
drifts of a shared machine cancel), and ragprov's added time as a ratio of OpenLLMetry's. The
stores run their own worker threads (chromadb, lancedb), so the load average rises by about
one while the benchmark runs; it is printed at start and end. It also prints the spans each mode
emits per query: OpenLLMetry's lancedb instrumentation wraps ``LanceTable.search``, which only
builds the query (the search runs later, in ``to_list``), so its span does not cover the search.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import importlib
import os
import pstats
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from _support import NoopExporter, PausedWorker
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace import SpanKind

from ragprov.demo.embedding import HashingEmbedder
from ragprov.processor import ProvenanceSpanProcessor

os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

K = 10
DOCS = 2000
DIM = 64
EMBEDDER = HashingEmbedder(DIM)
RNG = np.random.default_rng(11)
WORDS = [
    "".join(RNG.choice(list("abcdefghijklmnopqrstuvwxyz"), size=int(RNG.integers(3, 10))))
    for _ in range(3000)
]

#: store → (module, class) of OpenLLMetry's instrumentor.
OPENLLMETRY = {
    "chromadb": ("opentelemetry.instrumentation.chromadb", "ChromaInstrumentor"),
    "qdrant": ("opentelemetry.instrumentation.qdrant", "QdrantInstrumentor"),
    "lancedb": ("opentelemetry.instrumentation.lancedb", "LanceInstrumentor"),
}
RAGPROV = {
    "chromadb": ("ragprov.instrumentation.chromadb", "ChromaInstrumentor"),
    "qdrant": ("ragprov.instrumentation.qdrant", "QdrantInstrumentor"),
    "lancedb": ("ragprov.instrumentation.lancedb", "LanceDBInstrumentor"),
}


PROVENANCE_KEYS = ("rag.retrieval_set_id", "rag.chunk_set_hash", "rag.chunk_ids")


class ProvenanceCountingExporter(NoopExporter):
    """Counts the exported spans that carry the provenance envelope (set id, set hash, ids)."""

    def __init__(self) -> None:
        super().__init__()
        self.with_provenance = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        for span in spans:
            attributes = span.attributes or {}
            if all(key in attributes for key in PROVENANCE_KEYS) and attributes["rag.chunk_ids"]:
                self.with_provenance += 1
        return super().export(spans)


# --------------------------------------------------------------------------- corpus


def text(chars: int) -> str:
    words: list[str] = []
    size = 0
    while size < chars:
        word = str(RNG.choice(WORDS)) if RNG.random() < 0.65 else "the"
        words.append(word)
        size += len(word) + 1
    return " ".join(words)[:chars].rstrip() + "."


@dataclass
class Corpus:
    ids: list[str]
    texts: list[str]
    metadatas: list[dict[str, Any]]
    vectors: np.ndarray
    queries: list[list[float]] = field(default_factory=list)


def corpus() -> Corpus:
    texts = [text(400) for _ in range(DOCS)]
    metadatas = [
        {
            "source_document_id": f"doc-{index // 8}.pdf",
            "completeness": round(float(RNG.uniform(0.5, 1.0)), 3),
            "semantic_density": round(float(RNG.uniform(0.5, 1.0)), 3),
        }
        for index in range(DOCS)
    ]
    vectors = np.asarray(EMBEDDER(texts), dtype=np.float32)
    queries = [list(map(float, v)) for v in EMBEDDER([text(60) for _ in range(50)])]
    return Corpus([f"c{index}" for index in range(DOCS)], texts, metadatas, vectors, queries)


# --------------------------------------------------------------------------- stores


@dataclass
class Target:
    name: str
    query: Callable[[list[float]], Any]
    close: Callable[[], None] = lambda: None


def chromadb_target(data: Corpus) -> Target:
    import chromadb
    from chromadb.config import Settings

    client = chromadb.EphemeralClient(settings=Settings(anonymized_telemetry=False))
    collection = client.create_collection(
        f"bench_{uuid.uuid4().hex[:8]}",
        embedding_function=None,
        configuration={"hnsw": {"space": "cosine"}},
    )
    for start in range(0, DOCS, 500):
        end = start + 500
        collection.add(
            ids=data.ids[start:end],
            documents=data.texts[start:end],
            metadatas=data.metadatas[start:end],
            embeddings=data.vectors[start:end],
        )
    return Target("chromadb", lambda q: collection.query(query_embeddings=[q], n_results=K))


def qdrant_target(data: Corpus) -> Target:
    from qdrant_client import QdrantClient, models

    client = QdrantClient(":memory:")
    client.create_collection(
        "bench", vectors_config=models.VectorParams(size=DIM, distance=models.Distance.COSINE)
    )
    client.upsert(
        "bench",
        points=[
            models.PointStruct(id=index, vector=data.vectors[index].tolist(), payload=payload)
            for index, payload in enumerate(
                {"text": t, **m} for t, m in zip(data.texts, data.metadatas, strict=True)
            )
        ],
    )
    return Target("qdrant", lambda q: client.query_points("bench", query=q, limit=K), client.close)


def lancedb_target(data: Corpus) -> Target:
    import lancedb

    directory = tempfile.TemporaryDirectory()
    db = lancedb.connect(directory.name)
    rows = [
        {"id": data.ids[i], "text": data.texts[i], "vector": data.vectors[i].tolist(), **m}
        for i, m in enumerate(data.metadatas)
    ]
    table = db.create_table("bench", data=rows)
    return Target(
        "lancedb",
        lambda q: table.search(q).distance_type("cosine").limit(K).to_list(),
        directory.cleanup,
    )


TARGETS = {"chromadb": chromadb_target, "qdrant": qdrant_target, "lancedb": lancedb_target}


# --------------------------------------------------------------------------- modes


@dataclass
class Mode:
    name: str
    instrumentor: Any = None
    provider: TracerProvider | None = None
    exporter: NoopExporter | None = None
    processor: ProvenanceSpanProcessor | None = None
    samples: list[float] = field(default_factory=list)
    spans: int = 0
    calls: int = 0

    def instrument(self) -> None:
        if self.instrumentor is not None:
            self.instrumentor.instrument(tracer_provider=self.provider)

    def uninstrument(self) -> None:
        if self.instrumentor is not None:
            self.instrumentor.uninstrument()


class SpanOnly:
    """``--floor``: no instrumentor, the query wrapped in a span with the request attributes of a
    deferred ragprov retrieval span, through ``ProvenanceSpanProcessor``: what the span and the
    processor cost the application thread, whatever the instrumentation does."""

    def __init__(self, target: Target, store: str) -> None:
        self.target, self.store = target, store
        self.query = target.query

    def instrument(self, tracer_provider: TracerProvider) -> None:
        tracer = tracer_provider.get_tracer("floor")
        query, store = self.query, self.store
        attributes = {
            "gen_ai.operation.name": "retrieval",
            "db.system.name": store,
            "gen_ai.data_source.id": "bench",
            "gen_ai.retrieval.top_k": K,
        }

        def traced(vector: list[float]) -> Any:
            span = tracer.start_span("retrieval bench", kind=SpanKind.CLIENT, attributes=attributes)
            try:
                return query(vector)
            finally:
                span.end()

        self.target.query = traced

    def uninstrument(self) -> None:
        self.target.query = self.query


def floor_mode(target: Target, store: str) -> Mode:
    exporter = NoopExporter()
    processor = ProvenanceSpanProcessor(export_processor(exporter))
    provider = TracerProvider()
    provider.add_span_processor(processor)
    return Mode("floor", SpanOnly(target, store), provider, exporter, processor)


def load(location: tuple[str, str]) -> Any:
    module_name, class_name = location
    return getattr(importlib.import_module(module_name), class_name)


#: The export processor behind each instrumentation (``--pipeline``): ``simple`` exports each
#: span as it ends and keeps nothing (the cheapest pipeline there is for OpenLLMetry's spans);
#: ``batch`` is what ``opentelemetry-instrument`` installs, which keeps ended spans until it
#: exports a batch (every 5 s or 512 spans), so the garbage collector traces them meanwhile.
PIPELINES: dict[str, Callable[[SpanExporter], SpanProcessor]] = {
    "simple": SimpleSpanProcessor,
    "batch": BatchSpanProcessor,
}
export_processor = PIPELINES["simple"]
#: ``--openllmetry-through-ragprov``: OpenLLMetry's spans also go through a
#: ``ProvenanceSpanProcessor``, as they do in an application that runs both (ragprov's distro
#: puts its processor in front of every span): the two instrumentations then differ only in
#: what they do themselves, not in their pipeline.
openllmetry_through_ragprov = False


def modes_for(store: str) -> tuple[list[Mode], str | None]:
    modes = [Mode("bare")]
    exporter = ProvenanceCountingExporter()
    processor = ProvenanceSpanProcessor(export_processor(exporter))
    provider = TracerProvider()
    provider.add_span_processor(processor)
    modes.append(Mode("ragprov", load(RAGPROV[store])(), provider, exporter, processor))
    try:
        openllmetry = load(OPENLLMETRY[store])
    except ImportError:
        return modes, f"OpenLLMetry's {OPENLLMETRY[store][0]} is not installed: row skipped"
    exporter = NoopExporter()
    provider = TracerProvider()
    theirs: ProvenanceSpanProcessor | None = None
    if openllmetry_through_ragprov:
        theirs = ProvenanceSpanProcessor(export_processor(exporter))
        provider.add_span_processor(theirs)
    else:
        provider.add_span_processor(export_processor(exporter))
    modes.append(Mode("openllmetry", openllmetry(), provider, exporter, theirs))
    return modes, None


#: The clock of the timed loops: wall time, or with ``--clock cpu`` the application thread's CPU
#: time (``time.thread_time_ns``), which other processes on a loaded machine do not inflate. The
#: CPU clock leaves out the stores' own worker threads (chromadb, lancedb), so its bare times
#: are lower; what the instrumentation adds runs on the application thread and is counted.
CLOCKS: dict[str, Callable[[], int]] = {"wall": time.perf_counter_ns, "cpu": time.thread_time_ns}
clock = CLOCKS["wall"]


def timed(target: Target, queries: list[list[float]], calls: int) -> float:
    """µs per query."""
    start = clock()
    for index in range(calls):
        target.query(queries[index % len(queries)])
    return (clock() - start) / calls / 1000


def run_round(mode: Mode, target: Target, queries: list[list[float]], calls: int) -> None:
    mode.instrument()
    try:
        target.query(queries[0])  # warm (metric lookups, first-call imports) off the clock
        if mode.processor is not None:
            mode.processor.force_flush(600_000)
        before = mode.exporter.count if mode.exporter else 0
        gc.collect()
        with PausedWorker(mode.processor):
            mode.samples.append(timed(target, queries, calls))
        if mode.provider is not None:
            mode.provider.force_flush()  # a batch pipeline's pending spans, off the clock
        if mode.exporter is not None:
            mode.spans += mode.exporter.count - before
            mode.calls += calls
    finally:
        mode.uninstrument()


def bench_store(
    store: str, data: Corpus, rounds: int, calls: int, floor: bool = False
) -> dict[str, Any]:
    target = TARGETS[store](data)
    modes, note = modes_for(store)
    if floor:
        modes.append(floor_mode(target, store))
    for round_index in range(rounds):
        shift = round_index % len(modes)
        for mode in modes[shift:] + modes[:shift]:
            run_round(mode, target, data.queries, calls)
    target.close()
    for mode in modes:
        if mode.processor is not None:
            mode.processor.shutdown()
    medians = {mode.name: statistics.median(mode.samples) for mode in modes}
    bare = modes[0].samples
    # Paired per round (the bare run of the same round), so slow drifts of the machine cancel.
    added = {
        mode.name: statistics.median(m - b for m, b in zip(mode.samples, bare, strict=True))
        for mode in modes[1:]
    }
    spans = {mode.name: mode.spans / mode.calls for mode in modes if mode.calls}
    ours = modes[1].exporter
    assert isinstance(ours, ProvenanceCountingExporter)
    provenance = f"{ours.with_provenance}/{ours.count}"
    return {
        "medians": medians,
        "added": added,
        "spans": spans,
        "note": note,
        "provenance": provenance,
    }


def decompose(data: Corpus, rounds: int = 11, calls: int = 1000) -> None:
    """``--decompose``: where a qdrant query's instrumentation time goes, without the store.

    Each wrapper is called with a stand-in for ``query_points`` that returns a real k = 10
    result at once, so only the instrumentation runs: OpenLLMetry's wrapper, ragprov's, and
    ragprov's in parts (its span with the request attributes, the run that opens and ends it,
    the result copy). Application-thread CPU time, garbage collection off (it would charge the
    paused worker's growing queue to whichever case runs), medians of interleaved rounds.
    """
    try:
        from opentelemetry.instrumentation.qdrant.wrapper import _wrap as openllmetry_wrap
    except ImportError:
        print("--decompose needs OpenLLMetry's qdrant instrumentation (.venv-bench)")
        return
    from qdrant_client import QdrantClient, models

    from ragprov.instrumentation import _base
    from ragprov.instrumentation import qdrant as ragprov_qdrant

    client = QdrantClient(":memory:")
    client.create_collection(
        "bench", vectors_config=models.VectorParams(size=DIM, distance=models.Distance.COSINE)
    )
    client.upsert(
        "bench",
        points=[
            models.PointStruct(
                id=index, vector=data.vectors[index].tolist(), payload={"text": data.texts[index]}
            )
            for index in range(200)
        ],
    )
    args, kwargs = ("bench",), {"query": data.queries[0], "limit": K}
    result = client.query_points(*args, **kwargs)

    def returns_result(*_: Any, **__: Any) -> Any:
        return result

    def pipeline(provenance: bool) -> tuple[TracerProvider, ProvenanceSpanProcessor | None]:
        export = SimpleSpanProcessor(NoopExporter())
        processor = ProvenanceSpanProcessor(export) if provenance else None
        provider = TracerProvider()
        provider.add_span_processor(processor or export)
        return provider, processor

    plain, _ = pipeline(False)
    provenance, processor = pipeline(True)
    describe, read = ragprov_qdrant._RETRIEVALS["query_points"]
    extract = ragprov_qdrant._sync_extractor(read)
    store = _base.StoreTracer.create("qdrant", "bench", provenance)
    request = describe(client, args, kwargs)
    sets = extract(client, args, kwargs, result)
    attributes = store.retrieval_attributes(request)

    def call(wrapper: Any) -> Callable[[], Any]:
        return lambda: wrapper(returns_result, client, args, kwargs)

    def openllmetry(provider: TracerProvider) -> Callable[[], Any]:
        to_wrap = {"span_name": "qdrant.query_points", "method": "query_points"}
        return call(openllmetry_wrap(provider.get_tracer("openllmetry"), to_wrap))

    def ragprov(provider: TracerProvider) -> Callable[[], Any]:
        tracer = _base.StoreTracer.create("qdrant", "bench", provider)
        return call(tracer.retrieval_wrapper(describe, extract))

    def span_only(provider: TracerProvider) -> Callable[[], None]:
        tracer = provider.get_tracer("floor")

        def run() -> None:
            span = tracer.start_span("retrieval bench", kind=SpanKind.CLIENT, attributes=attributes)
            span.end()

        return run

    def run(with_sets: bool) -> Callable[[], None]:
        def once() -> None:
            retrieval = _base._RetrievalRun(store, request)
            retrieval.returned()
            retrieval.finish(sets if with_sets else ())

        return once

    cases: dict[str, tuple[Callable[[], Any], ProvenanceSpanProcessor | None]] = {
        "OpenLLMetry's wrapper, SimpleSpanProcessor": (openllmetry(plain), None),
        "OpenLLMetry's wrapper, ProvenanceSpanProcessor": (openllmetry(provenance), processor),
        "span with ragprov's 4 request attributes, SimpleSpanProcessor": (span_only(plain), None),
        "span with ragprov's 4 request attributes, ProvenanceSpanProcessor": (
            span_only(provenance),
            processor,
        ),
        "ragprov's run (span, context), no result": (run(False), processor),
        "ragprov's run with the result (deferred hand-off)": (run(True), processor),
        "ragprov's describe + extract (result copy)": (
            lambda: (describe(client, args, kwargs), extract(client, args, kwargs, result)),
            None,
        ),
        "ragprov's whole wrapper, ProvenanceSpanProcessor": (ragprov(provenance), processor),
        "ragprov's whole wrapper, no provenance processor (inline)": (ragprov(plain), None),
    }
    samples: dict[str, list[float]] = {name: [] for name in cases}
    names = list(cases)
    gc.disable()
    try:
        for round_index in range(rounds):
            shift = round_index % len(names)
            for name in names[shift:] + names[:shift]:
                function, paused = cases[name]
                with PausedWorker(paused):
                    start = time.thread_time_ns()
                    for _ in range(calls):
                        function()
                    samples[name].append((time.thread_time_ns() - start) / calls / 1000)
                gc.collect()
    finally:
        gc.enable()
    print(f"\nqdrant instrumentation without the store, CPU µs per call ({rounds} x {calls}):")
    for name, values in samples.items():
        print(f"  {name:<66} {statistics.median(values):6.1f}")
    client.close()
    if processor is not None:
        processor.shutdown()


def profile(store: str, data: Corpus, calls: int) -> None:
    """cProfile of ragprov's instrumentation around ``calls`` queries (worker paused)."""
    target = TARGETS[store](data)
    (mode,) = [m for m in modes_for(store)[0] if m.name == "ragprov"]
    mode.instrument()
    try:
        target.query(data.queries[0])
        profiler = cProfile.Profile()
        with PausedWorker(mode.processor):
            profiler.enable()
            for index in range(calls):
                target.query(data.queries[index % len(data.queries)])
            profiler.disable()
    finally:
        mode.uninstrument()
        target.close()
    stats = pstats.Stats(profiler).strip_dirs()
    print(f"\ncProfile, {store}, ragprov, {calls} queries, by internal time:")
    stats.sort_stats("tottime").print_stats(25)
    print("by cumulative time, ragprov frames:")
    stats.sort_stats("cumulative").print_stats(
        r"ragprov|_base|wrapt|trace/__init__|sidechannel", 30
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--stores", default=",".join(TARGETS))
    parser.add_argument("--profile", metavar="STORE", choices=list(TARGETS))
    parser.add_argument(
        "--floor",
        action="store_true",
        help="also time a bare span through ProvenanceSpanProcessor around the query",
    )
    parser.add_argument(
        "--decompose",
        action="store_true",
        help="time the parts of a qdrant query's instrumentation, without the store",
    )
    parser.add_argument("--rounds", type=int, help="default 15 (5 with --quick)")
    parser.add_argument(
        "--clock",
        choices=list(CLOCKS),
        default="wall",
        help="cpu: time the application thread's CPU time (robust on a loaded machine)",
    )
    parser.add_argument("--calls", type=int, help="queries per round, default 300 (100 quick)")
    parser.add_argument(
        "--pipeline",
        choices=list(PIPELINES),
        default="simple",
        help="the export processor behind both instrumentations (batch: as "
        "opentelemetry-instrument sets up)",
    )
    parser.add_argument(
        "--openllmetry-through-ragprov",
        action="store_true",
        help="OpenLLMetry's spans also go through a ProvenanceSpanProcessor (both running)",
    )
    args = parser.parse_args(argv)
    global clock, export_processor, openllmetry_through_ragprov
    clock = CLOCKS[args.clock]
    export_processor = PIPELINES[args.pipeline]
    openllmetry_through_ragprov = args.openllmetry_through_ragprov
    rounds, calls = (5, 100) if args.quick else (15, 300)
    rounds, calls = args.rounds or rounds, args.calls or calls
    data = corpus()
    load_avg = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"ragprov vector-store benchmark, Python {sys.version.split()[0]}, quick={args.quick}, "
        f"k={K}, {DOCS} chunks, dim {DIM}, {rounds} rounds x {calls} queries, "
        f"clock {args.clock}, pipeline {args.pipeline}"
        f"{' (OpenLLMetry through ragprov)' if openllmetry_through_ragprov else ''}, "
        f"load average at start {load_avg:.2f}"
    )
    if args.profile:
        profile(args.profile, data, calls * 3)
        return 0
    if args.decompose:
        decompose(data)
        return 0
    print(
        "\nper query, median of interleaved rounds (µs); added = median over rounds of "
        "(mode - bare of the same round)"
    )
    header = (
        f"{'store':<9} {'bare':>9} {'ragprov':>9} {'added':>8} {'openllmetry':>12} {'added':>8}"
        f" {'ratio':>6}  spans/query (ragprov, openllmetry)  ragprov spans with provenance"
    )
    print(header)
    print("-" * len(header))
    notes: list[str] = []
    floors: list[str] = []
    for store in args.stores.split(","):
        result = bench_store(store, data, rounds, calls, args.floor)
        medians, spans, added = result["medians"], result["spans"], result["added"]
        bare, ours = medians["bare"], medians["ragprov"]
        theirs = medians.get("openllmetry")
        added_ours = added["ragprov"]
        line = f"{store:<9} {bare:>9.1f} {ours:>9.1f} {added_ours:>8.1f}"
        if theirs is None:
            line += f" {'-':>12} {'-':>8} {'-':>6}"
        else:
            added_theirs = added["openllmetry"]
            ratio = added_ours / added_theirs if added_theirs > 0 else float("inf")
            line += f" {theirs:>12.1f} {added_theirs:>8.1f} {ratio:>6.2f}"
        span_counts = ", ".join(
            f"{spans[name]:.1f}" for name in ("ragprov", "openllmetry") if name in spans
        )
        print(f"{line}  {span_counts:<36}{result['provenance']}")
        if "floor" in added:
            floors.append(f"{store}: {added['floor']:.1f} µs")
        if result["note"]:
            notes.append(result["note"])
    for note in notes:
        print(f"note: {note}")
    if floors:
        print(
            "floor (a span with the request attributes through ProvenanceSpanProcessor, no "
            f"instrumentation), added: {', '.join(floors)}"
        )
    print(
        "ratio = ragprov's added time / OpenLLMetry's added time (< 1: ragprov adds less). "
        f"load average at end {os.getloadavg()[0]:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

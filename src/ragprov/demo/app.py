"""``ragprov demo``: a small RAG app on embedded components, and what ragprov says about it.

The app is ordinary: chromadb in memory (embeddings from a deterministic hashing embedder, so no
model is downloaded) holding three collections of a fictional company's documents, and the real
``openai`` client. By default the client talks to a local OpenAI-compatible responder with
scripted answers, so the demo runs offline and without a key; ``--openai-base-url`` (or
``OPENAI_BASE_URL``) points it at a real model instead.

ragprov instruments both clients and its ``ProvenanceSpanProcessor`` enriches the spans. The six
questions are chosen so that each diagnosis category shows up once: a healthy answer, one that
ignores good evidence (navigation), one over a redundant set (retrieval_composition), one over
low-quality chunks (data_problem), and two over an empty retrieval — one admitting it
(acceptable_fallback), one answering anyway (ungrounded_answer).

Spans always go to an in-memory exporter, read back for the table; ``--otlp URL`` or the usual
``OTEL_EXPORTER_OTLP_*`` variables send them to a backend too. Content (questions, chunks,
answers) is not exported unless ``RAGPROV_CAPTURE_CONTENT=true``.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, TextIO

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import (
    ReadableSpan,
    SynchronousMultiSpanProcessor,
    TracerProvider,
)
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Tracer

from ragprov.demo import scenarios
from ragprov.demo.embedding import HashingEmbedder
from ragprov.demo.responder import running_responder
from ragprov.processor import ProvenanceSpanProcessor
from ragprov.semconv import attributes as attrs

SERVICE_NAME = "ragprov-demo"
#: The demo app's own attribute on its request span: which question the trace answers.
QUESTION_INDEX = "demo.question.index"
DEFAULT_MODEL = "demo-model"
TOP_K = 5
SYSTEM_PROMPT = "Answer the question from the context only. Say so if the context lacks the answer."


@dataclass(frozen=True, slots=True)
class Collection:
    name: str
    texts: Sequence[str]
    chunk_ids: Sequence[str] | None
    metadata: Sequence[Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class Question:
    question: str
    collection: str
    scripted_answer: str
    expected: str  # the diagnosis the scripted answer produces
    where: Mapping[str, Any] | None = None


def _collections() -> list[Collection]:
    def with_source(metadata: Sequence[Mapping[str, Any]], source: str) -> list[dict[str, Any]]:
        return [{**item, "source_document_id": source, "year": 2023} for item in metadata]

    return [
        Collection(
            "acme-annual-report",
            scenarios.DIVERSE,
            scenarios.IDS,
            with_source(scenarios.GOOD_METADATA, "acme-annual-report-2023"),
        ),
        Collection(
            "acme-press-clippings",
            scenarios.NEAR_DUPLICATES,
            None,
            with_source([{}] * len(scenarios.NEAR_DUPLICATES), "press-2024-01"),
        ),
        Collection(
            "acme-wiki-drafts",
            scenarios.DIVERSE,
            [f"wiki/{chunk_id}" for chunk_id in scenarios.IDS],
            with_source(scenarios.LOW_QUALITY_METADATA, "acme-wiki"),
        ),
    ]


QUESTIONS: tuple[Question, ...] = (
    Question(
        "What did Acme Robotics report for 2023?",
        "acme-annual-report",
        scenarios.ANSWER_USES_FOUR,
        "healthy",
    ),
    Question(
        "How did Acme Robotics' revenue develop, and what is the outlook?",
        "acme-annual-report",
        scenarios.ANSWER_USES_TWO,
        "navigation",
    ),
    Question(
        "How much revenue did Acme Robotics report?",
        "acme-press-clippings",
        scenarios.ANSWER_REVENUE,
        "retrieval_composition",
    ),
    Question(
        "Summarise what the wiki says about Acme Robotics.",
        "acme-wiki-drafts",
        scenarios.ANSWER_USES_FOUR,
        "data_problem",
    ),
    Question(
        "What was Acme Robotics' revenue in 2025?",
        "acme-annual-report",
        scenarios.ACKNOWLEDGING,
        "acceptable_fallback",
        where={"year": 2025},
    ),
    Question(
        "How much will Acme Robotics earn in 2025?",
        "acme-annual-report",
        scenarios.CONFIDENT,
        "ungrounded_answer",
        where={"year": 2025},
    ),
)


@dataclass(frozen=True, slots=True)
class AnswerReport:
    """What the exported spans say about one answer (one row of the demo's table)."""

    question: str
    collection: str
    answer: str
    retrieval_set_ids: list[str]
    chunk_set_hashes: list[str]
    retrieved_chunks: int | None
    used_chunks: int | None
    utilisation_ratio: float | None
    utilisation_reliable: bool | None
    coverage_diversity: float | None
    quality_density: float | None
    quality_method: str | None
    grounding_status: str | None
    diagnosis: str | None
    diagnosis_reason: str | None


def run_demo(
    out: TextIO,
    *,
    json_lines: bool = False,
    otlp_endpoint: str | None = None,
    otlp_protocol: str = "http/protobuf",
    openai_base_url: str | None = None,
    model: str = DEFAULT_MODEL,
) -> list[AnswerReport]:
    """Run every demo question; write progress and the table (or JSON lines) to ``out``."""
    import chromadb  # deferred: optional extras
    import openai
    from chromadb.config import Settings as ChromaSettings

    from ragprov.instrumentation.chromadb import ChromaInstrumentor
    from ragprov.instrumentation.openai import OpenAIInstrumentor

    def progress(message: str) -> None:
        if not json_lines:
            print(message, file=out, flush=True)

    collected = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE_NAME}))
    downstream = SynchronousMultiSpanProcessor()  # type: ignore[no-untyped-call]
    downstream.add_span_processor(SimpleSpanProcessor(collected))
    backend = _backend_exporter(otlp_endpoint, otlp_protocol)
    if backend is not None:
        downstream.add_span_processor(BatchSpanProcessor(backend))
    provider.add_span_processor(ProvenanceSpanProcessor(downstream))
    tracer = provider.get_tracer("ragprov.demo")

    instrumentors: list[Any] = [ChromaInstrumentor(), OpenAIInstrumentor()]
    for instrumentor in instrumentors:
        instrumentor.instrument(tracer_provider=provider)
    try:
        progress("ragprov demo: a RAG app on chromadb (in memory) and the openai client")
        base_url = openai_base_url or os.environ.get("OPENAI_BASE_URL")
        with _llm_endpoint(base_url) as (url, where_from):
            progress(f"  LLM: {where_from} ({url})")
            client = openai.OpenAI(
                base_url=url,
                api_key=os.environ.get("OPENAI_API_KEY") or "ragprov-demo",
                max_retries=0,
            )
            store = chromadb.EphemeralClient(settings=ChromaSettings(anonymized_telemetry=False))
            embedder = HashingEmbedder()
            collections = _load(store, embedder, progress)
            answers: dict[str, str] = {}
            for number, item in enumerate(QUESTIONS, start=1):
                progress(f"  [{number}/{len(QUESTIONS)}] {item.question}")
                answers[item.question] = _ask(
                    tracer, client, collections[item.collection], embedder, item, model
                )
        provider.force_flush()
        reports = _reports(collected.get_finished_spans(), answers)
    finally:
        for instrumentor in instrumentors:
            instrumentor.uninstrument()
        provider.shutdown()

    if json_lines:
        for report in reports:
            print(json.dumps(asdict(report)), file=out)
    else:
        _print_table(reports, out)
        if backend is not None:
            progress(f"\nSpans were also exported over OTLP ({otlp_protocol}).")
    return reports


# -- the app ----------------------------------------------------------------------------------


@contextlib.contextmanager
def _llm_endpoint(base_url: str | None) -> Iterator[tuple[str, str]]:
    if base_url:
        yield base_url, "your OpenAI-compatible endpoint"
        return
    script = {item.question: item.scripted_answer for item in QUESTIONS}
    with running_responder(script) as url:
        yield url, "local scripted responder, no API key needed"


def _load(store: Any, embedder: HashingEmbedder, progress: Any) -> dict[str, Any]:
    loaded = {}
    for collection in _collections():
        handle = store.get_or_create_collection(
            collection.name, configuration={"hnsw": {"space": "cosine"}}, embedding_function=None
        )
        metadatas: list[Any] = []
        for index, metadata in enumerate(collection.metadata):
            item = dict(metadata)
            if collection.chunk_ids is not None:
                item["chunk_id"] = collection.chunk_ids[index]
            metadatas.append(item)
        handle.upsert(
            ids=[f"{collection.name}-{index}" for index in range(len(collection.texts))],
            documents=list(collection.texts),
            metadatas=metadatas,
            embeddings=list(embedder.embed(collection.texts)),
        )
        loaded[collection.name] = handle
        progress(f"  stored {len(collection.texts)} chunks in {collection.name!r}")
    return loaded


def _ask(
    tracer: Tracer,
    client: Any,
    collection: Any,
    embedder: HashingEmbedder,
    item: Question,
    model: str,
) -> str:
    """One request of the app: retrieve, build the prompt, ask the model."""
    with tracer.start_as_current_span(
        "rag request", attributes={QUESTION_INDEX: QUESTIONS.index(item)}
    ):
        result = collection.query(
            query_embeddings=list(embedder.embed([item.question])),
            n_results=TOP_K,
            where=dict(item.where) if item.where else None,
            include=["documents", "metadatas", "distances"],
        )
        documents = [text for text in (result.get("documents") or [[]])[0] if text]
        context = "\n\n".join(documents) if documents else "(no documents found)"
        completion = client.chat.completions.create(
            model=model,
            messages=[
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": f"Context:\n{context}\n\nQuestion: {item.question}"},
            ],
        )
        return str(completion.choices[0].message.content or "")


def _backend_exporter(endpoint: str | None, protocol: str) -> SpanExporter | None:
    """OTLP to ``endpoint`` if given, else to what the OTEL_EXPORTER_OTLP_* variables name."""
    from_environment = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    if endpoint is None and not from_environment:
        return None
    if endpoint is None:  # the exporter reads every OTEL_EXPORTER_OTLP_* variable itself
        protocol = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or os.environ.get(
            "OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"
        )
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcExporter,
        )

        return GrpcExporter(endpoint=endpoint) if endpoint else GrpcExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpExporter,
    )

    if endpoint and not endpoint.rstrip("/").endswith("/v1/traces"):
        endpoint = endpoint.rstrip("/") + "/v1/traces"
    return HttpExporter(endpoint=endpoint) if endpoint else HttpExporter()


# -- reading the spans back --------------------------------------------------------------------


def _reports(spans: Sequence[ReadableSpan], answers: Mapping[str, str]) -> list[AnswerReport]:
    by_trace: dict[int, list[ReadableSpan]] = {}
    for span in spans:
        if span.context is not None:
            by_trace.setdefault(span.context.trace_id, []).append(span)
    reports = []
    for trace_spans in by_trace.values():
        root = next(
            (span for span in trace_spans if QUESTION_INDEX in (span.attributes or {})), None
        )
        if root is None:
            continue
        retrievals = [
            span
            for span in trace_spans
            if (span.attributes or {}).get("gen_ai.operation.name") == "retrieval"
        ]
        reports.append(_report(root, retrievals, answers))
    order = {item.question: index for index, item in enumerate(QUESTIONS)}
    return sorted(reports, key=lambda report: order[report.question])


def _report(
    root: ReadableSpan, retrievals: Sequence[ReadableSpan], answers: Mapping[str, str]
) -> AnswerReport:
    mirrored = dict(root.attributes or {})
    retrieval = dict(retrievals[0].attributes or {}) if retrievals else {}
    item = QUESTIONS[_integer(mirrored, QUESTION_INDEX) or 0]
    return AnswerReport(
        question=item.question,
        collection=_text(retrieval, "gen_ai.data_source.id") or item.collection,
        answer=answers.get(item.question, ""),
        retrieval_set_ids=_texts(mirrored, attrs.RAG_ANCESTOR_RETRIEVAL_SET_IDS),
        chunk_set_hashes=_texts(mirrored, attrs.RAG_ANCESTOR_CHUNK_SET_HASHES),
        retrieved_chunks=_integer(mirrored, attrs.RAG_RETRIEVED_CHUNK_COUNT),
        used_chunks=_integer(mirrored, attrs.RAG_USED_CHUNK_COUNT),
        utilisation_ratio=_real(mirrored, attrs.RAG_UTILISATION_RATIO),
        utilisation_reliable=_flag(mirrored, attrs.RAG_UTILISATION_RELIABLE),
        coverage_diversity=_real(retrieval, attrs.RAG_COVERAGE_DIVERSITY),
        quality_density=_real(retrieval, attrs.RAG_QUALITY_DENSITY),
        quality_method=_text(retrieval, attrs.RAG_QUALITY_METHOD),
        grounding_status=_text(mirrored, attrs.RAG_GROUNDING_STATUS),
        diagnosis=_text(mirrored, attrs.RAG_DIAGNOSIS),
        diagnosis_reason=_text(mirrored, attrs.RAG_DIAGNOSIS_REASON),
    )


def _text(attributes: Mapping[str, Any], key: str) -> str | None:
    value = attributes.get(key)
    return value if isinstance(value, str) else None


def _texts(attributes: Mapping[str, Any], key: str) -> list[str]:
    return [str(value) for value in attributes.get(key, ())]


def _integer(attributes: Mapping[str, Any], key: str) -> int | None:
    value = attributes.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _real(attributes: Mapping[str, Any], key: str) -> float | None:
    value = attributes.get(key)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _flag(attributes: Mapping[str, Any], key: str) -> bool | None:
    value = attributes.get(key)
    return value if isinstance(value, bool) else None


def _print_table(reports: Sequence[AnswerReport], out: TextIO) -> None:
    header = (
        "#",
        "collection",
        "chunk set",
        "used",
        "util.",
        "divers.",
        "quality",
        "grounding",
        "diagnosis",
    )
    rows = [
        (
            str(index),
            report.collection,
            (report.chunk_set_hashes[0][:12] + "…") if report.chunk_set_hashes else "-",
            "-"
            if report.retrieved_chunks is None
            else f"{report.used_chunks}/{report.retrieved_chunks}",
            _number(report.utilisation_ratio)
            + ("" if report.utilisation_reliable is not False else "*"),
            _number(report.coverage_diversity),
            _number(report.quality_density),
            report.grounding_status or "-",
            report.diagnosis or "-",
        )
        for index, report in enumerate(reports, start=1)
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    print("", file=out)
    for row in (header, *rows):
        print(
            "  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip(),
            file=out,
        )
    print(
        "\n  * utilisation unreliable: the set is too redundant to tell use from overlap", file=out
    )
    print("\nWhy:", file=out)
    for index, report in enumerate(reports, start=1):
        print(f"  {index}. {report.question}", file=out)
        print(f"     {report.diagnosis}: {report.diagnosis_reason}", file=out)
    print(
        "\nEvery value above was read back from the exported spans (rag.* attributes); see"
        " docs/diagnosis.md for what to fix in each case.",
        file=out,
    )


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"

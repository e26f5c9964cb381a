"""The first version of ``ragprov demo``: real retrievals, their provenance, nothing faked.

It stores the bundled corpus in an in-memory chromadb (embeddings from a deterministic hashing
embedder, so no model is downloaded), runs the demo questions against it, and prints for each
retrieval the provenance ragprov exports: chunk ids and how they were obtained, the chunk set
hash, similarity scores, pre-ingestion quality and the set-quality signals. Chunk and query text
stay on screen only as ids and hashes, as they would in an exported trace.

chromadb's cosine space reports ``distance = 1 - cosine similarity``; the demo converts it back
(``score = 1 - distance``), the conversion the chromadb instrumentation uses for that space.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from ragprov.demo.corpus import CORPUS, QUESTIONS
from ragprov.demo.embedding import HashingEmbedder
from ragprov.model import ChunkProvenance, RetrievalSetEnvelope
from ragprov.semconv.attributes import RagRetrievalMethodValues
from ragprov.signal_attributes import set_signal_attributes
from ragprov.signals import SetSignals, compute_set_signals, fingerprint

COLLECTION = "ragprov-demo-handbook"


@dataclass(frozen=True, slots=True)
class DemoResult:
    """One question's retrieval: its envelope and the set-quality signals computed for it."""

    question: str
    envelope: RetrievalSetEnvelope
    set_signals: SetSignals


def run_demo(out: TextIO, *, json_lines: bool = False, top_k: int = 4) -> list[DemoResult]:
    """Run every demo question and write the report (or JSON lines) to ``out``."""
    import chromadb  # deferred: chromadb is an optional extra
    from chromadb.config import Settings as ChromaSettings

    def progress(message: str) -> None:
        if not json_lines:
            print(message, file=out, flush=True)

    embedder = HashingEmbedder()
    progress("ragprov demo: provenance of retrievals on an embedded chromadb (offline)")
    progress(f"  storing {len(CORPUS)} chunks in collection {COLLECTION!r} (in memory) ...")
    client = chromadb.EphemeralClient(settings=ChromaSettings(anonymized_telemetry=False))
    collection = client.get_or_create_collection(
        COLLECTION,
        configuration={"hnsw": {"space": "cosine"}},
        embedding_function=None,
    )
    # chromadb rejects an empty metadata dict but accepts None for "no metadata".
    metadatas: list[Any] = [dict(chunk.metadata) or None for chunk in CORPUS]
    collection.upsert(
        ids=[chunk.store_id for chunk in CORPUS],
        documents=[chunk.text for chunk in CORPUS],
        metadatas=metadatas,
        embeddings=list(embedder.embed([chunk.text for chunk in CORPUS])),
    )

    results = []
    for number, question in enumerate(QUESTIONS, start=1):
        progress(f"\n[{number}/{len(QUESTIONS)}] query: {question}")
        response = collection.query(
            query_embeddings=list(embedder.embed([question])),
            n_results=top_k,
            include=["documents", "metadatas", "distances", "embeddings"],
        )
        result = _provenance(question, response)
        results.append(result)
        if json_lines:
            print(result.envelope.model_dump_json(), file=out)
        else:
            _report(result, out)
    progress("\nThese are the attributes ragprov puts on each retrieval span (docs/attributes.md).")
    return results


def _provenance(question: str, response: Any) -> DemoResult:
    """Turn chromadb's column-oriented result for one query into provenance and signals."""
    store_ids: Sequence[str] = response["ids"][0]
    documents: Sequence[str | None] = (response.get("documents") or [[None] * len(store_ids)])[0]
    metadatas: Sequence[Any] = (response.get("metadatas") or [[None] * len(store_ids)])[0]
    distances: Sequence[float | None] = (response.get("distances") or [[None] * len(store_ids)])[0]
    embeddings = response.get("embeddings")
    chunks: list[ChunkProvenance] = []
    texts: list[str | None] = []
    for rank, (store_id, text, metadata, distance) in enumerate(
        zip(store_ids, documents, metadatas, distances, strict=True), start=1
    ):
        chunk = ChunkProvenance.from_store(
            rank=rank,
            text=text,
            metadata=metadata,
            store_id=store_id,
            score=None if distance is None else 1.0 - distance,
        )
        if chunk is not None:
            chunks.append(chunk)
            texts.append(text)
    envelope = RetrievalSetEnvelope.build(
        chunks,
        query_text=question,
        retrieval_method=RagRetrievalMethodValues.DENSE,
        data_source_id=COLLECTION,
    )
    set_signals = compute_set_signals(
        [fingerprint(text) for text in texts],
        chunk_ids=envelope.chunk_ids,
        metadata=[chunk.quality for chunk in chunks],
        embeddings=None if embeddings is None else embeddings[0],
    )
    return DemoResult(question, envelope, set_signals)


def _report(result: DemoResult, out: TextIO) -> None:
    envelope, signals = result.envelope, result.set_signals
    write = out.write
    write(f"  retrieval_set_id  {envelope.retrieval_set_id}\n")
    write(f"  chunk_set_hash    {envelope.chunk_set_hash}\n")
    write(f"  query_hash        {envelope.query_hash}\n")
    header = ("rank", "chunk_id", "id method", "score", "quality", "freshness", "source document")
    rows = [
        (
            str(chunk.rank),
            _short(chunk.chunk_id),
            chunk.chunk_id_method.value,
            _number(chunk.score),
            _number(chunk.quality.score),
            chunk.quality.freshness_status or "-",
            chunk.source_document_id or "-",
        )
        for chunk in envelope.chunks
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        write(
            "  "
            + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
        write("\n")
    attributes = set_signal_attributes(signals)
    summary = "  ".join(
        f"{name.removeprefix('rag.')}={_number(value) if isinstance(value, float) else value}"
        for name, value in sorted(attributes.items())
    )
    write(f"  set signals: {summary}\n")


def _short(chunk_id: str) -> str:
    """Content hashes are 64 hex characters; the first 16 identify a chunk on screen."""
    return chunk_id[:16] + "…" if len(chunk_id) == 64 else chunk_id


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"

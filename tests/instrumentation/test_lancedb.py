"""lancedb instrumentation against real tables in tmp_path (sync builders and async queries)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import lancedb
import pytest
from lancedb import query as lance_query
from lancedb import table as lance_table
from lancedb.index import FTS
from opentelemetry.instrumentation.dependencies import get_dependency_conflicts
from opentelemetry.trace import SpanKind, StatusCode

from ragprov import ids, sidechannel
from ragprov.demo.embedding import HashingEmbedder
from ragprov.instrumentation.lancedb import LanceDBInstrumentor

EMBEDDER = HashingEmbedder(16)
EMPTY_SET_HASH = ids.chunk_set_hash([])
SOLAR = "solar panels photovoltaic sunlight"
TEXTS = [
    "Solar panels convert sunlight into electricity with photovoltaic cells.",
    "Wind turbines generate electricity from moving air masses.",
    "The cake recipe needs flour, sugar and three fresh eggs.",
]
NO_METADATA = {"chunk_id": None, "source_document_id": None, "completeness": None}


def rows() -> list[dict[str, Any]]:
    metadata = [
        {"chunk_id": "chunk-solar", "source_document_id": "energy.pdf", "completeness": 0.9},
        NO_METADATA,
        NO_METADATA,
    ]
    return [
        {"id": f"d{index + 1}", "text": text, "vector": vector, "metadata": meta}
        for index, (text, vector, meta) in enumerate(
            zip(TEXTS, EMBEDDER(TEXTS), metadata, strict=True)
        )
    ]


CHUNK_IDS = {
    "d1": "chunk-solar",
    "d2": ids.content_hash(TEXTS[1]),
    "d3": ids.content_hash(TEXTS[2]),
}

# Only the methods this lancedb version has.
ORIGINALS = {
    (cls, name): cls.__dict__[name]
    for cls, name in (
        (lance_query.LanceVectorQueryBuilder, "to_arrow"),
        (lance_query.LanceFtsQueryBuilder, "to_arrow"),
        (lance_query.LanceHybridQueryBuilder, "to_arrow"),
        (lance_query.LanceHybridQueryBuilder, "_create_query_builders"),
        (lance_query.LanceEmptyQueryBuilder, "to_arrow"),
        (lance_query.AsyncQueryBase, "to_arrow"),
        (lance_table.LanceTable, "add"),
        (lance_table.AsyncTable, "add"),
        (lance_table.LanceTable, "_do_merge"),
        (lance_table.AsyncTable, "_do_merge"),
        (lancedb.db.LanceDBConnection, "create_table"),
        (lancedb.db.AsyncConnection, "create_table"),
    )
    if name in cls.__dict__
}


class SyncStore:
    is_async = False

    def __init__(self, path: Path) -> None:
        self.db = lancedb.connect(path)

    def create(self, name: str, data: Any = None, *, fts: bool = False) -> Any:
        table = self.db.create_table(name, data=data if data is not None else rows())
        if fts:
            table.create_fts_index("text", use_tantivy=False)  # every supported version
        return table

    def vector(
        self,
        table: Any,
        text: str,
        *,
        metric: str | None = None,
        limit: int | None = 3,
        where: str | None = None,
        select: list[str] | None = None,
    ) -> list[dict[str, Any]]:
        builder = table.search(EMBEDDER([text])[0])
        if metric:
            builder = builder.distance_type(metric)
        if limit:
            builder = builder.limit(limit)
        if where:
            builder = builder.where(where)
        if select:
            builder = builder.select(select)
        return list(builder.to_list())

    def fts(self, table: Any, text: str) -> list[dict[str, Any]]:
        return list(table.search(text, query_type="fts").limit(3).to_list())

    def hybrid(self, table: Any, text: str) -> list[dict[str, Any]]:
        builder = table.search(query_type="hybrid").vector(EMBEDDER([text])[0]).text(text)
        return list(builder.limit(3).to_list())

    def scan(self, table: Any, where: str | None = None) -> list[dict[str, Any]]:
        builder = table.search()
        return list((builder.where(where) if where else builder).to_list())

    def add(self, table: Any, data: Any) -> None:
        table.add(data)

    def merge(self, table: Any, data: Any) -> None:
        table.merge_insert("id").when_matched_update_all().when_not_matched_insert_all().execute(
            data
        )

    def failing_vector(self, table: Any, error: BaseException) -> None:
        def fail(*args: Any, **kwargs: Any) -> Any:
            raise error

        table._execute_query = fail
        self.vector(table, SOLAR)


class AsyncStore:
    is_async = True

    def __init__(self, path: Path, run: Callable[[Any], Any]) -> None:
        self.run = run
        self.db = run(lancedb.connect_async(path))

    def create(self, name: str, data: Any = None, *, fts: bool = False) -> Any:
        table = self.run(self.db.create_table(name, data=data if data is not None else rows()))
        if fts:
            self.run(table.create_index("text", config=FTS()))
        return table

    def vector(
        self,
        table: Any,
        text: str,
        *,
        metric: str | None = None,
        limit: int | None = 3,
        where: str | None = None,
        select: list[str] | None = None,
    ) -> list[dict[str, Any]]:
        query = table.query().nearest_to(EMBEDDER([text])[0])
        if metric:
            query = query.distance_type(metric)
        if limit:
            query = query.limit(limit)
        if where:
            query = query.where(where)
        if select:
            query = query.select(select)
        return list(self.run(query.to_list()))

    def fts(self, table: Any, text: str) -> list[dict[str, Any]]:
        return list(self.run(table.query().nearest_to_text(text).limit(3).to_list()))

    def hybrid(self, table: Any, text: str) -> list[dict[str, Any]]:
        query = table.query().nearest_to(EMBEDDER([text])[0]).nearest_to_text(text).limit(3)
        return list(self.run(query.to_list()))

    def scan(self, table: Any, where: str | None = None) -> list[dict[str, Any]]:
        query = table.query()
        return list(self.run((query.where(where) if where else query).to_list()))

    def add(self, table: Any, data: Any) -> None:
        self.run(table.add(data))

    def merge(self, table: Any, data: Any) -> None:
        builder = table.merge_insert("id").when_matched_update_all().when_not_matched_insert_all()
        self.run(builder.execute(data))

    def failing_vector(self, table: Any, error: BaseException) -> None:
        async def fail(*args: Any, **kwargs: Any) -> Any:
            raise error

        query = table.query().nearest_to(EMBEDDER([SOLAR])[0])
        query.to_batches = fail
        self.run(query.to_list())


@pytest.fixture(params=["sync", "async"])
def store(
    request: pytest.FixtureRequest, tmp_path: Path, event_loop_runner: Callable[[Any], Any]
) -> Any:
    if request.param == "sync":
        return SyncStore(tmp_path)
    return AsyncStore(tmp_path, event_loop_runner)


@pytest.fixture
def instrumented(tracer_provider: Any) -> Iterator[LanceDBInstrumentor]:
    instrumentor = LanceDBInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    yield instrumentor
    instrumentor.uninstrument()


@pytest.fixture
def seeded(store: Any, instrumented: Any, exporter: Any) -> Any:
    table = store.create("docs")
    exporter.clear()
    return table


def test_vector_query_exact_attributes(
    store: Any, seeded: Any, finished: Any, check_exact: Any, uuid7: Any
) -> None:
    result = store.vector(seeded, SOLAR, metric="cosine", limit=2)

    (span,) = finished()
    assert span.name == "retrieval docs"
    assert span.kind is SpanKind.CLIENT
    assert result[0]["id"] == "d1"
    chunk_ids = [CHUNK_IDS[row["id"]] for row in result]
    check_exact(
        span.attributes,
        {
            "gen_ai.operation.name": "retrieval",
            "gen_ai.data_source.id": "docs",
            "db.system.name": "lancedb",
            "gen_ai.retrieval.top_k": 2,
            "rag.retrieval_set_id": uuid7,
            "rag.chunk_set_hash": ids.chunk_set_hash(chunk_ids),
            "rag.chunk_ids": chunk_ids,
            "rag.chunk_id_method": "content_hash",
            "rag.chunk_scores": [1.0 - row["_distance"] for row in result],
            "rag.source_document_ids": ["energy.pdf", ""],
            "rag.retrieval_method": "dense",
        },
    )


@pytest.mark.parametrize(
    ("metric", "convert"),
    [
        (None, lambda d: 1.0 / (1.0 + d)),  # lancedb's default: squared L2
        ("l2", lambda d: 1.0 / (1.0 + d)),
        ("cosine", lambda d: 1.0 - d),
        ("dot", lambda d: 1.0 - d),
    ],
)
def test_distances_become_similarities(
    store: Any,
    seeded: Any,
    finished: Any,
    metric: str | None,
    convert: Callable[[float], float],
) -> None:
    result = store.vector(seeded, SOLAR, metric=metric)

    (span,) = finished()
    scores = list(span.attributes["rag.chunk_scores"])
    assert scores == pytest.approx([convert(row["_distance"]) for row in result])
    assert scores == sorted(scores, reverse=True)
    best = float(EMBEDDER.embed([TEXTS[0]])[0] @ EMBEDDER.embed([SOLAR])[0])
    expected = 1.0 / (1.0 + 2.0 - 2.0 * best) if metric in (None, "l2") else best
    assert scores[0] == pytest.approx(expected, abs=1e-5)


def test_full_text_search_keeps_bm25_scores(
    store: Any, instrumented: Any, exporter: Any, finished: Any
) -> None:
    table = store.create("fts_docs", fts=True)
    exporter.clear()
    result = store.fts(table, "electricity")

    (span,) = finished()
    assert span.attributes["rag.retrieval_method"] == "sparse"
    assert span.attributes["rag.query_hash"] == ids.query_hash("electricity")
    assert list(span.attributes["rag.chunk_ids"]) == [CHUNK_IDS[row["id"]] for row in result]
    assert list(span.attributes["rag.chunk_scores"]) == pytest.approx(
        [row["_score"] for row in result]
    )


def test_hybrid_query_is_one_span_with_relevance_scores(
    store: Any, instrumented: Any, exporter: Any, finished: Any
) -> None:
    table = store.create("hybrid_docs", fts=True)
    exporter.clear()
    result = store.hybrid(table, "solar electricity")

    (span,) = finished()  # the vector and FTS legs add no spans
    assert span.attributes["rag.retrieval_method"] == "hybrid"
    assert span.attributes["rag.query_hash"] == ids.query_hash("solar electricity")
    assert list(span.attributes["rag.chunk_ids"]) == [CHUNK_IDS[row["id"]] for row in result]
    assert list(span.attributes["rag.chunk_scores"]) == pytest.approx(
        [row["_relevance_score"] for row in result]
    )


def test_filtered_scan_is_an_unscored_retrieval(
    store: Any, seeded: Any, finished: Any, check_exact: Any, uuid7: Any
) -> None:
    assert len(store.scan(seeded)) == 3  # a plain scan: no span
    store.scan(seeded, where="id = 'd2'")

    (span,) = finished()
    check_exact(
        span.attributes,
        {
            "gen_ai.operation.name": "retrieval",
            "gen_ai.data_source.id": "docs",
            "db.system.name": "lancedb",
            "rag.retrieval_set_id": uuid7,
            "rag.chunk_set_hash": ids.chunk_set_hash([CHUNK_IDS["d2"]]),
            "rag.chunk_ids": [CHUNK_IDS["d2"]],
            "rag.chunk_id_method": "content_hash",
            "rag.retrieval_method": "unknown",
        },
    )


def test_filter_matching_nothing(store: Any, seeded: Any, finished: Any) -> None:
    assert store.vector(seeded, SOLAR, where="id = 'none'") == []

    (span,) = finished()
    assert span.attributes["rag.chunk_set_hash"] == EMPTY_SET_HASH
    assert list(span.attributes["rag.chunk_ids"]) == []
    assert "rag.chunk_scores" not in span.attributes


def test_rows_without_text_or_metadata_use_store_ids(
    store: Any, seeded: Any, finished: Any
) -> None:
    result = store.vector(seeded, SOLAR, select=["id"])

    (span,) = finished()
    assert span.attributes["rag.chunk_id_method"] == "store_id"
    assert list(span.attributes["rag.chunk_ids"]) == [row["id"] for row in result]
    assert "rag.source_document_ids" not in span.attributes


def test_store_error_is_recorded_and_the_same_object_reraised(
    store: Any, seeded: Any, finished: Any
) -> None:
    boom = RuntimeError("lance down")
    with pytest.raises(RuntimeError) as raised:
        store.failing_vector(seeded, boom)

    assert raised.value is boom
    (span,) = finished()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "RuntimeError"
    assert span.events[0].name == "exception"


def test_invalid_filter_error_from_lancedb(store: Any, seeded: Any, finished: Any) -> None:
    with pytest.raises(Exception, match="no_such_column") as raised:
        store.vector(seeded, SOLAR, where="no_such_column = 1")

    (span,) = finished()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == type(raised.value).__qualname__


def test_writes_are_ingestion_spans(
    store: Any, instrumented: Any, finished: Any, check_exact: Any
) -> None:
    table = store.create("ingest")
    store.add(
        table,
        [
            {
                "id": "d4",
                "text": "Tidal power uses ocean currents.",
                "vector": EMBEDDER(["tidal"])[0],
                "metadata": {
                    "chunk_id": "c-4",
                    "source_document_id": "sea.pdf",
                    "completeness": 0.5,
                },
            }
        ],
    )
    store.merge(table, rows()[:2])

    create, add, merge = finished()
    chunk_ids = [CHUNK_IDS["d1"], CHUNK_IDS["d2"], CHUNK_IDS["d3"]]
    assert create.name == "create_table ingest"
    check_exact(
        create.attributes,
        {
            "db.system.name": "lancedb",
            "db.operation.name": "create_table",
            "db.collection.name": "ingest",
            "db.operation.batch.size": 3,
            "rag.chunk_ids": chunk_ids,
            "rag.chunk_id_method": "content_hash",
            "rag.source_document_ids": ["energy.pdf", "", ""],
            "rag.ingest.quality_mean": 0.9,
            "rag.ingest.quality_scored_count": 1,
            "rag.quality_method": "metadata",
        },
    )
    check_exact(
        add.attributes,
        {
            "db.system.name": "lancedb",
            "db.operation.name": "add",
            "db.collection.name": "ingest",
            "rag.chunk_ids": ["c-4"],
            "rag.chunk_id_method": "metadata",
            "rag.source_document_ids": ["sea.pdf"],
            "rag.ingest.quality_mean": 0.5,
            "rag.ingest.quality_scored_count": 1,
            "rag.quality_method": "metadata",
        },
    )
    assert merge.name == "merge_insert ingest"
    assert merge.attributes["db.operation.batch.size"] == 2
    assert list(merge.attributes["rag.chunk_ids"]) == chunk_ids[:2]


def test_content_capture(
    store: Any, seeded: Any, finished: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAGPROV_CAPTURE_CONTENT", "1")
    result = store.vector(seeded, SOLAR, metric="cosine", limit=1)

    (span,) = finished()
    assert json.loads(span.attributes["gen_ai.retrieval.documents"]) == [
        {
            "id": "chunk-solar",
            "score": pytest.approx(1.0 - result[0]["_distance"]),
            "content": TEXTS[0],
        }
    ]


def test_side_channel_receives_texts_and_vectors(
    store: Any, seeded: Any, finished: Any, side_channel: None
) -> None:
    result = store.vector(seeded, SOLAR)

    (span,) = finished()
    payload = sidechannel.take(span.context.trace_id, span.context.span_id)
    assert isinstance(payload, sidechannel.RetrievalPayload)
    assert list(payload.chunk_texts) == [row["text"] for row in result]
    assert [list(vector) for vector in payload.embeddings] == [
        pytest.approx(row["vector"]) for row in result
    ]


def test_suppression_key_means_no_span(
    store: Any, seeded: Any, finished: Any, suppressed: Any
) -> None:
    with suppressed():
        store.vector(seeded, SOLAR)
        store.add(seeded, rows()[:1])
    assert finished() == []


def test_uninstrument_restores_the_original_methods(
    store: Any, tracer_provider: Any, finished: Any
) -> None:
    instrumentor = LanceDBInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    instrumentor.uninstrument()

    for (cls, name), original in ORIGINALS.items():
        assert cls.__dict__[name] is original, f"{cls.__name__}.{name}"
    table = store.create("plain")
    store.vector(table, SOLAR)
    assert finished() == []


def test_supported_versions_and_entry_point() -> None:
    from importlib.metadata import entry_points

    dependencies = LanceDBInstrumentor().instrumentation_dependencies()
    assert list(dependencies) == ["lancedb >= 0.34, < 1"]
    assert get_dependency_conflicts(dependencies) is None
    (entry_point,) = entry_points(group="opentelemetry_instrumentor", name="ragprov_lancedb")
    assert entry_point.load() is LanceDBInstrumentor

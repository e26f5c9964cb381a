"""lancedb instrumentation against real tables in tmp_path (sync builders and async queries)."""

from __future__ import annotations

import asyncio
import gc
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import lancedb
import pyarrow as pa
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
        (lance_query.LanceVectorQueryBuilder, "to_batches"),
        (lance_query.LanceEmptyQueryBuilder, "to_batches"),
        (lance_query.AsyncQueryBase, "to_batches"),
        (lance_query.AsyncFTSQuery, "to_batches"),
        (lance_query.AsyncVectorQuery, "to_batches"),
        (lance_query.AsyncHybridQuery, "to_batches"),
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

    def stream(
        self, table: Any, text: str, *, limit: int = 3, batch: int = 5, where: str | None = None
    ) -> Any:
        builder = table.search(EMBEDDER([text])[0]).distance_type("cosine").limit(limit)
        return (builder.where(where) if where else builder).to_batches(batch_size=batch)

    def read_all(self, reader: Any) -> pa.Table:
        return reader.read_all()

    def read_batch(self, reader: Any) -> pa.RecordBatch:
        return reader.read_next_batch()

    def collect(self) -> None:
        gc.collect()


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

    def stream(
        self, table: Any, text: str, *, limit: int = 3, batch: int = 5, where: str | None = None
    ) -> Any:
        query = table.query().nearest_to(EMBEDDER([text])[0]).distance_type("cosine").limit(limit)
        query = query.where(where) if where else query
        return self.run(query.to_batches(max_batch_length=batch))

    def read_all(self, reader: Any) -> pa.Table:
        return pa.Table.from_batches(self.run(reader.read_all()), schema=reader.schema)

    def read_batch(self, reader: Any) -> pa.RecordBatch:
        return self.run(reader.__anext__())

    def collect(self) -> None:
        self.run(asyncio.sleep(0))  # the loop lets go of the last awaited call's references
        gc.collect()


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


def many_rows(count: int) -> list[dict[str, Any]]:
    texts = [f"solar note {index}" for index in range(count)]
    return [
        {"id": f"m{index}", "text": text, "vector": vector}
        for index, (text, vector) in enumerate(zip(texts, EMBEDDER(texts), strict=True))
    ]


def test_to_batches_exact_attributes(
    store: Any, seeded: Any, finished: Any, check_exact: Any, uuid7: Any
) -> None:
    reader = store.stream(seeded, SOLAR, limit=2)
    assert finished() == []  # the span stays open while the reader is unread
    result = store.read_all(reader).to_pylist()

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


def test_to_batches_span_ends_when_the_reader_is_exhausted(
    store: Any, seeded: Any, finished: Any
) -> None:
    reader = store.stream(seeded, SOLAR)
    returned_ns = time.time_ns()
    time.sleep(0.01)  # reading happens well after to_batches returned
    store.read_all(reader)

    (span,) = finished()
    assert span.end_time >= returned_ns + 10_000_000


def test_to_batches_partly_read_reader_ends_with_what_was_read(
    store: Any, instrumented: Any, exporter: Any, finished: Any
) -> None:
    table = store.create("many", many_rows(12))
    exporter.clear()
    full = store.read_all(store.stream(table, "solar note", limit=12, batch=5))
    exporter.clear()
    reader = store.stream(table, "solar note", limit=12, batch=5)
    first = store.read_batch(reader)
    assert finished() == []
    del reader  # the last reference: the reader is collected
    store.collect()

    (span,) = finished()
    assert first.num_rows == 5
    first_ids = full.column("id").to_pylist()[:5]
    assert first.column("id").to_pylist() == first_ids
    assert list(span.attributes["rag.chunk_ids"]) == [
        ids.content_hash(f"solar note {i[1:]}") for i in first_ids
    ]
    assert span.attributes["gen_ai.retrieval.top_k"] == 12
    assert span.status.status_code is StatusCode.UNSET


def written_and_read_back(reader: Any) -> pa.Table:
    import tempfile

    from pyarrow import dataset

    with tempfile.TemporaryDirectory() as directory:
        dataset.write_dataset(reader, directory, format="ipc", preserve_order=True)
        return dataset.dataset(directory, format="ipc").to_table()


@pytest.mark.parametrize(
    "consume",
    [
        pytest.param(lambda reader: reader.read_all(), id="read_all"),
        pytest.param(lambda reader: pa.Table.from_batches(list(reader)), id="iteration"),
        pytest.param(lambda reader: pa.Table.from_batches(reader), id="Table.from_batches"),
        pytest.param(
            lambda reader: pa.RecordBatchReader.from_stream(reader).read_all(), id="C stream"
        ),
        pytest.param(written_and_read_back, id="dataset.write_dataset"),
    ],
)
def test_to_batches_reader_works_with_pyarrow(
    tmp_path: Path,
    instrumented: Any,
    exporter: Any,
    finished: Any,
    suppressed: Any,
    consume: Callable[[Any], pa.Table],
) -> None:
    """The caller gets a real pa.RecordBatchReader with the same schema and rows."""
    store = SyncStore(tmp_path)
    table = store.create("docs")
    with suppressed():
        plain = store.stream(table, SOLAR, batch=2).read_all()
    exporter.clear()
    reader = store.stream(table, SOLAR, batch=2)

    assert type(reader) is pa.RecordBatchReader
    assert reader.schema == plain.schema
    assert consume(reader).to_pylist() == plain.to_pylist()
    (span,) = finished()
    assert list(span.attributes["rag.chunk_ids"]) == [
        CHUNK_IDS[row_id] for row_id in plain.column("id").to_pylist()
    ]


def test_to_batches_read_next_batch_to_the_end(
    tmp_path: Path, instrumented: Any, exporter: Any, finished: Any
) -> None:
    store = SyncStore(tmp_path)
    table = store.create("docs")
    exporter.clear()
    reader = store.stream(table, SOLAR, batch=2)
    batches = [reader.read_next_batch(), reader.read_next_batch()]
    with pytest.raises(StopIteration):
        reader.read_next_batch()

    assert [batch.num_rows for batch in batches] == [2, 1]
    (span,) = finished()
    assert len(span.attributes["rag.chunk_ids"]) == 3


def test_async_to_batches_of_full_text_and_hybrid_queries_are_one_span_each(
    tmp_path: Path, event_loop_runner: Any, instrumented: Any, exporter: Any, finished: Any
) -> None:
    store = AsyncStore(tmp_path, event_loop_runner)
    table = store.create("fts_docs", fts=True)
    exporter.clear()
    fts = table.query().nearest_to_text("electricity").limit(3)
    fts_rows = store.read_all(store.run(fts.to_batches())).to_pylist()
    hybrid = table.query().nearest_to(EMBEDDER([SOLAR])[0]).nearest_to_text("solar").limit(3)
    hybrid_rows = store.read_all(store.run(hybrid.to_batches())).to_pylist()

    fts_span, hybrid_span = finished()  # the base to_batches and the legs add no spans
    assert fts_span.attributes["rag.retrieval_method"] == "sparse"
    assert list(fts_span.attributes["rag.chunk_ids"]) == [CHUNK_IDS[r["id"]] for r in fts_rows]
    assert hybrid_span.attributes["rag.retrieval_method"] == "hybrid"
    assert list(hybrid_span.attributes["rag.chunk_scores"]) == pytest.approx(
        [row["_relevance_score"] for row in hybrid_rows]
    )


def test_sync_to_batches_of_full_text_search_is_not_traced(
    tmp_path: Path, instrumented: Any, exporter: Any, finished: Any
) -> None:
    """lancedb has no sync FTS streaming: the call raises, and no span says otherwise."""
    table = SyncStore(tmp_path).create("fts_docs", fts=True)
    exporter.clear()
    with pytest.raises(NotImplementedError):
        table.search("electricity", query_type="fts").to_batches()
    assert finished() == []


def test_to_batches_provenance_is_deferred_to_the_processor(tmp_path: Path) -> None:
    from test_deferred_provenance import REQUEST_KEYS, attributes, run_both

    table = SyncStore(tmp_path).create("docs")
    query = EMBEDDER([SOLAR])[0]
    run = run_both(
        LanceDBInstrumentor, lambda: table.search(query).limit(3).to_batches().read_all()
    )

    assert set(attributes(run.ended)) == REQUEST_KEYS
    inline, exported = attributes(run.inline), attributes(run.exported)
    assert sorted(inline["rag.chunk_ids"]) == sorted(CHUNK_IDS.values())
    del inline["rag.retrieval_set_id"]
    assert {key: exported[key] for key in inline} == inline


def test_to_batches_matching_nothing(store: Any, seeded: Any, finished: Any) -> None:
    assert store.read_all(store.stream(seeded, SOLAR, where="id = 'none'")).num_rows == 0

    (span,) = finished()
    assert span.attributes["rag.chunk_set_hash"] == EMPTY_SET_HASH
    assert list(span.attributes["rag.chunk_ids"]) == []
    assert "rag.chunk_scores" not in span.attributes


def test_to_batches_invalid_filter_error(store: Any, seeded: Any, finished: Any) -> None:
    with pytest.raises(Exception, match="no_such_column") as raised:
        store.read_all(store.stream(seeded, SOLAR, where="no_such_column = 1"))

    (span,) = finished()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == type(raised.value).__qualname__


def test_to_batches_error_while_reading_is_the_same_object(
    tmp_path: Path, instrumented: Any, exporter: Any, finished: Any
) -> None:
    store = SyncStore(tmp_path)
    table = store.create("docs")
    exporter.clear()
    boom = RuntimeError("lance down mid-stream")
    schema = pa.schema([("id", pa.string())])

    def failing_stream(*args: Any, **kwargs: Any) -> Any:
        def batches() -> Iterator[pa.RecordBatch]:
            yield pa.record_batch([pa.array(["d1"])], schema=schema)
            raise boom

        return pa.RecordBatchReader.from_batches(schema, batches())

    table._execute_query = failing_stream
    reader = store.stream(table, SOLAR)
    assert reader.read_next_batch().num_rows == 1
    with pytest.raises(RuntimeError) as raised:
        reader.read_next_batch()

    assert raised.value is boom
    (span,) = finished()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "RuntimeError"


def test_to_batches_suppressed_is_untouched(
    store: Any, seeded: Any, finished: Any, suppressed: Any
) -> None:
    with suppressed():
        reader = store.stream(seeded, SOLAR)
    assert type(reader).__module__.split(".")[0] in ("pyarrow", "lancedb")
    assert store.read_all(reader).num_rows == 3
    del reader
    store.collect()
    assert finished() == []


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

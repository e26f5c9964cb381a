"""qdrant-client instrumentation against real in-memory clients (QdrantClient(":memory:") and
AsyncQdrantClient(":memory:"))."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry.instrumentation.dependencies import get_dependency_conflicts
from opentelemetry.trace import SpanKind, StatusCode
from qdrant_client import AsyncQdrantClient, QdrantClient, models

from ragprov import ids, sidechannel
from ragprov.demo.embedding import HashingEmbedder
from ragprov.instrumentation import qdrant as qdrant_instrumentation
from ragprov.instrumentation.qdrant import QdrantInstrumentor, classify, payload_text

EMBEDDER = HashingEmbedder(32)
EMPTY_SET_HASH = ids.chunk_set_hash([])
SOLAR = "solar panels photovoltaic sunlight"
TEXTS = [
    "Solar panels convert sunlight into electricity with photovoltaic cells.",
    "Wind turbines generate electricity from moving air masses.",
    "The cake recipe needs flour, sugar and three fresh eggs.",
]
# Three payload shapes: plain `text`, LangChain (page_content + nested metadata), LlamaIndex.
PAYLOADS: list[dict[str, Any]] = [
    {"text": TEXTS[0], "source_document_id": "energy.pdf", "completeness": 0.9},
    {"page_content": TEXTS[1], "metadata": {"chunk_id": "wind-1", "topic": "wind"}},
    {"_node_content": json.dumps({"text": TEXTS[2], "metadata": {}}), "topic": "food"},
]

# Only the methods this client version has (query_points_groups is newer than 1.10).
ORIGINALS = {
    (cls, name): cls.__dict__[name]
    for cls in (QdrantClient, AsyncQdrantClient)
    for name in (
        "query_points",
        "query_batch_points",
        "query_points_groups",
        "retrieve",
        "scroll",
        "upsert",
        "upload_points",
        "upload_collection",
    )
    if name in cls.__dict__
}


class Store:
    """The sync and the async client behind one call interface."""

    def __init__(self, client: Any, run: Callable[[Any], Any] | None) -> None:
        self.client = client
        self.run = run

    def __call__(self, method: str, *args: Any, **kwargs: Any) -> Any:
        result = getattr(self.client, method)(*args, **kwargs)
        return self.run(result) if self.run else result

    def create(self, name: str, distance: models.Distance = models.Distance.COSINE) -> str:
        self(
            "create_collection",
            name,
            vectors_config=models.VectorParams(size=EMBEDDER.dimensions, distance=distance),
        )
        return name

    def seed(self, name: str) -> None:
        self(
            "upsert",
            name,
            points=[
                models.PointStruct(id=index + 1, vector=vector, payload=payload)
                for index, (vector, payload) in enumerate(
                    zip(EMBEDDER(TEXTS), PAYLOADS, strict=True)
                )
            ],
        )


@pytest.fixture(params=["sync", "async"])
def store(request: pytest.FixtureRequest, event_loop_runner: Callable[[Any], Any]) -> Store:
    if request.param == "sync":
        return Store(QdrantClient(":memory:"), None)
    return Store(AsyncQdrantClient(":memory:"), event_loop_runner)


@pytest.fixture
def instrumented(tracer_provider: Any) -> Iterator[QdrantInstrumentor]:
    instrumentor = QdrantInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    yield instrumentor
    instrumentor.uninstrument()


@pytest.fixture
def seeded(store: Store, instrumented: Any, unique_name: Any, exporter: Any) -> str:
    name = store.create(unique_name("seeded"))
    store.seed(name)
    exporter.clear()
    return name


def chunk_ids_of(point_ids: list[Any]) -> list[str]:
    by_id = {1: ids.content_hash(TEXTS[0]), 2: "wind-1", 3: ids.content_hash(TEXTS[2])}
    return [by_id[point_id] for point_id in point_ids]


def test_query_points_exact_attributes(
    store: Store, seeded: str, finished: Any, check_exact: Any, uuid7: Any
) -> None:
    result = store("query_points", seeded, query=EMBEDDER([SOLAR])[0], limit=3)

    (span,) = finished()
    assert span.name == f"retrieval {seeded}"
    assert span.kind is SpanKind.CLIENT
    point_ids = [point.id for point in result.points]
    assert point_ids[0] == 1
    chunk_ids = chunk_ids_of(point_ids)
    check_exact(
        span.attributes,
        {
            "gen_ai.operation.name": "retrieval",
            "gen_ai.data_source.id": seeded,
            "db.system.name": "qdrant",
            "gen_ai.retrieval.top_k": 3,
            "rag.retrieval_set_id": uuid7,
            "rag.chunk_set_hash": ids.chunk_set_hash(chunk_ids),
            "rag.chunk_ids": chunk_ids,
            "rag.chunk_id_method": "content_hash",
            "rag.chunk_scores": [point.score for point in result.points],  # cosine: kept
            "rag.source_document_ids": ["energy.pdf" if i == 1 else "" for i in point_ids],
            "rag.retrieval_method": "dense",
        },
    )


@pytest.mark.parametrize(
    ("distance", "convert"),
    [
        (models.Distance.COSINE, lambda s: s),
        (models.Distance.DOT, lambda s: s),
        (models.Distance.EUCLID, lambda d: 1.0 / (1.0 + d)),
        (models.Distance.MANHATTAN, lambda d: 1.0 / (1.0 + d)),
    ],
)
def test_scores_are_similarities(
    store: Store,
    instrumented: Any,
    unique_name: Any,
    finished: Any,
    distance: models.Distance,
    convert: Callable[[float], float],
) -> None:
    name = store.create(unique_name(distance.value), distance)
    store.seed(name)
    result = store("query_points", name, query=EMBEDDER([SOLAR])[0], limit=3)

    span = finished()[-1]
    scores = list(span.attributes["rag.chunk_scores"])
    assert scores == pytest.approx([convert(point.score) for point in result.points])
    assert scores == sorted(scores, reverse=True)


def test_metric_is_looked_up_once_per_collection(
    store: Store, seeded: str, monkeypatch: pytest.MonkeyPatch, finished: Any
) -> None:
    qdrant_instrumentation.metric_cache.clear()
    calls: list[str] = []
    original = store.client.get_collection

    def spy(name: str, **kwargs: Any) -> Any:
        calls.append(name)
        return original(name, **kwargs)

    monkeypatch.setattr(store.client, "get_collection", spy)
    for _ in range(3):
        store("query_points", seeded, query=EMBEDDER([SOLAR])[0], limit=1)

    assert calls == [seeded]
    assert len(finished()) == 3


def test_query_batch_points_one_span_per_request(store: Store, seeded: str, finished: Any) -> None:
    requests = [
        models.QueryRequest(query=EMBEDDER([SOLAR])[0], limit=1, with_payload=True),
        models.QueryRequest(query=EMBEDDER([TEXTS[1]])[0], limit=2, with_payload=True),
    ]
    responses = store("query_batch_points", seeded, requests=requests)

    first, second = sorted(finished(), key=lambda span: len(span.links))
    assert first.attributes["gen_ai.retrieval.top_k"] == 1
    assert second.attributes["gen_ai.retrieval.top_k"] == 2
    assert list(first.attributes["rag.chunk_ids"]) == chunk_ids_of(
        [point.id for point in responses[0].points]
    )
    assert list(second.attributes["rag.chunk_ids"]) == chunk_ids_of(
        [point.id for point in responses[1].points]
    )
    assert first.parent == second.parent
    assert (first.start_time, first.end_time) == (second.start_time, second.end_time)
    assert [link.context.span_id for link in second.links] == [first.context.span_id]


@pytest.mark.skipif(
    not hasattr(QdrantClient, "query_points_groups"), reason="qdrant-client >= 1.11"
)
def test_query_points_groups(store: Store, seeded: str, finished: Any) -> None:
    result = store(
        "query_points_groups",
        seeded,
        group_by="topic",
        query=EMBEDDER([SOLAR])[0],
        limit=2,
        group_size=1,
    )

    (span,) = finished()
    hits = [hit.id for group in result.groups for hit in group.hits]
    assert span.attributes["gen_ai.retrieval.top_k"] == 2
    assert list(span.attributes["rag.chunk_ids"]) == chunk_ids_of(hits)
    assert span.attributes["rag.retrieval_method"] == "dense"


def test_hybrid_fusion_keeps_scores(
    store: Store, instrumented: Any, unique_name: Any, finished: Any, exporter: Any
) -> None:
    name = unique_name("hybrid")
    store(
        "create_collection",
        name,
        vectors_config={"dense": models.VectorParams(size=32, distance=models.Distance.EUCLID)},
        sparse_vectors_config={"sparse": models.SparseVectorParams()},
    )
    store(
        "upsert",
        name,
        points=[
            models.PointStruct(
                id=index,
                vector={
                    "dense": vector,
                    "sparse": models.SparseVector(indices=[index, 10], values=[1.0, 0.5]),
                },
                payload={"text": text},
            )
            for index, (vector, text) in enumerate(zip(EMBEDDER(TEXTS), TEXTS, strict=True))
        ],
    )
    exporter.clear()
    result = store(
        "query_points",
        name,
        prefetch=[
            models.Prefetch(query=EMBEDDER([SOLAR])[0], using="dense", limit=3),
            models.Prefetch(
                query=models.SparseVector(indices=[1], values=[1.0]), using="sparse", limit=3
            ),
        ],
        query=models.FusionQuery(fusion=models.Fusion.RRF),
        limit=3,
    )

    (span,) = finished()
    assert span.attributes["rag.retrieval_method"] == "hybrid"
    assert list(span.attributes["rag.chunk_scores"]) == pytest.approx(
        [point.score for point in result.points]
    )


def test_classify_query_kinds() -> None:
    sparse = models.SparseVector(indices=[1], values=[1.0])
    fusion = models.FusionQuery(fusion=models.Fusion.RRF)
    assert classify([0.1, 0.2], None, None) == ("dense", True, None)
    assert classify(models.NearestQuery(nearest=[0.1]), None, None) == ("dense", True, None)
    assert classify(models.Document(text="q", model="m"), None, None) == ("dense", True, "q")
    assert classify(sparse, "sparse", None) == ("sparse", False, None)
    assert classify(fusion, None, [models.Prefetch(query=[0.1])]) == ("hybrid", False, None)
    assert classify([0.1], None, [models.Prefetch(query=[0.1])]) == ("reranked", True, None)
    assert classify(None, None, None) == ("unknown", False, None)


def test_payload_text_shapes() -> None:
    assert [payload_text(payload) for payload in PAYLOADS] == TEXTS
    assert payload_text({"document": "d"}) == "d"
    assert payload_text({"content": 3, "_node_content": "not json"}) is None
    assert payload_text(None) is None


def test_retrieve_and_filtered_scroll_are_unscored_retrievals(
    store: Store, seeded: str, finished: Any, check_exact: Any, uuid7: Any
) -> None:
    store("retrieve", seeded, ids=[2, 3])
    wind = models.Filter(
        must=[models.FieldCondition(key="metadata.topic", match=models.MatchValue(value="wind"))]
    )
    records, _ = store("scroll", seeded, scroll_filter=wind, limit=5)
    store("scroll", seeded, limit=5)  # paging: no span

    retrieve, scroll = finished()
    chunk_ids = chunk_ids_of([2, 3])
    check_exact(
        retrieve.attributes,
        {
            "gen_ai.operation.name": "retrieval",
            "gen_ai.data_source.id": seeded,
            "db.system.name": "qdrant",
            "rag.retrieval_set_id": uuid7,
            "rag.chunk_set_hash": ids.chunk_set_hash(chunk_ids),
            "rag.chunk_ids": chunk_ids,
            "rag.chunk_id_method": "content_hash",
            "rag.retrieval_method": "unknown",
        },
    )
    assert [record.id for record in records] == [2]
    assert scroll.attributes["gen_ai.retrieval.top_k"] == 5
    assert list(scroll.attributes["rag.chunk_ids"]) == ["wind-1"]
    assert scroll.attributes["rag.chunk_id_method"] == "metadata"


def test_points_without_payload_use_store_ids(store: Store, seeded: str, finished: Any) -> None:
    result = store("query_points", seeded, query=EMBEDDER([SOLAR])[0], limit=2, with_payload=False)

    (span,) = finished()
    assert span.attributes["rag.chunk_id_method"] == "store_id"
    assert list(span.attributes["rag.chunk_ids"]) == [str(point.id) for point in result.points]
    assert "rag.source_document_ids" not in span.attributes


def test_filter_matching_nothing_and_empty_collection(
    store: Store, seeded: str, unique_name: Any, finished: Any
) -> None:
    nothing = models.Filter(
        must=[models.FieldCondition(key="topic", match=models.MatchValue(value="none"))]
    )
    store("query_points", seeded, query=EMBEDDER([SOLAR])[0], query_filter=nothing)
    empty = store.create(unique_name("empty"))
    store("query_points", empty, query=EMBEDDER([SOLAR])[0], limit=2)

    filtered, empty_collection = finished()
    for span in (filtered, empty_collection):
        assert span.attributes["rag.chunk_set_hash"] == EMPTY_SET_HASH
        assert list(span.attributes["rag.chunk_ids"]) == []
        assert "rag.chunk_id_method" not in span.attributes


def test_store_error_is_recorded_and_the_same_object_reraised(
    store: Store, seeded: str, finished: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ValueError, match="not found") as raised:
        store("query_points", "no_such_collection", query=[0.0] * 32)
    boom = RuntimeError("store down")

    def failing(*args: Any, **kwargs: Any) -> Any:
        raise boom

    monkeypatch.setattr(store.client._client, "query_points", failing)
    with pytest.raises(RuntimeError) as second:
        store("query_points", seeded, query=[0.0] * 32)

    assert second.value is boom
    missing, down = finished()
    assert missing.name == "retrieval no_such_collection"
    for span, error in ((missing, raised.value), (down, boom)):
        assert span.status.status_code is StatusCode.ERROR
        assert span.attributes["error.type"] == type(error).__qualname__
        assert span.events[0].name == "exception"


def test_upsert_spans(
    store: Store, instrumented: Any, unique_name: Any, finished: Any, check_exact: Any
) -> None:
    name = store.create(unique_name("ingest"))
    store.seed(name)
    store(
        "upsert",
        name,
        points=models.Batch(ids=[7], vectors=EMBEDDER(["seven"]), payloads=[{"text": "seven"}]),
    )

    seeded, batch = finished()
    chunk_ids = chunk_ids_of([1, 2, 3])
    assert seeded.name == f"upsert {name}"
    check_exact(
        seeded.attributes,
        {
            "db.system.name": "qdrant",
            "db.operation.name": "upsert",
            "db.collection.name": name,
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
        batch.attributes,
        {
            "db.system.name": "qdrant",
            "db.operation.name": "upsert",
            "db.collection.name": name,
            "rag.chunk_ids": [ids.content_hash("seven")],
            "rag.chunk_id_method": "content_hash",
        },
    )


def upload(store: Store, method: str, *args: Any, **kwargs: Any) -> None:
    """Uploads are plain methods on AsyncQdrantClient 1.20; await them where they are not."""
    result = getattr(store.client, method)(*args, **kwargs)
    if inspect.isawaitable(result) and store.run is not None:
        store.run(result)


def seed_points() -> list[models.PointStruct]:
    return [
        models.PointStruct(id=index + 1, vector=vector, payload=payload)
        for index, (vector, payload) in enumerate(zip(EMBEDDER(TEXTS), PAYLOADS, strict=True))
    ]


UPLOADED = {
    "db.system.name": "qdrant",
    "db.operation.batch.size": 3,
    "rag.chunk_ids": chunk_ids_of([1, 2, 3]),
    "rag.chunk_id_method": "content_hash",
    "rag.source_document_ids": ["energy.pdf", "", ""],
    "rag.ingest.quality_mean": 0.9,
    "rag.ingest.quality_scored_count": 1,
    "rag.quality_method": "metadata",
}


def test_upload_points_span_lists_the_written_chunks(
    store: Store, instrumented: Any, unique_name: Any, finished: Any, check_exact: Any
) -> None:
    name = store.create(unique_name("upload"))
    upload(store, "upload_points", name, points=seed_points(), wait=True)

    (span,) = finished()
    assert span.name == f"upload_points {name}"
    check_exact(
        span.attributes,
        {**UPLOADED, "db.operation.name": "upload_points", "db.collection.name": name},
    )


def test_upload_collection_span_lists_the_written_chunks(
    store: Store, instrumented: Any, unique_name: Any, finished: Any, check_exact: Any
) -> None:
    name = store.create(unique_name("upload"))
    upload(
        store,
        "upload_collection",
        name,
        vectors=EMBEDDER(TEXTS),
        payload=PAYLOADS,
        ids=[1, 2, 3],
        wait=True,
    )

    (span,) = finished()
    check_exact(
        span.attributes,
        {**UPLOADED, "db.operation.name": "upload_collection", "db.collection.name": name},
    )


def test_upload_from_a_generator_is_left_to_the_client(
    store: Store, instrumented: Any, unique_name: Any, finished: Any, check_exact: Any
) -> None:
    name = store.create(unique_name("upload"))
    upload(store, "upload_points", name, points=(point for point in seed_points()), wait=True)

    assert store("count", name).count == 3  # every point reached the store
    (span,) = finished()
    check_exact(
        span.attributes,
        {
            "db.system.name": "qdrant",
            "db.operation.name": "upload_points",
            "db.collection.name": name,
        },
    )


def test_bulk_upload_is_counted_without_chunk_ids(
    store: Store,
    instrumented: Any,
    unique_name: Any,
    finished: Any,
    check_exact: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(qdrant_instrumentation, "MAX_INGEST_CHUNK_IDS", 2)
    name = store.create(unique_name("upload"))
    upload(store, "upload_collection", name, vectors=EMBEDDER(TEXTS), ids=[1, 2, 3], wait=True)

    (span,) = finished()
    check_exact(
        span.attributes,
        {
            "db.system.name": "qdrant",
            "db.operation.name": "upload_collection",
            "db.collection.name": name,
            "db.operation.batch.size": 3,
        },
    )


def test_content_capture(
    store: Store, seeded: str, finished: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    store("query_points", seeded, query=EMBEDDER([SOLAR])[0], limit=1)
    monkeypatch.setenv("RAGPROV_CAPTURE_CONTENT", "true")
    result = store("query_points", seeded, query=EMBEDDER([SOLAR])[0], limit=1)

    off, on = finished()
    assert "gen_ai.retrieval.documents" not in off.attributes
    assert json.loads(on.attributes["gen_ai.retrieval.documents"]) == [
        {
            "id": ids.content_hash(TEXTS[0]),
            "score": pytest.approx(result.points[0].score),
            "content": TEXTS[0],
        }
    ]
    assert "gen_ai.retrieval.query.text" not in on.attributes  # a vector query has no text


def test_side_channel_receives_texts_and_vectors(
    store: Store, seeded: str, finished: Any, side_channel: None
) -> None:
    result = store("query_points", seeded, query=EMBEDDER([SOLAR])[0], limit=3, with_vectors=True)

    (span,) = finished()
    payload = sidechannel.take(span.context.trace_id, span.context.span_id)
    assert isinstance(payload, sidechannel.RetrievalPayload)
    assert list(payload.chunk_texts) == [TEXTS[point.id - 1] for point in result.points]
    assert [list(vector) for vector in payload.embeddings] == [
        pytest.approx(point.vector) for point in result.points
    ]


def test_suppression_key_means_no_span(
    store: Store, seeded: str, finished: Any, suppressed: Any
) -> None:
    with suppressed():
        store("query_points", seeded, query=EMBEDDER([SOLAR])[0], limit=1)
        store.seed(seeded)
    assert finished() == []


def test_legacy_search_where_present(
    tracer_provider: Any, finished: Any, monkeypatch: pytest.MonkeyPatch, unique_name: Any
) -> None:
    """qdrant-client < 1.13 had search(); it is patched where present (simulated on newer
    clients, the real one on older clients such as 1.10)."""

    def search(self: QdrantClient, collection_name: str, query_vector: Any, **kwargs: Any) -> Any:
        return self.query_points(collection_name, query=query_vector, **kwargs).points

    if "search" in QdrantClient.__dict__:
        search = QdrantClient.__dict__["search"]  # the client's own legacy method
    else:
        monkeypatch.setattr(QdrantClient, "search", search, raising=False)
    instrumentor = QdrantInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    try:
        store = Store(QdrantClient(":memory:"), None)
        name = store.create(unique_name("legacy"), models.Distance.EUCLID)
        store.seed(name)
        points = store("search", name, EMBEDDER([SOLAR])[0], limit=2)
    finally:
        instrumentor.uninstrument()

    ingest, span = finished()  # an inner query_points call adds no second span
    assert ingest.name == f"upsert {name}"
    assert span.attributes["gen_ai.retrieval.top_k"] == 2
    assert list(span.attributes["rag.chunk_scores"]) == pytest.approx(
        [1.0 / (1.0 + point.score) for point in points]
    )
    assert QdrantClient.__dict__["search"] is search


def test_uninstrument_restores_the_original_methods(tracer_provider: Any) -> None:
    instrumentor = QdrantInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    assert QdrantClient.__dict__["query_points"] is not ORIGINALS[(QdrantClient, "query_points")]
    instrumentor.uninstrument()

    for (cls, name), original in ORIGINALS.items():
        assert cls.__dict__[name] is original, f"{cls.__name__}.{name}"


def test_supported_versions_and_entry_point() -> None:
    from importlib.metadata import entry_points

    dependencies = QdrantInstrumentor().instrumentation_dependencies()
    assert list(dependencies) == ["qdrant-client >= 1.10, < 2"]
    assert get_dependency_conflicts(dependencies) is None
    (entry_point,) = entry_points(group="opentelemetry_instrumentor", name="ragprov_qdrant")
    assert entry_point.load() is QdrantInstrumentor

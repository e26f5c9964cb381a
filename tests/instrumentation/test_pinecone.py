"""Pinecone instrumentation, with the real ``pinecone`` client against a local STAND-IN server.

Pinecone is a cloud-only service: the client has no embedded or local mode, and the tests may
not reach the internet. ``pinecone_standin.PineconeStandIn`` is a small HTTP server on
127.0.0.1 that answers the data-plane endpoints the client calls (``/query``,
``/vectors/upsert``, ``/describe_index_stats``) the way the service documents them, including
its score conventions (cosine / dot product similarities, squared Euclidean distances). The
client's whole request path (validation, HTTP, response decoding) is real; only the service is
a stand-in. The gRPC tests (pinecone 9+, where ``GrpcIndex`` ships in the wheel) replace only
the index's Rust gRPC channel object with ``FakeGrpcChannel``.

The same module runs against the oldest supported client (scripts/version_matrix.py): tests of
features a version lacks (asyncio index, gRPC transport) are skipped there.
"""

from __future__ import annotations

import inspect
import json
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry.instrumentation.dependencies import get_dependency_conflicts
from opentelemetry.trace import SpanKind, StatusCode
from pinecone import Pinecone, Vector
from pinecone_standin import FakeGrpcChannel, FakeIndex, PineconeStandIn

from ragprov import ids, sidechannel
from ragprov.demo.embedding import HashingEmbedder
from ragprov.instrumentation import pinecone as pinecone_instrumentation
from ragprov.instrumentation.pinecone import (
    PineconeInstrumentor,
    index_name,
    metric_cache,
    metric_from_order,
)

EMBEDDER = HashingEmbedder(32)
EMPTY_SET_HASH = ids.chunk_set_hash([])
SOLAR = "solar panels photovoltaic sunlight"
TEXTS = [
    "Solar panels convert sunlight into electricity with photovoltaic cells.",
    "Wind turbines generate electricity from moving air masses.",
    "The cake recipe needs flour, sugar and three fresh eggs.",
]
# Pinecone metadata is flat. Three shapes: plain `text` (Pinecone's and LangChain's default
# text_key), `page_content` with a stamped chunk_id, and LlamaIndex's `_node_content`.
METADATA: list[dict[str, Any]] = [
    {"text": TEXTS[0], "source_document_id": "energy.pdf", "completeness": 0.9, "topic": "sun"},
    {"page_content": TEXTS[1], "chunk_id": "wind-1", "topic": "wind"},
    {"_node_content": json.dumps({"text": TEXTS[2], "metadata": {}}), "topic": "food"},
]
CHUNK_IDS = {"v1": ids.content_hash(TEXTS[0]), "v2": "wind-1", "v3": ids.content_hash(TEXTS[2])}

SYNC_CLASSES = pinecone_instrumentation._classes(pinecone_instrumentation.SYNC_INDEX_CLASSES)
ASYNC_CLASSES = pinecone_instrumentation._classes(pinecone_instrumentation.ASYNC_INDEX_CLASSES)
ORIGINALS = {
    (cls, name): cls.__dict__[name]
    for cls in (*SYNC_CLASSES, *ASYNC_CLASSES)
    for name in ("query", "query_namespaces", "upsert", *pinecone_instrumentation.SEARCH_METHODS)
    if name in cls.__dict__
}
HAS_ASYNC = hasattr(Pinecone, "IndexAsyncio") and bool(ASYNC_CLASSES)
GrpcIndex = getattr(pinecone_instrumentation._module("pinecone.grpc"), "GrpcIndex", None)


# Records of an integrated-embedding index: the text under the field map's `chunk_text`.
RECORDS: list[dict[str, Any]] = [
    {"_id": "r1", "chunk_text": TEXTS[0], "source_document_id": "energy.pdf", "topic": "sun"},
    {"_id": "r2", "chunk_text": TEXTS[1], "chunk_id": "wind-1", "topic": "wind"},
    {"_id": "r3", "chunk_text": TEXTS[2], "topic": "food"},
]
RECORD_CHUNK_IDS = {f"r{key[1:]}": chunk_id for key, chunk_id in CHUNK_IDS.items()}
#: pinecone 10's flat search(namespace=, top_k=, inputs=, ...); older clients have none or the
#: nested search(namespace, query) form.
HAS_FLAT_SEARCH = any(
    "inputs" in inspect.signature(cls.__dict__["search"]).parameters
    for cls in SYNC_CLASSES
    if "search" in cls.__dict__
)


def vectors() -> list[dict[str, Any]]:
    return [
        {"id": f"v{index + 1}", "values": vector, "metadata": metadata}
        for index, (vector, metadata) in enumerate(zip(EMBEDDER(TEXTS), METADATA, strict=True))
    ]


class Store:
    """The sync or the async index behind one call interface."""

    def __init__(self, index: Any, run: Callable[[Any], Any] | None) -> None:
        self.index = index
        self.run = run

    def __call__(self, method: str, **kwargs: Any) -> Any:
        result = getattr(self.index, method)(**kwargs)
        return self.run(result) if self.run else result

    def seed(self, namespace: str = "") -> None:
        self("upsert", vectors=vectors(), namespace=namespace)

    def close(self) -> None:
        close = getattr(self.index, "close", None)
        if close is not None:
            result = close()
            if self.run is not None and result is not None:
                self.run(result)


@pytest.fixture(autouse=True)
def _fresh_metric_cache() -> Iterator[None]:
    metric_cache.clear()
    yield
    metric_cache.clear()


def open_index(server: PineconeStandIn, mode: str, runner: Callable[[Any], Any]) -> Store:
    client = Pinecone(api_key="test-key")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # older clients warn about plain-HTTP hosts
        if mode == "sync":
            return Store(client.Index(host=server.url), None)

        async def opened() -> Any:  # pinecone 6-8 open an aiohttp session: inside the loop
            return client.IndexAsyncio(host=server.url)

        try:
            return Store(runner(opened()), runner)
        except ImportError:  # pinecone 6-8 without the asyncio extra
            pytest.skip("the pinecone[asyncio] extra is not installed")


def make_store(metric: str) -> Callable[..., Iterator[tuple[Store, PineconeStandIn]]]:
    """A fixture body: a stand-in index with ``metric`` and a client of the requested mode."""

    def fixture(
        request: pytest.FixtureRequest, event_loop_runner: Callable[[Any], Any]
    ) -> Iterator[tuple[Store, PineconeStandIn]]:
        if request.param == "async" and not HAS_ASYNC:
            pytest.skip("this pinecone version has no asyncio index")
        with PineconeStandIn(FakeIndex(metric)) as server:
            store = open_index(server, request.param, event_loop_runner)
            yield store, server
            store.close()

    return fixture


@pytest.fixture(params=["sync", "async"])
def served(
    request: pytest.FixtureRequest, event_loop_runner: Callable[[Any], Any]
) -> Iterator[tuple[Store, PineconeStandIn]]:
    yield from make_store("cosine")(request, event_loop_runner)


@pytest.fixture
def instrumented(tracer_provider: Any) -> Iterator[PineconeInstrumentor]:
    instrumentor = PineconeInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    yield instrumentor
    instrumentor.uninstrument()


@pytest.fixture
def seeded(
    instrumented: Any, served: tuple[Store, PineconeStandIn], exporter: Any
) -> tuple[Store, PineconeStandIn]:
    """An instrumented index with the three vectors written (instrumented first: pinecone 9+
    copies methods onto each index object when it is created)."""
    store, server = served
    store.seed()
    exporter.clear()
    return store, server


def query(store: Store, text: str = SOLAR, **kwargs: Any) -> Any:
    kwargs.setdefault("top_k", 3)
    kwargs.setdefault("include_metadata", True)
    return store("query", vector=EMBEDDER([text])[0], **kwargs)


def skip_without_query_namespaces(store: Store) -> None:
    if not hasattr(store.index, "query_namespaces"):
        store.close()
        pytest.skip("query_namespaces arrived in pinecone 5.4")


def stats_calls(server: PineconeStandIn) -> int:
    return sum(path == "/describe_index_stats" for path, _ in server.index.requests)


# ----------------------------------------------------------------------------- retrieval


def test_query_exact_attributes(
    seeded: tuple[Store, PineconeStandIn], finished: Any, check_exact: Any, uuid7: Any
) -> None:
    store, server = seeded
    result = query(store)

    (span,) = finished()
    assert span.name == f"retrieval {server.host}"
    assert span.kind is SpanKind.CLIENT
    match_ids = [match.id for match in result.matches]
    assert match_ids[0] == "v1"
    chunk_ids = [CHUNK_IDS[match_id] for match_id in match_ids]
    check_exact(
        span.attributes,
        {
            "gen_ai.operation.name": "retrieval",
            "gen_ai.data_source.id": server.host,
            "db.system.name": "pinecone",
            "gen_ai.retrieval.top_k": 3,
            "rag.retrieval_set_id": uuid7,
            "rag.chunk_set_hash": ids.chunk_set_hash(chunk_ids),
            "rag.chunk_ids": chunk_ids,
            "rag.chunk_id_method": "content_hash",
            "rag.chunk_scores": [match.score for match in result.matches],  # cosine: kept
            "rag.source_document_ids": ["energy.pdf" if i == "v1" else "" for i in match_ids],
            "rag.retrieval_method": "dense",
        },
    )
    assert stats_calls(server) == 0  # the score order told the metric


@pytest.mark.parametrize(
    ("metric", "convert"),
    [
        ("cosine", lambda s: s),
        ("dotproduct", lambda s: s),
        ("euclidean", lambda d: 1.0 / (1.0 + d)),  # Pinecone returns the squared distance
    ],
)
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_scores_are_similarities(
    instrumented: Any,
    finished: Any,
    event_loop_runner: Any,
    metric: str,
    convert: Callable[[float], float],
    mode: str,
) -> None:
    if mode == "async" and not HAS_ASYNC:
        pytest.skip("this pinecone version has no asyncio index")
    with PineconeStandIn(FakeIndex(metric)) as server:
        store = open_index(server, mode, event_loop_runner)
        store.seed()
        result = query(store)
        store.close()

    span = finished()[-1]
    scores = list(span.attributes["rag.chunk_scores"])
    assert scores == pytest.approx([convert(match.score) for match in result.matches])
    assert scores == sorted(scores, reverse=True)
    assert stats_calls(server) == 0


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_single_match_asks_the_index_once(
    instrumented: Any, finished: Any, event_loop_runner: Any, mode: str
) -> None:
    """One match does not tell the metric: describe_index_stats is read once per index."""
    if mode == "async" and not HAS_ASYNC:
        pytest.skip("this pinecone version has no asyncio index")
    with PineconeStandIn(FakeIndex("euclidean")) as server:
        store = open_index(server, mode, event_loop_runner)
        store.seed()
        first = query(store, top_k=1)
        second = query(store, TEXTS[1], top_k=1)
        store.close()

    assert stats_calls(server) == 1
    spans = finished()[-2:]
    for span, result in zip(spans, (first, second), strict=True):
        assert list(span.attributes["rag.chunk_scores"]) == pytest.approx(
            [1.0 / (1.0 + result.matches[0].score)]
        )
    # No span for the describe_index_stats call.
    assert [span.name.split()[0] for span in finished()] == ["upsert", "retrieval", "retrieval"]


def test_query_namespaces_is_one_span_with_its_metric(
    instrumented: Any, tracer_provider: Any, finished: Any
) -> None:
    with PineconeStandIn(FakeIndex("euclidean")) as server:
        store = open_index(server, "sync", lambda coroutine: coroutine)
        skip_without_query_namespaces(store)
        store.seed("en")
        store.seed("fr")
        tracer = tracer_provider.get_tracer("test")
        with tracer.start_as_current_span("request") as request:
            result = store(
                "query_namespaces",
                vector=EMBEDDER([SOLAR])[0],
                namespaces=["en", "fr"],
                metric="euclidean",
                top_k=2,
                include_metadata=True,
            )
        single = query(store, top_k=1, namespace="en")  # metric known: no describe_index_stats
        store.close()

    retrieval, root, single_span = finished()[-3:]
    assert root.context.span_id == request.get_span_context().span_id
    assert retrieval.parent.span_id == root.context.span_id
    assert retrieval.attributes["gen_ai.retrieval.top_k"] == 2
    assert list(retrieval.attributes["rag.chunk_ids"]) == [
        CHUNK_IDS[match.id] for match in result.matches
    ]
    assert list(retrieval.attributes["rag.chunk_scores"]) == pytest.approx(
        [1.0 / (1.0 + match.score) for match in result.matches]
    )
    assert list(single_span.attributes["rag.chunk_scores"]) == pytest.approx(
        [1.0 / (1.0 + single.matches[0].score)]
    )
    assert stats_calls(server) == 0
    # Two namespace queries ran inside the call: the only other span is the later query.
    assert [span.name for span in finished()].count(f"retrieval {server.host}") == 2


def test_query_namespaces_default_top_k(
    seeded: tuple[Store, PineconeStandIn], finished: Any
) -> None:
    store, server = seeded
    skip_without_query_namespaces(store)
    store.seed("other")
    result = store(
        "query_namespaces",
        vector=EMBEDDER([SOLAR])[0],
        namespaces=["", "other"],
        metric="cosine",
        include_metadata=True,
    )

    upsert, span = finished()
    assert upsert.name == f"upsert {server.host}"
    assert span.attributes["gen_ai.retrieval.top_k"] == 10  # the client's default
    assert list(span.attributes["rag.chunk_ids"]) == [
        CHUNK_IDS[match.id] for match in result.matches
    ]


def test_sparse_hybrid_and_id_queries(seeded: tuple[Store, PineconeStandIn], finished: Any) -> None:
    store, _ = seeded
    store(
        "upsert",
        vectors=[
            {
                "id": "s1",
                "values": EMBEDDER(["sparse"])[0],
                "sparse_values": {"indices": [1, 5], "values": [0.5, 0.5]},
                "metadata": {"text": "sparse record"},
            }
        ],
    )
    sparse = {"indices": [1], "values": [1.0]}
    query(store, sparse_vector=sparse)
    store("query", sparse_vector=sparse, top_k=2)
    store("query", id="v2", top_k=2)

    hybrid, sparse_only, by_id = (
        span.attributes["rag.retrieval_method"] for span in finished()[1:]
    )
    assert (hybrid, sparse_only, by_id) == ("hybrid", "sparse", "dense")


def test_matches_without_metadata_use_store_ids(
    seeded: tuple[Store, PineconeStandIn], finished: Any
) -> None:
    store, _ = seeded
    result = query(store, include_metadata=False, top_k=2)

    (span,) = finished()
    assert span.attributes["rag.chunk_id_method"] == "store_id"
    assert list(span.attributes["rag.chunk_ids"]) == [match.id for match in result.matches]
    assert "rag.source_document_ids" not in span.attributes


def test_filter_matching_nothing_and_empty_namespace(
    seeded: tuple[Store, PineconeStandIn], finished: Any
) -> None:
    store, server = seeded
    query(store, filter={"topic": {"$eq": "none"}})
    query(store, namespace="empty")

    for span in finished():
        assert span.attributes["rag.chunk_set_hash"] == EMPTY_SET_HASH
        assert list(span.attributes["rag.chunk_ids"]) == []
        assert "rag.chunk_id_method" not in span.attributes
        assert "rag.chunk_scores" not in span.attributes
    assert stats_calls(server) == 0  # nothing to convert: the metric is not looked up


def test_service_error_is_recorded_and_reraised(
    seeded: tuple[Store, PineconeStandIn], finished: Any
) -> None:
    store, server = seeded
    server.index.fail = (400, "Vector dimension 2 does not match the dimension of the index 32")
    with pytest.raises(Exception, match="dimension") as raised:
        store("query", vector=[0.1, 0.2], top_k=1)

    (span,) = finished()
    assert span.name == f"retrieval {server.host}"
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == type(raised.value).__qualname__
    assert span.events[0].name == "exception"


def test_store_error_is_the_same_object(
    tracer_provider: Any,
    finished: Any,
    monkeypatch: pytest.MonkeyPatch,
    served: tuple[Store, PineconeStandIn],
) -> None:
    boom = RuntimeError("store down")

    def failing(self: Any, **kwargs: Any) -> Any:
        raise boom

    store, server = served
    cls = next(c for c in type(store.index).__mro__ if "query" in vars(c))
    monkeypatch.setattr(cls, "query", failing)  # the innermost call now fails
    instrumentor = PineconeInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    try:
        # pinecone 9+ copies query onto each index object when it is created.
        fresh = open_index(server, "sync" if store.run is None else "async", store.run or repr)
        with pytest.raises(RuntimeError) as raised:
            query(fresh)
        fresh.close()
    finally:
        instrumentor.uninstrument()

    assert raised.value is boom
    (span,) = finished()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "RuntimeError"


# ----------------------------------------------------------------------------- records search


@pytest.fixture(params=["sync", "async"])
def integrated(
    request: pytest.FixtureRequest, event_loop_runner: Callable[[Any], Any], instrumented: Any
) -> Iterator[tuple[Store, PineconeStandIn]]:
    """An instrumented index with integrated embedding (the stand-in embeds with EMBEDDER)
    holding RECORDS in the default namespace."""
    if not HAS_FLAT_SEARCH:
        pytest.skip("the flat records search(inputs=...) arrived in pinecone 10")
    if request.param == "async" and not HAS_ASYNC:
        pytest.skip("this pinecone version has no asyncio index")
    fake = FakeIndex(embed=EMBEDDER)
    fake.add_records(RECORDS)
    with PineconeStandIn(fake) as server:
        store = open_index(server, request.param, event_loop_runner)
        yield store, server
        store.close()


def search(store: Store, text: str = SOLAR, method: str = "search", **kwargs: Any) -> Any:
    kwargs.setdefault("namespace", "__default__")
    kwargs.setdefault("top_k", 3)
    if "vector" not in kwargs and "id" not in kwargs and "query" not in kwargs:
        kwargs["inputs"] = {"text": text}
    return store(method, **kwargs)


def test_search_exact_attributes(
    integrated: tuple[Store, PineconeStandIn], finished: Any, check_exact: Any, uuid7: Any
) -> None:
    store, server = integrated
    result = search(store)

    (span,) = finished()
    assert span.name == f"retrieval {server.host}"
    assert span.kind is SpanKind.CLIENT
    hit_ids = [hit.id for hit in result.result.hits]
    assert hit_ids[0] == "r1"
    chunk_ids = [RECORD_CHUNK_IDS[hit_id] for hit_id in hit_ids]
    check_exact(
        span.attributes,
        {
            "gen_ai.operation.name": "retrieval",
            "gen_ai.data_source.id": server.host,
            "db.system.name": "pinecone",
            "gen_ai.retrieval.top_k": 3,
            "rag.retrieval_set_id": uuid7,
            "rag.chunk_set_hash": ids.chunk_set_hash(chunk_ids),
            "rag.chunk_ids": chunk_ids,
            "rag.chunk_id_method": "content_hash",
            "rag.chunk_scores": [hit.score for hit in result.result.hits],
            "rag.source_document_ids": ["energy.pdf" if i == "r1" else "" for i in hit_ids],
            "rag.retrieval_method": "dense",
            "rag.query_hash": ids.query_hash(SOLAR),  # a hash: no text leaves the process
        },
    )


def test_search_records_alias_is_one_span(
    integrated: tuple[Store, PineconeStandIn], finished: Any
) -> None:
    store, server = integrated
    result = search(store, method="search_records", top_k=2)

    (span,) = finished()  # its inner search() call passes through
    assert span.name == f"retrieval {server.host}"
    assert span.attributes["gen_ai.retrieval.top_k"] == 2
    assert list(span.attributes["rag.chunk_ids"]) == [
        RECORD_CHUNK_IDS[hit.id] for hit in result.result.hits
    ]


def test_search_text_query_and_chunk_text_with_content_capture(
    integrated: tuple[Store, PineconeStandIn], finished: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, _ = integrated
    monkeypatch.setenv("RAGPROV_CAPTURE_CONTENT", "true")
    result = search(store, top_k=1, fields=["chunk_text"])

    (span,) = finished()
    assert span.attributes["gen_ai.retrieval.query.text"] == SOLAR
    assert json.loads(span.attributes["gen_ai.retrieval.documents"]) == [
        {
            "id": RECORD_CHUNK_IDS["r1"],
            "score": pytest.approx(result.result.hits[0].score),
            "content": TEXTS[0],
        }
    ]


def test_search_text_is_the_rerank_field(
    integrated: tuple[Store, PineconeStandIn], finished: Any, side_channel: None
) -> None:
    """A rerank names the field that holds the text; its hits carry the reranker's scores."""
    store, server = integrated
    server.index.add_records([{"_id": "s1", "chunk_text": "x", "summary": "solar sunlight"}])
    result = search(
        store, rerank={"model": "bge-reranker-v2-m3", "rank_fields": ["summary"], "top_n": 2}
    )

    (span,) = finished()
    assert span.attributes["rag.retrieval_method"] == "reranked"
    hits = result.result.hits
    assert hits[0].id == "s1"
    assert list(span.attributes["rag.chunk_scores"]) == [hit.score for hit in hits]
    payload = sidechannel.take(span.context.trace_id, span.context.span_id)
    assert isinstance(payload, sidechannel.RetrievalPayload)
    # The rank field, else (a record without it) chunk_text.
    assert list(payload.chunk_texts) == [
        hit.fields.get("summary", hit.fields["chunk_text"]) for hit in hits
    ]
    assert payload.chunk_texts[0] == "solar sunlight"
    assert list(payload.query_texts) == [SOLAR]


def test_search_retrieval_methods(integrated: tuple[Store, PineconeStandIn], finished: Any) -> None:
    store, _ = integrated
    dense = EMBEDDER([SOLAR])[0]
    search(store, vector=dense)
    search(store, vector={"values": dense})
    search(store, vector={"sparse_indices": [1], "sparse_values": [1.0]})
    search(store, vector={"values": dense, "sparse_indices": [1], "sparse_values": [1.0]})
    search(store, id="r2")
    search(store, top_k=None, query={"inputs": {"text": SOLAR}, "top_k": 2})  # legacy form

    methods = [span.attributes["rag.retrieval_method"] for span in finished()]
    assert methods == ["dense", "dense", "sparse", "hybrid", "dense", "dense"]
    assert finished()[-1].attributes["gen_ai.retrieval.top_k"] == 2


def test_search_scores_of_a_known_euclidean_index_become_similarities(
    integrated: tuple[Store, PineconeStandIn], finished: Any
) -> None:
    store, server = integrated
    server.index.metric = "euclidean"
    metric_cache.put(server.host, "euclidean")  # as learnt from an earlier query
    result = search(store)
    reranked = search(store, rerank={"model": "m", "rank_fields": ["chunk_text"]})

    plain_span, reranked_span = finished()
    assert list(plain_span.attributes["rag.chunk_scores"]) == pytest.approx(
        [1.0 / (1.0 + hit.score) for hit in result.result.hits]
    )
    assert list(reranked_span.attributes["rag.chunk_scores"]) == [
        hit.score for hit in reranked.result.hits
    ]


def test_search_of_an_empty_namespace(
    integrated: tuple[Store, PineconeStandIn], finished: Any
) -> None:
    store, _ = integrated
    result = search(store, namespace="empty")

    assert result.result.hits == []
    (span,) = finished()
    assert span.attributes["rag.chunk_set_hash"] == EMPTY_SET_HASH
    assert list(span.attributes["rag.chunk_ids"]) == []
    assert "rag.chunk_scores" not in span.attributes


def test_search_service_error_is_recorded_and_reraised(
    integrated: tuple[Store, PineconeStandIn], finished: Any
) -> None:
    store, server = integrated
    server.index.fail = (400, "Integrated inference is not configured for this index")
    with pytest.raises(Exception, match="Integrated inference") as raised:
        search(store)

    (span,) = finished()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == type(raised.value).__qualname__
    assert span.events[0].name == "exception"


def test_search_error_is_the_same_object(
    integrated: tuple[Store, PineconeStandIn], finished: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, _ = integrated
    boom = RuntimeError("store down")

    def failing(*args: Any, **kwargs: Any) -> Any:
        raise boom

    monkeypatch.setattr(store.index._http, "post", failing)  # the innermost call now fails
    with pytest.raises(RuntimeError) as raised:
        search(store)

    assert raised.value is boom
    (span,) = finished()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "RuntimeError"


def test_search_suppressed_or_uninstrumented_has_no_span(
    integrated: tuple[Store, PineconeStandIn],
    finished: Any,
    suppressed: Any,
    instrumented: PineconeInstrumentor,
) -> None:
    store, _ = integrated
    with suppressed():
        search(store)
    instrumented.uninstrument()  # the fixture's own uninstrument() then does nothing
    for (cls, name), original in ORIGINALS.items():
        assert cls.__dict__[name] is original, f"{cls.__name__}.{name}"
    result = search(store, method="search_records")

    assert result.result.hits[0].id == "r1"
    assert finished() == []


# ----------------------------------------------------------------------------- ingestion


def test_upsert_spans(
    instrumented: Any,
    served: tuple[Store, PineconeStandIn],
    finished: Any,
    check_exact: Any,
) -> None:
    store, server = served
    store.seed()
    store("upsert", vectors=[("t1", EMBEDDER(["seven"])[0], {"text": "seven"})])
    store("upsert", vectors=[Vector(id="o1", values=EMBEDDER(["eight"])[0])])

    seeded_span, pair, plain = finished()
    assert seeded_span.name == f"upsert {server.host}"
    check_exact(
        seeded_span.attributes,
        {
            "db.system.name": "pinecone",
            "db.operation.name": "upsert",
            "db.collection.name": server.host,
            "db.operation.batch.size": 3,
            "rag.chunk_ids": list(CHUNK_IDS.values()),
            "rag.chunk_id_method": "content_hash",
            "rag.source_document_ids": ["energy.pdf", "", ""],
            "rag.ingest.quality_mean": 0.9,
            "rag.ingest.quality_scored_count": 1,
            "rag.quality_method": "metadata",
        },
    )
    check_exact(
        pair.attributes,
        {
            "db.system.name": "pinecone",
            "db.operation.name": "upsert",
            "db.collection.name": server.host,
            "rag.chunk_ids": [ids.content_hash("seven")],
            "rag.chunk_id_method": "content_hash",
        },
    )
    assert list(plain.attributes["rag.chunk_ids"]) == ["o1"]
    assert plain.attributes["rag.chunk_id_method"] == "store_id"


# ----------------------------------------------------------------------------- content


def test_content_capture(
    seeded: tuple[Store, PineconeStandIn], finished: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, _ = seeded
    query(store, top_k=1)
    monkeypatch.setenv("RAGPROV_CAPTURE_CONTENT", "true")
    result = query(store, top_k=1)

    off, on = finished()
    assert "gen_ai.retrieval.documents" not in off.attributes
    assert json.loads(on.attributes["gen_ai.retrieval.documents"]) == [
        {
            "id": CHUNK_IDS["v1"],
            "score": pytest.approx(result.matches[0].score),
            "content": TEXTS[0],
        }
    ]
    assert "gen_ai.retrieval.query.text" not in on.attributes  # a vector query has no text


def test_side_channel_receives_texts_and_vectors(
    seeded: tuple[Store, PineconeStandIn], finished: Any, side_channel: None
) -> None:
    store, _ = seeded
    result = query(store, include_values=True)

    (span,) = finished()
    payload = sidechannel.take(span.context.trace_id, span.context.span_id)
    assert isinstance(payload, sidechannel.RetrievalPayload)
    by_id = {f"v{index + 1}": text for index, text in enumerate(TEXTS)}
    assert list(payload.chunk_texts) == [by_id[match.id] for match in result.matches]
    assert [list(vector) for vector in payload.embeddings] == [
        pytest.approx(list(match.values)) for match in result.matches
    ]


# ----------------------------------------------------------------------------- gRPC


@pytest.mark.skipif(GrpcIndex is None, reason="GrpcIndex ships with pinecone 9+")
def test_grpc_index_query_upsert_and_async_future(
    instrumented: Any, tracer_provider: Any, finished: Any
) -> None:
    fake = FakeIndex("dotproduct")
    index = GrpcIndex(host="http://127.0.0.1:9", api_key="test-key", secure=False)
    index._channel = FakeGrpcChannel(fake)
    try:
        index.upsert(vectors=vectors())
        result = index.query(vector=EMBEDDER([SOLAR])[0], top_k=2, include_metadata=True)
        tracer = tracer_provider.get_tracer("test")
        with tracer.start_as_current_span("request") as request:
            index.query_async(vector=EMBEDDER([SOLAR])[0], top_k=1).result()
    finally:
        index.close()

    upsert, span, future_span, root = finished()
    assert upsert.name == "upsert 127.0.0.1:9"
    assert upsert.attributes["db.operation.batch.size"] == 3
    assert span.name == "retrieval 127.0.0.1:9"
    assert list(span.attributes["rag.chunk_ids"]) == [CHUNK_IDS[m.id] for m in result.matches]
    assert list(span.attributes["rag.chunk_scores"]) == pytest.approx(
        [match.score for match in result.matches]
    )
    # The client's worker thread ran in the caller's context: the span nests under it.
    assert future_span.parent.span_id == request.get_span_context().span_id
    assert root.parent is None


@pytest.mark.skipif(GrpcIndex is None, reason="GrpcIndex ships with pinecone 9+")
@pytest.mark.skipif(not HAS_FLAT_SEARCH, reason="the flat records search arrived in pinecone 10")
def test_grpc_index_search(instrumented: Any, finished: Any) -> None:
    """GrpcIndex sends the records search over REST: the stand-in answers it."""
    fake = FakeIndex(embed=EMBEDDER)
    fake.add_records(RECORDS)
    with PineconeStandIn(fake) as server:
        index = GrpcIndex(host=server.url, api_key="test-key", secure=False)
        try:
            result = index.search(namespace="__default__", top_k=2, inputs={"text": SOLAR})
        finally:
            index.close()

    (span,) = finished()
    assert span.name == f"retrieval {server.host}"
    assert list(span.attributes["rag.chunk_ids"]) == [
        RECORD_CHUNK_IDS[hit.id] for hit in result.result.hits
    ]


# ----------------------------------------------------------------------------- lifecycle


def test_suppression_key_means_no_span(
    seeded: tuple[Store, PineconeStandIn], finished: Any, suppressed: Any
) -> None:
    store, _ = seeded
    with suppressed():
        query(store)
        store.seed()
    assert finished() == []


def test_uninstrument_restores_the_original_methods(
    tracer_provider: Any, served: tuple[Store, PineconeStandIn], finished: Any
) -> None:
    instrumentor = PineconeInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    store, server = served
    opened_while_instrumented = open_index(server, "sync", repr)
    assert any(cls.__dict__[name] is not original for (cls, name), original in ORIGINALS.items())
    instrumentor.uninstrument()

    for (cls, name), original in ORIGINALS.items():
        assert cls.__dict__[name] is original, f"{cls.__name__}.{name}"
    store.seed()
    query(store)
    query(opened_while_instrumented)  # holds a copy of the wrapped method: passes through
    opened_while_instrumented.close()
    assert finished() == []


def test_index_opened_in_an_earlier_session_uses_the_new_one(
    tracer_provider: Any, served: tuple[Store, PineconeStandIn], exporter: Any
) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    _, server = served
    instrumentor = PineconeInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    store = open_index(server, "sync", repr)
    store.seed()
    instrumentor.uninstrument()
    second = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(second))
    instrumentor.instrument(tracer_provider=provider)
    try:
        query(store)
    finally:
        instrumentor.uninstrument()
        store.close()

    assert [span.name.split()[0] for span in exporter.get_finished_spans()] == ["upsert"]
    assert [span.name.split()[0] for span in second.get_finished_spans()] == ["retrieval"]


def test_index_name_from_host() -> None:
    assert index_name("docs-example-4zo0ijk.svc.us-east1-aws.pinecone.io") == "docs-example"
    assert index_name("example-index-bhnyigt.svc.aped-4627-b74a.pinecone.io") == "example-index"
    assert index_name("localhost:5081") == "localhost:5081"
    assert index_name("my.proxy.internal") == "my.proxy.internal"
    assert index_name(None) is None


def test_metric_from_order() -> None:
    assert metric_from_order([0.9, 0.5, 0.1]) == "similarity"
    assert metric_from_order([0.1, 0.5, 2.0]) == "euclidean"
    assert metric_from_order([0.4]) is None
    assert metric_from_order([0.4, 0.4]) is None
    assert metric_from_order([]) is None


def test_supported_versions_and_entry_point() -> None:
    from importlib.metadata import entry_points

    dependencies = PineconeInstrumentor().instrumentation_dependencies()
    assert list(dependencies) == ["pinecone >= 5.1, < 11"]
    assert get_dependency_conflicts(dependencies) is None
    found = entry_points(group="opentelemetry_instrumentor", name="ragprov_pinecone")
    if not found:
        pytest.skip("entry point ragprov_pinecone not registered (pyproject.toml, reinstall)")
    (entry_point,) = found
    assert entry_point.load() is PineconeInstrumentor

"""chromadb instrumentation against a real EphemeralClient (sync) and a local `chroma run`
server (async: chromadb's AsyncCollection only exists for the HTTP client)."""

from __future__ import annotations

import json
import logging
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import chromadb
import pytest
from chromadb.api.models.Collection import Collection
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings
from chromadb.config import Settings
from opentelemetry.instrumentation.dependencies import get_dependency_conflicts
from opentelemetry.trace import SpanKind, StatusCode

import ragprov
import ragprov.instrumentation._base as base
from ragprov import ids, lineage, sidechannel
from ragprov.demo.embedding import HashingEmbedder
from ragprov.instrumentation import _patching as patching
from ragprov.instrumentation._base import retrieval_span_scope
from ragprov.instrumentation.chromadb import ChromaInstrumentor
from ragprov.stamping import stamp

try:  # chromadb >= 0.5.1
    from chromadb.api.models.AsyncCollection import AsyncCollection
except ImportError:  # the oldest supported version has no async client
    AsyncCollection = None

CHROMA_1 = int(chromadb.__version__.split(".")[0]) >= 1
SETTINGS = Settings(anonymized_telemetry=False)  # the same values for every client in the process
EMBEDDER = HashingEmbedder(64)
EMPTY_SET_HASH = ids.chunk_set_hash([])

TEXTS = {
    "d1": "Solar panels convert sunlight into electricity with photovoltaic cells.",
    "d2": "Wind turbines generate electricity from moving air masses.",
    "d3": "The cake recipe needs flour, sugar and three fresh eggs.",
}
SOLAR = "solar panels photovoltaic sunlight"


class HashingFunction(EmbeddingFunction[Documents]):
    """HashingEmbedder as a chromadb embedding function (no model download)."""

    def __init__(self) -> None:
        pass

    def __call__(self, input: Documents) -> Embeddings:
        embeddings = EMBEDDER.embed(list(input))
        # chromadb < 1 wants lists of floats; newer versions also take arrays.
        return embeddings.tolist() if hasattr(embeddings, "tolist") else embeddings  # type: ignore[no-any-return]

    @staticmethod
    def name() -> str:
        return "ragprov_hashing_test"

    def get_config(self) -> dict[str, Any]:
        return {}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> HashingFunction:
        return HashingFunction()


class Store:
    """One interface over the sync and the async collection API."""

    def __init__(self, client: Any, run: Callable[[Any], Any] | None) -> None:
        self.client = client
        self.run = run
        self.is_async = run is not None

    def create(self, name: str, *, space: str = "l2", embedding_function: Any = None) -> Any:
        if CHROMA_1:
            created = self.client.create_collection(
                name,
                embedding_function=embedding_function,
                configuration={"hnsw": {"space": space}},
            )
        else:  # chromadb < 1: the space is the legacy "hnsw:space" metadata
            created = self.client.create_collection(
                name, embedding_function=embedding_function, metadata={"hnsw:space": space}
            )
        return self.run(created) if self.run else created

    def call(self, collection: Any, method: str, **kwargs: Any) -> Any:
        result = getattr(collection, method)(**kwargs)
        return self.run(result) if self.run else result

    def seed(self, collection: Any, metadatas: list[dict[str, Any] | None] | None = None) -> None:
        keys = list(TEXTS)
        self.call(
            collection,
            "add",
            ids=keys,
            documents=[TEXTS[key] for key in keys],
            embeddings=EMBEDDER([TEXTS[key] for key in keys]),
            metadatas=metadatas,
        )


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    executable = Path(sys.executable).with_name("chroma")
    command = str(executable) if executable.exists() else shutil.which("chroma")
    if command is None:
        pytest.skip("the chroma CLI is not installed")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    path = tmp_path_factory.mktemp("chroma")
    process = subprocess.Popen(
        [command, "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.05)
        else:
            pytest.fail("chroma server did not start")
        yield "127.0.0.1", port
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def ephemeral() -> Iterator[Any]:
    yield chromadb.EphemeralClient(settings=SETTINGS)
    # chromadb keeps one system per identifier for the whole process: drop it so that later
    # test modules can open their own ephemeral client (with their own settings).
    from chromadb.api.client import SharedSystemClient

    SharedSystemClient.clear_system_cache()


@pytest.fixture(params=["sync", "async"])
def store(
    request: pytest.FixtureRequest, ephemeral: Any, event_loop_runner: Callable[[Any], Any]
) -> Store:
    if request.param == "sync":
        return Store(ephemeral, None)
    if AsyncCollection is None:
        pytest.skip("this chromadb version has no async client")
    host, port = request.getfixturevalue("chroma_server")
    client = event_loop_runner(chromadb.AsyncHttpClient(host=host, port=port, settings=SETTINGS))
    return Store(client, event_loop_runner)


ORIGINALS = {
    (cls, name): cls.__dict__[name]
    for cls in (Collection, AsyncCollection)
    if cls is not None
    for name in ("query", "get", "add", "upsert")
}


@pytest.fixture
def instrumented(tracer_provider: Any) -> Iterator[ChromaInstrumentor]:
    instrumentor = ChromaInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    yield instrumentor
    instrumentor.uninstrument()


@pytest.fixture
def seeded(
    store: Store, unique_name: Callable[[str], str], instrumented: Any, exporter: Any
) -> Any:
    """A cosine collection with the three texts, metadata on d1 only; exporter cleared."""
    collection = store.create(unique_name("seeded"), space="cosine")
    store.seed(
        collection,
        metadatas=[
            {"chunk_id": "chunk-solar", "source_document_id": "energy.pdf", "completeness": 0.9},
            {"topic": "wind"},
            {"topic": "food"},
        ],
    )
    exporter.clear()
    return collection


def retrieval_spans(finished: Callable[[], list[Any]]) -> list[Any]:
    return [span for span in finished() if span.attributes.get("gen_ai.operation.name")]


# ----------------------------------------------------------------------------- query


def test_query_span_has_exact_attributes(
    store: Store, seeded: Any, finished: Any, check_exact: Any, uuid7: Any
) -> None:
    result = store.call(seeded, "query", query_embeddings=EMBEDDER([SOLAR]), n_results=2)

    (span,) = finished()
    assert span.name == f"retrieval {seeded.name}"
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    ranked = result["ids"][0]
    assert ranked[0] == "d1"
    chunk_ids = ["chunk-solar", ids.content_hash(TEXTS[ranked[1]])]
    check_exact(
        span.attributes,
        {
            "gen_ai.operation.name": "retrieval",
            "gen_ai.data_source.id": seeded.name,
            "db.system.name": "chromadb",
            "gen_ai.retrieval.top_k": 2,
            "rag.retrieval_set_id": uuid7,
            "rag.chunk_set_hash": ids.chunk_set_hash(chunk_ids),
            "rag.chunk_ids": chunk_ids,
            "rag.chunk_id_method": "content_hash",  # the weakest method of the set
            "rag.chunk_scores": [1.0 - d for d in result["distances"][0]],
            "rag.source_document_ids": ["energy.pdf", ""],
            "rag.retrieval_method": "dense",
        },
    )


@pytest.mark.parametrize(
    ("space", "convert"),
    [
        ("cosine", lambda d: 1.0 - d),
        ("l2", lambda d: 1.0 / (1.0 + d)),
        ("ip", lambda d: 1.0 - d),
    ],
)
def test_distances_become_similarities(
    store: Store,
    instrumented: Any,
    unique_name: Any,
    finished: Any,
    space: str,
    convert: Callable[[float], float],
) -> None:
    collection = store.create(unique_name(space), space=space)
    store.seed(collection)
    result = store.call(collection, "query", query_embeddings=EMBEDDER([SOLAR]), n_results=3)

    span = retrieval_spans(finished)[-1]
    scores = list(span.attributes["rag.chunk_scores"])
    assert scores == pytest.approx([convert(d) for d in result["distances"][0]])
    assert scores == sorted(scores, reverse=True)  # higher = closer, in rank order
    # HashingEmbedder vectors are unit length: 1 − cos, squared L2 and 1 − ip agree.
    best = EMBEDDER.embed([TEXTS["d1"]])[0] @ EMBEDDER.embed([SOLAR])[0]
    expected_best = 1.0 / (1.0 + (2 - 2 * best)) if space == "l2" else best
    assert scores[0] == pytest.approx(float(expected_best), abs=1e-5)


def test_query_texts_give_query_hash_and_one_span_per_query(
    store: Store, instrumented: Any, unique_name: Any, finished: Any, exporter: Any
) -> None:
    collection = store.create(unique_name("texts"), embedding_function=HashingFunction())
    store.call(collection, "add", ids=list(TEXTS), documents=list(TEXTS.values()))
    exporter.clear()
    queries = [SOLAR, "wind turbines electricity"]
    result = store.call(collection, "query", query_texts=queries, n_results=1)

    first, second = sorted(finished(), key=lambda span: len(span.links))
    assert [first.attributes["rag.query_hash"], second.attributes["rag.query_hash"]] == [
        ids.query_hash(queries[0]),
        ids.query_hash(queries[1]),
    ]
    assert list(first.attributes["rag.chunk_ids"]) == [ids.content_hash(TEXTS["d1"])]
    assert result["ids"] == [["d1"], ["d2"]]
    assert list(second.attributes["rag.chunk_ids"]) == [ids.content_hash(TEXTS["d2"])]
    # Siblings: same parent, same timing, the second links to the first.
    assert first.parent == second.parent
    assert (first.start_time, first.end_time) == (second.start_time, second.end_time)
    assert [link.context.span_id for link in second.links] == [first.context.span_id]
    assert first.attributes["rag.retrieval_set_id"] != second.attributes["rag.retrieval_set_id"]


def test_chunk_id_from_metadata(
    store: Store, instrumented: Any, unique_name: Any, finished: Any, exporter: Any
) -> None:
    collection = store.create(unique_name("stamped"))
    documents = list(TEXTS.values())
    store.call(
        collection,
        "add",
        ids=list(TEXTS),
        documents=documents,
        embeddings=EMBEDDER(documents),
        metadatas=stamp(documents, [{"source_document_id": "doc-7"}, None, None]),
    )
    exporter.clear()
    store.call(collection, "query", query_embeddings=EMBEDDER([SOLAR]), n_results=3)

    (span,) = finished()
    assert span.attributes["rag.chunk_id_method"] == "metadata"
    assert set(span.attributes["rag.chunk_ids"]) == {ids.content_hash(text) for text in documents}
    assert span.attributes["rag.source_document_ids"][0] == "doc-7"


def test_results_without_documents_or_metadata_use_store_ids(
    store: Store, seeded: Any, finished: Any
) -> None:
    result = store.call(
        seeded, "query", query_embeddings=EMBEDDER([SOLAR]), n_results=3, include=["distances"]
    )

    (span,) = finished()
    assert span.attributes["rag.chunk_id_method"] == "store_id"
    assert list(span.attributes["rag.chunk_ids"]) == result["ids"][0]
    assert "rag.source_document_ids" not in span.attributes
    assert len(span.attributes["rag.chunk_scores"]) == 3


def test_results_without_distances_have_no_scores(store: Store, seeded: Any, finished: Any) -> None:
    store.call(seeded, "query", query_embeddings=EMBEDDER([SOLAR]), include=["documents"])

    (span,) = finished()
    assert "rag.chunk_scores" not in span.attributes
    assert span.attributes["rag.chunk_id_method"] == "content_hash"  # no metadata returned


def test_filter_matching_nothing_gives_an_empty_set(
    store: Store, seeded: Any, finished: Any, check_exact: Any, uuid7: Any
) -> None:
    result = store.call(
        seeded, "query", query_embeddings=EMBEDDER([SOLAR]), n_results=2, where={"topic": "none"}
    )

    assert result["ids"] == [[]]
    (span,) = finished()
    check_exact(
        span.attributes,
        {
            "gen_ai.operation.name": "retrieval",
            "gen_ai.data_source.id": seeded.name,
            "db.system.name": "chromadb",
            "gen_ai.retrieval.top_k": 2,
            "rag.retrieval_set_id": uuid7,
            "rag.chunk_set_hash": EMPTY_SET_HASH,
            "rag.chunk_ids": [],
            "rag.retrieval_method": "dense",
        },
    )


def test_empty_collection(store: Store, instrumented: Any, unique_name: Any, finished: Any) -> None:
    collection = store.create(unique_name("empty"))
    store.call(collection, "query", query_embeddings=EMBEDDER([SOLAR]), n_results=4)

    (span,) = finished()
    assert span.attributes["rag.chunk_set_hash"] == EMPTY_SET_HASH
    assert list(span.attributes["rag.chunk_ids"]) == []


# ----------------------------------------------------------------------------- errors


def test_store_error_is_recorded_and_reraised(store: Store, seeded: Any, finished: Any) -> None:
    with pytest.raises(Exception, match="dimension") as raised:
        store.call(seeded, "query", query_embeddings=[[1.0, 0.0]], n_results=1)

    (span,) = finished()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == type(raised.value).__qualname__
    assert [event.name for event in span.events] == ["exception"]
    assert "rag.chunk_ids" not in span.attributes


def test_the_same_exception_object_reaches_the_caller(
    store: Store, instrumented: Any, unique_name: Any, finished: Any
) -> None:
    boom = RuntimeError("boom")

    class Exploding(HashingFunction):
        def __call__(self, input: Documents) -> Embeddings:
            raise boom

    collection = store.create(unique_name("boom"), embedding_function=Exploding())
    with pytest.raises(RuntimeError) as raised:
        store.call(collection, "query", query_texts=["anything"])

    assert raised.value is boom
    (span,) = finished()
    assert span.attributes["error.type"] == "RuntimeError"
    assert span.events[0].attributes["exception.type"] == "RuntimeError"


def test_instrumentation_errors_are_swallowed_and_logged_once(
    store: Store,
    seeded: Any,
    finished: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise ValueError("instrumentation bug")

    monkeypatch.setattr(base, "_apply_retrieval_set", broken)
    monkeypatch.setattr(patching, "_logged_once", set())
    with caplog.at_level(logging.DEBUG, logger="ragprov.instrumentation"):
        first = store.call(seeded, "query", query_embeddings=EMBEDDER([SOLAR]), n_results=1)
        second = store.call(seeded, "query", query_embeddings=EMBEDDER([SOLAR]), n_results=1)

    assert first["ids"] == second["ids"] == [["d1"]]
    assert len(finished()) == 2  # the spans still end
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1


# ----------------------------------------------------------------------------- get


def test_get_with_ids_is_an_unscored_retrieval(
    store: Store, seeded: Any, finished: Any, check_exact: Any, uuid7: Any
) -> None:
    store.call(seeded, "get", ids=["d1", "d3"])

    (span,) = finished()
    chunk_ids = ["chunk-solar", ids.content_hash(TEXTS["d3"])]
    check_exact(
        span.attributes,
        {
            "gen_ai.operation.name": "retrieval",
            "gen_ai.data_source.id": seeded.name,
            "db.system.name": "chromadb",
            "rag.retrieval_set_id": uuid7,
            "rag.chunk_set_hash": ids.chunk_set_hash(chunk_ids),
            "rag.chunk_ids": chunk_ids,
            "rag.chunk_id_method": "content_hash",
            "rag.source_document_ids": ["energy.pdf", ""],
            "rag.retrieval_method": "unknown",
        },
    )


def test_get_with_where_and_limit(store: Store, seeded: Any, finished: Any) -> None:
    store.call(seeded, "get", where={"topic": "wind"}, limit=5)

    (span,) = finished()
    assert span.attributes["gen_ai.retrieval.top_k"] == 5
    assert list(span.attributes["rag.chunk_ids"]) == [ids.content_hash(TEXTS["d2"])]


def test_bare_get_is_not_a_retrieval(store: Store, seeded: Any, finished: Any) -> None:
    assert len(store.call(seeded, "get")["ids"]) == 3
    assert finished() == []


# ----------------------------------------------------------------------------- ingestion


def test_add_and_upsert_spans(
    store: Store, instrumented: Any, unique_name: Any, finished: Any, check_exact: Any
) -> None:
    collection = store.create(unique_name("ingest"))
    documents = list(TEXTS.values())
    metadatas: list[dict[str, Any] | None] = [
        {
            "chunk_id": "c-1",
            "semantic_density": 0.8,
            "completeness": 0.6,
            "source_document_id": "a",
        },
        {"faithfulness": 0.4, "freshness_status": "stale", "conflict_flag": True},
        None,
    ]
    store.call(
        collection,
        "add",
        ids=list(TEXTS),
        documents=documents,
        embeddings=EMBEDDER(documents),
        metadatas=metadatas,
    )
    store.call(collection, "upsert", ids="d9", embeddings=EMBEDDER(["ninth"]), documents="ninth")

    add, upsert = finished()
    assert add.name == f"add {collection.name}"
    assert add.kind is SpanKind.CLIENT
    chunk_ids = ["c-1", ids.content_hash(documents[1]), ids.content_hash(documents[2])]
    check_exact(
        add.attributes,
        {
            "db.system.name": "chromadb",
            "db.operation.name": "add",
            "db.collection.name": collection.name,
            "db.operation.batch.size": 3,
            "rag.chunk_ids": chunk_ids,
            "rag.chunk_id_method": "content_hash",
            "rag.source_document_ids": ["a", "", ""],
            "rag.ingest.quality_mean": (0.7 + 0.4) / 2,
            "rag.ingest.quality_scored_count": 2,
            "rag.quality_method": "metadata",
            "rag.stale_chunk_count": 1,
            "rag.conflict_chunk_count": 1,
        },
    )
    assert upsert.name == f"upsert {collection.name}"
    check_exact(
        upsert.attributes,
        {
            "db.system.name": "chromadb",
            "db.operation.name": "upsert",
            "db.collection.name": collection.name,
            "rag.chunk_ids": [ids.content_hash("ninth")],
            "rag.chunk_id_method": "content_hash",
        },
    )


def test_stamped_chunks_report_their_heuristic_quality_on_ingestion(
    store: Store, instrumented: Any, unique_name: Any, finished: Any, check_exact: Any
) -> None:
    collection = store.create(unique_name("stamped"))
    documents = list(TEXTS.values())
    metadatas = ragprov.stamp(documents)
    store.call(
        collection,
        "add",
        ids=list(TEXTS),
        documents=documents,
        embeddings=EMBEDDER(documents),
        metadatas=metadatas,
    )
    (add,) = finished()
    heuristics = [metadata["heuristic_quality"] for metadata in metadatas]
    check_exact(
        add.attributes,
        {
            "db.system.name": "chromadb",
            "db.operation.name": "add",
            "db.collection.name": collection.name,
            "db.operation.batch.size": 3,
            "rag.chunk_ids": [ids.content_hash(document) for document in documents],
            "rag.chunk_id_method": "metadata",
            "rag.ingest.quality_mean": pytest.approx(sum(heuristics) / 3),
            "rag.ingest.quality_scored_count": 3,
            "rag.quality_method": "heuristic",
        },
    )


def test_failed_add_is_recorded(store: Store, seeded: Any, finished: Any) -> None:
    with pytest.raises(Exception, match="dimension") as raised:
        store.call(seeded, "add", ids=["x"], embeddings=[[1.0, 2.0]], documents=["x"])

    (span,) = finished()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == type(raised.value).__qualname__


# ----------------------------------------------------------------------------- content


def test_content_capture_on(
    store: Store, seeded: Any, finished: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAGPROV_CAPTURE_CONTENT", "true")
    result = store.call(seeded, "query", query_embeddings=EMBEDDER([SOLAR]), n_results=2)

    (span,) = finished()
    assert "gen_ai.retrieval.query.text" not in span.attributes  # embeddings only: no text
    documents = json.loads(span.attributes["gen_ai.retrieval.documents"])
    assert documents == [
        {
            "id": chunk_id,
            "score": pytest.approx(1.0 - distance),
            "content": text,
        }
        for chunk_id, distance, text in zip(
            span.attributes["rag.chunk_ids"],
            result["distances"][0],
            result["documents"][0],
            strict=True,
        )
    ]


def test_content_capture_with_query_text(
    store: Store,
    instrumented: Any,
    unique_name: Any,
    finished: Any,
    exporter: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    collection = store.create(unique_name("capture"), embedding_function=HashingFunction())
    store.call(collection, "add", ids=list(TEXTS), documents=list(TEXTS.values()))
    exporter.clear()
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    store.call(collection, "query", query_texts=SOLAR, n_results=1)

    (span,) = finished()
    assert span.attributes["gen_ai.retrieval.query.text"] == SOLAR
    assert span.attributes["rag.query_hash"] == ids.query_hash(SOLAR)


def test_side_channel_receives_texts_and_embeddings(
    store: Store, seeded: Any, finished: Any, side_channel: None
) -> None:
    result = store.call(
        seeded,
        "query",
        query_embeddings=EMBEDDER([SOLAR]),
        n_results=2,
        include=["documents", "metadatas", "distances", "embeddings"],
    )

    (span,) = finished()
    payload = sidechannel.take(span.context.trace_id, span.context.span_id)
    assert isinstance(payload, sidechannel.RetrievalPayload)
    assert list(payload.chunk_texts) == result["documents"][0]
    assert payload.query_texts == ()
    assert payload.envelope.chunk_ids == tuple(span.attributes["rag.chunk_ids"])
    assert len(payload.embeddings) == 2
    assert list(payload.embeddings[0]) == pytest.approx(list(result["embeddings"][0][0]))


def test_side_channel_gets_query_text(
    store: Store,
    instrumented: Any,
    unique_name: Any,
    finished: Any,
    exporter: Any,
    side_channel: None,
) -> None:
    collection = store.create(unique_name("sidetext"), embedding_function=HashingFunction())
    store.call(collection, "add", ids=list(TEXTS), documents=list(TEXTS.values()))
    exporter.clear()
    store.call(collection, "query", query_texts=[SOLAR], n_results=1)

    (span,) = finished()
    payload = sidechannel.take(span.context.trace_id, span.context.span_id)
    assert isinstance(payload, sidechannel.RetrievalPayload)
    assert payload.query_texts == (SOLAR,)
    assert payload.chunk_texts == (TEXTS["d1"],)
    assert payload.embeddings is None  # not requested


# ----------------------------------------------------------------------------- context


def test_suppression_key_means_no_span(
    store: Store, seeded: Any, finished: Any, suppressed: Any
) -> None:
    with suppressed():
        result = store.call(seeded, "query", query_embeddings=EMBEDDER([SOLAR]), n_results=1)
        store.call(seeded, "upsert", ids=["d1"], embeddings=EMBEDDER([TEXTS["d1"]]))
    assert result["ids"] == [["d1"]]
    assert finished() == []


def test_step_id_and_parent(store: Store, seeded: Any, finished: Any, tracer_provider: Any) -> None:
    with lineage.step("answer", tracer_provider=tracer_provider) as step:
        store.call(seeded, "query", query_embeddings=EMBEDDER([SOLAR]), n_results=1)

    retrieval, step_span = finished()
    assert retrieval.attributes["rag.step_id"] == step.step_id
    assert retrieval.parent.span_id == step_span.context.span_id


def test_inner_call_enriches_an_active_framework_retrieval_span(
    store: Store, seeded: Any, finished: Any, tracer_provider: Any, side_channel: None
) -> None:
    tracer = tracer_provider.get_tracer("framework")
    with tracer.start_as_current_span("retrieval my-retriever") as outer:
        with retrieval_span_scope(outer) as slot:
            store.call(seeded, "query", query_embeddings=EMBEDDER([SOLAR]), n_results=2)
        assert slot.enriched

    (span,) = finished()
    assert span.name == "retrieval my-retriever"
    assert span.attributes["db.system.name"] == "chromadb"
    assert span.attributes["gen_ai.data_source.id"] == seeded.name
    assert span.attributes["rag.chunk_ids"][0] == "chunk-solar"
    assert isinstance(
        sidechannel.take(span.context.trace_id, span.context.span_id), sidechannel.RetrievalPayload
    )


# ----------------------------------------------------------------------------- lifecycle


def test_uninstrument_restores_the_original_methods(
    store: Store, unique_name: Any, tracer_provider: Any, finished: Any
) -> None:
    instrumentor = ChromaInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    assert Collection.__dict__["query"] is not ORIGINALS[(Collection, "query")]
    instrumentor.uninstrument()

    for (cls, name), original in ORIGINALS.items():
        assert cls.__dict__[name] is original, f"{cls.__name__}.{name}"
    collection = store.create(unique_name("plain"))
    store.seed(collection)
    store.call(collection, "query", query_embeddings=EMBEDDER([SOLAR]), n_results=1)
    assert finished() == []


def test_supported_versions_and_entry_point() -> None:
    from importlib.metadata import entry_points

    dependencies = ChromaInstrumentor().instrumentation_dependencies()
    assert list(dependencies) == ["chromadb >= 0.5, < 2"]
    assert get_dependency_conflicts(dependencies) is None  # the installed (newest) version fits
    (entry_point,) = entry_points(group="opentelemetry_instrumentor", name="ragprov_chromadb")
    assert entry_point.load() is ChromaInstrumentor

"""Instrumentation of chromadb (``Collection`` and ``AsyncCollection``).

Patched methods (sync and async twins):

* ``query`` — one retrieval span per query of the batch (``rag.retrieval_method = dense``);
  distances converted to similarities by the collection's space: ``cosine`` → 1 − d,
  ``l2`` (chromadb's squared L2) → 1 / (1 + d), ``ip`` (chromadb returns 1 − ⟨q, x⟩) → 1 − d;
* ``get`` with ``ids``, ``where`` or ``where_document`` — a retrieval without scores
  (``rag.retrieval_method = unknown``); a bare ``get()`` (paging through a collection) is not a
  retrieval and is not traced;
* ``add`` and ``upsert`` — ingestion spans (``add {collection}`` / ``upsert {collection}``).

Usage: ``ChromaInstrumentor().instrument(tracer_provider=...)`` or ``opentelemetry-instrument``
(entry point ``ragprov_chromadb``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ragprov.instrumentation._base import (
    Chunk,
    IngestRequest,
    RetrievalRequest,
    RetrievalSet,
    StoreTracer,
    VectorStoreInstrumentor,
    as_float,
    as_text,
    cosine_distance_to_similarity,
    l2_distance_to_similarity,
    positive_int,
)
from ragprov.instrumentation._patching import call_argument
from ragprov.semconv.attributes import RagRetrievalMethodValues

DB_SYSTEM = "chromadb"
SUPPORTED_VERSIONS = ("chromadb >= 0.5, < 2",)

# Positions after self, as in chromadb 1.5's signatures.
_QUERY_POSITIONS = {"query_embeddings": 0, "query_texts": 1, "n_results": 5}
_GET_POSITIONS = {"ids": 0, "where": 1, "limit": 2, "where_document": 4}
_WRITE_POSITIONS = {"ids": 0, "embeddings": 1, "metadatas": 2, "documents": 3}


class ChromaInstrumentor(VectorStoreInstrumentor):
    """Retrieval and ingestion spans for chromadb collections."""

    db_system = DB_SYSTEM

    def instrumentation_dependencies(self) -> Collection[str]:
        return SUPPORTED_VERSIONS

    def _patch(self, store: StoreTracer) -> None:
        from chromadb.api.models.Collection import Collection as SyncCollection

        self._wrap(SyncCollection, "query", store.retrieval_wrapper(_describe_query, _query_sets))
        self._wrap(SyncCollection, "get", store.retrieval_wrapper(_describe_get, _get_sets))
        self._wrap(SyncCollection, "add", store.ingest_wrapper(_describe_add))
        self._wrap(SyncCollection, "upsert", store.ingest_wrapper(_describe_upsert))
        try:  # the async HTTP client arrived in chromadb 0.5.1
            from chromadb.api.models.AsyncCollection import AsyncCollection
        except ImportError:
            return
        self._wrap(
            AsyncCollection, "query", store.async_retrieval_wrapper(_describe_query, _query_sets)
        )
        self._wrap(AsyncCollection, "get", store.async_retrieval_wrapper(_describe_get, _get_sets))
        self._wrap(AsyncCollection, "add", store.async_ingest_wrapper(_describe_add))
        self._wrap(AsyncCollection, "upsert", store.async_ingest_wrapper(_describe_upsert))


def _name(collection: Any) -> str | None:
    name = getattr(collection, "name", None)
    return name if isinstance(name, str) and name else None


def _argument(
    args: Sequence[Any], kwargs: Mapping[str, Any], positions: dict[str, int], name: str
) -> Any:
    return call_argument(args, kwargs, name, positions[name])


def _as_list(value: Any) -> list[Any] | None:
    """chromadb's OneOrMany: a single item becomes a one-element list."""
    if value is None:
        return None
    if isinstance(value, (str, bytes, Mapping)):
        return [value]
    try:
        return list(value)
    except TypeError:
        return [value]


def _at(values: Any, index: int) -> Any:
    """values[index] for a list / numpy array column that may be None or short."""
    if values is None:
        return None
    try:
        return values[index] if index < len(values) else None
    except Exception:
        return None


def distance_to_similarity(space: str, distance: object) -> float | None:
    """chromadb distance → similarity, higher = closer (see the module docstring)."""
    if space in ("cosine", "ip"):
        return cosine_distance_to_similarity(distance)  # both are 1 − (dot product)
    return l2_distance_to_similarity(distance)


def collection_space(collection: Any) -> str:
    """The collection's distance function: hnsw/spann configuration, legacy metadata, or l2."""
    try:
        configuration = collection.configuration_json
        if isinstance(configuration, Mapping):
            for index in ("hnsw", "spann"):
                settings = configuration.get(index)
                if isinstance(settings, Mapping) and isinstance(settings.get("space"), str):
                    return str(settings["space"]).lower()
    except Exception:
        pass
    try:
        metadata = collection.metadata
        if isinstance(metadata, Mapping) and isinstance(metadata.get("hnsw:space"), str):
            return str(metadata["hnsw:space"]).lower()
    except Exception:
        pass
    return "l2"


def _describe_query(
    collection: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> RetrievalRequest:
    n_results = call_argument(args, kwargs, "n_results", _QUERY_POSITIONS["n_results"], 10)
    return RetrievalRequest(_name(collection), positive_int(n_results))


@dataclass(slots=True)
class _Columns:
    """The columns of one query's result, copied (chromadb returns them as plain lists the
    caller owns), so that :meth:`chunks` can run later on the processor's worker."""

    ids: list[Any]
    documents: list[Any] | None
    metadatas: list[Any] | None
    distances: list[Any] | None
    embeddings: Any  # a list of numpy arrays (or a 2-D array): not copied, read as returned
    collection: Any  # its distance function (fixed at creation) is read only when needed

    @classmethod
    def copy(
        cls,
        ids: Any,
        documents: Any,
        metadatas: Any,
        distances: Any = None,
        embeddings: Any = None,
        collection: Any = None,
    ) -> _Columns:
        return cls(
            list(ids or ()),
            None if documents is None else list(documents),
            None if metadatas is None else [_metadata_copy(value) for value in metadatas],
            None if distances is None else list(distances),
            embeddings,
            collection,
        )

    @property
    def text_chars(self) -> int:
        documents = self.documents or ()
        return sum(len(text) for text in documents if isinstance(text, (str, bytes)))

    def chunks(self) -> list[Chunk]:
        documents, metadatas, distances = self.documents, self.metadatas, self.distances
        embeddings = self.embeddings
        space = None if distances is None else collection_space(self.collection)
        return [
            Chunk(
                store_id=store_id,
                text=as_text(_at(documents, rank)),
                metadata=_metadata(_at(metadatas, rank)),
                score=None if space is None else _score(space, _at(distances, rank)),
                embedding=_at(embeddings, rank),
            )
            for rank, store_id in enumerate(self.ids)
        ]


def _metadata_copy(value: Any) -> dict[str, Any] | None:
    return dict(value) if isinstance(value, Mapping) else None


def _query_sets(
    collection: Any, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any
) -> list[RetrievalSet]:
    query_texts = _as_list(_argument(args, kwargs, _QUERY_POSITIONS, "query_texts"))
    sets: list[RetrievalSet] = []
    for query_index, ids in enumerate(result.get("ids") or ()):
        columns = _Columns.copy(
            ids,
            _at(result.get("documents"), query_index),
            _at(result.get("metadatas"), query_index),
            _at(result.get("distances"), query_index),
            _at(result.get("embeddings"), query_index),
            collection,
        )
        sets.append(
            RetrievalSet(
                columns.chunks,
                query_text=as_text(_at(query_texts, query_index)),
                retrieval_method=RagRetrievalMethodValues.DENSE,
                text_chars=columns.text_chars,
            )
        )
    return sets


def _score(space: str, distance: object) -> float | None:
    return None if as_float(distance) is None else distance_to_similarity(space, distance)


def _metadata(value: Any) -> Mapping[str, Any] | None:
    return value if isinstance(value, Mapping) else None


def _describe_get(
    collection: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> RetrievalRequest | None:
    filters = [_argument(args, kwargs, _GET_POSITIONS, name) for name in ("ids", "where")]
    filters.append(_argument(args, kwargs, _GET_POSITIONS, "where_document"))
    if all(value is None for value in filters):
        return None
    return RetrievalRequest(
        _name(collection), positive_int(_argument(args, kwargs, _GET_POSITIONS, "limit"))
    )


def _get_sets(
    collection: Any, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any
) -> list[RetrievalSet]:
    columns = _Columns.copy(
        result.get("ids"),
        result.get("documents"),
        result.get("metadatas"),
        embeddings=result.get("embeddings"),
    )
    return [RetrievalSet(columns.chunks, text_chars=columns.text_chars)]


def _written_chunks(args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Chunk]:
    ids = _as_list(_argument(args, kwargs, _WRITE_POSITIONS, "ids")) or []
    documents = _as_list(_argument(args, kwargs, _WRITE_POSITIONS, "documents"))
    metadatas = _as_list(_argument(args, kwargs, _WRITE_POSITIONS, "metadatas"))
    return [
        Chunk(
            store_id=store_id,
            text=as_text(_at(documents, index)),
            metadata=_metadata(_at(metadatas, index)),
        )
        for index, store_id in enumerate(ids)
    ]


def _describe_add(collection: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> IngestRequest:
    return IngestRequest(_name(collection), "add", _written_chunks(args, kwargs))


def _describe_upsert(
    collection: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> IngestRequest:
    return IngestRequest(_name(collection), "upsert", _written_chunks(args, kwargs))

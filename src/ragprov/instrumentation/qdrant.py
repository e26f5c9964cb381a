"""Instrumentation of qdrant-client (``QdrantClient`` and ``AsyncQdrantClient``).

Patched methods (sync and async):

* ``query_points`` — one retrieval set; ``query_batch_points`` — one set per request (see the
  batch rule in :mod:`ragprov.instrumentation._base`); ``query_points_groups`` — the hits of all
  groups, in group order, as one set (``top_k`` = ``limit × group_size``);
* ``retrieve`` and ``scroll`` with a ``scroll_filter`` — unscored retrievals
  (``rag.retrieval_method = unknown``); a bare ``scroll`` (paging) is not traced;
* ``search``, ``search_batch``, ``search_groups`` — only where the installed client still has
  them (removed in qdrant-client 1.13+); never required;
* ``upsert`` — an ingestion span ``upsert {collection}``;
* ``upload_points`` and ``upload_collection`` — ingestion spans (``db.operation.name`` is the
  method name). Their inputs may be generators, which are never consumed here: chunk ids and
  quality are read only from lists and tuples of at most ``MAX_INGEST_CHUNK_IDS`` items; larger
  sized inputs (lists, numpy arrays) are only counted, and generators give a span without ids
  or count.

Scores: qdrant returns similarities for ``Cosine`` and ``Dot`` (kept) and distances for
``Euclid`` and ``Manhattan`` (converted to ``1 / (1 + d)``). The collection's metric is read once
per client, collection and vector name (``get_collection``, with instrumentation suppressed) and
cached. Fusion (RRF/DBSF), formula, text (BM25), sparse, recommend/discover/context and order-by
scores are kept as returned.

Chunk text is read from the payload keys ``text``, ``page_content`` (LangChain), ``content``,
``document``, else from LlamaIndex's ``_node_content`` JSON; metadata is the payload with a nested
``metadata`` mapping (LangChain) merged over it.

Usage: ``QdrantInstrumentor().instrument(tracer_provider=...)`` or ``opentelemetry-instrument``
(entry point ``ragprov_qdrant``).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import threading
import weakref
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry.instrumentation.utils import suppress_instrumentation

from ragprov.instrumentation._base import (
    MAX_INGEST_CHUNK_IDS,
    Chunk,
    IngestRequest,
    RetrievalRequest,
    RetrievalSet,
    StoreTracer,
    VectorStoreInstrumentor,
    as_float,
    l2_distance_to_similarity,
    positive_int,
    record_metadata,
    record_text,
)
from ragprov.instrumentation._patching import call_argument, log_once
from ragprov.semconv.attributes import RagRetrievalMethodValues

DB_SYSTEM = "qdrant"
SUPPORTED_VERSIONS = ("qdrant-client >= 1.10, < 2",)

DISTANCE_METRICS = frozenset({"euclid", "manhattan"})

Method = RagRetrievalMethodValues


class QdrantInstrumentor(VectorStoreInstrumentor):
    """Retrieval and ingestion spans for qdrant-client."""

    db_system = DB_SYSTEM

    def instrumentation_dependencies(self) -> Collection[str]:
        return SUPPORTED_VERSIONS

    def _patch(self, store: StoreTracer) -> None:
        from qdrant_client import AsyncQdrantClient, QdrantClient

        for name, (describe, read) in _RETRIEVALS.items():
            self._wrap(QdrantClient, name, store.retrieval_wrapper(describe, _sync_extractor(read)))
            self._wrap(
                AsyncQdrantClient,
                name,
                store.async_retrieval_wrapper(describe, _async_extractor(read)),
            )
        self._wrap(QdrantClient, "upsert", store.ingest_wrapper(_describe_upsert))
        self._wrap(AsyncQdrantClient, "upsert", store.async_ingest_wrapper(_describe_upsert))
        for name, describe_upload in _UPLOADS.items():
            self._wrap(QdrantClient, name, store.ingest_wrapper(describe_upload))
            # AsyncQdrantClient's uploads are plain methods in 1.20; wrap what the class has.
            is_coroutine = inspect.iscoroutinefunction(getattr(AsyncQdrantClient, name, None))
            wrapper = store.async_ingest_wrapper if is_coroutine else store.ingest_wrapper
            self._wrap(AsyncQdrantClient, name, wrapper(describe_upload))


# --------------------------------------------------------------------------- payloads

payload_text = record_text
payload_metadata = record_metadata


def _vector(vector: Any, using: str | None) -> Any:
    """A dense vector of a point (the ``using`` one when vectors are named), else None."""
    if isinstance(vector, Mapping):
        vector = vector.get(using or "")
    if (
        isinstance(vector, (list, tuple))
        and vector
        and all(isinstance(value, (int, float)) for value in vector)
    ):
        return vector
    return None


# --------------------------------------------------------------------------- queries


@dataclass(slots=True)
class _Query:
    """One qdrant query of a call, as far as provenance is concerned."""

    collection: str
    points: Sequence[Any]
    method: Method
    is_distance: bool  # nearest-neighbour scores that follow the collection's metric
    using: str | None = None
    query_text: str | None = None
    top_k: int | None = None
    scored: bool = True


@functools.cache
def _model_types(*names: str) -> tuple[type, ...]:
    """The qdrant model classes of these names that the installed client has.

    ``qdrant_client.models`` re-exports the REST models and, before 1.12, also defines the
    client-side inference models (``Document`` lived in ``qdrant_client.embed.models``).
    """
    from qdrant_client import models

    found = (getattr(models, name, None) for name in names)
    return tuple(cls for cls in found if isinstance(cls, type))


def classify(query: Any, using: str | None, prefetch: Any) -> tuple[Method, bool, str | None]:
    """(retrieval method, scores follow the metric, query text) of a ``query_points`` query."""
    if query is None:
        return Method.UNKNOWN, False, None
    if type(query) is list:  # a plain dense vector, the common case: no model class checks
        return (Method.RERANKED if prefetch else Method.DENSE), True, None
    if isinstance(query, _model_types("FusionQuery", "RrfQuery")):
        return Method.HYBRID, False, None
    if isinstance(query, _model_types("FormulaQuery")):
        return Method.RERANKED, False, None
    if isinstance(query, _model_types("TextQuery")):
        text = getattr(query, "text", None)
        return Method.SPARSE, False, text if isinstance(text, str) else None
    if isinstance(query, _model_types("OrderByQuery", "SampleQuery")):
        return Method.UNKNOWN, False, None
    if isinstance(
        query,
        _model_types("RecommendQuery", "DiscoverQuery", "ContextQuery", "RelevanceFeedbackQuery"),
    ):
        return Method.DENSE, False, None
    if isinstance(query, _model_types("NearestQuery")):
        nearest = getattr(query, "nearest", None)
        if getattr(query, "mmr", None) is not None:  # MMR re-scores the neighbours
            return Method.RERANKED, False, classify(nearest, using, None)[2]
        query = nearest
    if isinstance(query, _model_types("SparseVector")):
        return Method.SPARSE, False, None
    text = getattr(query, "text", None) if isinstance(query, _model_types("Document")) else None
    method = Method.RERANKED if prefetch else Method.DENSE
    return method, True, text if isinstance(text, str) else None


def _points(result: Any) -> Sequence[Any]:
    points = getattr(result, "points", result)
    return points if isinstance(points, Sequence) else ()


def _read_query_points(
    client: Any, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any
) -> list[_Query]:
    collection = call_argument(args, kwargs, "collection_name", 0)
    query = call_argument(args, kwargs, "query", 1)
    using = call_argument(args, kwargs, "using", 2)
    prefetch = call_argument(args, kwargs, "prefetch", 3)
    method, is_distance, text = classify(query, using, prefetch)
    return [_Query(collection, _points(result), method, is_distance, using, text)]


def _read_query_batch(
    client: Any, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any
) -> list[_Query]:
    collection = call_argument(args, kwargs, "collection_name", 0)
    requests = list(call_argument(args, kwargs, "requests", 1) or ())
    queries: list[_Query] = []
    for index, response in enumerate(result or ()):
        request = requests[index] if index < len(requests) else None
        query = getattr(request, "query", None)
        using = getattr(request, "using", None)
        method, is_distance, text = classify(query, using, getattr(request, "prefetch", None))
        top_k = positive_int(getattr(request, "limit", None)) or 10
        points = _points(response)
        queries.append(_Query(collection, points, method, is_distance, using, text, top_k))
    return queries


def _read_query_groups(
    client: Any, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any
) -> list[_Query]:
    collection = call_argument(args, kwargs, "collection_name", 0)
    query = call_argument(args, kwargs, "query", 2)
    using = call_argument(args, kwargs, "using", 3)
    prefetch = call_argument(args, kwargs, "prefetch", 4)
    method, is_distance, text = classify(query, using, prefetch)
    points = [hit for group in getattr(result, "groups", ()) for hit in group.hits]
    return [_Query(collection, points, method, is_distance, using, text)]


def _read_records(
    client: Any, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any
) -> list[_Query]:
    """``retrieve`` returns records, ``scroll`` (records, next offset)."""
    collection = call_argument(args, kwargs, "collection_name", 0)
    records = result[0] if isinstance(result, tuple) else result
    return [_Query(collection, list(records or ()), Method.UNKNOWN, False, scored=False)]


def _legacy_search_using(query_vector: Any) -> tuple[str | None, Any]:
    """``search(query_vector=...)``: a vector, a (name, vector) pair or a NamedVector."""
    if isinstance(query_vector, tuple) and len(query_vector) == 2:
        return query_vector[0], query_vector[1]
    name = getattr(query_vector, "name", None)
    if isinstance(name, str):
        return name, getattr(query_vector, "vector", None)
    return None, query_vector


def _read_search(
    client: Any, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any
) -> list[_Query]:
    collection = call_argument(args, kwargs, "collection_name", 0)
    using, vector = _legacy_search_using(call_argument(args, kwargs, "query_vector", 1))
    method, is_distance, _ = classify(vector, using, None)
    return [_Query(collection, _points(result), method, is_distance, using)]


def _read_search_batch(
    client: Any, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any
) -> list[_Query]:
    collection = call_argument(args, kwargs, "collection_name", 0)
    requests = list(call_argument(args, kwargs, "requests", 1) or ())
    queries: list[_Query] = []
    for index, points in enumerate(result or ()):
        request = requests[index] if index < len(requests) else None
        using, vector = _legacy_search_using(getattr(request, "vector", None))
        method, is_distance, _ = classify(vector, using, None)
        top_k = positive_int(getattr(request, "limit", None))
        queries.append(_Query(collection, list(points), method, is_distance, using, None, top_k))
    return queries


def _read_search_groups(
    client: Any, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any
) -> list[_Query]:
    collection = call_argument(args, kwargs, "collection_name", 0)
    using, vector = _legacy_search_using(call_argument(args, kwargs, "query_vector", 1))
    method, is_distance, _ = classify(vector, using, None)
    points = [hit for group in getattr(result, "groups", ()) for hit in group.hits]
    return [_Query(collection, points, method, is_distance, using)]


# --------------------------------------------------------------------------- describe


def _collection(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    name = call_argument(args, kwargs, "collection_name", 0)
    return name if isinstance(name, str) and name else None


def _describe_limit(position: int, default: int | None = 10) -> Callable[..., RetrievalRequest]:
    def describe(client: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> RetrievalRequest:
        limit = call_argument(args, kwargs, "limit", position, default)
        return RetrievalRequest(_collection(args, kwargs), positive_int(limit))

    return describe


def _describe_plain(client: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> RetrievalRequest:
    return RetrievalRequest(_collection(args, kwargs))


def _describe_groups(
    client: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> RetrievalRequest:
    limit = positive_int(call_argument(args, kwargs, "limit", 7, 10))
    group_size = positive_int(call_argument(args, kwargs, "group_size", 8, 3))
    top_k = limit * group_size if limit and group_size else None
    return RetrievalRequest(_collection(args, kwargs), top_k)


def _describe_scroll(
    client: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> RetrievalRequest | None:
    if call_argument(args, kwargs, "scroll_filter", 1) is None:
        return None  # paging through a collection is not a retrieval
    limit = call_argument(args, kwargs, "limit", 2, 10)
    return RetrievalRequest(_collection(args, kwargs), positive_int(limit))


Reader = Callable[[Any, tuple[Any, ...], dict[str, Any], Any], list[_Query]]

# method name → (describe, read); absent methods are skipped by _wrap.
_RETRIEVALS: dict[str, tuple[Callable[..., RetrievalRequest | None], Reader]] = {
    "query_points": (_describe_limit(6), _read_query_points),
    "query_batch_points": (_describe_plain, _read_query_batch),
    "query_points_groups": (_describe_groups, _read_query_groups),
    "retrieve": (_describe_plain, _read_records),
    "scroll": (_describe_scroll, _read_records),
    "search": (_describe_limit(4), _read_search),
    "search_batch": (_describe_plain, _read_search_batch),
    "search_groups": (_describe_groups, _read_search_groups),
}


# --------------------------------------------------------------------------- metrics


class _MetricCache:
    """Distance metric per (client, collection, vector name); weak on the client."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_client: weakref.WeakKeyDictionary[Any, dict[tuple[str, str], str]] = (
            weakref.WeakKeyDictionary()
        )

    def get(self, client: Any, collection: str, using: str | None) -> str | None:
        with self._lock:
            try:
                return self._by_client.get(client, {}).get((collection, using or ""))
            except TypeError:  # not weak-referenceable
                return None

    def put(self, client: Any, collection: str, using: str | None, metric: str) -> None:
        # A client that is not weak-referenceable is not cached (TypeError).
        with self._lock, contextlib.suppress(TypeError):
            self._by_client.setdefault(client, {})[(collection, using or "")] = metric

    def clear(self) -> None:
        with self._lock:
            self._by_client = weakref.WeakKeyDictionary()


metric_cache = _MetricCache()


def metric_from_info(info: Any, using: str | None) -> str:
    """The lower-case distance name of vector ``using`` from a ``CollectionInfo``, or ""."""
    vectors = getattr(getattr(getattr(info, "config", None), "params", None), "vectors", None)
    if isinstance(vectors, Mapping):
        if using in vectors:
            vectors = vectors[using]
        elif len(vectors) == 1:
            vectors = next(iter(vectors.values()))
        else:
            return ""
    distance = getattr(vectors, "distance", None)
    value = getattr(distance, "value", distance)
    return value.lower() if isinstance(value, str) else ""


def _needs_metric(queries: Sequence[_Query]) -> list[tuple[str, str | None]]:
    return list(
        dict.fromkeys(
            (query.collection, query.using)
            for query in queries
            if query.is_distance and query.points and isinstance(query.collection, str)
        )
    )


def _lookup_metric_sync(client: Any, collection: str, using: str | None) -> str:
    metric = metric_cache.get(client, collection, using)
    if metric is None:
        with suppress_instrumentation():
            metric = metric_from_info(client.get_collection(collection), using)
        metric_cache.put(client, collection, using, metric)
    return metric


async def _lookup_metric_async(client: Any, collection: str, using: str | None) -> str:
    metric = metric_cache.get(client, collection, using)
    if metric is None:
        with suppress_instrumentation():
            metric = metric_from_info(await client.get_collection(collection), using)
        metric_cache.put(client, collection, using, metric)
    return metric


# --------------------------------------------------------------------------- sets


def _payload_copy(payload: Any) -> dict[str, Any] | None:
    """A shallow copy of a point's payload (a ``dict`` for REST and local results).

    Callers mutate payloads after the call (LangChain adds ``_id`` and ``_collection_name`` to
    the nested ``metadata``) while the worker may read them: the copy keeps the top level as
    returned; a nested mapping is only ever read by one C-level merge (:func:`record_metadata`),
    which sees it either before or after such a change, never half-way.
    """
    if type(payload) is dict:
        return payload.copy()
    return dict(payload) if isinstance(payload, Mapping) else None


@dataclass(slots=True)
class _Points:
    """One query's points, kept for :meth:`chunks` (which may run on the processor's worker).

    The application thread copies each point's id, score, vector and payload top level into one
    flat list (four items per point) rather than keeping the caller's point objects alive: a
    pydantic point is several objects, and a tuple per point one more, that the garbage
    collector would trace until the worker is done with them.
    """

    fields: list[Any]  # id, score, vector, payload copy; id, score, …
    scored: bool  # False: unscored records (retrieve, scroll)
    using: str | None
    convert: bool  # scores are distances (Euclid, Manhattan): 1 / (1 + d)

    @classmethod
    def read(cls, query: _Query, convert: bool) -> _Points:
        fields: list[Any] = []
        for point in query.points:
            payload = getattr(point, "payload", None)
            fields += (
                getattr(point, "id", None),
                getattr(point, "score", None),
                getattr(point, "vector", None),
                # dict.copy inline: the common case, without a call per point
                payload.copy() if type(payload) is dict else _payload_copy(payload),
            )
        return cls(fields, query.scored, query.using, convert)

    def chunks(self) -> list[Chunk]:
        chunks = []
        fields = self.fields
        for index in range(0, len(fields), 4):
            point_id, raw_score, vector, payload = fields[index : index + 4]
            score = as_float(raw_score) if self.scored else None
            if self.convert and score is not None:
                score = l2_distance_to_similarity(score)
            chunks.append(
                Chunk(
                    store_id=point_id,
                    text=payload_text(payload),
                    metadata=payload_metadata(payload),
                    score=score,
                    embedding=_vector(vector, self.using),
                )
            )
        return chunks


def _to_sets(
    queries: Sequence[_Query], metrics: Mapping[tuple[str, str | None], str]
) -> list[RetrievalSet]:
    sets: list[RetrievalSet] = []
    for query in queries:
        convert = query.is_distance and metrics.get((query.collection, query.using), "") in (
            DISTANCE_METRICS
        )
        points = _Points.read(query, convert)
        sets.append(RetrievalSet(points.chunks, query.query_text, query.method, query.top_k))
    return sets


def _sync_extractor(read: Reader) -> Callable[..., list[RetrievalSet]]:
    def extract(
        client: Any, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any
    ) -> list[RetrievalSet]:
        queries = read(client, args, kwargs, result)
        metrics: dict[tuple[str, str | None], str] = {}
        for collection, using in _needs_metric(queries):
            try:
                metrics[(collection, using)] = _lookup_metric_sync(client, collection, using)
            except Exception:
                log_once("could not read a qdrant collection's distance metric")
        return _to_sets(queries, metrics)

    return extract


def _async_extractor(read: Reader) -> Callable[..., Awaitable[list[RetrievalSet]]]:
    async def extract(
        client: Any, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any
    ) -> list[RetrievalSet]:
        queries = read(client, args, kwargs, result)
        metrics: dict[tuple[str, str | None], str] = {}
        for collection, using in _needs_metric(queries):
            try:
                metrics[(collection, using)] = await _lookup_metric_async(client, collection, using)
            except Exception:
                log_once("could not read a qdrant collection's distance metric")
        return _to_sets(queries, metrics)

    return extract


# --------------------------------------------------------------------------- ingestion


def _describe_upsert(client: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> IngestRequest:
    points = call_argument(args, kwargs, "points", 1)
    chunks: list[Chunk] = []
    batch_ids = getattr(points, "ids", None)
    if batch_ids is not None and not isinstance(points, Sequence):  # models.Batch
        payloads = list(getattr(points, "payloads", None) or ())
        for index, point_id in enumerate(batch_ids):
            payload = payloads[index] if index < len(payloads) else None
            chunks.append(Chunk(point_id, payload_text(payload), payload_metadata(payload)))
    else:
        chunks = [_point_chunk(point) for point in points or ()]
    return IngestRequest(_collection(args, kwargs), "upsert", chunks)


def _point_chunk(point: Any) -> Chunk:
    payload = getattr(point, "payload", None)
    if not isinstance(payload, Mapping):
        payload = None  # gRPC PointStruct payloads are protobuf maps of Values
    return Chunk(getattr(point, "id", None), payload_text(payload), payload_metadata(payload))


def _listed(values: Any) -> Sequence[Any] | None:
    """A list or tuple of at most MAX_INGEST_CHUNK_IDS items, else None: an upload's iterables
    may be generators (never consumed here) or bulk loads (only counted)."""
    if isinstance(values, (list, tuple)) and len(values) <= MAX_INGEST_CHUNK_IDS:
        return values
    return None


def _count(values: Any) -> int | None:
    if isinstance(values, (str, bytes, Mapping)) or not hasattr(values, "__len__"):
        return None  # a dict of named vectors has one entry per name, not per point
    try:
        return len(values)
    except TypeError:
        return None


def _describe_upload_points(
    client: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> IngestRequest:
    points = call_argument(args, kwargs, "points", 1)
    listed = _listed(points)
    chunks = [] if listed is None else [_point_chunk(point) for point in listed]
    count = None if listed is not None else _count(points)
    return IngestRequest(_collection(args, kwargs), "upload_points", chunks, count)


def _describe_upload_collection(
    client: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> IngestRequest:
    vectors = call_argument(args, kwargs, "vectors", 1)
    payloads = call_argument(args, kwargs, "payload", 2)
    point_ids = call_argument(args, kwargs, "ids", 3)
    listed_ids, listed_payloads = _listed(point_ids), _listed(payloads)
    chunks: list[Chunk] = []
    if listed_ids is not None and (payloads is None or listed_payloads is not None):
        for index, point_id in enumerate(listed_ids):
            payload = None
            if listed_payloads is not None and index < len(listed_payloads):
                payload = listed_payloads[index]
            if not isinstance(payload, Mapping):
                payload = None
            chunks.append(Chunk(point_id, payload_text(payload), payload_metadata(payload)))
    count = None if chunks else _count(vectors)
    return IngestRequest(_collection(args, kwargs), "upload_collection", chunks, count)


_UPLOADS: dict[str, Callable[..., IngestRequest | None]] = {
    "upload_points": _describe_upload_points,
    "upload_collection": _describe_upload_collection,
}

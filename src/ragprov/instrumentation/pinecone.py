"""Instrumentation of the Pinecone client (package ``pinecone``, a cloud-only service).

Patched methods, on whichever of these classes the installed client has:

* sync index — ``pinecone.index.Index`` (pinecone 9+), ``pinecone.db_data.index.Index`` (7–8),
  ``pinecone.data.index.Index`` (5.1–6); gRPC — ``pinecone.grpc.GrpcIndex`` (9+, the transport
  ships in the wheel) and ``pinecone.grpc.GRPCIndex`` (5.1–8, only with the ``grpc`` extra);
* asyncio index — ``pinecone.async_client.async_index.AsyncIndex`` (9+, also returned by
  ``Pinecone.IndexAsyncio``), ``_IndexAsyncio`` of ``pinecone.db_data.index_asyncio`` (7–8) and
  ``pinecone.data.index_asyncio`` (6, with the ``asyncio`` extra);
* ``query`` — one retrieval span ``retrieval {index}``: ``dense`` for a vector or an ``id``,
  ``sparse`` for a sparse vector alone, ``hybrid`` for both;
  ``query_namespaces`` — one span for the merged ranking the call returns (its per-namespace
  queries run inside it and get no spans of their own; ``top_k`` defaults to 10 as in the client);
* ``search`` / ``search_records`` (the records API of integrated-embedding indexes, pinecone
  10's flat keyword form or the nested ``query=`` form; no patch where the client lacks them,
  as 5.1 does) — one retrieval span ``retrieval {index}`` whose set is the ``hits`` in the
  service's order: ``reranked`` with ``rerank``, ``sparse`` / ``hybrid`` for a ``vector`` with
  ``sparse_indices``, ``sparse`` for ``match_terms``, else ``dense`` (text ``inputs`` are
  embedded by the index's hosted model, which the data plane does not name; most are dense).
  The chunk text is the hit field named first in ``rerank.rank_fields`` (the caller said the
  text is there), else ``chunk_text`` (the field map ``{"text": "chunk_text"}`` of Pinecone's
  documentation), else the keys of the metadata rule below. The index's real field map is only
  on the control plane (``describe_index``) — not looked up: a call to another API per index.
  Every returned field is the chunk's metadata; ``inputs["text"]`` is the query text. Scores
  are kept, except that a search without rerank on an index already known to be euclidean
  (from an earlier ``query``) converts its distances; a search never asks the index;
* ``upsert`` — an ingestion span ``upsert {index}``;
* calls with the legacy ``async_req=True`` / ``async_threadpool_executor=True`` (pinecone < 9),
  which return a future instead of a result, are not traced.

``{index}`` (``gen_ai.data_source.id``) is the index name, read from the index host
(``{name}-{project}.svc.{environment}.pinecone.io``); for other hosts (Pinecone Local, a proxy)
it is the host itself (``host:port``).

Scores: Pinecone returns the similarity for ``cosine`` and ``dotproduct`` indexes (kept) and the
*squared Euclidean distance* for ``euclidean`` indexes (converted to ``1 / (1 + d)``, as for the
other stores' L2 distances). A query response does not name the metric, so it is found, per index
host, once and then cached:

1. the ``metric`` argument of ``query_namespaces``;
2. the order of the scores: Pinecone returns matches most similar first, so scores that go *up*
   from the first match to the last are distances (euclidean) and scores that go down are
   similarities — decisive for any result with two different scores, at no cost;
3. otherwise (one match, or all scores equal) the index's ``describe_index_stats``, called once
   with instrumentation suppressed (its ``metric`` field; older API versions omit it);
4. unknown: scores are kept (``cosine`` is Pinecone's default metric).

Chunk text is the first of the metadata keys ``text`` (Pinecone's and LangChain's default
``text_key``), ``page_content``, ``content``, ``document``, else ``text`` inside LlamaIndex's
``_node_content`` JSON; the metadata (with a nested ``metadata`` mapping merged over it) gives
``chunk_id``, quality and ``source_document_id``. Returned ``values`` (``include_values=True``)
are handed to the processor as embeddings.

Pinecone (9+) copies ``query`` and ``upsert`` onto each ``Index`` object when it is created (for
its ``async_req`` shim). Index objects created *before* ``instrument()`` therefore keep calling
the uninstrumented methods; the ones created while instrumented pass through without spans
after ``uninstrument()`` (and follow a later ``instrument()``). ``opentelemetry-instrument``
instruments before the application runs, so this only matters for a manual ``instrument()``
after an index was opened.

The client's own worker threads (``query_namespaces`` fan-out, the gRPC ``*_async`` methods) run
with the OpenTelemetry context of the call that submitted them, so their work nests under it.

Usage: ``PineconeInstrumentor().instrument(tracer_provider=...)`` or ``opentelemetry-instrument``
(entry point ``ragprov_pinecone``).
"""

from __future__ import annotations

import contextvars
import importlib
import re
import threading
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
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
from ragprov.instrumentation._patching import Wrapper, call_argument, log_once
from ragprov.semconv.attributes import RagRetrievalMethodValues

DB_SYSTEM = "pinecone"
SUPPORTED_VERSIONS = ("pinecone >= 5.1, < 11",)

Method = RagRetrievalMethodValues

#: (module, class) of the sync and of the asyncio index classes, newest layout first.
SYNC_INDEX_CLASSES = (
    ("pinecone.index", "Index"),
    ("pinecone.db_data.index", "Index"),
    ("pinecone.data.index", "Index"),
    ("pinecone.grpc", "GrpcIndex"),
    ("pinecone.grpc", "GRPCIndex"),
)
ASYNC_INDEX_CLASSES = (
    ("pinecone.async_client.async_index", "AsyncIndex"),
    ("pinecone.db_data.index_asyncio", "_IndexAsyncio"),
    ("pinecone.data.index_asyncio", "_IndexAsyncio"),
)
#: Modules whose ``ThreadPoolExecutor`` runs the client's own fan-out.
EXECUTOR_MODULES = ("pinecone.index", "pinecone.grpc")

#: The records API of integrated-embedding indexes (``search_records`` is an alias of ``search``
#: in pinecone 10; the alias's inner ``search`` call passes through without a span of its own).
SEARCH_METHODS = ("search", "search_records")
#: Where an integrated index keeps the chunk text when no rerank field names it: Pinecone's
#: documented field map ``{"text": "chunk_text"}``, then the keys of ``record_text``.
SEARCH_TEXT_FIELD = "chunk_text"

#: Keyword arguments of pinecone < 9 that make a call return a future instead of a result.
LEGACY_ASYNC_KWARGS = ("async_req", "async_threadpool_executor")

EUCLIDEAN = "euclidean"
SIMILARITY = "similarity"  # cosine or dotproduct, told apart only by describe_index_stats
UNKNOWN = ""
KNOWN_METRICS = {"cosine": "cosine", "dotproduct": "dotproduct", "euclidean": EUCLIDEAN}

_INDEX_HOST = re.compile(
    r"^(?P<name>[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)-[a-z0-9]{7}\.svc\.[a-z0-9.-]+\.pinecone\.io$"
)


class PineconeInstrumentor(VectorStoreInstrumentor):
    """Retrieval and ingestion spans for the Pinecone client."""

    db_system = DB_SYSTEM

    def instrumentation_dependencies(self) -> Collection[str]:
        return SUPPORTED_VERSIONS

    def _patch(self, store: StoreTracer) -> None:
        importlib.import_module("pinecone")  # ModuleNotFoundError: not installed
        gate = _SWITCH.gate
        query = gate("query", store.retrieval_wrapper(_describe_query, _sync_query_sets))
        namespaces = gate(
            "query_namespaces", store.retrieval_wrapper(_describe_namespaces, _namespaces_sets)
        )
        upsert = gate("upsert", store.ingest_wrapper(_describe_upsert))
        search = gate("search", store.retrieval_wrapper(_describe_search, _search_sets))
        for cls in _classes(SYNC_INDEX_CLASSES):
            self._wrap(cls, "query", query)
            self._wrap(cls, "query_namespaces", namespaces)
            self._wrap(cls, "upsert", upsert)
            for name in SEARCH_METHODS:  # absent before the records API: _wrap skips them
                self._wrap(cls, name, search)
        async_query = gate(
            "async query", store.async_retrieval_wrapper(_describe_query, _async_query_sets)
        )
        async_namespaces = gate(
            "async query_namespaces",
            store.async_retrieval_wrapper(_describe_namespaces, _namespaces_sets),
        )
        async_upsert = gate("async upsert", store.async_ingest_wrapper(_describe_upsert))
        async_search = gate(
            "async search", store.async_retrieval_wrapper(_describe_search, _search_sets)
        )
        for cls in _classes(ASYNC_INDEX_CLASSES):
            self._wrap(cls, "query", async_query)
            self._wrap(cls, "query_namespaces", async_namespaces)
            self._wrap(cls, "upsert", async_upsert)
            for name in SEARCH_METHODS:
                self._wrap(cls, name, async_search)
        for module_name in EXECUTOR_MODULES:
            module = _module(module_name)
            executor = getattr(module, "ThreadPoolExecutor", None)
            if isinstance(executor, type) and issubclass(executor, ThreadPoolExecutor):
                self._wrap(module, "ThreadPoolExecutor", _context_executor)

    def _uninstrument(self, **kwargs: Any) -> None:
        _SWITCH.clear()
        super()._uninstrument(**kwargs)


# --------------------------------------------------------------------------- patching helpers


class _Switch:
    """The wrapper currently in force for each patched method (none while uninstrumented).

    pinecone 9+ copies ``query`` and ``upsert`` onto each index object when it is created, so an
    index created while instrumented keeps the wrapper it copied. Every wrapper installed here
    defers to the one in force: after ``uninstrument()`` such a copy passes straight through,
    and after a new ``instrument()`` it uses the new tracer provider.
    """

    def __init__(self) -> None:
        self._current: dict[str, Wrapper] = {}

    def gate(self, key: str, wrapper: Wrapper) -> Wrapper:
        self._current[key] = wrapper
        current = self._current

        def gated(
            wrapped: Callable[..., Any],
            instance: Any,
            args: tuple[Any, ...],
            kwargs: dict[str, Any],
        ) -> Any:
            active = current.get(key)
            if active is None:
                return wrapped(*args, **kwargs)
            return active(wrapped, instance, args, kwargs)

        return gated

    def clear(self) -> None:
        self._current.clear()


_SWITCH = _Switch()


def _module(name: str) -> Any:
    """The module, or None when this client version does not have it (or misses an extra)."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None
    except Exception:
        log_once(f"could not import {name}")
        return None


def _classes(locations: Sequence[tuple[str, str]]) -> list[type]:
    found: list[type] = []
    for module_name, class_name in locations:
        cls = getattr(_module(module_name), class_name, None)
        if isinstance(cls, type) and cls not in found:
            found.append(cls)
    return found


class _ContextThreadPoolExecutor(ThreadPoolExecutor):
    """Runs each task in a copy of the submitting thread's context (OpenTelemetry context
    included), so the client's worker threads belong to the call that started them."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        return super().submit(contextvars.copy_context().run, fn, *args, **kwargs)


def _context_executor(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    if wrapped is not ThreadPoolExecutor:  # a client that subclasses it: leave it alone
        return wrapped(*args, **kwargs)
    return _ContextThreadPoolExecutor(*args, **kwargs)


# --------------------------------------------------------------------------- index identity


def _field(value: Any, name: str) -> Any:
    """``value.name`` or ``value[name]``; None when absent (the OpenAPI models of pinecone < 9
    raise on unknown attributes)."""
    if isinstance(value, Mapping):
        return value.get(name)
    try:
        return getattr(value, name, None)
    except Exception:
        return None


def index_host(index: Any) -> str | None:
    """The index's data-plane host without scheme or path (``name-abc1234.svc.…`` or
    ``host:port``)."""
    host = _field(index, "_host")
    if not isinstance(host, str):
        config = _field(index, "_config") or _field(index, "config")
        host = _field(config, "host")
    if not isinstance(host, str) or not host:
        return None
    host = host.split("://", 1)[-1]
    return host.split("/", 1)[0] or None


def index_name(host: str | None) -> str | None:
    """The index name in a Pinecone host (``{name}-{project}.svc.{env}.pinecone.io``), else the
    host itself."""
    if host is None:
        return None
    match = _INDEX_HOST.match(host.split(":", 1)[0].lower())
    return match.group("name") if match else host


# --------------------------------------------------------------------------- metrics


class _MetricCache:
    """Metric per index host ("euclidean", "cosine", "dotproduct", "similarity" or "" unknown).

    Hosts are few and an index's metric never changes, so a small bounded dict suffices.
    """

    MAX_HOSTS = 1024

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_host: dict[str, str] = {}

    def get(self, host: str | None) -> str | None:
        if host is None:
            return None
        with self._lock:
            return self._by_host.get(host)

    def put(self, host: str | None, metric: str) -> None:
        if host is None:
            return
        with self._lock:
            known = self._by_host.get(host)
            if known in KNOWN_METRICS and metric == SIMILARITY:
                return  # "cosine" / "dotproduct" says more than an inferred "similarity"
            if known is None and len(self._by_host) >= self.MAX_HOSTS:
                self._by_host.pop(next(iter(self._by_host)))
            self._by_host[host] = metric

    def clear(self) -> None:
        with self._lock:
            self._by_host.clear()


metric_cache = _MetricCache()


def metric_from_order(scores: Sequence[float | None]) -> str | None:
    """Matches come most similar first: rising scores are distances, falling ones similarities;
    None when the order does not tell (fewer than two scores, or first == last)."""
    known = [score for score in scores if score is not None]
    if len(known) < 2 or known[0] == known[-1]:
        return None
    return EUCLIDEAN if known[0] < known[-1] else SIMILARITY


def metric_from_stats(stats: Any) -> str:
    metric = _field(stats, "metric")
    return KNOWN_METRICS.get(metric.lower(), UNKNOWN) if isinstance(metric, str) else UNKNOWN


def _known_metric(host: str | None, scores: Sequence[float | None]) -> str | None:
    """The metric from the cache or the score order (cached), else None (ask the index)."""
    metric = metric_cache.get(host)
    if metric is not None:
        return metric
    inferred = metric_from_order(scores)
    if inferred is not None:
        metric_cache.put(host, inferred)
    elif not scores:
        return UNKNOWN  # nothing to convert: no need to ask
    return inferred


def _lookup_metric_sync(index: Any, host: str | None) -> str:
    metric = UNKNOWN
    try:
        with suppress_instrumentation():
            metric = metric_from_stats(index.describe_index_stats())
    except Exception:
        log_once("could not read a pinecone index's metric")
    metric_cache.put(host, metric)
    return metric


async def _lookup_metric_async(index: Any, host: str | None) -> str:
    metric = UNKNOWN
    try:
        with suppress_instrumentation():
            metric = metric_from_stats(await index.describe_index_stats())
    except Exception:
        log_once("could not read a pinecone index's metric")
    metric_cache.put(host, metric)
    return metric


# --------------------------------------------------------------------------- queries


def _legacy_async(kwargs: Mapping[str, Any]) -> bool:
    return any(kwargs.get(name) for name in LEGACY_ASYNC_KWARGS)


def _describe_query(index: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if _legacy_async(kwargs):
        return None
    return RetrievalRequest(index_name(index_host(index)), positive_int(kwargs.get("top_k")))


def _describe_namespaces(index: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    top_k = call_argument(args, kwargs, "top_k", 3)
    return RetrievalRequest(index_name(index_host(index)), positive_int(top_k) or 10)


def retrieval_method(vector: Any, sparse_vector: Any) -> Method:
    """dense (a vector, or a stored vector's ``id``), sparse, or hybrid (both)."""
    if _non_empty(_field(sparse_vector, "indices")):
        return Method.HYBRID if _non_empty(vector) else Method.SPARSE
    return Method.DENSE


def _non_empty(value: Any) -> bool:
    if value is None:
        return False
    try:
        return len(value) > 0
    except TypeError:
        return True


def _matches(result: Any) -> list[Any]:
    matches = _field(result, "matches")
    return list(matches) if isinstance(matches, Sequence) else []


def _embedding(values: Any) -> Any:
    if (
        isinstance(values, Sequence)
        and not isinstance(values, (str, bytes))
        and values
        and all(isinstance(value, (int, float)) for value in values)
    ):
        return values
    return None


def match_chunk(match: Any, metric: str) -> Chunk:
    metadata = _field(match, "metadata")
    if not isinstance(metadata, Mapping):
        metadata = None
    score = as_float(_field(match, "score"))
    if score is not None and metric == EUCLIDEAN:
        score = l2_distance_to_similarity(score)
    return Chunk(
        store_id=_field(match, "id"),
        text=record_text(metadata),
        metadata=record_metadata(metadata),
        score=score,
        embedding=_embedding(_field(match, "values")),
    )


def _to_set(matches: Sequence[Any], metric: str, method: Method) -> list[RetrievalSet]:
    return [RetrievalSet([match_chunk(match, metric) for match in matches], None, method)]


def _query_parts(kwargs: Mapping[str, Any], result: Any) -> tuple[list[Any], list[Any], Method]:
    matches = _matches(result)
    scores = [as_float(_field(match, "score")) for match in matches]
    return matches, scores, retrieval_method(kwargs.get("vector"), kwargs.get("sparse_vector"))


def _sync_query_sets(
    index: Any, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any
) -> list[RetrievalSet]:
    matches, scores, method = _query_parts(kwargs, result)
    host = index_host(index)
    metric = _known_metric(host, scores)
    if metric is None:
        metric = _lookup_metric_sync(index, host)
    return _to_set(matches, metric, method)


def _async_query_sets(
    index: Any, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any
) -> Sequence[RetrievalSet] | Awaitable[Sequence[RetrievalSet]]:
    matches, scores, method = _query_parts(kwargs, result)
    host = index_host(index)
    metric = _known_metric(host, scores)
    if metric is not None:
        return _to_set(matches, metric, method)

    async def looked_up() -> Sequence[RetrievalSet]:
        return _to_set(matches, await _lookup_metric_async(index, host), method)

    return looked_up()


def _namespaces_sets(
    index: Any, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any
) -> list[RetrievalSet]:
    """``query_namespaces`` names the metric: use it, and remember it for the index."""
    metric = call_argument(args, kwargs, "metric", 2)
    metric = KNOWN_METRICS.get(metric.lower(), UNKNOWN) if isinstance(metric, str) else UNKNOWN
    if metric:
        metric_cache.put(index_host(index), metric)
    vector = call_argument(args, kwargs, "vector", 0)
    method = retrieval_method(vector, call_argument(args, kwargs, "sparse_vector", 7))
    return _to_set(_matches(result), metric, method)


# --------------------------------------------------------------------------- records search


def _search_query(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    """Where the query facts are: the legacy ``query=SearchQuery(...)`` / mapping (positional in
    pinecone 7–9), else the flat keyword arguments of pinecone 10."""
    legacy = call_argument(args, kwargs, "query", 1)
    return kwargs if legacy is None else legacy


def _describe_search(index: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    top_k = _field(_search_query(args, kwargs), "top_k")
    return RetrievalRequest(index_name(index_host(index)), positive_int(top_k))


def search_method(query: Any, rerank: Any) -> Method:
    """reranked with ``rerank``; for a ``vector`` dense, sparse (``sparse_indices``) or hybrid;
    sparse with ``match_terms`` (only sparse models take it); else dense — text ``inputs`` are
    embedded by the index's model, which the data plane does not name, and integrated indexes
    are mostly dense."""
    if rerank is not None:
        return Method.RERANKED
    vector = _field(query, "vector")
    if vector is not None:
        if isinstance(vector, Sequence) and not isinstance(vector, (str, bytes)):
            return Method.DENSE  # a plain list of floats
        if _non_empty(_field(vector, "sparse_indices")):
            return Method.HYBRID if _non_empty(_field(vector, "values")) else Method.SPARSE
        return Method.DENSE
    return Method.SPARSE if _field(query, "match_terms") is not None else Method.DENSE


def _search_text_field(rerank: Any) -> str | None:
    """The field a rerank ranks by: the caller named it as the text of the records."""
    fields = _field(rerank, "rank_fields")
    if isinstance(fields, Sequence) and fields and isinstance(fields[0], str):
        return fields[0]
    return None


def hit_chunk(hit: Any, text_field: str | None, euclidean: bool) -> Chunk:
    fields = _field(hit, "fields")
    if not isinstance(fields, Mapping):
        fields = None
    text = None
    if fields is not None:
        for key in (text_field, SEARCH_TEXT_FIELD):
            value = fields.get(key) if key else None
            if isinstance(value, str):
                text = value
                break
        else:
            text = record_text(fields)
    score = as_float(_field(hit, "score"))
    if score is not None and euclidean:
        score = l2_distance_to_similarity(score)
    return Chunk(
        store_id=_field(hit, "id"), text=text, metadata=record_metadata(fields), score=score
    )


def _search_sets(
    index: Any, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any
) -> list[RetrievalSet]:
    """One set: the hits in the service's order. A euclidean index (known from an earlier
    query of the same host) returns distances, unless a reranker scored the hits."""
    query = _search_query(args, kwargs)
    rerank = call_argument(args, kwargs, "rerank", 2)
    hits = _field(_field(result, "result"), "hits")
    hits = list(hits) if isinstance(hits, Sequence) else []
    euclidean = rerank is None and metric_cache.get(index_host(index)) == EUCLIDEAN
    text_field = _search_text_field(rerank)
    inputs_text = _field(_field(query, "inputs"), "text")
    return [
        RetrievalSet(
            [hit_chunk(hit, text_field, euclidean) for hit in hits],
            inputs_text if isinstance(inputs_text, str) else None,
            search_method(query, rerank),
        )
    ]


# --------------------------------------------------------------------------- ingestion


def written_chunk(vector: Any) -> Chunk:
    """A ``Vector``, an ``(id, values[, metadata])`` tuple or a ``{"id", "metadata"}`` dict."""
    if isinstance(vector, tuple):
        store_id = vector[0] if vector else None
        metadata = vector[2] if len(vector) > 2 else None
    else:
        store_id = _field(vector, "id")
        metadata = _field(vector, "metadata")
    if not isinstance(metadata, Mapping):
        metadata = None
    return Chunk(store_id, record_text(metadata), record_metadata(metadata))


def _describe_upsert(index: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if _legacy_async(kwargs):
        return None
    vectors = call_argument(args, kwargs, "vectors", 0)
    name = index_name(index_host(index))
    if not isinstance(vectors, Sequence) or isinstance(vectors, (str, bytes)):
        return IngestRequest(name, "upsert")  # lazy input: not consumed, not counted
    if len(vectors) > MAX_INGEST_CHUNK_IDS:
        return IngestRequest(name, "upsert", chunk_count=len(vectors))
    return IngestRequest(name, "upsert", [written_chunk(vector) for vector in vectors])

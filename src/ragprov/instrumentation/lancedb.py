"""Instrumentation of lancedb (sync query builders, async queries, table writes).

lancedb builders are lazy: ``table.search(...)`` only builds a query. The span covers the
execution, at the one method every collecting call goes through:

* sync — ``to_arrow`` of ``LanceVectorQueryBuilder``, ``LanceFtsQueryBuilder``,
  ``LanceHybridQueryBuilder`` and ``LanceEmptyQueryBuilder`` (``to_list``, ``to_pandas``,
  ``to_polars``, ``to_pydantic`` all call it). The two legs a hybrid query runs in worker threads
  are marked (``_create_query_builders``) and produce no spans of their own;
* async — ``AsyncQueryBase.to_arrow`` (``to_list``, ``to_pandas``, ``to_polars`` call it) for
  ``AsyncVectorQuery``, ``AsyncFTSQuery``, ``AsyncHybridQuery`` and a filtered ``AsyncQuery``;
* a plain scan (no vector, no text) is traced only when it has a ``where`` filter
  (``rag.retrieval_method = unknown``); ``to_batches()`` called directly streams its results
  and is not traced;
* writes — ``add`` (sync and async), ``merge_insert(...).execute`` (through ``_do_merge``,
  ``db.operation.name = merge_insert``) and ``create_table(data=...)`` (``create_table``).

The sync API runs the async one on lancedb's background event loop thread; anything that runs
on that thread is the inside of a sync call and is not traced again.

Scores: ``_distance`` by the query's distance type (default ``l2``): ``l2`` (squared L2) and
``hamming`` → 1 / (1 + d); ``cosine`` (1 − cos) → 1 − d; ``dot`` (lancedb returns 1 − ⟨q, x⟩)
→ 1 − d. FTS ``_score`` (BM25) and hybrid / reranker ``_relevance_score`` are kept. When the
query does not set a distance type ragprov assumes ``l2`` (lancedb's default); on a table whose
vector index uses another metric, set ``distance_type`` on the query to get exact similarities.

Rows: chunk text from the columns ``text``, ``page_content``, ``content``, ``document`` (or
LlamaIndex ``_node_content``), store id from ``id`` (else ``_rowid``), metadata from the other
columns with a ``metadata`` struct merged over them.

Usage: ``LanceDBInstrumentor().instrument(tracer_provider=...)`` or ``opentelemetry-instrument``
(entry point ``ragprov_lancedb``).
"""

from __future__ import annotations

import functools
import sys
import threading
import weakref
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from ragprov.instrumentation._base import (
    MAX_INGEST_CHUNK_IDS,
    Chunk,
    IngestRequest,
    RetrievalRequest,
    RetrievalSet,
    StoreTracer,
    VectorStoreInstrumentor,
    as_float,
    cosine_distance_to_similarity,
    l2_distance_to_similarity,
    positive_int,
    record_metadata,
    record_text,
)
from ragprov.instrumentation._patching import call_argument, log_once
from ragprov.semconv.attributes import RagRetrievalMethodValues

DB_SYSTEM = "lancedb"
SUPPORTED_VERSIONS = ("lancedb >= 0.34, < 1",)

Method = RagRetrievalMethodValues

#: Result columns lancedb adds; not metadata.
RESULT_COLUMNS = frozenset({"_distance", "_score", "_relevance_score", "_rowid", "_rowaddr"})
DEFAULT_VECTOR_COLUMN = "vector"

# The two legs of sync hybrid queries: they run in worker threads without our context.
_hybrid_legs: weakref.WeakSet[Any] = weakref.WeakSet()
_hybrid_legs_lock = threading.Lock()


class LanceDBInstrumentor(VectorStoreInstrumentor):
    """Retrieval and ingestion spans for lancedb."""

    db_system = DB_SYSTEM

    def instrumentation_dependencies(self) -> Collection[str]:
        return SUPPORTED_VERSIONS

    def _patch(self, store: StoreTracer) -> None:
        from lancedb import db, query, table

        sync_retrieval = store.retrieval_wrapper(_describe_sync, _extract_sync)
        for builder in (
            query.LanceVectorQueryBuilder,
            query.LanceFtsQueryBuilder,
            query.LanceHybridQueryBuilder,
            query.LanceEmptyQueryBuilder,
        ):
            self._wrap(builder, "to_arrow", sync_retrieval)
        self._wrap(query.LanceHybridQueryBuilder, "_create_query_builders", _mark_hybrid_legs)
        self._wrap(
            query.AsyncQueryBase,
            "to_arrow",
            store.async_retrieval_wrapper(_describe_async, _extract_async),
        )
        self._wrap(table.LanceTable, "add", store.ingest_wrapper(_describe_add))
        self._wrap(table.AsyncTable, "add", store.async_ingest_wrapper(_describe_add))
        self._wrap(table.LanceTable, "_do_merge", store.ingest_wrapper(_describe_merge))
        self._wrap(table.AsyncTable, "_do_merge", store.async_ingest_wrapper(_describe_merge))
        self._wrap(db.LanceDBConnection, "create_table", store.ingest_wrapper(_describe_create))
        self._wrap(db.AsyncConnection, "create_table", store.async_ingest_wrapper(_describe_create))


# --------------------------------------------------------------------------- helpers


def _in_background_loop() -> bool:
    """True on lancedb's background event loop thread (the inside of a sync call)."""
    module = sys.modules.get("lancedb.background_loop")
    loop = getattr(module, "LOOP", None)
    return threading.current_thread() is getattr(loop, "thread", None)


def _class_names(instance: Any) -> set[str]:
    return {cls.__name__ for cls in type(instance).__mro__}


def _table_name(table: Any) -> str | None:
    try:
        name = getattr(table, "name", None)
    except Exception:
        return None
    return name if isinstance(name, str) and name else None


def _mark_hybrid_legs(
    wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    result = wrapped(*args, **kwargs)
    try:
        with _hybrid_legs_lock:
            for leg in (
                getattr(instance, "_fts_query", None),
                getattr(instance, "_vector_query", None),
            ):
                if leg is not None:
                    _hybrid_legs.add(leg)
    except Exception:
        log_once("could not mark the legs of a lancedb hybrid query")
    return result


def distance_to_similarity(metric: str, distance: object) -> float | None:
    """lancedb ``_distance`` → similarity, higher = closer (see the module docstring)."""
    if metric in ("cosine", "dot"):
        return cosine_distance_to_similarity(distance)
    return l2_distance_to_similarity(distance)


def _row_score(row: Mapping[str, Any], metric: str) -> float | None:
    if "_relevance_score" in row:
        return as_float(row["_relevance_score"])
    if "_distance" in row:
        return distance_to_similarity(metric, row["_distance"])
    if "_score" in row:
        return as_float(row["_score"])
    return None


def _embedding(value: Any) -> Any:
    """A vector given to a write or read back as a list (a typed column: the first item tells)."""
    if (
        isinstance(value, (list, tuple))
        and value
        and isinstance(value[0], (int, float))
        and not isinstance(value[0], bool)
    ):
        return value
    return None


def _row_chunk(row: Any, vector_column: str, metric: str | None, embedding: Any = None) -> Chunk:
    if not isinstance(row, Mapping):
        return Chunk()
    store_id = row.get("id")
    if store_id is None:
        store_id = row.get("_rowid")
    fields = {
        key: value
        for key, value in row.items()
        if key != vector_column and key not in RESULT_COLUMNS
    }
    return Chunk(
        store_id=store_id,
        text=record_text(row),
        metadata=record_metadata(fields),
        score=None if metric is None else _row_score(row, metric),
        embedding=_embedding(row.get(vector_column)) if embedding is None else embedding,
    )


def _rows_of(result: Any, vector_column: str | None = None) -> tuple[list[Any], Any]:
    """Rows of a collected result (a pyarrow Table), and its vectors as a 2-D numpy array.

    The vector column is read as one array instead of being converted to Python floats row by
    row (``to_pylist`` of a 10 × 768 column makes 7,680 float objects); rows come without it.
    """
    vectors = None
    names = getattr(result, "column_names", ())
    if vector_column is not None and vector_column in names:
        try:
            vectors = _vector_array(result.column(vector_column))
        except Exception:
            vectors = None
        if vectors is not None:
            result = result.drop_columns([vector_column])
    rows = result.to_pylist()
    return (rows if isinstance(rows, list) else []), vectors


def _vector_array(column: Any) -> Any:
    """A fixed-size list column of numbers as an (n, dim) numpy array, else None."""
    array = column.combine_chunks()
    size = getattr(array.type, "list_size", None)  # only fixed-size list types have it
    if not isinstance(size, int) or size <= 0 or array.null_count:
        return None
    values = array.flatten().to_numpy(zero_copy_only=False)
    if getattr(values.dtype, "kind", "") not in ("f", "i", "u") or len(values) != len(array) * size:
        return None
    return values.reshape(len(array), size)


def _result_chunks(result: Any, vector_column: str, metric: str | None) -> list[Chunk]:
    rows, vectors = _rows_of(result, vector_column)
    if vectors is None or len(vectors) != len(rows):
        return [_row_chunk(row, vector_column, metric) for row in rows]
    return [
        _row_chunk(row, vector_column, metric, vector)
        for row, vector in zip(rows, vectors, strict=True)
    ]


def _result_set(
    result: Any, vector_column: str, metric: str | None, query_text: str | None, method: Method
) -> RetrievalSet:
    """The set of a collected result. A pyarrow Table is immutable, so it is handed on as it is
    and its rows are read when the chunks are needed (on the processor's worker, when the span
    goes to one): no per-row Python objects on the application thread. Its text is not counted
    in the side channel's bound (``Table.nbytes`` alone costs 12 µs); the table is the caller's
    result anyway, and the processor takes it when the span ends."""
    return RetrievalSet(
        functools.partial(_result_chunks, result, vector_column, metric), query_text, method
    )


# --------------------------------------------------------------------------- sync queries


def _describe_sync(
    builder: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> RetrievalRequest | None:
    if builder in _hybrid_legs or _in_background_loop():
        return None
    names = _class_names(builder)
    if "LanceEmptyQueryBuilder" in names and not getattr(builder, "_where", None):
        return None  # a plain scan is paging, not a retrieval
    return RetrievalRequest(
        _table_name(getattr(builder, "_table", None)),
        positive_int(getattr(builder, "_limit", None)),
    )


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _extract_sync(
    builder: Any, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any
) -> list[RetrievalSet]:
    names = _class_names(builder)
    reranked = getattr(builder, "_reranker", None) is not None
    vector_column = getattr(builder, "_vector_column", None) or DEFAULT_VECTOR_COLUMN
    metric: str | None = None
    query_text: str | None = None
    if "LanceVectorQueryBuilder" in names:
        method = Method.RERANKED if reranked else Method.DENSE
        metric = str(getattr(builder, "_distance_type", None) or "l2").lower()
        query_text = _text_or_none(getattr(builder, "_str_query", None))
    elif "LanceFtsQueryBuilder" in names:
        method = Method.RERANKED if reranked else Method.SPARSE
        metric = ""
        query_text = _text_or_none(getattr(builder, "_query", None))
    elif "LanceHybridQueryBuilder" in names:
        method = Method.HYBRID
        metric = ""
        text = getattr(builder, "_text", None) or getattr(builder, "_query", None)
        query_text = _text_or_none(text)
    else:
        method = Method.UNKNOWN
    return [_result_set(result, vector_column, metric, query_text, method)]


# --------------------------------------------------------------------------- async queries


def _describe_async(
    query: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> RetrievalRequest | None:
    if _in_background_loop():
        return None
    names = _class_names(query)
    table = _table_name(getattr(query, "_table", None))
    if "AsyncVectorQuery" in names and "AsyncHybridQuery" not in names:
        return RetrievalRequest(table, positive_int(query.to_query_object().limit))
    if "AsyncFTSQuery" in names or "AsyncHybridQuery" in names:
        return RetrievalRequest(table)
    if type(query).__name__ == "AsyncQuery":
        request = query.to_query_object()
        if not request.filter:
            return None  # a plain scan is paging, not a retrieval
        return RetrievalRequest(table, positive_int(request.limit))
    return None  # take queries and anything unknown


def _extract_async(
    query: Any, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any
) -> list[RetrievalSet]:
    names = _class_names(query)
    reranked = getattr(query, "_reranker", None) is not None
    vector_column = DEFAULT_VECTOR_COLUMN
    metric: str | None = None
    query_text: str | None = None
    if "AsyncHybridQuery" in names:
        method = Method.HYBRID
        metric = ""
        query_text = _text_or_none(query._inner.to_fts_query().get_query())
    elif "AsyncVectorQuery" in names:
        method = Method.RERANKED if reranked else Method.DENSE
        request = query.to_query_object()
        metric = str(request.distance_type or "l2").lower()
        vector_column = request.vector_column or DEFAULT_VECTOR_COLUMN
        query_text = _text_or_none(getattr(query, "_query_string", None))
    elif "AsyncFTSQuery" in names:
        method = Method.RERANKED if reranked else Method.SPARSE
        metric = ""
        query_text = _text_or_none(query.get_query())
    else:
        method = Method.UNKNOWN
    return [_result_set(result, vector_column, metric, query_text, method)]


# --------------------------------------------------------------------------- writes


def _written_rows(data: Any) -> tuple[list[Chunk], int | None]:
    """Chunks of data given to a write, without consuming lazy inputs.

    Lists of dicts / pydantic models, pyarrow tables and pandas / polars data frames are read
    (up to MAX_INGEST_CHUNK_IDS rows, else only counted); readers and iterators are not touched.
    """
    rows: Sequence[Any] | None = None
    count: int | None = None
    if isinstance(data, (list, tuple)):
        count = len(data)
        rows = data
    elif hasattr(data, "num_rows") and hasattr(data, "to_pylist"):  # pyarrow Table / batch
        count = int(data.num_rows)
        rows = data.to_pylist() if count <= MAX_INGEST_CHUNK_IDS else None
    elif hasattr(data, "to_dicts") and hasattr(data, "height"):  # polars
        count = int(data.height)
        rows = data.to_dicts() if count <= MAX_INGEST_CHUNK_IDS else None
    elif hasattr(data, "to_dict") and hasattr(data, "columns") and hasattr(data, "__len__"):
        count = len(data)  # pandas
        rows = data.to_dict("records") if count <= MAX_INGEST_CHUNK_IDS else None
    if rows is None or count is None or count > MAX_INGEST_CHUNK_IDS:
        return [], count
    records = [row.model_dump() if hasattr(row, "model_dump") else row for row in rows]
    return [_row_chunk(row, DEFAULT_VECTOR_COLUMN, None) for row in records], None


def _describe_add(
    table: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> IngestRequest | None:
    if _in_background_loop():
        return None
    chunks, count = _written_rows(call_argument(args, kwargs, "data", 0))
    return IngestRequest(_table_name(table), "add", chunks, count)


def _describe_merge(
    table: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> IngestRequest | None:
    if _in_background_loop():
        return None
    chunks, count = _written_rows(call_argument(args, kwargs, "new_data", 1))
    return IngestRequest(_table_name(table), "merge_insert", chunks, count)


def _describe_create(
    connection: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> IngestRequest | None:
    data = call_argument(args, kwargs, "data", 1)
    if data is None or _in_background_loop():
        return None  # an empty table: nothing is ingested
    name = call_argument(args, kwargs, "name", 0)
    chunks, count = _written_rows(data)
    return IngestRequest(name if isinstance(name, str) else None, "create_table", chunks, count)

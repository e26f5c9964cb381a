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
  (``rag.retrieval_method = unknown``);
* streaming — ``to_batches()`` called by the application: sync on ``LanceVectorQueryBuilder``
  and ``LanceEmptyQueryBuilder`` (lancedb's FTS and hybrid builders raise
  ``NotImplementedError`` there), async on ``AsyncQueryBase``, ``AsyncVectorQuery``,
  ``AsyncFTSQuery`` and ``AsyncHybridQuery``. The span starts with the call and ends when the
  reader is exhausted, fails (status ERROR, the error reaches the caller unchanged) or is
  garbage-collected; its set is the rows the caller read, in order — a partly read reader
  gives the rows read so far, at most :data:`MAX_STREAMED_ROWS`. The sync caller gets a *real*
  ``pa.RecordBatchReader`` (``RecordBatchReader.from_batches`` over a generator that records
  each batch): a proxy object would break pyarrow functions that take the C type
  (``dataset.write_dataset``, the Arrow C stream), while this one works everywhere the original
  does. pyarrow's ``close()`` on such a reader does not release the generator, so a closed,
  partly read reader ends its span when it is collected (in CPython: when its last reference
  goes). The async caller gets an ``AsyncRecordBatchReader`` subclass whose ``__anext__`` (used
  by ``read_all`` and ``async for``) records the batches. ``to_arrow`` and its callers run
  ``to_batches`` inside their own span, which covers them;
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
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ragprov.instrumentation._base import (
    MAX_INGEST_CHUNK_IDS,
    Chunk,
    IngestRequest,
    RetrievalRequest,
    RetrievalSet,
    StoreTracer,
    StreamEnd,
    VectorStoreInstrumentor,
    as_float,
    cosine_distance_to_similarity,
    l2_distance_to_similarity,
    positive_int,
    record_metadata,
    record_text,
)
from ragprov.instrumentation._patching import call_argument, is_fatal, log_once
from ragprov.semconv.attributes import RagRetrievalMethodValues

DB_SYSTEM = "lancedb"
SUPPORTED_VERSIONS = ("lancedb >= 0.34, < 1",)

Method = RagRetrievalMethodValues

#: Result columns lancedb adds; not metadata.
RESULT_COLUMNS = frozenset({"_distance", "_score", "_relevance_score", "_rowid", "_rowaddr"})
DEFAULT_VECTOR_COLUMN = "vector"
#: A streamed result's set keeps at most this many rows (the first, in rank order): a streamed
#: ``where`` scan may be far longer than any retrieval, and the set must not hold it all.
MAX_STREAMED_ROWS = 10_000

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
        # to_batches: only these sync builders implement it (FTS and hybrid ones raise).
        sync_stream = store.stream_retrieval_wrapper(_describe_sync, _follow_sync)
        for builder in (query.LanceVectorQueryBuilder, query.LanceEmptyQueryBuilder):
            self._wrap(builder, "to_batches", sync_stream)
        self._wrap(
            query.AsyncQueryBase,
            "to_arrow",
            store.async_retrieval_wrapper(_describe_async, _extract_async),
        )
        async_stream = store.async_stream_retrieval_wrapper(_describe_async, _follow_async)
        for async_query in (
            query.AsyncQueryBase,
            query.AsyncFTSQuery,
            query.AsyncVectorQuery,
            query.AsyncHybridQuery,
        ):  # the overrides call the base's (and to_arrow calls it): nested calls pass through
            self._wrap(async_query, "to_batches", async_stream)
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


#: Query builder class → the names of its classes (asked twice per query; a handful of classes).
_type_names: dict[type, frozenset[str]] = {}


def _class_names(instance: Any) -> frozenset[str]:
    cls = type(instance)
    names = _type_names.get(cls)
    if names is None:
        if len(_type_names) >= 256:  # classes made at run time: stay bounded
            _type_names.clear()
        names = _type_names[cls] = frozenset(base.__name__ for base in cls.__mro__)
    return names


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


@dataclass(slots=True)
class _ResultShape:
    """What a query says about its result: where the vectors are, how to read the scores
    (``None``: no scores, ``""``: kept as they are), the query text and the method."""

    vector_column: str
    metric: str | None
    query_text: str | None
    method: Method

    def set_of(self, result: Any) -> RetrievalSet:
        """The set of a collected result. A pyarrow Table is immutable, so it is handed on as it
        is and its rows are read when the chunks are needed (on the processor's worker, when the
        span goes to one): no per-row Python objects on the application thread. Its text is not
        counted in the side channel's bound (``Table.nbytes`` alone costs 12 µs); the table is
        the caller's result anyway, and the processor takes it when the span ends."""
        chunks = functools.partial(_result_chunks, result, self.vector_column, self.metric)
        return RetrievalSet(chunks, self.query_text, self.method)


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
    return [_sync_shape(builder).set_of(result)]


def _sync_shape(builder: Any) -> _ResultShape:
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
    return _ResultShape(vector_column, metric, query_text, method)


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
    return [_async_shape(query).set_of(result)]


def _async_shape(query: Any) -> _ResultShape:
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
    return _ResultShape(vector_column, metric, query_text, method)


# --------------------------------------------------------------------------- streamed results


class _StreamedRows:
    """The batches a caller read from a streamed result, in order (= rank order), up to
    :data:`MAX_STREAMED_ROWS` rows; :meth:`end` ends the span with them."""

    __slots__ = ("_batches", "_end", "_rows", "_schema", "_shape")

    def __init__(self, schema: Any, shape: _ResultShape, end: StreamEnd) -> None:
        self._schema = schema
        self._shape = shape
        self._end = end
        self._batches: list[Any] = []
        self._rows = 0

    def add(self, batch: Any) -> None:
        room = MAX_STREAMED_ROWS - self._rows
        if room <= 0:
            return
        kept = batch if batch.num_rows <= room else batch.slice(0, room)
        self._batches.append(kept)
        self._rows += kept.num_rows

    def end(self, error: BaseException | None = None) -> None:
        """Exhausted, closed, collected (no error: the set of what was read) or failed; an
        interrupt or cancellation ends the span like a close."""
        self._end(self._sets, None if error is None or is_fatal(error) else error)

    def _sets(self) -> list[RetrievalSet]:
        table = _pyarrow().Table.from_batches(self._batches, schema=self._schema)
        return [self._shape.set_of(table)]


def _pyarrow() -> Any:
    import pyarrow  # type: ignore[import-untyped]  # lancedb's dependency: there when it is

    return pyarrow


def _follow_sync(
    builder: Any, args: tuple[Any, ...], kwargs: dict[str, Any], reader: Any, end: StreamEnd
) -> Any:
    """A ``pa.RecordBatchReader`` over the same batches (a real one: pyarrow functions,
    ``read_all``, iteration and the Arrow C stream keep working) that records what is read."""
    pa = _pyarrow()
    if not isinstance(reader, pa.RecordBatchReader):
        raise TypeError(f"not a RecordBatchReader: {type(reader).__name__}")
    rows = _StreamedRows(reader.schema, _sync_shape(builder), end)
    return pa.RecordBatchReader.from_batches(reader.schema, _observed(reader, rows))


def _observed(reader: Any, rows: _StreamedRows) -> Iterator[Any]:
    """Yields ``reader``'s batches. ``finally`` also runs when the caller closes the returned
    reader or drops it (pyarrow then releases this generator, which closes it)."""
    try:
        for batch in reader:
            rows.add(batch)
            yield batch
    except BaseException as error:
        rows.end(error)
        raise
    finally:
        rows.end()  # does nothing after an error


def _follow_async(
    query: Any, args: tuple[Any, ...], kwargs: dict[str, Any], reader: Any, end: StreamEnd
) -> Any:
    from lancedb.arrow import AsyncRecordBatchReader

    if not isinstance(reader, AsyncRecordBatchReader):
        raise TypeError(f"not an AsyncRecordBatchReader: {type(reader).__name__}")
    rows = _StreamedRows(reader.schema, _async_shape(query), end)
    return _observed_async_reader_class()(reader, rows)


@functools.cache
def _observed_async_reader_class() -> Any:
    from lancedb.arrow import AsyncRecordBatchReader

    class ObservedAsyncRecordBatchReader(AsyncRecordBatchReader):
        """An ``AsyncRecordBatchReader`` (``read_all`` and ``async for`` go through
        ``__anext__``) that records what is read; the span ends when it is exhausted, fails
        or is collected."""

        def __init__(self, source: Any, rows: _StreamedRows) -> None:
            # Not the base __init__: it wants lancedb's native stream, which ``source`` holds.
            self._source = source
            self._rows = rows
            self.schema = source.schema
            weakref.finalize(self, rows.end)

        async def __anext__(self) -> Any:
            try:
                batch = await self._source.__anext__()
            except StopAsyncIteration:
                self._rows.end()
                raise
            except BaseException as error:
                self._rows.end(error)
                raise
            self._rows.add(batch)
            return batch

    return ObservedAsyncRecordBatchReader


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

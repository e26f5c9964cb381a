"""Shared machinery of the vector-store instrumentors.

A library module (``chromadb``, ``qdrant``, ``lancedb``) only knows its library: which methods to
patch, how to read the collection name and ``top_k`` from a call (:class:`RetrievalRequest`), and
how to turn a result into :class:`RetrievalSet` objects (chunks with store id, text, metadata,
similarity and embedding, or a :data:`ChunkReader` that makes them later from a copy of the
result's rows). Everything else lives here:

* span creation — one GenAI retrieval span per retrieval set (``retrieval {collection}``, kind
  CLIENT), one ingestion span per add/upsert (``{operation} {collection}``);
* the provenance envelope (:meth:`RetrievalSetEnvelope.build`), the lineage step id, the opt-in
  content attributes and the side-channel hand-off of chunk texts to the processor;
* safety — the wrapped call always runs exactly once with its own arguments and its result or
  exception reaches the caller unchanged; errors of the instrumentation itself are logged once
  and swallowed; the OTel suppress-instrumentation key is respected;
* de-duplication — see :data:`ragprov.lineage.RETRIEVAL_SPAN_KEY` and
  :func:`retrieval_span_scope`.

**Where the provenance is computed.** When the span goes to a running
:class:`~ragprov.processor.ProvenanceSpanProcessor` (one of its provider's processors, with room
in its queue) and content capture is off, the application thread puts only the request-level
facts on the span (store attributes, a batch set's ``top_k``) and hands the rows, with the set's
new ``rag.retrieval_set_id`` and the current ``rag.step_id``, to the processor
(:func:`ragprov.sidechannel.record_deferred_retrieval`); the worker reads the chunks, builds the
envelope and exports all of its attributes (``Enricher._retrieval``). Otherwise — the
instrumentor feeding another pipeline, content capture on (``gen_ai.retrieval.documents`` needs
the chunk ids), a full queue, a payload the side channel refused — the envelope is built inline
before the span ends, as the span then has to be self-contained. The exported attributes are
the same either way. Nothing on the application thread needs the chunk ids: the lineage scope
keys a retrieval by its set id. A :data:`ChunkReader` therefore holds only data the caller can
no longer change.

**Batch queries.** A call that runs several queries (chromadb ``query`` with several embeddings,
qdrant ``query_batch_points``) yields one retrieval set per query, and the provenance processor
expects one set per span. The first set goes on the span that covered the call (it was current
while the client ran, so client-side child spans nest under it); every further set gets its own
*sibling* span: same parent, same start and end time as the call, and a span link to the first
span. When the call fails, only the first span exists and carries the error.

**Streams.** A call that returns a stream of results (lancedb ``to_batches``) gets a span that
stays open after the call returns: the library module hands the caller an equivalent stream
that calls a :class:`StreamEnd` when it is exhausted, closed or collected, with the sets of what
was read (:meth:`StoreTracer.stream_retrieval_wrapper`).
"""

from __future__ import annotations

import inspect
import json
import logging
import math
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, ClassVar

from opentelemetry import context as otel_context
from opentelemetry import trace

# instrumentor.py starts with a file-level "# type: ignore", so mypy sees no names in it.
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.semconv.attributes.db_attributes import (
    DB_COLLECTION_NAME,
    DB_OPERATION_BATCH_SIZE,
    DB_OPERATION_NAME,
    DB_SYSTEM_NAME,
)
from opentelemetry.trace import Link, Span, SpanKind

from ragprov import __version__, ids, lineage, sidechannel
from ragprov.config import capture_content_enabled
from ragprov.instrumentation._patching import (
    PatchingInstrumentor,
    Wrapper,
    is_fatal,
    log_once,
    record_error,
)
from ragprov.lineage import RETRIEVAL_SPAN_KEY, RetrievalSlot, current_retrieval_slot
from ragprov.model import AttributeValue, ChunkProvenance, RetrievalSetEnvelope
from ragprov.semconv import attributes as attrs
from ragprov.semconv.attributes import (
    RagQualityMethodValues,
    RagRetrievalMethodValues,
)
from ragprov.signals.metadata import (
    parse_chunk_quality,
)

if TYPE_CHECKING:
    from ragprov.processor import ProvenanceSpanProcessor

_logger = logging.getLogger(__name__)

# GenAI retrieval attributes. The Python semantic-conventions package marks the gen_ai.* names
# as moved to the GenAI conventions repository (and has no gen_ai.retrieval.top_k), so they are
# spelled here once.
GEN_AI_OPERATION_NAME = "gen_ai.operation.name"
GEN_AI_DATA_SOURCE_ID = "gen_ai.data_source.id"
GEN_AI_RETRIEVAL_TOP_K = "gen_ai.retrieval.top_k"
GEN_AI_RETRIEVAL_QUERY_TEXT = "gen_ai.retrieval.query.text"
GEN_AI_RETRIEVAL_DOCUMENTS = "gen_ai.retrieval.documents"
RETRIEVAL_OPERATION = "retrieval"

#: Ingestion spans export ``rag.chunk_ids`` only up to this many chunks (a bulk load of 100k
#: chunks must not become a 100k-element attribute); the count is always exported.
MAX_INGEST_CHUNK_IDS = 1000

_STORE_CALL_KEY = otel_context.create_key("ragprov-store-call")
"""Set while an instrumented store call runs: nested instrumented calls in the same context
(an async lancedb hybrid query's legs, a legacy qdrant ``search`` built on ``query_points``)
pass through without a span."""


# --------------------------------------------------------------------------- logging


# --------------------------------------------------------------------------- data

# The records made per call on the application thread (RetrievalRequest, RetrievalSet and the
# library modules' result shapes) are treated as immutable but are not frozen dataclasses: a
# frozen dataclass's __init__ sets each field through object.__setattr__, about twice the cost.


@dataclass(frozen=True, slots=True)
class Chunk:
    """One record a store returned (or is asked to write), in the store's order."""

    store_id: object = None
    text: str | None = None
    metadata: Mapping[str, Any] | None = None
    score: float | None = None
    """Similarity to the query, higher = closer (the library module converts distances)."""
    embedding: Any = None


ChunkReader = Callable[[], Sequence[Chunk]]
"""Reads the chunks of a result when called; may run on the provenance processor's worker, so
it must only hold data the application can no longer change (copies, immutable tables)."""


@dataclass(slots=True)
class RetrievalSet:
    """The result of one query of a call."""

    chunks: Sequence[Chunk] | ChunkReader
    """The chunks in the store's order, or a :data:`ChunkReader` that makes them (what a library
    module returns so that per-chunk work can leave the application thread)."""
    query_text: str | None = None
    retrieval_method: RagRetrievalMethodValues = RagRetrievalMethodValues.UNKNOWN
    top_k: int | None = None
    """Overrides the call's ``top_k`` for this set (e.g. one request of a qdrant batch)."""
    text_chars: int = 0
    """About how many characters of text a :data:`ChunkReader` holds (the side channel's bound
    on pending text counts them until the processor takes the payload)."""

    def read_chunks(self) -> Sequence[Chunk]:
        return self.chunks() if callable(self.chunks) else self.chunks


@dataclass(slots=True)
class RetrievalRequest:
    """What is known about a retrieval call before it runs."""

    data_source_id: str | None
    top_k: int | None = None


@dataclass(frozen=True, slots=True)
class IngestRequest:
    """An add/upsert call: what is written (known before the call runs)."""

    data_source_id: str | None
    operation: str
    chunks: Sequence[Chunk] = ()
    chunk_count: int | None = None
    """The number of records written when ``chunks`` could not be listed (large or lazy data)."""


@contextmanager
def retrieval_span_scope(span: Span) -> Iterator[RetrievalSlot]:
    """Mark ``span`` as the active ragprov retrieval span for the block (see
    :data:`RETRIEVAL_SPAN_KEY`). After the block, ``slot.enriched`` tells whether an instrumented
    store call enriched the span; its envelope is on the span (:func:`settle_slot`)."""
    slot = RetrievalSlot(span)
    token = otel_context.attach(otel_context.set_value(RETRIEVAL_SPAN_KEY, slot))
    try:
        yield slot
    finally:
        otel_context.detach(token)
        settle_slot(slot)


# --------------------------------------------------------------------------- helpers


def as_text(value: object) -> str | None:
    """A chunk text as str (bytes decoded as UTF-8), else None."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", errors="replace")
    return None


def as_float(value: object) -> float | None:
    """A finite float, else None (numpy scalars accepted, booleans rejected)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def cosine_distance_to_similarity(distance: object) -> float | None:
    """Cosine distance ``d`` (= 1 − cos) → ``1 − d``."""
    value = as_float(distance)
    return None if value is None else 1.0 - value


def l2_distance_to_similarity(distance: object) -> float | None:
    """L2, squared-L2 or any other non-negative distance ``d`` → ``1 / (1 + d)``."""
    value = as_float(distance)
    if value is None:
        return None
    return 1.0 / (1.0 + max(value, 0.0))


#: Where frameworks keep the chunk text in a payload / row: plain, LangChain (page_content),
#: generic names; LlamaIndex keeps it in the JSON of ``_node_content``.
TEXT_KEYS = ("text", "page_content", "content", "document")
LLAMA_INDEX_NODE_KEY = "_node_content"


def record_text(record: Any) -> str | None:
    """The chunk text of a payload / row mapping (see :data:`TEXT_KEYS`), else None."""
    if not isinstance(record, Mapping):
        return None
    for key in TEXT_KEYS:
        value = record.get(key)
        if isinstance(value, str):
            return value
    node = record.get(LLAMA_INDEX_NODE_KEY)
    if isinstance(node, str):
        try:
            decoded = json.loads(node)
        except ValueError:
            return None
        text = decoded.get("text") if isinstance(decoded, Mapping) else None
        return text if isinstance(text, str) else None
    return None


def record_metadata(record: Any) -> Mapping[str, Any] | None:
    """A payload / row with its nested ``metadata`` mapping merged over it (nested keys win)."""
    if not isinstance(record, Mapping):
        return None
    nested = record.get("metadata")
    if isinstance(nested, Mapping):
        return {**record, **nested}
    return record


def positive_int(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if value > 0 else None


def _chunk_provenance(
    chunks: Sequence[Chunk],
) -> tuple[list[ChunkProvenance], list[Chunk]]:
    """Provenance of the chunks with a usable id (rank = position in the store's result)."""
    kept: list[ChunkProvenance] = []
    kept_chunks: list[Chunk] = []
    for rank, chunk in enumerate(chunks, start=1):
        provenance = ChunkProvenance.from_store(
            rank=rank,
            text=chunk.text,
            metadata=chunk.metadata,
            store_id=chunk.store_id,
            score=chunk.score,
        )
        if provenance is not None:
            kept.append(provenance)
            kept_chunks.append(chunk)
    return kept, kept_chunks


def _documents_json(envelope: RetrievalSetEnvelope, chunks: Sequence[Chunk]) -> str:
    """``gen_ai.retrieval.documents``: the GenAI JSON shape, a list of ``{"id", "score"}``
    objects (both recommended by the convention) plus ``"content"``, in rank order."""
    documents: list[dict[str, Any]] = []
    for provenance, chunk in zip(envelope.chunks, chunks, strict=True):
        document: dict[str, Any] = {"id": provenance.chunk_id}
        if provenance.score is not None:
            document["score"] = provenance.score
        if chunk.text is not None:
            document["content"] = chunk.text
        documents.append(document)
    return json.dumps(documents, ensure_ascii=False)


def _envelope(
    retrieval_set: RetrievalSet,
    data_source_id: str | None,
    step_id: str | None,
    retrieval_set_id: str | None = None,
    timestamp: datetime | None = None,
) -> tuple[RetrievalSetEnvelope, list[Chunk]]:
    """The envelope of a set, and the chunks it kept (those with a usable id), in rank order."""
    provenance, chunks = _chunk_provenance(retrieval_set.read_chunks())
    envelope = RetrievalSetEnvelope.build(
        provenance,
        query_text=retrieval_set.query_text,
        retrieval_method=retrieval_set.retrieval_method,
        data_source_id=data_source_id,
        step_id=step_id,
        retrieval_set_id=retrieval_set_id,
        timestamp=timestamp,
    )
    return envelope, chunks


def _embeddings(chunks: Sequence[Chunk]) -> list[Any] | None:
    """The chunks' embeddings when every chunk has one, else None."""
    embeddings = [chunk.embedding for chunk in chunks]
    has_embeddings = bool(embeddings) and all(vector is not None for vector in embeddings)
    return embeddings if has_embeddings else None


def _query_texts(retrieval_set: RetrievalSet) -> tuple[str, ...]:
    return () if retrieval_set.query_text is None else (retrieval_set.query_text,)


def _apply_retrieval_set(
    span: Span,
    retrieval_set: RetrievalSet,
    data_source_id: str | None,
    capture_content: bool,
    retrieval_set_id: str | None = None,
) -> None:
    """Put a set's provenance on ``span``: deferred to the processor's worker when the span goes
    to one (and content capture, which needs the chunk ids now, is off), else inline. The set
    id is ``retrieval_set_id`` (a framework slot's), else a new one."""
    step_id = lineage.current_step_id()
    if retrieval_set_id is None:
        retrieval_set_id = ids.new_retrieval_set_id()
    deferred = not capture_content and _defers_to_processor(span)
    if deferred and _defer_retrieval_set(
        span, retrieval_set, data_source_id, step_id, retrieval_set_id
    ):
        return
    envelope, chunks = _envelope(retrieval_set, data_source_id, step_id, retrieval_set_id)
    span.set_attributes(envelope.span_attributes())
    if retrieval_set.top_k is not None:
        span.set_attribute(GEN_AI_RETRIEVAL_TOP_K, retrieval_set.top_k)
    if capture_content:
        if retrieval_set.query_text is not None:
            span.set_attribute(GEN_AI_RETRIEVAL_QUERY_TEXT, retrieval_set.query_text)
        span.set_attribute(GEN_AI_RETRIEVAL_DOCUMENTS, _documents_json(envelope, chunks))
    sidechannel.record_retrieval(
        span,
        envelope,
        [chunk.text for chunk in chunks],
        embeddings=_embeddings(chunks),
        query_texts=_query_texts(retrieval_set),
    )


def settle_slot(
    slot: RetrievalSlot, narrow: Callable[[RetrievalSet], RetrievalSet] | None = None
) -> None:
    """Put the enriching store call's set on the slot's span, once (nothing when no store call
    enriched it). ``narrow`` may first replace the set, e.g. by what the framework returned."""
    pending, slot.pending = slot.pending, None
    if pending is None:
        return
    retrieval_set, data_source_id = pending
    try:
        if narrow is not None:
            retrieval_set = narrow(retrieval_set)
        capture = capture_content_enabled()
        _apply_retrieval_set(slot.span, retrieval_set, data_source_id, capture, slot.set_id())
    except BaseException as error:
        _reraise_if_fatal(error)
        log_once("could not record the retrieval of a framework span")


@dataclass(slots=True)
class _DeferredEnvelope:
    """Builds a deferred set's envelope on the worker (a :data:`sidechannel.ResolvedRetrieval`
    function). An object rather than a closure: it is one object for the garbage collector to
    trace while it waits for the worker, where a closure is a function, a tuple and five cells.
    """

    retrieval_set: RetrievalSet
    data_source_id: str | None
    step_id: str | None
    retrieval_set_id: str
    timestamp_ns: int

    def __call__(self) -> sidechannel.ResolvedRetrieval:
        timestamp = datetime.fromtimestamp(self.timestamp_ns / 1e9, timezone.utc)
        envelope, chunks = _envelope(
            self.retrieval_set, self.data_source_id, self.step_id, self.retrieval_set_id, timestamp
        )
        return envelope, [chunk.text for chunk in chunks], _embeddings(chunks)


def _defer_retrieval_set(
    span: Span,
    retrieval_set: RetrievalSet,
    data_source_id: str | None,
    step_id: str | None,
    retrieval_set_id: str,
) -> bool:
    """Hand the rows to the processor, whose worker builds the envelope and exports its
    attributes. False when the side channel did not keep the payload (the caller then works
    inline)."""
    resolve = _DeferredEnvelope(
        retrieval_set, data_source_id, step_id, retrieval_set_id, time.time_ns()
    )
    if not sidechannel.record_deferred_retrieval(
        span,
        resolve,
        retrieval_set_id=retrieval_set_id,
        query_texts=_query_texts(retrieval_set),
        chars=retrieval_set.text_chars,
    ):
        return False
    # rag.retrieval_set_id, rag.retrieval_method and rag.step_id are in the envelope, which the
    # worker exports: setting them here too would cost the application thread for nothing.
    if retrieval_set.top_k is not None:
        span.set_attribute(GEN_AI_RETRIEVAL_TOP_K, retrieval_set.top_k)
    return True


#: id(span processors tuple of a provider) → (that tuple, its ProvenanceSpanProcessor or None).
#: The SDK replaces the tuple when a processor is added, so a stale entry never matches.
_pipelines: dict[int, tuple[tuple[Any, ...], ProvenanceSpanProcessor | None]] = {}
_MAX_PIPELINES = 16


def _defers_to_processor(span: Span) -> bool:
    """True when ``span`` ends in a provider whose pipeline has a running
    :class:`~ragprov.processor.ProvenanceSpanProcessor` with room in its queue: only then will
    a worker add the envelope's attributes to the exported span."""
    if not sidechannel.is_active():
        return False
    processors = getattr(getattr(span, "_span_processor", None), "_span_processors", None)
    if not isinstance(processors, tuple):
        return False  # not an SDK span
    entry = _pipelines.get(id(processors))
    if entry is None or entry[0] is not processors:
        from ragprov.processor import ProvenanceSpanProcessor  # imported by whoever made one

        found = [p for p in processors if isinstance(p, ProvenanceSpanProcessor)]
        if len(_pipelines) >= _MAX_PIPELINES:
            _pipelines.clear()
        entry = _pipelines[id(processors)] = (processors, found[0] if found else None)
    processor = entry[1]
    return processor is not None and _accepts_work(processor)


def _accepts_work(processor: ProvenanceSpanProcessor) -> bool:
    """The processor is running and its queue is not full (a full queue forwards spans
    unenriched, which would lose a deferred envelope); False if asking it fails."""
    try:
        return processor.accepts_work()
    except Exception:
        return False


def _reraise_if_fatal(error: BaseException) -> None:
    """Instrumentation errors are swallowed, including BaseException subclasses that are not
    interrupts (a Rust panic in a pyo3 client is a ``BaseException``); interrupts, exits and
    cancellations are re-raised."""
    if is_fatal(error):
        raise error


# --------------------------------------------------------------------------- runs


class _RetrievalRun:
    """One instrumented retrieval call: started before the call, finished after it."""

    __slots__ = (
        "_end_ns",
        "_parent",
        "_request",
        "_slot",
        "_span",
        "_start_ns",
        "_store",
        "_token",
    )

    def __init__(self, store: StoreTracer, request: RetrievalRequest) -> None:
        self._store = store
        self._request = request
        self._parent = otel_context.get_current()
        self._start_ns = time.time_ns()
        self._end_ns = 0
        slot = current_retrieval_slot()
        self._slot = slot if slot is not None and not slot.enriched else None
        self._span: Span | None = None
        run_context = otel_context.set_value(_STORE_CALL_KEY, True, self._parent)
        if self._slot is None:
            self._span = store.start_retrieval_span(request, self._parent, self._start_ns)
            run_context = trace.set_span_in_context(self._span, run_context)
        self._token = otel_context.attach(run_context)

    def fail(self, error: BaseException, *, detach: bool = True) -> None:
        if detach:
            self._detach()
        if self._span is not None:
            record_error(self._span, error)
            self._span.end()

    @property
    def wants_result(self) -> bool:
        """False when nothing would record the result (a sampled-out or no-op span)."""
        try:
            return self._span is None or self._span.is_recording()
        except Exception:
            return True

    def returned(self) -> None:
        """The wrapped call returned: restore the context and take the end time."""
        self._detach()
        self._end_ns = time.time_ns()

    def returned_stream(self) -> None:
        """The wrapped call returned a stream: restore the context; the span stays open until
        :meth:`finish` (end time: then) or ``fail(error, detach=False)``."""
        self._detach()

    def finish(self, sets: Sequence[RetrievalSet]) -> None:
        """Put the extracted sets on the span(s) and end them at the call's end time."""
        end_ns = self._end_ns or time.time_ns()
        try:
            self._emit(list(sets), end_ns)
        except BaseException as error:
            _reraise_if_fatal(error)
            log_once(f"could not record a {self._store.db_system} retrieval")
        finally:
            if self._span is not None:
                self._span.end(end_time=end_ns)

    def _emit(self, sets: list[RetrievalSet], end_ns: int) -> None:
        store, request = self._store, self._request
        if self._span is None and self._slot is not None and len(sets) == 1:
            self._slot.enriched = True
            self._slot.span.set_attributes(store.retrieval_attributes(request))
            self._slot.pending = (sets[0], request.data_source_id)  # see settle_slot
            return
        capture = capture_content_enabled()
        remaining = sets
        links: list[Link] = []
        parent = self._parent
        if self._span is not None and sets:
            _apply_retrieval_set(self._span, sets[0], request.data_source_id, capture)
            links = [Link(self._span.get_span_context())]
            remaining = sets[1:]
        elif self._slot is not None:
            parent = trace.set_span_in_context(self._slot.span, parent)
        for retrieval_set in remaining:
            sibling = store.start_retrieval_span(request, parent, self._start_ns, links)
            try:
                _apply_retrieval_set(sibling, retrieval_set, request.data_source_id, capture)
            finally:
                sibling.end(end_time=end_ns)

    def _detach(self) -> None:
        try:
            otel_context.detach(self._token)
        except Exception:
            log_once("could not restore the context")


class StreamEnd:
    """Ends the span of a streamed retrieval, once: called by the library module when the
    stream is exhausted, closed or garbage-collected (with the sets of what was read), or when
    reading it failed (with the error). Safe to call from any thread, any number of times."""

    __slots__ = ("_ended", "_lock", "_run")

    def __init__(self, run: _RetrievalRun) -> None:
        self._run = run
        self._ended = False
        self._lock = threading.Lock()

    def __call__(
        self,
        read_sets: Callable[[], Sequence[RetrievalSet]],
        error: BaseException | None = None,
    ) -> None:
        with self._lock:
            if self._ended:
                return
            self._ended = True
        if error is not None:
            self._run.fail(error, detach=False)
            return
        try:
            sets = read_sets()
        except BaseException as failure:
            _reraise_if_fatal(failure)
            log_once("could not read a streamed retrieval result")
            sets = ()
        self._run.finish(sets)


DescribeRetrieval = Callable[[Any, tuple[Any, ...], dict[str, Any]], RetrievalRequest | None]
ExtractRetrieval = Callable[[Any, tuple[Any, ...], dict[str, Any], Any], Sequence[RetrievalSet]]
AsyncExtractRetrieval = Callable[
    [Any, tuple[Any, ...], dict[str, Any], Any],
    Sequence[RetrievalSet] | Awaitable[Sequence[RetrievalSet]],
]
DescribeIngest = Callable[[Any, tuple[Any, ...], dict[str, Any]], IngestRequest | None]
_Settle = Callable[[_RetrievalRun, Any, tuple[Any, ...], dict[str, Any], Any], Any]
_AsyncSettle = Callable[
    ["_RetrievalRun", Any, tuple[Any, ...], dict[str, Any], Any], Awaitable[Any]
]
FollowStream = Callable[[Any, tuple[Any, ...], dict[str, Any], Any, StreamEnd], Any]
"""Given a call's stream result and its :class:`StreamEnd`, returns what the caller gets: the
result itself or an equivalent of it that calls the ``StreamEnd`` when the stream ends."""


def _should_trace() -> bool:
    return is_instrumentation_enabled() and not otel_context.get_value(_STORE_CALL_KEY)


@dataclass(slots=True)
class StoreTracer:
    """Creates the spans of one instrumented store (``db_system``) with one tracer."""

    db_system: str
    tracer: trace.Tracer

    @classmethod
    def create(
        cls, db_system: str, scope_name: str, tracer_provider: trace.TracerProvider | None
    ) -> StoreTracer:
        return cls(db_system, trace.get_tracer(scope_name, __version__, tracer_provider))

    # ---- spans

    def retrieval_attributes(self, request: RetrievalRequest) -> dict[str, AttributeValue]:
        attributes: dict[str, AttributeValue] = {
            GEN_AI_OPERATION_NAME: RETRIEVAL_OPERATION,
            DB_SYSTEM_NAME: self.db_system,
        }
        if request.data_source_id:
            attributes[GEN_AI_DATA_SOURCE_ID] = request.data_source_id
        if request.top_k is not None:
            attributes[GEN_AI_RETRIEVAL_TOP_K] = request.top_k
        return attributes

    def start_retrieval_span(
        self,
        request: RetrievalRequest,
        parent: otel_context.Context,
        start_ns: int,
        links: Sequence[Link] = (),
    ) -> Span:
        name = RETRIEVAL_OPERATION
        if request.data_source_id:
            name = f"{RETRIEVAL_OPERATION} {request.data_source_id}"
        return self.tracer.start_span(
            name,
            context=parent,
            kind=SpanKind.CLIENT,
            attributes=self.retrieval_attributes(request),
            links=links,
            start_time=start_ns,
            record_exception=False,
            set_status_on_exception=False,
        )

    # ---- retrieval

    def _begin_retrieval(
        self, describe: DescribeRetrieval, instance: Any, args: Any, kwargs: Any
    ) -> _RetrievalRun | None:
        if not _should_trace():
            return None
        try:
            request = describe(instance, args, kwargs)
            return None if request is None else _RetrievalRun(self, request)
        except BaseException as error:
            _reraise_if_fatal(error)
            log_once(f"could not start a {self.db_system} retrieval span")
            return None

    def _sync_retrieval(self, describe: DescribeRetrieval, settle: _Settle) -> Wrapper:
        """A wrapt wrapper running a synchronous method in a retrieval run: ``settle`` ends (or
        hands on) the run and returns what the caller gets."""

        def wrapper(
            wrapped: Callable[..., Any],
            instance: Any,
            args: tuple[Any, ...],
            kwargs: dict[str, Any],
        ) -> Any:
            run = self._begin_retrieval(describe, instance, args, kwargs)
            if run is None:
                return wrapped(*args, **kwargs)
            try:
                result = wrapped(*args, **kwargs)
            except BaseException as error:
                run.fail(error)
                raise
            return settle(run, instance, args, kwargs, result)

        return wrapper

    def _async_retrieval(self, describe: DescribeRetrieval, settle: _AsyncSettle) -> Wrapper:
        """:meth:`_sync_retrieval` for a coroutine method (the run covers the await)."""

        async def wrapper(
            wrapped: Callable[..., Any],
            instance: Any,
            args: tuple[Any, ...],
            kwargs: dict[str, Any],
        ) -> Any:
            run = self._begin_retrieval(describe, instance, args, kwargs)
            if run is None:
                return await wrapped(*args, **kwargs)
            try:
                result = await wrapped(*args, **kwargs)
            except BaseException as error:
                run.fail(error)
                raise
            return await settle(run, instance, args, kwargs, result)

        return wrapper

    def retrieval_wrapper(self, describe: DescribeRetrieval, extract: ExtractRetrieval) -> Wrapper:
        """A wrapt wrapper for a synchronous retrieval method."""

        def settle(
            run: _RetrievalRun, instance: Any, args: tuple[Any, ...], kwargs: Any, result: Any
        ) -> Any:
            run.returned()
            try:
                sets = extract(instance, args, kwargs, result) if run.wants_result else ()
            except BaseException as error:
                _reraise_if_fatal(error)
                log_once(f"could not read a {self.db_system} result")
                sets = ()
            run.finish(sets)
            return result

        return self._sync_retrieval(describe, settle)

    def async_retrieval_wrapper(
        self, describe: DescribeRetrieval, extract: AsyncExtractRetrieval
    ) -> Wrapper:
        """A wrapt wrapper for a coroutine retrieval method (the span covers the await).

        ``extract`` may return an awaitable (e.g. to look up a collection's metric once); the
        span still ends at the time the wrapped call returned.
        """

        async def settle(
            run: _RetrievalRun, instance: Any, args: tuple[Any, ...], kwargs: Any, result: Any
        ) -> Any:
            run.returned()
            try:
                extracted = extract(instance, args, kwargs, result) if run.wants_result else ()
                sets = await extracted if inspect.isawaitable(extracted) else extracted
            except BaseException as error:
                _reraise_if_fatal(error)
                log_once(f"could not read a {self.db_system} result")
                sets = ()
            run.finish(sets)
            return result

        return self._async_retrieval(describe, settle)

    # ---- streamed retrieval

    def stream_retrieval_wrapper(
        self, describe: DescribeRetrieval, follow: FollowStream
    ) -> Wrapper:
        """A wrapt wrapper for a synchronous method that returns a stream of results: the span
        covers the call and the reading of the stream (see :class:`StreamEnd`)."""

        def settle(
            run: _RetrievalRun, instance: Any, args: tuple[Any, ...], kwargs: Any, result: Any
        ) -> Any:
            return self._follow(run, follow, instance, args, kwargs, result)

        return self._sync_retrieval(describe, settle)

    def async_stream_retrieval_wrapper(
        self, describe: DescribeRetrieval, follow: FollowStream
    ) -> Wrapper:
        """:meth:`stream_retrieval_wrapper` for a coroutine method returning a stream."""

        async def settle(
            run: _RetrievalRun, instance: Any, args: tuple[Any, ...], kwargs: Any, result: Any
        ) -> Any:
            return self._follow(run, follow, instance, args, kwargs, result)

        return self._async_retrieval(describe, settle)

    def _follow(
        self,
        run: _RetrievalRun,
        follow: FollowStream,
        instance: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        result: Any,
    ) -> Any:
        run.returned_stream()
        if not run.wants_result:
            run.finish(())
            return result
        end = StreamEnd(run)
        try:
            return follow(instance, args, kwargs, result, end)
        except BaseException as error:
            _reraise_if_fatal(error)
            log_once(f"could not follow a {self.db_system} result stream")
            end(tuple)  # ends the span now, without a set; later calls do nothing
            return result

    # ---- ingestion

    def _begin_ingest(
        self, describe: DescribeIngest, instance: Any, args: Any, kwargs: Any
    ) -> tuple[Span, object] | None:
        if not _should_trace():
            return None
        try:
            request = describe(instance, args, kwargs)
            if request is None:
                return None
            parent = otel_context.get_current()
            name = request.operation
            if request.data_source_id:
                name = f"{request.operation} {request.data_source_id}"
            span = self.tracer.start_span(
                name,
                context=parent,
                kind=SpanKind.CLIENT,
                attributes={DB_SYSTEM_NAME: self.db_system, DB_OPERATION_NAME: request.operation},
                record_exception=False,
                set_status_on_exception=False,
            )
            if span.is_recording():  # ids and hashes only for spans that are kept
                span.set_attributes(self.ingest_attributes(request))
            run_context = otel_context.set_value(
                _STORE_CALL_KEY, True, trace.set_span_in_context(span, parent)
            )
            return span, otel_context.attach(run_context)
        except BaseException as error:
            _reraise_if_fatal(error)
            log_once(f"could not start a {self.db_system} ingestion span")
            return None

    def ingest_attributes(self, request: IngestRequest) -> dict[str, AttributeValue]:
        """Ingestion span attributes: store, operation, collection, chunk ids and quality.

        ``rag.ingest.quality_mean`` / ``rag.ingest.quality_scored_count`` / ``rag.quality_method``
        summarise the *written* chunks that carry metadata quality scores (else the heuristic
        stamped by ``ragprov.stamp``); stale and conflicting chunks are counted. No content is
        ever exported here.
        """
        attributes: dict[str, AttributeValue] = {
            DB_SYSTEM_NAME: self.db_system,
            DB_OPERATION_NAME: request.operation,
        }
        if request.data_source_id:
            attributes[DB_COLLECTION_NAME] = request.data_source_id
        count = len(request.chunks) if request.chunk_count is None else request.chunk_count
        if count >= 2:  # the DB convention: a batch has two or more operations
            attributes[DB_OPERATION_BATCH_SIZE] = count
        provenance, _ = _chunk_provenance(request.chunks)
        if provenance and count <= MAX_INGEST_CHUNK_IDS:
            envelope = RetrievalSetEnvelope.build(provenance)
            for key in (attrs.RAG_CHUNK_IDS, attrs.RAG_CHUNK_ID_METHOD):
                attributes[key] = envelope.span_attributes()[key]
            sources = [chunk.source_document_id or "" for chunk in provenance]
            if any(sources):
                attributes[attrs.RAG_SOURCE_DOCUMENT_IDS] = sources
        qualities = [parse_chunk_quality(chunk.metadata) for chunk in request.chunks]
        method = RagQualityMethodValues.METADATA
        scores = [score for score in (quality.score for quality in qualities) if score is not None]
        if not scores:  # no measured scores: the heuristic stamped by ragprov.stamp(), if any
            method = RagQualityMethodValues.HEURISTIC
            scores = [q.heuristic_quality for q in qualities if q.heuristic_quality is not None]
        if scores:
            attributes[attrs.RAG_INGEST_QUALITY_MEAN] = math.fsum(scores) / len(scores)
            attributes[attrs.RAG_INGEST_QUALITY_SCORED_COUNT] = len(scores)
            attributes[attrs.RAG_QUALITY_METHOD] = method.value
        stale = sum(quality.is_stale for quality in qualities)
        if stale:
            attributes[attrs.RAG_STALE_CHUNK_COUNT] = stale
        conflicts = sum(quality.conflict_flag for quality in qualities)
        if conflicts:
            attributes[attrs.RAG_CONFLICT_CHUNK_COUNT] = conflicts
        return attributes

    @staticmethod
    def _end_ingest(started: tuple[Span, object], error: BaseException | None) -> None:
        span, token = started
        try:
            otel_context.detach(token)  # type: ignore[arg-type]
        except Exception:
            log_once("could not restore the context")
        if error is not None:
            record_error(span, error)
        span.end()

    def ingest_wrapper(self, describe: DescribeIngest) -> Wrapper:
        """A wrapt wrapper for a synchronous add/upsert method."""

        def wrapper(
            wrapped: Callable[..., Any],
            instance: Any,
            args: tuple[Any, ...],
            kwargs: dict[str, Any],
        ) -> Any:
            started = self._begin_ingest(describe, instance, args, kwargs)
            if started is None:
                return wrapped(*args, **kwargs)
            try:
                result = wrapped(*args, **kwargs)
            except BaseException as error:
                self._end_ingest(started, error)
                raise
            self._end_ingest(started, None)
            return result

        return wrapper

    def async_ingest_wrapper(self, describe: DescribeIngest) -> Wrapper:
        """A wrapt wrapper for a coroutine add/upsert method."""

        async def wrapper(
            wrapped: Callable[..., Any],
            instance: Any,
            args: tuple[Any, ...],
            kwargs: dict[str, Any],
        ) -> Any:
            started = self._begin_ingest(describe, instance, args, kwargs)
            if started is None:
                return await wrapped(*args, **kwargs)
            try:
                result = await wrapped(*args, **kwargs)
            except BaseException as error:
                self._end_ingest(started, error)
                raise
            self._end_ingest(started, None)
            return result

        return wrapper


# --------------------------------------------------------------------------- instrumentor


class VectorStoreInstrumentor(PatchingInstrumentor[StoreTracer]):
    """Base of the store instrumentors: subclasses set :attr:`db_system` and implement
    :meth:`_patch` (import the client library there, never at module level), calling
    :meth:`_wrap` for each method with wrappers made by the :class:`StoreTracer` they get.
    """

    db_system: ClassVar[str] = ""

    @property
    def library(self) -> str:  # type: ignore[override]  # the store's name, for the logs
        return self.db_system

    def _context(self, tracer_provider: trace.TracerProvider | None) -> StoreTracer:
        return StoreTracer.create(
            self.db_system, f"ragprov.instrumentation.{self.db_system}", tracer_provider
        )

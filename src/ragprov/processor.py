"""``ProvenanceSpanProcessor``: enriches ended spans with provenance signals, off the request path.

An SDK span is immutable once it has ended, so ragprov *owns* the export processor: it receives
every ended span, computes, and hands the downstream processor (usually a
``BatchSpanProcessor``) a new ``ReadableSpan`` with the extra attributes and links merged in —
resource, scope, events, links, status and dropped counts kept::

    provider.add_span_processor(ProvenanceSpanProcessor(BatchSpanProcessor(exporter)))

What runs where:

* ``on_start`` (application thread): captures this context's lineage scope and any ancestor ids
  arriving in baggage — a ContextVar read; nothing is stored for spans without either.
* ``on_end`` (application thread): classifies the span by a few attribute look-ups, takes its
  side-channel payload, notes retrievals and steps in the caller's scope, and enqueues. Nothing
  else: no fingerprinting, no signals.
* the worker thread: everything else (:class:`~ragprov.enrichment.Enricher`), then
  ``downstream.on_end(copy)``. Spans reach the downstream processor in the order they ended.

Nothing is lost: when the queue is full (``RAGPROV_MAX_QUEUE_SIZE``), or enrichment fails, the
span is forwarded as it is and counted. ``force_flush`` and ``shutdown`` drain the queue first.
Counters: :meth:`ProvenanceSpanProcessor.stats`.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from opentelemetry import metrics
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace import Link
from opentelemetry.util.types import AttributeValue

from ragprov import foreign, ids, lineage, sidechannel
from ragprov.config import Settings, load_settings
from ragprov.enrichment import RETRIEVAL, STEP, Enricher, WorkItem, attribute_table
from ragprov.semconv import attributes as attrs
from ragprov.trace_state import TraceStore

_logger = logging.getLogger(__name__)

_STOP = object()
_NO_START: tuple[tuple[lineage.ScopeEntry, ...], tuple[str, ...]] = ((), ())
#: Instrumentation scope names of ragprov's own spans: ``ragprov`` and ``ragprov.*``.
_RAGPROV_SCOPE = "ragprov"

# The current process id, kept up to date across fork() so on_end need not ask the OS: a forked
# child must start its own worker (threads do not survive fork).
_pid = os.getpid()


def _after_fork() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_after_fork)


@dataclass(slots=True)
class _Flush:
    done: threading.Event


@dataclass(slots=True)
class ProcessorStats:
    """What the processor did; every span is either enriched, passed through or counted here."""

    spans_enqueued: int = 0
    spans_enriched: int = 0
    #: Forwarded unenriched because the queue was full (a documented bound), never dropped.
    spans_forwarded_unenriched_queue_full: int = 0
    #: Forwarded unenriched because enrichment raised (a bug: please report it).
    spans_forwarded_unenriched_error: int = 0
    #: Our attributes left out because the span was at its attribute-count limit.
    attributes_not_added_at_limit: int = 0
    downstream_errors: int = 0


class ProvenanceSpanProcessor(SpanProcessor):
    """Wraps an export processor and forwards enriched copies of ended spans to it."""

    def __init__(self, downstream: SpanProcessor, *, settings: Settings | None = None) -> None:
        self.downstream = downstream
        self.settings = settings if settings is not None else load_settings()
        self._store = TraceStore(
            max_traces=self.settings.max_traces,
            max_bytes=self.settings.max_state_bytes,
            ttl_seconds=self.settings.trace_ttl_seconds,
        )
        self._enricher = Enricher(self.settings, self._store)
        self._stats = ProcessorStats()
        self._starts: dict[tuple[int, int], tuple[tuple[lineage.ScopeEntry, ...], tuple[str, ...]]]
        self._starts = {}
        self._max_starts = self.settings.max_pending_spans
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._worker: threading.Thread | None = None
        self._worker_pid = 0
        self._worker_lock = threading.Lock()
        self._sweep_seconds = max(0.01, min(60.0, self.settings.trace_ttl_seconds / 4))
        self._shutdown = False
        self._logged_errors: set[str] = set()
        sidechannel.configure_bounds(
            max_spans=self.settings.max_pending_spans,
            max_chars=self.settings.max_pending_chars,
            ttl_seconds=self.settings.trace_ttl_seconds,
        )
        sidechannel.attach_consumer()
        self._register_metrics()

    def _register_metrics(self) -> None:
        """Expose the counters as OTel metrics, read at collection time (not on the hot path)."""
        try:
            meter = metrics.get_meter("ragprov")
            meter.create_observable_counter(
                "ragprov.processor.spans",
                callbacks=[self._observe_spans],
                unit="{span}",
                description="Spans handled by the provenance processor, by outcome.",
            )
            meter.create_observable_counter(
                "ragprov.processor.evictions",
                callbacks=[self._observe_evictions],
                unit="{eviction}",
                description="State evicted by a documented bound (traces, side-channel text).",
            )
        except Exception:
            self._log_once("metrics", "ragprov: could not register the processor's metrics")

    def _observe_spans(self, options: metrics.CallbackOptions) -> list[metrics.Observation]:
        stats = self._stats
        return [
            metrics.Observation(stats.spans_enriched, {"ragprov.outcome": "enriched"}),
            metrics.Observation(
                stats.spans_forwarded_unenriched_queue_full,
                {"ragprov.outcome": "unenriched_queue_full"},
            ),
            metrics.Observation(
                stats.spans_forwarded_unenriched_error, {"ragprov.outcome": "unenriched_error"}
            ),
        ]

    def _observe_evictions(self, options: metrics.CallbackOptions) -> list[metrics.Observation]:
        return [
            metrics.Observation(value, {"ragprov.bound": name})
            for name, value in {
                **asdict(self._store.stats),
                **{f"sidechannel_{key}": value for key, value in asdict(sidechannel.stats).items()},
            }.items()
        ]

    # -- application thread -----------------------------------------------------------------------

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self.downstream.on_start(span, parent_context=parent_context)
        if self._shutdown:
            return
        try:
            scope = lineage.scope_snapshot()
            from_baggage = lineage.ancestors_from_baggage(parent_context)
            if scope or from_baggage:
                context = span.get_span_context()
                if len(self._starts) >= self._max_starts:
                    self._starts.pop(next(iter(self._starts)), None)
                self._starts[(context.trace_id, context.span_id)] = (scope, from_baggage)
        except Exception:
            self._log_once("on_start", "ragprov: could not capture lineage scope")

    def on_end(self, span: ReadableSpan) -> None:
        if self._shutdown:
            self._forward(span)
            return
        try:
            item = self._work_item(span)
        except Exception:
            self._log_once("on_end", "ragprov: could not classify an ended span")
            self._forward(span)
            return
        if self._queue.qsize() >= self.settings.max_queue_size:
            self._stats.spans_forwarded_unenriched_queue_full += 1
            self._forward(span)
            return
        if self._worker_pid != _pid:
            self._ensure_worker()
        self._stats.spans_enqueued += 1
        self._queue.put(item)

    def _work_item(self, span: ReadableSpan) -> WorkItem:
        context = span.context
        assert context is not None
        span_attributes = attribute_table(span)
        key = (context.trace_id, context.span_id)
        payload = sidechannel.take(*key)
        scope, from_baggage = self._starts.pop(key, _NO_START) if self._starts else _NO_START
        parent = span.parent
        # span, role, record_id, assigned_id, is_local_root, payload, scope, from_baggage
        # (positional: keyword arguments cost this hot path about 0.2 µs)
        item = WorkItem(
            span,
            None,
            None,
            False,
            parent is None or parent.is_remote,
            payload,
            scope,
            from_baggage,
        )
        retrieval_set_id = span_attributes.get(attrs.RAG_RETRIEVAL_SET_ID)
        if isinstance(payload, sidechannel.RetrievalPayload) and payload.retrieval_set_id:
            # A deferred retrieval: its set id travels with the rows; the worker exports it.
            retrieval_set_id = payload.retrieval_set_id
        if isinstance(retrieval_set_id, str) or foreign.is_retrieval(span_attributes):
            item.role = RETRIEVAL
            if isinstance(retrieval_set_id, str):
                item.record_id = retrieval_set_id
            elif (shared_id := self._shared_retrieval_set_id(span)) is not None:
                item.record_id, item.assigned_id, item.shares_id = shared_id, True, True
            else:
                item.record_id, item.assigned_id = ids.new_retrieval_set_id(), True
        elif (
            attrs.RAG_STEP_ID in span_attributes
            or isinstance(payload, sidechannel.StepPayload)
            or foreign.is_step(span_attributes)
        ):
            item.role = STEP
            step_id = span_attributes.get(attrs.RAG_STEP_ID)
            if isinstance(step_id, str):
                item.record_id = step_id
            else:
                item.record_id, item.assigned_id = ids.new_step_id(), True
        if item.role is not None and item.record_id is not None and not item.shares_id:
            # (A shared id is noted when ragprov's span of the same retrieval ends.)
            # span.end() runs in the caller's context: this is what links a later step in the
            # same thread or task, even without a parent span.
            lineage.note(
                lineage.ScopeEntry(  # kind, record_id, trace_id, span_id, ended_at
                    lineage.RETRIEVAL if item.role == RETRIEVAL else lineage.STEP,
                    item.record_id,
                    context.trace_id,
                    context.span_id,
                    time.monotonic(),
                )
            )
        return item

    @staticmethod
    def _shared_retrieval_set_id(span: ReadableSpan) -> str | None:
        """The set id of ragprov's framework retrieval span still open where this retrieval span
        of another instrumentation ends: the same retrieval call, traced twice (see
        :func:`ragprov.lineage.share_open_retrieval`). None for ragprov's own spans."""
        scope = span.instrumentation_scope
        if scope is not None and (
            scope.name == _RAGPROV_SCOPE or scope.name.startswith(_RAGPROV_SCOPE + ".")
        ):
            return None
        return lineage.share_open_retrieval()

    # -- worker -----------------------------------------------------------------------------------

    def _ensure_worker(self) -> None:
        pid = _pid
        if self._worker is not None and self._worker_pid == pid:
            return
        with self._worker_lock:
            if self._worker is not None and self._worker_pid == pid:
                return
            if self._worker_pid and self._worker_pid != pid:
                self._queue = queue.SimpleQueue()  # forked: the parent's queue is not ours
            self._worker_pid = pid
            self._worker = threading.Thread(
                target=self._run, name="ragprov-provenance", daemon=True
            )
            self._worker.start()

    def _run(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=self._sweep_seconds)
            except queue.Empty:
                # Idle: apply the age bounds now rather than on the next span, so the state of
                # traces whose root never ends is released even when no more spans arrive.
                self._store.enforce_bounds()
                sidechannel.sweep()
                continue
            if item is _STOP:
                return
            if isinstance(item, _Flush):
                item.done.set()
                continue
            self._process(item)

    def _process(self, item: WorkItem) -> None:
        span = item.span
        try:
            enrichment = self._enricher.enrich(item)
            if enrichment.attributes or enrichment.links:
                span = self._copy(span, enrichment.attributes, enrichment.links)
            self._stats.spans_enriched += 1
        except Exception:
            self._stats.spans_forwarded_unenriched_error += 1
            self._log_once("enrich", "ragprov: enrichment failed; span exported unenriched")
        finally:
            item.payload = None  # release side-channel text as soon as it is fingerprinted
        self._forward(span)

    def _copy(
        self, span: ReadableSpan, extra: dict[str, AttributeValue], links: list[Link]
    ) -> ReadableSpan:
        attributes, not_added = _merge_attributes(span, extra)
        self._stats.attributes_not_added_at_limit += not_added
        return ReadableSpan(
            name=span.name,
            context=span.context,
            parent=span.parent,
            resource=span.resource,
            attributes=attributes,
            events=_bounded_copy(span.events, getattr(span, "_events", None)),
            links=_with_links(span, links),
            kind=span.kind,
            status=span.status,
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        )

    def _forward(self, span: ReadableSpan) -> None:
        try:
            self.downstream.on_end(span)
        except Exception:
            self._stats.downstream_errors += 1
            self._log_once("downstream", "ragprov: the downstream span processor raised")

    # -- flush and shutdown -----------------------------------------------------------------------

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        deadline = time.monotonic() + timeout_millis / 1000
        drained = self._drain(timeout_millis / 1000)
        remaining = max(0, int((deadline - time.monotonic()) * 1000))
        return drained and self.downstream.force_flush(remaining)

    def shutdown(self) -> None:
        if self._shutdown:
            return
        self._drain(30.0)
        self._shutdown = True
        worker = self._worker
        if worker is not None and worker.is_alive() and self._worker_pid == _pid:
            self._queue.put(_STOP)
            worker.join(timeout=30.0)
        sidechannel.detach_consumer()
        self._starts.clear()
        self.downstream.shutdown()

    def _drain(self, timeout_seconds: float) -> bool:
        worker = self._worker
        if worker is None or not worker.is_alive() or self._worker_pid != _pid:
            return True
        marker = _Flush(threading.Event())
        self._queue.put(marker)
        return marker.done.wait(timeout_seconds)

    # -- introspection ----------------------------------------------------------------------------

    def accepts_work(self) -> bool:
        """True while ended spans would be enqueued for enrichment: not shut down and the queue
        not full (a full queue forwards spans as they are, unenriched)."""
        return not self._shutdown and self._queue.qsize() < self.settings.max_queue_size

    def stats(self) -> dict[str, int]:
        """Counters of this processor, its bounded state and the side channel."""
        pending_spans, pending_chars = sidechannel.pending()
        return {
            **asdict(self._stats),
            **asdict(self._store.stats),
            **{f"sidechannel_{key}": value for key, value in asdict(sidechannel.stats).items()},
            "queue_size": self._queue.qsize(),
            "traces_in_memory": self._store.trace_count,
            "records_in_memory": self._store.record_count,
            "state_bytes": self._store.size_bytes,
            "sidechannel_pending_spans": pending_spans,
            "sidechannel_pending_chars": pending_chars,
        }

    def _log_once(self, where: str, message: str) -> None:
        if where not in self._logged_errors:
            self._logged_errors.add(where)
            _logger.warning(message, exc_info=True)
        else:
            _logger.debug(message, exc_info=True)


def _maxlen(bounded: object) -> int | None:
    """The limit of an SDK BoundedList (kept in its private deque; None when unknown)."""
    deque_ = getattr(bounded, "_dq", None)
    maxlen = getattr(deque_, "maxlen", None)
    return maxlen if isinstance(maxlen, int) else None


def _bounded_copy(items: Any, original: Any) -> BoundedList[Any]:
    """A BoundedList of ``items`` with the original's limit and dropped count.

    An ended SDK span's own BoundedList is final (the SDK refuses changes after end and shares
    it with its own ReadableSpan): it is its own faithful copy.
    """
    if isinstance(original, BoundedList):
        return original
    return BoundedList.from_seq(_maxlen(original), list(items))


def _merge_attributes(
    span: ReadableSpan, extra: dict[str, AttributeValue]
) -> tuple[BoundedAttributes, int]:
    """The span's attributes plus ``extra``, within the span's attribute-count limit.

    At the limit the SDK would evict the *oldest* attribute (often ``gen_ai.*`` ones); instead,
    ``extra`` fills only the room left, in its insertion order (most important first), and what
    does not fit is left out and counted in the copy's dropped attributes.
    """
    original = getattr(span, "_attributes", None)
    bounded = original if isinstance(original, BoundedAttributes) else None
    maxlen = None if bounded is None else bounded.maxlen
    # The SDK's own dict holds values it has already cleaned; the read-only proxy around it
    # would copy them item by item through Python-level look-ups.
    merged: dict[str, Any] = dict(attribute_table(span))
    not_added = 0
    added: Iterable[str]
    if maxlen is None or len(merged) + len(extra) <= maxlen:  # everything fits (the usual case)
        merged.update(extra)
        added = extra.keys()
    else:
        added = []
        for key, value in extra.items():
            if key in merged or len(merged) < maxlen:
                merged[key] = value
                added.append(key)
            else:
                not_added += 1
    if bounded is not None and bounded.max_value_len is None:
        attributes = _already_clean(merged, added, maxlen)
    else:
        attributes = None
    if attributes is None:
        attributes = BoundedAttributes(
            maxlen=maxlen,
            attributes=merged,
            immutable=True,
            max_value_len=None if bounded is None else bounded.max_value_len,
        )
    attributes.dropped += span.dropped_attributes + not_added
    return attributes, not_added


#: The exact types of values the SDK keeps as they are (a subclass, e.g. a str enum member,
#: takes the SDK's own path).
_PLAIN_TYPES = frozenset((str, bool, int, float))


def _already_clean(
    merged: dict[str, Any], added: Iterable[str], maxlen: int | None
) -> BoundedAttributes | None:
    """``BoundedAttributes(maxlen, merged)`` without re-cleaning every value, or None.

    Only the ``added`` values need what the SDK's cleaning does to them when there is no
    value-length limit: plain values stay, lists of plain values become tuples. Anything else
    returns None (the caller takes the SDK's path). The span's own values are clean already;
    the SDK's ``__deepcopy__`` assigns its dict the same way.
    """
    for key in added:
        value = merged[key]
        kind = type(value)
        if kind in _PLAIN_TYPES:
            continue
        if (kind is list or kind is tuple) and _PLAIN_TYPES.issuperset(map(type, value)):
            merged[key] = tuple(value)
            continue
        return None
    attributes = BoundedAttributes(maxlen=maxlen, immutable=True)
    attributes._dict = merged
    if len(attributes) != len(merged):  # an SDK that keeps its items elsewhere: its own path
        return None
    return attributes


def _with_links(span: ReadableSpan, links: list[Link]) -> BoundedList[Any]:
    """The span's links plus lineage links, within its link limit (existing links win)."""
    original = getattr(span, "_links", None)
    if not links and isinstance(original, BoundedList):
        return original  # final once the span has ended (see _bounded_copy)
    maxlen = _maxlen(original)
    existing = list(span.links)
    room = len(links) if maxlen is None else max(0, maxlen - len(existing))
    copy = BoundedList.from_seq(maxlen, [*existing, *links[:room]])
    copy.dropped = span.dropped_links + len(links) - min(room, len(links))
    return copy

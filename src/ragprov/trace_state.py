"""The processor's bounded memory: what it knows about retrieval sets and steps seen so far.

Everything here is touched only by the processor's worker thread, so there are no locks.

* A :class:`RetrievalRecord` keeps what later steps need of a retrieval set: chunk ids,
  fingerprints (never text), qualities, optional embeddings, and the ancestors of its query.
* A :class:`StepRecord` keeps a step's output fingerprint and ancestors, for transitive lineage.
* A :class:`TraceRecord` lists the records of one trace in the order they ended, and the last
  answer's attributes, to mirror onto the trace's root span.

Bounds (all documented in docs/processor.md, counted when hit): number of traces, total bytes of
fingerprints, and age. When the local root span of a trace ends, its records are released —
except records of retrievals that were themselves a trace root (plain scripts without a parent
span), which stay available to the next step of the same thread or task until they age out.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.trace import SpanContext
from opentelemetry.util.types import AttributeValue

from ragprov.signals import SetSignals, TextFingerprint
from ragprov.signals.metadata import ChunkQuality

DEFAULT_MAX_TRACES = 10_000
DEFAULT_MAX_BYTES = 256 * 1024 * 1024
DEFAULT_TTL_SECONDS = 600.0

# Fixed per-record overhead estimate (objects, tuples, dict entries), added to fingerprint bytes.
_RECORD_OVERHEAD_BYTES = 512
_PER_CHUNK_OVERHEAD_BYTES = 160


@dataclass(slots=True)
class RetrievalRecord:
    """What later steps need of one retrieval set. ``set_signals`` must be the signals of exactly
    these ``fingerprints`` (the step path reuses their token count instead of recounting)."""

    retrieval_set_id: str
    chunk_set_hash: str
    span_context: SpanContext
    chunk_ids: tuple[str, ...]
    fingerprints: tuple[TextFingerprint | None, ...]
    qualities: tuple[ChunkQuality | None, ...]
    embeddings: Any
    set_signals: SetSignals | None
    upstream_retrieval_set_ids: tuple[str, ...] = ()
    is_trace_root: bool = False
    data_source_id: str | None = None

    def size_bytes(self) -> int:
        fingerprint_bytes = sum(fp.hashes.nbytes for fp in self.fingerprints if fp is not None)
        embedding_bytes = int(getattr(self.embeddings, "nbytes", 0) or 0)
        return (
            _RECORD_OVERHEAD_BYTES
            + fingerprint_bytes
            + embedding_bytes
            + _PER_CHUNK_OVERHEAD_BYTES * len(self.chunk_ids)
        )


@dataclass(slots=True)
class StepRecord:
    step_id: str
    output: TextFingerprint | None
    ancestor_retrieval_set_ids: tuple[str, ...]
    is_tool: bool = False
    tool_provided_data: bool | None = None
    is_trace_root: bool = False

    def size_bytes(self) -> int:
        output_bytes = 0 if self.output is None else self.output.hashes.nbytes
        return _RECORD_OVERHEAD_BYTES + output_bytes + 64 * len(self.ancestor_retrieval_set_ids)


@dataclass(slots=True)
class TraceRecord:
    retrieval_set_ids: list[str] = field(default_factory=list)
    step_ids: list[str] = field(default_factory=list)
    final_answer: dict[str, AttributeValue] | None = None
    touched: float = 0.0


@dataclass(slots=True)
class StateStats:
    traces_evicted_by_count: int = 0
    traces_evicted_by_size: int = 0
    traces_evicted_by_age: int = 0


class TraceStore:
    """Records by id, grouped by trace, bounded by trace count, bytes and age."""

    def __init__(
        self,
        *,
        max_traces: int = DEFAULT_MAX_TRACES,
        max_bytes: int = DEFAULT_MAX_BYTES,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
    ) -> None:
        self.max_traces = max(1, max_traces)
        self.max_bytes = max(0, max_bytes)
        self.ttl_seconds = max(0.0, ttl_seconds)
        self.stats = StateStats()
        self._traces: OrderedDict[int, TraceRecord] = OrderedDict()
        self._retrievals: dict[str, RetrievalRecord] = {}
        self._steps: dict[str, StepRecord] = {}
        # Records kept after their trace ended (trace-root retrievals/steps), oldest first.
        self._orphans: OrderedDict[str, float] = OrderedDict()
        self._bytes = 0

    # -- reading ---------------------------------------------------------------------------------

    def trace(self, trace_id: int) -> TraceRecord:
        """The record of ``trace_id`` (created if new), marked as most recently used."""
        now = time.monotonic()
        record = self._traces.get(trace_id)
        if record is None:
            record = self._traces[trace_id] = TraceRecord(touched=now)
        else:
            self._traces.move_to_end(trace_id)
            record.touched = now
        return record

    def retrieval(self, retrieval_set_id: str) -> RetrievalRecord | None:
        return self._retrievals.get(retrieval_set_id)

    def step(self, step_id: str) -> StepRecord | None:
        return self._steps.get(step_id)

    # -- writing ---------------------------------------------------------------------------------

    def add_retrieval(self, trace_id: int, record: RetrievalRecord) -> None:
        """Add a retrieval, or replace the record of the same set id (two spans of one retrieval
        call share an id: the later record, ragprov's, replaces another instrumentation's)."""
        replaced = self._forget_retrieval(record.retrieval_set_id)
        self._retrievals[record.retrieval_set_id] = record
        self._bytes += record.size_bytes()
        trace = self.trace(trace_id)
        if not replaced or record.retrieval_set_id not in trace.retrieval_set_ids:
            trace.retrieval_set_ids.append(record.retrieval_set_id)
        self.enforce_bounds()

    def add_step(self, trace_id: int, record: StepRecord) -> None:
        self._forget_step(record.step_id)
        self._steps[record.step_id] = record
        self._bytes += record.size_bytes()
        self.trace(trace_id).step_ids.append(record.step_id)
        self.enforce_bounds()

    def end_trace(self, trace_id: int) -> None:
        """The local root ended: release the trace, keeping trace-root records as orphans."""
        record = self._traces.pop(trace_id, None)
        if record is not None:
            self._release(record, keep_roots=True)

    def enforce_bounds(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        cutoff = now - self.ttl_seconds
        while self._orphans:
            key, created = next(iter(self._orphans.items()))
            if created >= cutoff and self._bytes <= self.max_bytes:
                break
            self._orphans.popitem(last=False)
            self._forget_retrieval(key)
            self._forget_step(key)
        while self._traces:
            trace_id, record = next(iter(self._traces.items()))
            if record.touched < cutoff:
                self.stats.traces_evicted_by_age += 1
            elif len(self._traces) > self.max_traces:
                self.stats.traces_evicted_by_count += 1
            elif self._bytes > self.max_bytes:
                self.stats.traces_evicted_by_size += 1
            else:
                break
            del self._traces[trace_id]
            self._release(record, keep_roots=False)

    # -- introspection (tests, metrics) -----------------------------------------------------------

    @property
    def trace_count(self) -> int:
        return len(self._traces)

    @property
    def record_count(self) -> int:
        return len(self._retrievals) + len(self._steps)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    # -- internals --------------------------------------------------------------------------------

    def _release(self, record: TraceRecord, *, keep_roots: bool) -> None:
        now = time.monotonic()
        for retrieval_set_id in record.retrieval_set_ids:
            retrieval = self._retrievals.get(retrieval_set_id)
            if retrieval is not None and keep_roots and retrieval.is_trace_root:
                self._orphans[retrieval_set_id] = now
            else:
                self._forget_retrieval(retrieval_set_id)
        for step_id in record.step_ids:
            step = self._steps.get(step_id)
            if step is not None and keep_roots and step.is_trace_root:
                self._orphans[step_id] = now
            else:
                self._forget_step(step_id)

    def _forget_retrieval(self, retrieval_set_id: str) -> bool:
        record = self._retrievals.pop(retrieval_set_id, None)
        if record is not None:
            self._bytes -= record.size_bytes()
        return record is not None

    def _forget_step(self, step_id: str) -> None:
        record = self._steps.pop(step_id, None)
        if record is not None:
            self._bytes -= record.size_bytes()

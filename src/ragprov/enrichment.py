"""Worker-side computation: from an ended span (and its side-channel text) to new attributes.

:class:`Enricher` runs on the processor's worker thread, one span at a time in the order spans
ended. It fingerprints side-channel text (and drops it), keeps bounded records in a
:class:`~ragprov.trace_state.TraceStore`, infers lineage, computes signals, and returns the
attributes and links to merge into the exported copy. It never touches the application thread.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import Link, SpanContext
from opentelemetry.util.types import AttributeValue

from ragprov import foreign, ids, lineage
from ragprov.config import Settings
from ragprov.model import ChunkProvenance
from ragprov.semconv import attributes as attrs
from ragprov.semconv.attributes import RagTransformationTypeValues
from ragprov.sidechannel import Payload, RetrievalPayload, StepPayload
from ragprov.signal_attributes import AttributeDict, set_signal_attributes, step_signal_attributes
from ragprov.signals import (
    SetSignals,
    TextFingerprint,
    compute_set_signals,
    compute_step_signals,
    fingerprint,
    uncertainty_acknowledged,
)
from ragprov.signals.metadata import ChunkQuality
from ragprov.signals.tokens import TextLines, fingerprint_with_runs
from ragprov.signals.utilisation import overlap_scores
from ragprov.trace_state import RetrievalRecord, StepRecord, TraceStore

RETRIEVAL = "retrieval"
STEP = "step"
GEN_AI_DATA_SOURCE_ID = "gen_ai.data_source.id"
#: A step is compared with at most this many of the latest retrievals and steps of its trace
#: (plus its scope), so that a long agent trace costs linear, not quadratic, time.
MAX_CANDIDATE_RETRIEVALS = 64
MAX_CANDIDATE_STEPS = 32


def attribute_table(span: ReadableSpan) -> Mapping[str, Any]:
    """The span's attributes for look-ups on the hot path.

    ``span.attributes`` is a read-only proxy over the SDK's BoundedAttributes, whose look-ups run
    in Python (a missing key raises and catches KeyError); the plain dict inside it answers the
    same questions several times faster.
    """
    table = getattr(getattr(span, "_attributes", None), "_dict", None)
    return table if isinstance(table, dict) else (span.attributes or {})


@dataclass(slots=True)
class WorkItem:
    """An ended span with what the application thread gathered for it."""

    span: ReadableSpan
    role: str | None  # RETRIEVAL, STEP or None
    record_id: str | None  # retrieval set id / step id (assigned when the span had none)
    assigned_id: bool  # record_id was assigned by ragprov (not on the span)
    is_local_root: bool
    payload: Payload | None = None
    scope: tuple[lineage.ScopeEntry, ...] = ()
    from_baggage: tuple[str, ...] = ()
    # A foreign retrieval span that took the set id of ragprov's retrieval span of the same call
    # (lineage.share_open_retrieval): ragprov's record of that set wins over this span's.
    shares_id: bool = False


@dataclass(slots=True)
class Enrichment:
    attributes: AttributeDict = field(default_factory=dict)
    links: list[Link] = field(default_factory=list)


class Enricher:
    """Turns work items into enrichments, keeping bounded state between them."""

    def __init__(self, settings: Settings, store: TraceStore) -> None:
        self.settings = settings
        self.store = store
        self.thresholds = settings.thresholds
        self._uncertainty_phrases = tuple(settings.all_uncertainty_patterns)

    def enrich(self, item: WorkItem) -> Enrichment:
        enrichment = Enrichment()
        context = item.span.context
        if context is None:
            return enrichment
        if item.role == RETRIEVAL and item.record_id:
            self._retrieval(item, context, enrichment)
        elif item.role == STEP and item.record_id:
            self._step(item, context, enrichment)
        if item.is_local_root:
            self._mirror_final_answer(item, context, enrichment)
            self.store.end_trace(context.trace_id)
        return enrichment

    # -- retrieval spans --------------------------------------------------------------------------

    def _retrieval(self, item: WorkItem, context: SpanContext, out: Enrichment) -> None:
        assert item.record_id is not None
        span_attributes = item.span.attributes or {}
        payload = item.payload if isinstance(item.payload, RetrievalPayload) else None
        chunk_ids: tuple[str, ...]
        texts: Sequence[str | None]
        qualities: Sequence[ChunkQuality | None]
        embeddings: Any = None
        query_texts: tuple[str, ...] = ()
        if payload is not None:
            chunk_ids = payload.envelope.chunk_ids
            texts = payload.chunk_texts
            qualities = [chunk.quality for chunk in payload.envelope.chunks]
            embeddings = payload.embeddings
            query_texts = payload.query_texts
            chunk_set_hash = payload.envelope.chunk_set_hash
            if payload.deferred:  # built here, off the application thread: export it
                _add_missing(out, payload.envelope.span_attributes(), span_attributes)
        elif attrs.RAG_CHUNK_IDS in span_attributes:
            chunk_ids = tuple(
                str(value) for value in _sequence(span_attributes[attrs.RAG_CHUNK_IDS])
            )
            texts, qualities = [None] * len(chunk_ids), [None] * len(chunk_ids)
            chunk_set_hash = str(
                span_attributes.get(attrs.RAG_CHUNK_SET_HASH) or ids.chunk_set_hash(chunk_ids)
            )
        else:
            chunk_ids, texts, qualities = self._foreign_retrieval(span_attributes, out)
            chunk_set_hash = ids.chunk_set_hash(chunk_ids)
            out.attributes[attrs.RAG_CHUNK_SET_HASH] = chunk_set_hash
        if item.assigned_id:
            out.attributes[attrs.RAG_RETRIEVAL_SET_ID] = item.record_id

        fingerprints = [None if text is None else fingerprint(text) for text in texts]
        set_signals = compute_set_signals(
            fingerprints,
            chunk_ids=chunk_ids,
            metadata=qualities,
            embeddings=embeddings,
            thresholds=self.thresholds,
        )
        out.attributes.update(set_signal_attributes(set_signals))
        if item.shares_id and self.store.retrieval(item.record_id) is not None:
            return  # ragprov's span of the same call came first: its record stays
        self.store.add_retrieval(
            context.trace_id,
            RetrievalRecord(
                retrieval_set_id=item.record_id,
                chunk_set_hash=chunk_set_hash,
                span_context=context,
                chunk_ids=chunk_ids,
                fingerprints=tuple(fingerprints),
                qualities=tuple(qualities),
                embeddings=_embedding_matrix(embeddings, len(chunk_ids)),
                set_signals=set_signals,
                upstream_retrieval_set_ids=self._query_upstream(item, context, query_texts),
                is_trace_root=item.is_local_root,
                data_source_id=_data_source_id(span_attributes),
            ),
        )

    def _foreign_retrieval(
        self, span_attributes: Mapping[str, Any], out: Enrichment
    ) -> tuple[tuple[str, ...], list[str | None], list[ChunkQuality | None]]:
        """Provenance for a retrieval span made by another instrumentation."""
        chunks: list[ChunkProvenance] = []
        texts: list[str | None] = []
        for rank, document in enumerate(foreign.retrieval_documents(span_attributes), start=1):
            chunk = ChunkProvenance.from_store(
                rank=rank,
                text=document.text,
                metadata=document.metadata,
                store_id=document.store_id,
                score=document.score,
            )
            if chunk is not None:
                chunks.append(chunk)
                texts.append(document.text)
        chunk_ids = tuple(chunk.chunk_id for chunk in chunks)
        out.attributes[attrs.RAG_CHUNK_IDS] = list(chunk_ids)
        if chunks:
            methods = {chunk.chunk_id_method.value for chunk in chunks}
            out.attributes[attrs.RAG_CHUNK_ID_METHOD] = (
                methods.pop() if len(methods) == 1 else "store_id"
            )
        return chunk_ids, texts, [chunk.quality for chunk in chunks]

    def _query_upstream(
        self, item: WorkItem, context: SpanContext, query_texts: Sequence[str]
    ) -> tuple[str, ...]:
        """Ancestors of a retrieval's query: earlier steps whose output contains the query."""
        if not query_texts:
            return ()
        queries = [fingerprint(query) for query in query_texts]
        _, steps = self._candidates(item, context)
        upstream: list[str] = []
        for step in steps:
            if step.output is None:
                continue
            for query in queries:
                if not query.token_count:
                    continue
                # Share of the query's tokens found in the step's output.
                score = overlap_scores([query], step.output)[0]
                if score is not None and score >= lineage.CONTENT_MATCH_THRESHOLD:
                    upstream.extend(step.ancestor_retrieval_set_ids)
                    break
        return tuple(dict.fromkeys(upstream))

    # -- step spans -------------------------------------------------------------------------------

    def _step(self, item: WorkItem, context: SpanContext, out: Enrichment) -> None:
        assert item.record_id is not None
        span_attributes = attribute_table(item.span)
        payload = item.payload if isinstance(item.payload, StepPayload) else None
        is_tool = foreign.is_tool(span_attributes) or (payload is not None and payload.tool_called)
        if payload is not None and payload.input_texts:
            input_text: str | None = "\n".join(payload.input_texts)
        else:
            input_text = foreign.step_text(span_attributes, "input")
        if payload is not None and payload.tool_called:
            output_text = payload.tool_output
        elif payload is not None and payload.output_text is not None:
            output_text = payload.output_text
        else:
            output_text = foreign.step_text(span_attributes, "output")
        # Lines first: the prompt is fingerprinted only if the content match needs it.
        step_input = None if input_text is None else TextLines(input_text)
        output, output_runs = (
            (None, None) if output_text is None else fingerprint_with_runs(output_text)
        )
        tool_provided = payload.tool_provided_data if payload is not None else None

        if item.assigned_id:
            out.attributes[attrs.RAG_STEP_ID] = item.record_id
        transformation = span_attributes.get(attrs.RAG_TRANSFORMATION_TYPE)
        if transformation is None:
            transformation = _transformation_type(span_attributes, is_tool)
            if transformation is not None:
                out.attributes[attrs.RAG_TRANSFORMATION_TYPE] = transformation

        retrievals, steps = self._candidates(item, context)
        explicit = payload.explicit_inputs if payload is not None else ()
        known_steps = {step.step_id: step for step in steps}
        for value in explicit:
            record = self.store.retrieval(value)
            if record is not None and record not in retrievals:
                retrievals.append(record)
            step_record = self.store.step(value)
            if step_record is not None:
                known_steps[value] = step_record
        ancestry = lineage.infer_ancestors(
            step_input=step_input,
            explicit_inputs=explicit,
            from_baggage=item.from_baggage,
            retrievals=retrievals,
            steps=steps,
            known_steps=known_steps,
            threshold=self.settings.content_match_threshold,
        )
        self._lineage_attributes(ancestry, out)

        if is_tool and tool_provided is not None:
            out.attributes[attrs.RAG_TOOL_PROVIDED_DATA] = tool_provided
        elif output is not None and (ancestry.direct_retrieval_set_ids or ancestry.tool_step_ids):
            step_attributes = self._step_signals(
                ancestry, output, output_text, output_runs, known_steps
            )
            out.attributes.update(step_attributes)
            if transformation in (None, RagTransformationTypeValues.GENERATION.value):
                trace = self.store.trace(context.trace_id)
                trace.final_answer = _final_answer_view(out.attributes, context.span_id)

        self.store.add_step(
            context.trace_id,
            StepRecord(
                step_id=item.record_id,
                output=output,
                ancestor_retrieval_set_ids=ancestry.retrieval_set_ids,
                is_tool=is_tool,
                tool_provided_data=tool_provided,
                is_trace_root=item.is_local_root,
            ),
        )

    def _step_signals(
        self,
        ancestry: lineage.Ancestry,
        output: TextFingerprint,
        output_text: str | None,
        output_runs: AbstractSet[str] | None,
        known_steps: Mapping[str, StepRecord],
    ) -> AttributeDict:
        records = [
            record
            for retrieval_set_id in ancestry.direct_retrieval_set_ids
            if (record := self.store.retrieval(retrieval_set_id)) is not None
        ]
        chunk_ids, fingerprints, qualities = _distinct_chunks(records)
        set_signals: SetSignals | None = records[0].set_signals if len(records) == 1 else None
        # The set's own chunks, unchanged: its lexical similarity already counted their tokens.
        source_token_count = (
            set_signals.similarity.distinct_token_count
            if set_signals is not None and fingerprints is records[0].fingerprints
            else None
        )
        embeddings = records[0].embeddings if len(records) == 1 else None
        tools = [
            known_steps[step_id] for step_id in ancestry.tool_step_ids if step_id in known_steps
        ]
        providing = [tool for tool in tools if tool.tool_provided_data]
        signals = compute_step_signals(
            fingerprints,
            output,
            chunk_ids=chunk_ids,
            metadata=qualities,
            embeddings=embeddings,
            uncertainty_acknowledged=bool(
                output_text
                and uncertainty_acknowledged(
                    output_text, patterns=self._uncertainty_phrases, runs=output_runs
                )
            ),
            tool_provided_data=bool(providing) if tools else None,
            tool_outputs=[tool.output for tool in providing],
            set_signals=set_signals,
            thresholds=self.thresholds,
            source_token_count=source_token_count,
        )
        return step_signal_attributes(signals)

    def _lineage_attributes(self, ancestry: lineage.Ancestry, out: Enrichment) -> None:
        if ancestry.method is None:
            return
        out.attributes[attrs.RAG_LINEAGE_METHOD] = ancestry.method.value
        out.attributes[attrs.RAG_ANCESTOR_RETRIEVAL_SET_IDS] = list(ancestry.retrieval_set_ids)
        hashes: list[str] = []
        data_sources: list[str] = []
        for retrieval_set_id in ancestry.retrieval_set_ids:
            record = self.store.retrieval(retrieval_set_id)
            if record is None:
                continue
            hashes.append(record.chunk_set_hash)
            if record.data_source_id:
                data_sources.append(record.data_source_id)
            out.links.append(
                Link(record.span_context, {attrs.RAG_RETRIEVAL_SET_ID: retrieval_set_id})
            )
        if hashes:
            out.attributes[attrs.RAG_ANCESTOR_CHUNK_SET_HASHES] = list(dict.fromkeys(hashes))
        if data_sources:
            out.attributes[attrs.RAG_ANCESTOR_DATA_SOURCE_IDS] = list(dict.fromkeys(data_sources))

    # -- lineage candidates and the trace root ----------------------------------------------------

    def _candidates(
        self, item: WorkItem, context: SpanContext
    ) -> tuple[list[RetrievalRecord], list[StepRecord]]:
        """Retrievals and steps that ended before this span, in this trace or this scope.

        A span with a parent only takes scope entries of its own trace: the scope of a thread
        that serves several requests must not leak between them.
        """
        trace = self.store.trace(context.trace_id)
        retrieval_ids = trace.retrieval_set_ids[-MAX_CANDIDATE_RETRIEVALS:]
        step_ids = [
            step_id
            for step_id in trace.step_ids[-MAX_CANDIDATE_STEPS:]
            if step_id != item.record_id
        ]
        scope: Sequence[lineage.ScopeEntry] = item.scope
        if scope and not item.is_local_root:
            trace_id = context.trace_id
            scope = [entry for entry in scope if entry.trace_id == trace_id]
        for entry in scope:
            if entry.kind == lineage.RETRIEVAL:
                retrieval_ids.append(entry.record_id)
            elif entry.record_id != item.record_id:
                step_ids.append(entry.record_id)
        retrievals = [
            record
            for retrieval_set_id in dict.fromkeys(retrieval_ids)
            if (record := self.store.retrieval(retrieval_set_id)) is not None
        ]
        steps = [
            step
            for step_id in dict.fromkeys(step_ids)
            if (step := self.store.step(step_id)) is not None
        ]
        return retrievals, steps

    def _mirror_final_answer(self, item: WorkItem, context: SpanContext, out: Enrichment) -> None:
        trace = self.store.trace(context.trace_id)
        if trace.final_answer is None:
            return
        span_attributes = attribute_table(item.span)
        answer_span_id = trace.final_answer.get(_ANSWER_SPAN_KEY)
        if answer_span_id == context.span_id:
            return
        for key, value in trace.final_answer.items():
            if key != _ANSWER_SPAN_KEY and key not in span_attributes and key not in out.attributes:
                out.attributes[key] = value


# Attributes of the final answer mirrored on the root span (the rest stay on the step).
MIRRORED_ATTRIBUTES = (
    attrs.RAG_DIAGNOSIS,
    attrs.RAG_DIAGNOSIS_REASON,
    attrs.RAG_UTILISATION_RATIO,
    attrs.RAG_UTILISATION_RELIABLE,
    attrs.RAG_USED_CHUNK_COUNT,
    attrs.RAG_RETRIEVED_CHUNK_COUNT,
    attrs.RAG_GROUNDING_STATUS,
    attrs.RAG_ANCESTOR_RETRIEVAL_SET_IDS,
    attrs.RAG_ANCESTOR_CHUNK_SET_HASHES,
    attrs.RAG_ANCESTOR_DATA_SOURCE_IDS,
)
_ANSWER_SPAN_KEY = "\x00answer_span_id"  # internal marker, never exported


def _distinct_chunks(
    records: Sequence[RetrievalRecord],
) -> tuple[Sequence[str], Sequence[TextFingerprint | None], Sequence[ChunkQuality | None]]:
    """Chunk ids, fingerprints and qualities of ``records``, each chunk id once (first wins).

    A single record whose ids are distinct and aligned with its fingerprints and qualities is
    returned as it is (its own tuples), without copying.
    """
    if len(records) == 1:
        record = records[0]
        count = len(record.chunk_ids)
        if (
            len(record.fingerprints) == count
            and len(record.qualities) == count
            and len(set(record.chunk_ids)) == count
        ):
            return record.chunk_ids, record.fingerprints, record.qualities
    chunk_ids: list[str] = []
    fingerprints: list[TextFingerprint | None] = []
    qualities: list[ChunkQuality | None] = []
    seen: set[str] = set()
    for record in records:
        for chunk_id, chunk_fp, quality in zip(
            record.chunk_ids, record.fingerprints, record.qualities, strict=False
        ):
            if chunk_id not in seen:
                seen.add(chunk_id)
                chunk_ids.append(chunk_id)
                fingerprints.append(chunk_fp)
                qualities.append(quality)
    return chunk_ids, fingerprints, qualities


def _final_answer_view(attributes: AttributeDict, span_id: int) -> dict[str, AttributeValue]:
    view: dict[str, AttributeValue] = {
        key: attributes[key] for key in MIRRORED_ATTRIBUTES if key in attributes
    }
    view[_ANSWER_SPAN_KEY] = span_id
    return view


def _transformation_type(span_attributes: Mapping[str, Any], is_tool: bool) -> str | None:
    if is_tool:
        return RagTransformationTypeValues.TOOL_CALL.value
    if foreign.is_generation(span_attributes):
        return RagTransformationTypeValues.GENERATION.value
    return None


def _add_missing(
    out: Enrichment, attributes: Mapping[str, AttributeValue], span_attributes: Mapping[str, Any]
) -> None:
    """Add the attributes the span does not already have (its own values win)."""
    for key, value in attributes.items():
        if key not in span_attributes:
            out.attributes[key] = value


def _data_source_id(span_attributes: Mapping[str, Any]) -> str | None:
    value = span_attributes.get(GEN_AI_DATA_SOURCE_ID)
    return value if isinstance(value, str) and value else None


def _sequence(value: Any) -> Sequence[Any]:
    return value if isinstance(value, (list, tuple)) else ()


def _embedding_matrix(embeddings: Any, count: int) -> Any:
    """Embeddings as a float32 matrix of ``count`` rows, or None when unusable."""
    if embeddings is None or count == 0:
        return None
    try:
        matrix = np.asarray(embeddings, dtype=np.float32)
    except (TypeError, ValueError):
        return None
    if matrix.ndim != 2 or matrix.shape[0] != count:
        return None
    return matrix

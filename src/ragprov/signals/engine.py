"""All signals for one retrieved set and one answer, from fingerprints (what the processor calls).

:func:`compute_set_signals` gives the retrieval-span signals (quality, diversity, redundancy);
:func:`compute_step_signals` adds the step-span signals (utilisation, grounding, diagnosis) and
can reuse set signals computed earlier. :func:`signals_from_text` is the same from raw texts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ragprov.signals.defaults import (
    DEFAULT_UNCERTAINTY_PATTERNS,
    DIAGNOSIS_DIVERSITY_THRESHOLD,
    DIVERSITY_GATE,
    LEXICAL_REDUNDANCY_THRESHOLD,
    QUALITY_THRESHOLD,
    REDUNDANCY_THRESHOLD,
    UTILISATION_DIAGNOSIS_THRESHOLD,
    UTILISATION_THRESHOLD,
)
from ragprov.signals.diagnosis import DiagnosisResult, diagnose
from ragprov.signals.grounding import (
    GroundingResult,
    grounding_status,
    source_to_response_ratio,
    tool_provided_data,
    uncertainty_acknowledged,
)
from ragprov.signals.metadata import ChunkQuality
from ragprov.signals.quality import QualityResult, compute_quality
from ragprov.signals.similarity import SimilarityResult, compute_similarity
from ragprov.signals.tokens import TextFingerprint, fingerprint
from ragprov.signals.utilisation import (
    UtilisationResult,
    compute_utilisation,
    overlap_scores,
    resolve_chunk_ids,
)

MetadataInput = ChunkQuality | Mapping[str, Any] | None


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Every threshold of the engine in one value (``ragprov.config`` fills it from env vars)."""

    utilisation: float = UTILISATION_THRESHOLD
    diversity_gate: float = DIVERSITY_GATE
    redundancy: float = REDUNDANCY_THRESHOLD
    lexical_redundancy: float = LEXICAL_REDUNDANCY_THRESHOLD
    quality: float = QUALITY_THRESHOLD
    diagnosis_diversity: float = DIAGNOSIS_DIVERSITY_THRESHOLD
    diagnosis_utilisation: float = UTILISATION_DIAGNOSIS_THRESHOLD


DEFAULT_THRESHOLDS = Thresholds()


@dataclass(frozen=True, slots=True)
class SetSignals:
    """Signals of one retrieved set (retrieval span)."""

    chunk_ids: tuple[str, ...]
    quality: QualityResult
    similarity: SimilarityResult


@dataclass(frozen=True, slots=True)
class StepSignals:
    """Signals of one step output against the chunks it was given (step span)."""

    retrieval: SetSignals
    utilisation: UtilisationResult
    grounding: GroundingResult
    diagnosis: DiagnosisResult


def _pad(values: Sequence[Any] | None, count: int) -> Sequence[Any]:
    if values is not None and len(values) == count:
        return values  # nothing to cut or fill (the usual case)
    given = list(values) if values is not None else []
    return given[:count] + [None] * (count - len(given))


def compute_set_signals(
    chunks: Sequence[TextFingerprint | None],
    *,
    chunk_ids: Sequence[object] | None = None,
    metadata: Sequence[MetadataInput] | None = None,
    embeddings: Any = None,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> SetSignals:
    """Quality and similarity of a retrieved set, chunks in rank order.

    ``chunks``, ``chunk_ids`` and ``metadata`` may differ in length: the longest sets the chunk
    count and missing entries are None. ``embeddings`` of another count fall back to lexical.
    """
    count = max(len(chunks), len(chunk_ids or ()), len(metadata or ()))
    fingerprints = _pad(chunks, count)
    return SetSignals(
        chunk_ids=resolve_chunk_ids(chunk_ids, count),
        quality=compute_quality(_pad(metadata, count), fingerprints),
        similarity=compute_similarity(
            fingerprints,
            embeddings=embeddings,
            redundancy_threshold=thresholds.redundancy,
            lexical_redundancy_threshold=thresholds.lexical_redundancy,
        ),
    )


def compute_step_signals(
    chunks: Sequence[TextFingerprint | None],
    output: TextFingerprint | None,
    *,
    chunk_ids: Sequence[object] | None = None,
    metadata: Sequence[MetadataInput] | None = None,
    embeddings: Any = None,
    uncertainty_acknowledged: bool = False,
    tool_provided_data: bool | None = None,
    tool_outputs: Sequence[TextFingerprint | None] = (),
    set_signals: SetSignals | None = None,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    source_token_count: int | None = None,
) -> StepSignals:
    """Every signal for one output against the chunks (and tool outputs) that fed it.

    ``uncertainty_acknowledged`` and ``tool_provided_data`` come from the texts at capture time
    (see :mod:`ragprov.signals.grounding`); ``tool_outputs`` are fingerprints of the tool outputs
    that provided data. Pass ``set_signals`` to reuse quality/similarity computed for the
    retrieval span, and ``source_token_count`` when the number of distinct distinctive tokens of
    ``chunks`` together is known (``SetSignals.similarity.distinct_token_count`` of the very same
    fingerprints); it is computed otherwise.
    """
    retrieval = set_signals
    if retrieval is None:
        retrieval = compute_set_signals(
            chunks,
            chunk_ids=chunk_ids,
            metadata=metadata,
            embeddings=embeddings,
            thresholds=thresholds,
        )
        source_token_count = retrieval.similarity.distinct_token_count  # of these chunks
    count = len(retrieval.chunk_ids)
    if len(chunks) > count:
        source_token_count = None  # chunks beyond the ids are left out below
    fingerprints = _pad(chunks, count)
    utilisation = compute_utilisation(
        fingerprints,
        output,
        chunk_ids=retrieval.chunk_ids,
        coverage_diversity=retrieval.similarity.coverage_diversity,
        threshold=thresholds.utilisation,
        diversity_gate=thresholds.diversity_gate,
    )
    grounding = _grounding(
        fingerprints, output, utilisation, uncertainty_acknowledged, tool_provided_data,
        tool_outputs, utilisation.threshold, source_token_count,
    )  # fmt: skip
    diagnosis = diagnose(
        usable_data=grounding.usable_data,
        uncertainty_acknowledged=uncertainty_acknowledged,
        quality_density=retrieval.quality.quality_density,
        coverage_diversity=retrieval.similarity.coverage_diversity,
        utilisation_ratio=utilisation.ratio,
        used_count=utilisation.used_count,
        scorable_count=utilisation.scorable_count,
        retrieved_count=utilisation.retrieved_count,
        quality_method=retrieval.quality.method,
        quality_threshold=thresholds.quality,
        diversity_threshold=thresholds.diagnosis_diversity,
        utilisation_threshold=thresholds.diagnosis_utilisation,
    )
    return StepSignals(retrieval, utilisation, grounding, diagnosis)


def _grounding(
    chunks: Sequence[TextFingerprint | None],
    output: TextFingerprint | None,
    utilisation: UtilisationResult,
    acknowledged: bool,
    tool_data: bool | None,
    tool_outputs: Sequence[TextFingerprint | None],
    threshold: float,
    source_token_count: int | None = None,
) -> GroundingResult:
    """Usable data, whether it was used, and the grounding status.

    Usable data: a chunk with content (or unknown text), or a tool that provided data. Evidence
    used: a chunk used, or a tool output overlapping the answer by the utilisation threshold; a
    tool that provided data but whose output was not fingerprinted counts as used (assumed).
    """
    known_tools = [tool for tool in tool_outputs if tool is not None and tool.token_count]
    usable = any(chunk is None or chunk.char_count for chunk in chunks) or bool(tool_data)
    tool_scores = (
        [score for score in overlap_scores(known_tools, output) if score is not None]
        if known_tools
        else []
    )
    measurable_output = output is not None and output.token_count > 0
    evidence_used: bool | None
    tool_used = any(score >= threshold for score in tool_scores)
    if utilisation.used_count or tool_used or (tool_data and not known_tools):
        evidence_used = True
    elif utilisation.ratio is not None or (known_tools and measurable_output):
        evidence_used = False
    else:
        evidence_used = None
    output_empty = output is None or output.is_empty
    return GroundingResult(
        status=grounding_status(
            usable_data=usable,
            evidence_used=evidence_used,
            uncertainty_acknowledged=acknowledged,
            output_empty=output_empty,
        ),
        uncertainty_acknowledged=acknowledged,
        tool_provided_data=tool_data,
        usable_data=usable,
        evidence_used=evidence_used,
        source_to_response_ratio=source_to_response_ratio(
            output,
            [*chunks, *known_tools] if known_tools else chunks,
            # the known count covers the chunks only
            source_token_count=None if known_tools else source_token_count,
        ),
    )


def signals_from_text(
    chunk_texts: Sequence[object],
    output_text: object,
    *,
    chunk_ids: Sequence[object] | None = None,
    metadata: Sequence[MetadataInput] | None = None,
    embeddings: Any = None,
    tool_outputs: Sequence[object] = (),
    tool_errors: Sequence[object] | None = None,
    uncertainty_patterns: Iterable[str] | re.Pattern[str] = DEFAULT_UNCERTAINTY_PATTERNS,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> StepSignals:
    """:func:`compute_step_signals` from raw texts: fingerprints the chunks, the output and the
    tool outputs, detects acknowledged uncertainty and tool data, then computes everything.

    ``tool_errors[i]`` is the error (exception, flag or message) of tool call i, if any.
    """
    errors = _pad(tool_errors, len(tool_outputs))
    provided = [
        tool_provided_data(output, error=error)
        for output, error in zip(tool_outputs, errors, strict=True)
    ]
    return compute_step_signals(
        [fingerprint(text) for text in chunk_texts],
        fingerprint(output_text),
        chunk_ids=chunk_ids,
        metadata=metadata,
        embeddings=embeddings,
        uncertainty_acknowledged=uncertainty_acknowledged(
            output_text, patterns=uncertainty_patterns
        ),
        tool_provided_data=any(provided) if tool_outputs else None,
        tool_outputs=[
            fingerprint(output) for output, ok in zip(tool_outputs, provided, strict=True) if ok
        ],
        thresholds=thresholds,
    )

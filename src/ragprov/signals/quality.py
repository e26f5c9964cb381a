"""Set quality: rank-weighted pre-ingestion quality of a retrieved set, and its fallback heuristic.

Chunk quality is the mean of the scores in the chunk's metadata (``semantic_density``,
``completeness``, ``faithfulness``; see :mod:`ragprov.signals.metadata`). ``quality_density`` is the
rank-weighted mean over the chunks that have a quality, with weight 1 / log2(rank + 1) for ranks
1, 2, 3 … (1, 0.63, 0.5 …): the top of the list matters most, as in DCG.

Method: ``metadata`` as soon as any chunk carries a score; chunks without scores are then left out
of the weighted mean (their rank weight drops out too) rather than guessed. Only when no chunk has
scores does the intrinsic :func:`heuristic_quality` stand in (``heuristic``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ragprov.semconv.attributes import RagQualityMethodValues
from ragprov.signals.defaults import (
    HEURISTIC_DENSITY_TARGET,
    HEURISTIC_MAX_CHARS,
    HEURISTIC_MIN_CHARS,
    HEURISTIC_WEIGHTS,
)
from ragprov.signals.metadata import ChunkQuality, parse_chunk_quality
from ragprov.signals.tokens import TextFingerprint, fingerprint

METADATA = RagQualityMethodValues.METADATA.value
HEURISTIC = RagQualityMethodValues.HEURISTIC.value


@dataclass(frozen=True, slots=True)
class QualityResult:
    """Quality of one retrieved set.

    ``chunk_qualities`` is per position (rank order), None where the chunk has no quality under
    ``method``. ``quality_density`` is None when no chunk has one.
    """

    quality_density: float | None
    method: str
    chunk_qualities: tuple[float | None, ...]
    scored_count: int
    stale_chunk_count: int
    conflict_chunk_count: int


def rank_weight(rank: int) -> float:
    """DCG-style weight of a 1-based rank: 1 / log2(rank + 1)."""
    return 1.0 / math.log2(rank + 1)


def rank_weighted_mean(values: Sequence[float | None]) -> float | None:
    """Mean of the non-None values weighted by their rank (position + 1); None if there are none."""
    total = weight_sum = 0.0
    for index, value in enumerate(values):
        if value is not None:
            weight = rank_weight(index + 1)
            total += weight * value
            weight_sum += weight
    return total / weight_sum if weight_sum else None


def heuristic_quality(
    chunk: TextFingerprint,
    *,
    density_target: float = HEURISTIC_DENSITY_TARGET,
    min_chars: int = HEURISTIC_MIN_CHARS,
    max_chars: int = HEURISTIC_MAX_CHARS,
    weights: tuple[float, float, float, float] = HEURISTIC_WEIGHTS,
) -> float:
    """Intrinsic quality in [0, 1] from a fingerprint: weighted sum of four parts in [0, 1]:

    - clean start (does not begin mid-sentence), clean end (ends with sentence punctuation);
    - density: distinct distinctive tokens per word, divided by ``density_target``, capped at 1;
    - length: chars / min_chars below min_chars, 1 up to max_chars, max_chars / chars beyond.

    An empty text scores 0.
    """
    if chunk.is_empty:
        return 0.0
    density = chunk.token_count / chunk.word_count if chunk.word_count else 0.0
    density_part = min(1.0, density / density_target) if density_target > 0 else 1.0
    chars = chunk.char_count
    if chars < min_chars:
        length_part = chars / min_chars
    elif chars > max_chars > 0:
        length_part = max_chars / chars
    else:
        length_part = 1.0
    parts = (float(chunk.starts_clean), float(chunk.ends_clean), density_part, length_part)
    weight_sum = sum(weights)
    if not weight_sum > 0:
        weights, weight_sum = HEURISTIC_WEIGHTS, sum(HEURISTIC_WEIGHTS)
    score = sum(weight * part for weight, part in zip(weights, parts, strict=True)) / weight_sum
    return min(1.0, max(0.0, score))


def score_chunk(text: Any) -> float:
    """Intrinsic quality of a chunk text in [0, 1] (see :func:`heuristic_quality`).

    Public so that ingestion pipelines can gate chunks before embedding them.
    """
    return heuristic_quality(fingerprint(text))


def as_chunk_quality(value: ChunkQuality | Mapping[str, Any] | None) -> ChunkQuality:
    """A ChunkQuality from either a parsed one or raw store metadata (never raises)."""
    if isinstance(value, ChunkQuality):
        return value
    return parse_chunk_quality(value if isinstance(value, Mapping) else None)


def compute_quality(
    metadata: Sequence[ChunkQuality | Mapping[str, Any] | None] | None,
    chunks: Sequence[TextFingerprint | None] | None = None,
    *,
    density_target: float = HEURISTIC_DENSITY_TARGET,
    min_chars: int = HEURISTIC_MIN_CHARS,
    max_chars: int = HEURISTIC_MAX_CHARS,
) -> QualityResult:
    """Quality of a retrieved set from per-chunk metadata and/or fingerprints, in rank order.

    The two sequences may differ in length: the longer sets the chunk count, missing entries
    count as "no metadata" / "text unknown".
    """
    metadata = metadata or ()
    chunks = chunks or ()
    count = max(len(metadata), len(chunks))
    parsed = [as_chunk_quality(metadata[i] if i < len(metadata) else None) for i in range(count)]
    scores: list[float | None] = [quality.score for quality in parsed]
    method = METADATA
    if all(score is None for score in scores):
        method = HEURISTIC
        # A heuristic stamped at ingestion (ragprov.stamp) is the same formula on the same text:
        # use it, which also covers chunks whose text the processor never saw.
        scores = [
            quality.heuristic_quality
            if quality.heuristic_quality is not None
            else heuristic_quality(
                chunk, density_target=density_target, min_chars=min_chars, max_chars=max_chars
            )
            if chunk is not None
            else None
            for quality, chunk in zip(
                parsed, (chunks[i] if i < len(chunks) else None for i in range(count)), strict=True
            )
        ]
    return QualityResult(
        quality_density=rank_weighted_mean(scores),
        method=method,
        chunk_qualities=tuple(scores),
        scored_count=sum(score is not None for score in scores),
        stale_chunk_count=sum(quality.is_stale for quality in parsed),
        conflict_chunk_count=sum(quality.conflict_flag for quality in parsed),
    )

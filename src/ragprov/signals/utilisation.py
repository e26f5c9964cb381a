"""Utilisation: which retrieved chunks did the output use (behavioural text-overlap proxy).

A chunk's *score* is the share of its distinctive tokens that occur in the output; the chunk is
*used* when the score is at least the threshold (0.30). ``utilisation_ratio`` = used / scorable
distinct chunks, where distinct is by chunk id and *scorable* means the chunk has at least one
distinctive token. Chunks without distinctive tokens (or whose text is unknown) cannot be judged:
they are listed in ``unscorable_chunk_ids`` and left out of the denominator, so a chunk reading
"---" neither counts as used nor drags the ratio down.

The proxy is gated: when the set's coverage_diversity is below the gate the chunks share their
vocabulary, an overlap no longer identifies the chunk that was used, and ``reliable`` is False.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate

import numpy as np

from ragprov.semconv.attributes import RagUtilisationMethodValues
from ragprov.signals.defaults import DIVERSITY_GATE, UTILISATION_THRESHOLD, clean_fraction
from ragprov.signals.tokens import TextFingerprint, coerce_text, fingerprint

METHOD = RagUtilisationMethodValues.TEXT_OVERLAP_PROXY.value

#: Why ``UtilisationResult.ratio`` is None.
NO_CHUNKS = "no_chunks"
EMPTY_OUTPUT = "empty_output"
OUTPUT_WITHOUT_TOKENS = "output_without_distinctive_tokens"
NO_SCORABLE_CHUNKS = "no_scorable_chunks"


@dataclass(frozen=True, slots=True)
class ChunkUsage:
    """One distinct chunk: its overlap score (None when unscorable) and whether it was used."""

    chunk_id: str
    score: float | None
    used: bool


@dataclass(frozen=True, slots=True)
class UtilisationResult:
    """Utilisation of one set of chunks by one output.

    ``ratio`` is None (with ``undefined_reason``) when it cannot be measured: no chunks, an empty
    output, an output without distinctive tokens, or no scorable chunk. An output that uses
    nothing has ``ratio == 0.0`` and ``undefined_reason is None``.
    """

    ratio: float | None
    used_chunk_ids: tuple[str, ...]
    retrieved_count: int
    scorable_count: int
    unscorable_chunk_ids: tuple[str, ...]
    chunks: tuple[ChunkUsage, ...]
    threshold: float
    reliable: bool
    coverage_diversity: float | None
    diversity_gate: float
    undefined_reason: str | None = None
    method: str = METHOD

    @property
    def used_count(self) -> int:
        return len(self.used_chunk_ids)


def resolve_chunk_ids(chunk_ids: Sequence[object] | None, count: int) -> tuple[str, ...]:
    """``count`` chunk ids as strings; missing or None entries become "#<rank>" (1-based)."""
    if (
        type(chunk_ids) is tuple
        and len(chunk_ids) == count
        and all(type(value) is str and value for value in chunk_ids)
    ):
        return chunk_ids  # already resolved (e.g. a SetSignals' ids)
    given = list(chunk_ids) if chunk_ids is not None else []
    resolved = []
    for index in range(count):
        value = given[index] if index < len(given) else None
        text = coerce_text(value) if value is not None else ""
        resolved.append(text if text else f"#{index + 1}")
    return tuple(resolved)


def overlap_scores(
    chunks: Sequence[TextFingerprint | None], output: TextFingerprint | None
) -> list[float | None]:
    """Per chunk: share of its distinctive tokens found in ``output`` (None: no tokens/unknown).

    Vectorised: one searchsorted of all chunk hashes against the sorted output hashes.
    """
    size_list = [fp.hashes.size if fp is not None else 0 for fp in chunks]
    out = output.hashes if output is not None else None
    if out is None or out.size == 0 or not any(size_list):
        return [0.0 if size else None for size in size_list]
    scored = [size for size in size_list if size]
    everything = np.concatenate([fp.hashes for fp in chunks if fp is not None and fp.hashes.size])
    # Past-the-end positions take the last hash instead (clip): it is smaller, so no false hit.
    found = out.take(out.searchsorted(everything), mode="clip")
    starts = [0, *accumulate(scored[:-1])]  # one segment per scorable chunk, none empty
    hits = iter(np.add.reduceat(found == everything, starts, dtype=np.int64).tolist())
    return [float(next(hits)) / size if size else None for size in size_list]


def overlap_score(chunk: TextFingerprint | None, output: TextFingerprint | None) -> float | None:
    """``overlap_scores([chunk], output)[0]`` without the batching work."""
    if chunk is None or chunk.hashes.size == 0:
        return None
    out = output.hashes if output is not None else None
    if out is None or out.size == 0:
        return 0.0
    hashes = chunk.hashes
    found = out.take(np.searchsorted(out, hashes), mode="clip")  # see overlap_scores
    return float(np.count_nonzero(found == hashes)) / int(hashes.size)


def any_overlap_at_least(
    chunks: Sequence[TextFingerprint | None], output: TextFingerprint | None, threshold: float
) -> bool:
    """``any(score >= threshold for score in overlap_scores(chunks, output) if score is not
    None)``, trying the first scorable chunk alone first: a prompt quotes its whole context, so
    that one chunk usually settles it at a fraction of the cost of scoring them all.
    """
    scorable = [chunk for chunk in chunks if chunk is not None and chunk.hashes.size]
    if not scorable:
        return False
    first = overlap_score(scorable[0], output)
    if first is not None and first >= threshold:
        return True
    return any(
        score is not None and score >= threshold for score in overlap_scores(scorable[1:], output)
    )


def compute_utilisation(
    chunks: Sequence[TextFingerprint | None],
    output: TextFingerprint | None,
    *,
    chunk_ids: Sequence[object] | None = None,
    coverage_diversity: float | None = None,
    threshold: float = UTILISATION_THRESHOLD,
    diversity_gate: float = DIVERSITY_GATE,
) -> UtilisationResult:
    """Utilisation of ``chunks`` (rank order, fingerprints; None = text unknown) by ``output``.

    ``chunk_ids`` and ``chunks`` may differ in length: the longer one sets the chunk count, a
    missing fingerprint is an unscorable chunk, a missing id is "#<rank>". Repeated ids are one
    chunk whose score is the best of its copies. ``coverage_diversity`` feeds the gate; None
    (fewer than 2 chunks, or unknown) leaves the result reliable.
    """
    threshold = clean_fraction(threshold, UTILISATION_THRESHOLD)
    diversity_gate = clean_fraction(diversity_gate, DIVERSITY_GATE)
    count = max(len(chunks), len(chunk_ids) if chunk_ids is not None else 0)
    padded = chunks if len(chunks) == count else [*chunks, *[None] * (count - len(chunks))]
    ids = resolve_chunk_ids(chunk_ids, count)

    scores = overlap_scores(padded, output)
    best: dict[str, float | None] = dict(zip(ids, scores, strict=True))
    if len(best) < len(ids):  # repeated ids: keep the best score of each
        best = {}
        for chunk_id, score in zip(ids, scores, strict=True):
            previous = best.get(chunk_id)
            if chunk_id not in best or (
                score is not None and (previous is None or score > previous)
            ):
                best[chunk_id] = score
    usages: list[ChunkUsage] = []
    used_ids: list[str] = []
    unscorable_ids: list[str] = []
    for chunk_id, score in best.items():
        if score is None:
            usages.append(ChunkUsage(chunk_id, None, False))
            unscorable_ids.append(chunk_id)
        elif score >= threshold:
            usages.append(ChunkUsage(chunk_id, score, True))
            used_ids.append(chunk_id)
        else:
            usages.append(ChunkUsage(chunk_id, score, False))
    used, unscorable = tuple(used_ids), tuple(unscorable_ids)
    scorable = len(usages) - len(unscorable)
    reason = _undefined_reason(len(usages), scorable, output)
    diversity = _finite_or_none(coverage_diversity)
    return UtilisationResult(
        ratio=None if reason else len(used) / scorable,
        used_chunk_ids=used,
        retrieved_count=len(usages),
        scorable_count=scorable,
        unscorable_chunk_ids=unscorable,
        chunks=tuple(usages),
        threshold=threshold,
        reliable=diversity is None or diversity >= diversity_gate,
        coverage_diversity=diversity,
        diversity_gate=diversity_gate,
        undefined_reason=reason,
    )


def utilisation_from_text(
    chunk_texts: Sequence[object],
    output_text: object,
    *,
    chunk_ids: Sequence[object] | None = None,
    coverage_diversity: float | None = None,
    threshold: float = UTILISATION_THRESHOLD,
    diversity_gate: float = DIVERSITY_GATE,
) -> UtilisationResult:
    """:func:`compute_utilisation` on texts (fingerprints them first)."""
    return compute_utilisation(
        [fingerprint(text) for text in chunk_texts],
        fingerprint(output_text),
        chunk_ids=chunk_ids,
        coverage_diversity=coverage_diversity,
        threshold=threshold,
        diversity_gate=diversity_gate,
    )


def _undefined_reason(distinct: int, scorable: int, output: TextFingerprint | None) -> str | None:
    if distinct == 0:
        return NO_CHUNKS
    if output is None or output.is_empty:
        return EMPTY_OUTPUT
    if output.token_count == 0:
        return OUTPUT_WITHOUT_TOKENS
    if scorable == 0:
        return NO_SCORABLE_CHUNKS
    return None


def _finite_or_none(value: float | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None

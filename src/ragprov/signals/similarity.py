"""Pairwise chunk similarity: coverage_diversity and redundancy_ratio of a retrieved set.

Similarity is the cosine of the chunks' embeddings when usable embeddings are given for every
chunk, otherwise the lexical cosine of their distinctive-token sets, |A ∩ B| / sqrt(|A| |B|)
(cosine of binary vectors). Both are computed for all pairs at once (one matrix product).

- ``redundancy_ratio`` = share of pairs with similarity above the (per-method) threshold.
- ``coverage_diversity`` = (1 − mean pairwise similarity of the *distinct* chunks, clipped to
  [0, 1]) × (u − 1) / (n − 1), where n chunks contain u distinct ones (exact duplicates collapse).
  With no duplicates this is exactly 1 − mean pairwise similarity; the factor makes sure that a
  duplicate chunk can never raise diversity (a plain mean would rise when an outlier is repeated).

Both are undefined (None, with a reason) for fewer than two chunks. Embeddings that are missing,
ragged, of the wrong count, non-finite or zero-norm switch the whole set to lexical similarity,
and ``embedding_fallback_reason`` says why. In lexical mode chunks without distinctive tokens
(or without known text) have no direction to compare and are excluded (``excluded_count``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from ragprov.semconv.attributes import RagSimilarityMethodValues
from ragprov.signals.defaults import (
    DUPLICATE_TOLERANCE,
    LEXICAL_REDUNDANCY_THRESHOLD,
    REDUNDANCY_THRESHOLD,
    clean_fraction,
)
from ragprov.signals.tokens import TextFingerprint, fingerprint

FloatMatrix = npt.NDArray[np.float64]

EMBEDDING = RagSimilarityMethodValues.EMBEDDING.value
LEXICAL = RagSimilarityMethodValues.LEXICAL.value

#: Why diversity/redundancy are None.
FEWER_THAN_TWO_CHUNKS = "fewer_than_two_chunks"
FEWER_THAN_TWO_COMPARABLE = "fewer_than_two_comparable_chunks"
#: Why embeddings were given but not used.
EMBEDDINGS_NOT_NUMERIC = "embeddings_not_numeric"
EMBEDDINGS_COUNT_MISMATCH = "embedding_count_mismatch"
EMBEDDINGS_EMPTY = "embeddings_empty"
EMBEDDINGS_NON_FINITE = "embeddings_non_finite"
EMBEDDINGS_ZERO_NORM = "embeddings_zero_norm"


@dataclass(frozen=True, slots=True)
class SimilarityResult:
    """Diversity and redundancy of one retrieved set."""

    coverage_diversity: float | None
    redundancy_ratio: float | None
    mean_similarity: float | None
    method: str
    redundancy_threshold: float
    chunk_count: int
    distinct_count: int
    pair_count: int
    redundant_pair_count: int
    excluded_count: int = 0
    undefined_reason: str | None = None
    embedding_fallback_reason: str | None = None
    #: Lexical mode: distinct distinctive tokens of all comparable chunks together (a by-product
    #: of the pair counting that the source-to-response ratio reuses). None in embedding mode.
    distinct_token_count: int | None = None


def embedding_matrix(embeddings: Any, count: int) -> tuple[FloatMatrix | None, str | None]:
    """Row-normalised (count × d) float64 matrix of ``embeddings``, or (None, why not)."""
    try:
        matrix = np.array(embeddings, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        return None, EMBEDDINGS_NOT_NUMERIC
    if matrix.ndim != 2 or matrix.shape[0] != count:
        return None, EMBEDDINGS_COUNT_MISMATCH
    if matrix.shape[1] == 0:
        return None, EMBEDDINGS_EMPTY
    if not np.isfinite(matrix).all():
        return None, EMBEDDINGS_NON_FINITE
    norms = np.linalg.norm(matrix, axis=1)
    if not (norms > 0.0).all():
        return None, EMBEDDINGS_ZERO_NORM
    return matrix / norms[:, None], None


def embedding_similarity(unit_rows: FloatMatrix) -> FloatMatrix:
    """Cosine similarity matrix of row-normalised embeddings."""
    similarity: FloatMatrix = np.clip(unit_rows @ unit_rows.T, -1.0, 1.0)
    np.fill_diagonal(similarity, 1.0)
    return similarity


def lexical_similarity(
    chunks: Sequence[TextFingerprint], *, strategy: Literal["auto", "dense", "sparse"] = "auto"
) -> FloatMatrix:
    """Binary cosine |A ∩ B| / sqrt(|A| |B|) for all pairs of non-empty fingerprints.

    Only tokens that occur in at least two chunks can intersect. Their pair counts come either
    from a dense chunk × token incidence matrix times its transpose (cheap when few tokens are
    shared by many chunks, e.g. near-duplicates) or from counting, per shared token, the pairs of
    chunks holding it (cheap when many tokens are shared by few chunks); ``auto`` picks by cost.
    """
    return _lexical_similarity(chunks, strategy)[0]


def _lexical_similarity(
    chunks: Sequence[TextFingerprint], strategy: Literal["auto", "dense", "sparse"] = "auto"
) -> tuple[FloatMatrix, int]:
    """:func:`lexical_similarity` and the number of distinct tokens of all chunks together."""
    count = len(chunks)
    sizes = np.array([chunk.token_count for chunk in chunks], dtype=np.int64)
    everything = np.concatenate([chunk.hashes for chunk in chunks])
    inverse, occurrences = _group(everything)
    shared = occurrences >= 2
    intersections = np.zeros((count, count), dtype=np.float64)
    if shared.any():
        column_of = np.cumsum(shared) - 1
        keep = shared[inverse]
        rows = np.repeat(np.arange(count), sizes)[keep]
        columns = column_of[inverse[keep]]
        shared_counts = occurrences[shared]
        pair_cost = int(np.dot(shared_counts, shared_counts))
        dense_cost = count * count * int(shared_counts.size) // _DENSE_TO_SPARSE_COST
        if strategy == "dense" or (strategy == "auto" and dense_cost <= pair_cost):
            intersections = _dense_intersections(rows, columns, count, int(shared_counts.size))
        else:
            intersections = _pair_intersections(rows, columns, count, shared_counts)
    similarity: FloatMatrix = intersections / np.sqrt(np.outer(sizes, sizes).astype(np.float64))
    np.fill_diagonal(similarity, 1.0)
    return similarity, int(occurrences.size)


# A multiply-add in the BLAS product is ~2500x cheaper than one pair in the counting path
# (measured on the benchmark machine); only the order of magnitude matters.
_DENSE_TO_SPARSE_COST = 2500


def _dense_intersections(
    rows: npt.NDArray[np.intp], columns: npt.NDArray[np.intp], count: int, width: int
) -> FloatMatrix:
    incidence = np.zeros((count, width), dtype=np.float32)  # float32 counts are exact < 2**24
    incidence[rows, columns] = 1.0
    products: FloatMatrix = (incidence @ incidence.T).astype(np.float64)
    return products


def _pair_intersections(
    rows: npt.NDArray[np.intp],
    columns: npt.NDArray[np.intp],
    count: int,
    column_counts: npt.NDArray[np.intp],
) -> FloatMatrix:
    """For each shared token, every ordered pair of chunks holding it, counted with bincount."""
    order = np.argsort(columns, kind="stable")
    chunk_of = rows[order]
    token_of = columns[order]
    token_start = np.cumsum(column_counts) - column_counts
    repeats = column_counts[token_of]
    left = np.repeat(chunk_of, repeats)
    first = np.repeat(token_start[token_of], repeats)
    offset = np.arange(left.size) - np.repeat(np.cumsum(repeats) - repeats, repeats)
    right = chunk_of[first + offset]
    counts = np.bincount(left * count + right, minlength=count * count)
    return counts.reshape(count, count).astype(np.float64)


def summarise(
    similarity: FloatMatrix,
    *,
    method: str,
    redundancy_threshold: float,
    chunk_count: int,
    excluded_count: int = 0,
    embedding_fallback_reason: str | None = None,
    duplicate_tolerance: float = DUPLICATE_TOLERANCE,
    distinct_token_count: int | None = None,
) -> SimilarityResult:
    """Diversity and redundancy from an n × n similarity matrix of the comparable chunks."""
    size = similarity.shape[0]
    if size < 2:
        reason = FEWER_THAN_TWO_CHUNKS if chunk_count < 2 else FEWER_THAN_TWO_COMPARABLE
        return SimilarityResult(
            coverage_diversity=None,
            redundancy_ratio=None,
            mean_similarity=None,
            method=method,
            redundancy_threshold=redundancy_threshold,
            chunk_count=size,
            distinct_count=size,
            pair_count=0,
            redundant_pair_count=0,
            excluded_count=excluded_count,
            undefined_reason=reason,
            embedding_fallback_reason=embedding_fallback_reason,
            distinct_token_count=distinct_token_count,
        )
    upper_rows, upper_cols = _upper_triangle(size)
    pairs = similarity[upper_rows, upper_cols]
    redundant = int(np.count_nonzero(pairs > redundancy_threshold))
    duplicate_pairs = pairs >= 1.0 - duplicate_tolerance
    is_repeat = np.zeros(size, dtype=bool)
    is_repeat[upper_cols[duplicate_pairs]] = True
    distinct = size - int(np.count_nonzero(is_repeat))
    diversity = 0.0
    if distinct >= 2:
        keep = ~is_repeat[upper_rows] & ~is_repeat[upper_cols]
        distinct_mean = float(np.mean(pairs[keep]))
        diversity = min(1.0, max(0.0, 1.0 - distinct_mean)) * (distinct - 1) / (size - 1)
    return SimilarityResult(
        coverage_diversity=diversity,
        redundancy_ratio=redundant / pairs.size,
        mean_similarity=float(np.mean(pairs)),
        method=method,
        redundancy_threshold=redundancy_threshold,
        chunk_count=size,
        distinct_count=distinct,
        pair_count=int(pairs.size),
        redundant_pair_count=redundant,
        excluded_count=excluded_count,
        embedding_fallback_reason=embedding_fallback_reason,
        distinct_token_count=distinct_token_count,
    )


def compute_similarity(
    chunks: Sequence[TextFingerprint | None],
    *,
    embeddings: Any = None,
    redundancy_threshold: float = REDUNDANCY_THRESHOLD,
    lexical_redundancy_threshold: float = LEXICAL_REDUNDANCY_THRESHOLD,
    duplicate_tolerance: float = DUPLICATE_TOLERANCE,
) -> SimilarityResult:
    """Similarity signals of a retrieved set (rank order; a None fingerprint = text unknown).

    ``embeddings``: one vector per chunk (a sequence of sequences or a 2-D array), or None.
    """
    count = len(chunks)
    duplicate_tolerance = clean_fraction(duplicate_tolerance, DUPLICATE_TOLERANCE)
    fallback: str | None = None
    if embeddings is not None:
        unit_rows, fallback = embedding_matrix(embeddings, count)
        if unit_rows is not None:
            return summarise(
                embedding_similarity(unit_rows),
                method=EMBEDDING,
                redundancy_threshold=clean_fraction(redundancy_threshold, REDUNDANCY_THRESHOLD),
                chunk_count=count,
                duplicate_tolerance=duplicate_tolerance,
            )
    comparable = [chunk for chunk in chunks if chunk is not None and chunk.token_count]
    if len(comparable) >= 2:
        matrix, distinct_tokens = _lexical_similarity(comparable)
    else:
        matrix = np.ones((len(comparable), len(comparable)))
        distinct_tokens = comparable[0].token_count if comparable else 0
    return summarise(
        matrix,
        method=LEXICAL,
        redundancy_threshold=clean_fraction(
            lexical_redundancy_threshold, LEXICAL_REDUNDANCY_THRESHOLD
        ),
        chunk_count=count,
        excluded_count=count - len(comparable),
        embedding_fallback_reason=fallback,
        duplicate_tolerance=duplicate_tolerance,
        distinct_token_count=distinct_tokens,
    )


def similarity_from_text(
    texts: Sequence[object],
    *,
    embeddings: Any = None,
    redundancy_threshold: float = REDUNDANCY_THRESHOLD,
    lexical_redundancy_threshold: float = LEXICAL_REDUNDANCY_THRESHOLD,
) -> SimilarityResult:
    """:func:`compute_similarity` on texts (fingerprints them first)."""
    return compute_similarity(
        [fingerprint(text) for text in texts],
        embeddings=embeddings,
        redundancy_threshold=redundancy_threshold,
        lexical_redundancy_threshold=lexical_redundancy_threshold,
    )


def _group(values: npt.NDArray[np.uint64]) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Like np.unique(return_inverse, return_counts) without the unique values: for each value
    the index of its distinct value, and how often each distinct value occurs."""
    order = np.argsort(values)
    ordered = values[order]
    starts = np.empty(ordered.size, dtype=bool)
    starts[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=starts[1:])
    group_of_sorted = np.cumsum(starts) - 1
    inverse = np.empty(values.size, dtype=np.intp)
    inverse[order] = group_of_sorted
    boundaries = np.flatnonzero(starts)
    counts = np.diff(np.append(boundaries, ordered.size))
    return inverse, counts


@lru_cache(maxsize=64)
def _upper_triangle(size: int) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    rows, cols = np.triu_indices(size, 1)
    rows.setflags(write=False)
    cols.setflags(write=False)
    return rows, cols

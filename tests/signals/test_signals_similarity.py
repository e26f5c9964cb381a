"""Similarity: lexical and embedding cosine, coverage_diversity, redundancy_ratio."""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import pytest

from ragprov.signals.similarity import (
    EMBEDDINGS_COUNT_MISMATCH,
    EMBEDDINGS_EMPTY,
    EMBEDDINGS_NON_FINITE,
    EMBEDDINGS_NOT_NUMERIC,
    EMBEDDINGS_ZERO_NORM,
    FEWER_THAN_TWO_CHUNKS,
    FEWER_THAN_TWO_COMPARABLE,
    compute_similarity,
    lexical_similarity,
    similarity_from_text,
)
from ragprov.signals.tokens import distinctive_tokens, fingerprint

A = "alpha bravo charlie delta"
B = "charlie delta echo foxtrot"
C = "golf hotel india juliet"


def test_lexical_cosine_of_two_chunks() -> None:
    # |A ∩ B| = 2, sqrt(|A| |B|) = 4  ->  similarity 0.5, diversity 0.5
    result = similarity_from_text([A, B])
    assert result.method == "lexical"
    assert result.mean_similarity == 0.5
    assert result.coverage_diversity == 0.5
    assert result.redundancy_ratio == 0.0


def test_diversity_is_one_minus_mean_pairwise_similarity() -> None:
    # pairs: (A,B) 0.5, (A,C) 0, (B,C) 0  ->  mean 1/6, diversity 5/6
    result = similarity_from_text([A, B, C])
    assert result.coverage_diversity == pytest.approx(5 / 6)
    assert result.pair_count == 3


def test_exact_duplicates_scale_diversity_by_distinct_share() -> None:
    # A, A, C: distinct chunks A, C have similarity 0 -> 1.0, times (2 - 1) / (3 - 1) = 0.5
    result = similarity_from_text([A, A, C])
    assert result.coverage_diversity == 0.5
    assert result.distinct_count == 2
    assert result.redundancy_ratio == pytest.approx(1 / 3)


def test_all_duplicates_have_zero_diversity() -> None:
    result = similarity_from_text([A, A, A])
    assert result.coverage_diversity == 0.0
    assert result.redundancy_ratio == 1.0


def test_redundancy_counts_pairs_above_the_lexical_threshold() -> None:
    near = "alpha bravo charlie delta echo"  # with A: 4 / sqrt(20) = 0.894
    result = similarity_from_text([A, near, C])
    assert result.redundant_pair_count == 1
    assert result.redundancy_ratio == pytest.approx(1 / 3)
    assert result.redundancy_threshold == 0.70


def test_lexical_threshold_is_configurable() -> None:
    result = similarity_from_text([A, B], lexical_redundancy_threshold=0.4)
    assert result.redundancy_ratio == 1.0


@pytest.mark.parametrize("texts", [[], [A], [A, "---"], ["---", "ok"]])
def test_fewer_than_two_chunks_is_undefined(texts: list[str]) -> None:
    result = similarity_from_text(texts)
    assert result.coverage_diversity is None
    assert result.redundancy_ratio is None
    assert result.undefined_reason in {FEWER_THAN_TWO_CHUNKS, FEWER_THAN_TWO_COMPARABLE}


def test_one_chunk_says_fewer_than_two_chunks() -> None:
    assert similarity_from_text([A]).undefined_reason == FEWER_THAN_TWO_CHUNKS


def test_chunks_without_tokens_are_excluded_from_lexical_comparison() -> None:
    result = similarity_from_text([A, "---", B])
    assert result.excluded_count == 1
    assert result.chunk_count == 2
    assert result.coverage_diversity == 0.5
    assert similarity_from_text([A, "---"]).undefined_reason == FEWER_THAN_TWO_COMPARABLE


@pytest.mark.parametrize(
    ("vectors", "diversity"),
    [
        ([[1.0, 0.0], [0.0, 1.0]], 1.0),
        ([[1.0, 0.0], [1.0, 1.0]], 1.0 - math.sqrt(0.5)),
        ([[1.0, 0.0], [-1.0, 0.0]], 1.0),  # cosine -1: diversity clipped to 1
        ([[2.0, 0.0], [5.0, 0.0]], 0.0),  # same direction = duplicate
    ],
)
def test_embedding_diversity(vectors: list[list[float]], diversity: float) -> None:
    result = similarity_from_text([A, B], embeddings=vectors)
    assert result.method == "embedding"
    assert result.coverage_diversity == pytest.approx(diversity)


def test_embedding_redundancy_uses_the_embedding_threshold() -> None:
    # cos([1, 0], [0.9, 0.1]) = 0.9939 > 0.85; cos([1, 0], [1, 1]) = 0.707 < 0.85
    result = similarity_from_text([A, B, C], embeddings=[[1, 0], [0.9, 0.1], [1, 1]])
    assert result.redundancy_threshold == 0.85
    assert result.redundant_pair_count == 1


def test_embeddings_as_numpy_array_are_accepted() -> None:
    result = similarity_from_text([A, B], embeddings=np.eye(2, dtype=np.float32))
    assert (result.method, result.coverage_diversity) == ("embedding", 1.0)


@pytest.mark.parametrize(
    ("embeddings", "reason"),
    [
        ([[1.0, 0.0], [0.0, 0.0]], EMBEDDINGS_ZERO_NORM),
        ([[1.0, 0.0]], EMBEDDINGS_COUNT_MISMATCH),
        ([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], EMBEDDINGS_COUNT_MISMATCH),
        ([[1.0, float("nan")], [0.0, 1.0]], EMBEDDINGS_NON_FINITE),
        ([[1.0, float("inf")], [0.0, 1.0]], EMBEDDINGS_NON_FINITE),
        ([[1.0, 0.0], [0.0, 1.0, 2.0]], EMBEDDINGS_NOT_NUMERIC),
        ([[1.0, 0.0], None], EMBEDDINGS_NOT_NUMERIC),
        ([["a", "b"], ["c", "d"]], EMBEDDINGS_NOT_NUMERIC),
        ([[], []], EMBEDDINGS_EMPTY),
        ([1.0, 2.0], EMBEDDINGS_COUNT_MISMATCH),
    ],
)
def test_unusable_embeddings_fall_back_to_lexical(embeddings: object, reason: str) -> None:
    result = similarity_from_text([A, B], embeddings=embeddings)
    assert result.method == "lexical"
    assert result.embedding_fallback_reason == reason
    assert result.coverage_diversity == 0.5


def test_lexical_matrix_matches_set_arithmetic() -> None:
    texts = [A, B, C, "alpha golf hotel kilo lima", "bravo echo india kilo mike november"]
    matrix = lexical_similarity([fingerprint(t) for t in texts])
    sets = [distinctive_tokens(t) for t in texts]
    for i, j in combinations(range(len(texts)), 2):
        expected = len(sets[i] & sets[j]) / math.sqrt(len(sets[i]) * len(sets[j]))
        assert matrix[i, j] == pytest.approx(expected)
        assert matrix[j, i] == pytest.approx(expected)


def test_none_fingerprint_is_excluded_from_lexical_comparison() -> None:
    result = compute_similarity([fingerprint(A), None, fingerprint(B)])
    assert (result.excluded_count, result.coverage_diversity) == (1, 0.5)


def test_repeating_an_outlier_does_not_raise_diversity() -> None:
    # A plain 1 − mean would go from 0.5 to 0.6 here; the distinct-share factor gives 1/3 -> 1/4.
    before = similarity_from_text([C, A, A, A])
    after = similarity_from_text([C, A, A, A, C])
    assert before.coverage_diversity == pytest.approx(1 / 3)
    assert after.coverage_diversity == pytest.approx(1 / 4)
    assert (before.redundancy_ratio, after.redundancy_ratio) == (3 / 6, 4 / 10)

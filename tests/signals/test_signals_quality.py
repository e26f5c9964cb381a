"""Set quality: metadata quality, rank weighting, counts, and the intrinsic heuristic."""

from __future__ import annotations

import math

import numpy as np
import pytest

import ragprov.quality
from ragprov.signals.metadata import ChunkQuality
from ragprov.signals.quality import (
    compute_quality,
    heuristic_quality,
    rank_weight,
    rank_weighted_mean,
    score_chunk,
)
from ragprov.signals.tokens import TextFingerprint, fingerprint

GOOD_PARAGRAPH = (
    "Acme Robotics reported revenue of $12.4M for fiscal 2023, up 26.6% from the previous year. "
    "Growth was driven by warehouse automation contracts in Germany and Poland, where three new "
    "distribution centres went live. The order backlog stood at $9.1M at year end."
)


def _fp(tokens: int, chars: int, words: int, starts: bool, ends: bool) -> TextFingerprint:
    return TextFingerprint(
        hashes=np.arange(tokens, dtype=np.uint64),
        char_count=chars,
        word_count=words,
        starts_clean=starts,
        ends_clean=ends,
    )


@pytest.mark.parametrize(
    ("rank", "weight"), [(1, 1.0), (2, 1 / math.log2(3)), (3, 0.5), (7, 1 / 3)]
)
def test_rank_weight_is_one_over_log2_rank_plus_one(rank: int, weight: float) -> None:
    assert rank_weight(rank) == pytest.approx(weight)


def test_rank_weighted_mean_worked_example() -> None:
    # (0.9·1 + 0.6·0.6309 + 0.3·0.5) / (1 + 0.6309 + 0.5) = 0.6704
    assert rank_weighted_mean([0.9, 0.6, 0.3]) == pytest.approx(0.670392, abs=1e-6)


def test_rank_weighted_mean_skips_missing_values_and_their_weights() -> None:
    # (0.8·1 + 0.4·0.5) / (1 + 0.5) = 2/3
    assert rank_weighted_mean([0.8, None, 0.4]) == pytest.approx(2 / 3)


def test_rank_weighted_mean_of_nothing_is_none() -> None:
    assert rank_weighted_mean([None, None]) is None


def test_chunk_quality_is_the_mean_of_its_scores() -> None:
    metadata = {"semantic_density": 0.9, "completeness": 0.7, "faithfulness_prediction": 0.8}
    result = compute_quality([metadata])
    assert result.chunk_qualities[0] == pytest.approx(0.8)
    assert result.quality_density == pytest.approx(0.8)
    assert result.method == "metadata"


def test_metadata_wins_when_any_chunk_has_scores() -> None:
    result = compute_quality(
        [{"semantic_density": 0.8}, {}, {"completeness": 0.4}],
        [fingerprint(GOOD_PARAGRAPH)] * 3,
    )
    assert result.method == "metadata"
    assert result.chunk_qualities == (0.8, None, 0.4)
    assert result.quality_density == pytest.approx(2 / 3)
    assert result.scored_count == 2


def test_heuristic_stands_in_when_no_chunk_has_scores() -> None:
    result = compute_quality(
        [{"freshness_status": "fresh"}, None], [fingerprint(GOOD_PARAGRAPH), None]
    )
    assert result.method == "heuristic"
    assert result.chunk_qualities == (1.0, None)
    assert result.quality_density == 1.0


def test_no_scores_and_no_text_give_no_quality() -> None:
    result = compute_quality([None, None])
    assert result.quality_density is None
    assert result.scored_count == 0


def test_parsed_chunk_quality_is_accepted() -> None:
    result = compute_quality([ChunkQuality(completeness=0.25)])
    assert result.quality_density == 0.25


def test_stale_and_conflict_chunks_are_counted() -> None:
    metadata: list[dict[str, object]] = [
        {"freshness_status": "stale", "semantic_density": 0.9},
        {"freshness_status": "rot", "conflict_flag": True},
        {"freshness_status": "aging", "conflict_flag": "true"},
        {"freshness_status": "fresh"},
    ]
    result = compute_quality(metadata)
    assert (result.stale_chunk_count, result.conflict_chunk_count) == (2, 2)


@pytest.mark.parametrize(
    ("fp", "score"),
    [
        # density 7/20 = 0.35 -> 1; length 100/200 = 0.5; edges 1 + 0  ->  (1 + 0 + 1 + 0.5) / 4
        (_fp(7, 100, 20, True, False), 0.625),
        (_fp(7, 1000, 20, True, True), 1.0),
        # density 0.1 / 0.35; length 4000/8000 = 0.5
        (_fp(10, 8000, 100, False, True), (0 + 1 + 0.1 / 0.35 + 0.5) / 4),
        (_fp(0, 300, 50, True, True), 0.75),
        (_fp(0, 0, 0, False, False), 0.0),
    ],
)
def test_heuristic_quality_formula(fp: TextFingerprint, score: float) -> None:
    assert heuristic_quality(fp) == pytest.approx(score)


def test_score_chunk_of_a_cut_fragment() -> None:
    # lower-case start, no end punctuation, 28 chars, 3 tokens / 4 words: (0 + 0 + 1 + 0.14) / 4
    assert score_chunk("the company reported revenue") == pytest.approx(0.285)


def test_score_chunk_of_a_clean_paragraph() -> None:
    assert score_chunk(GOOD_PARAGRAPH) == 1.0


def test_score_chunk_is_public_in_ragprov_quality() -> None:
    assert ragprov.quality.score_chunk is score_chunk


@pytest.mark.parametrize("value", [None, "", b"", 42])
def test_score_chunk_never_raises(value: object) -> None:
    assert 0.0 <= score_chunk(value) <= 1.0


def test_more_metadata_than_fingerprints_is_fine() -> None:
    result = compute_quality([{"completeness": 0.5}, {"completeness": 0.7}], [fingerprint("x")])
    assert result.chunk_qualities == (0.5, 0.7)


def test_stamped_heuristic_stands_in_for_the_computed_one() -> None:
    from ragprov.signals.quality import compute_quality

    result = compute_quality([{"heuristic_quality": 0.4}, None], [None, None])
    assert result.method == "heuristic"
    assert result.chunk_qualities == (0.4, None)
    assert result.quality_density == 0.4


def test_measured_scores_win_over_a_stamped_heuristic() -> None:
    from ragprov.signals.quality import compute_quality

    result = compute_quality([{"heuristic_quality": 0.4}, {"completeness": 0.9}])
    assert result.method == "metadata"
    assert result.chunk_qualities == (None, 0.9)

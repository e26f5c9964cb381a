"""Bad input gives a defined result, never an exception."""

from __future__ import annotations

from typing import Any

import pytest

from ragprov.signals.engine import compute_set_signals, compute_step_signals, signals_from_text
from ragprov.signals.tokens import EMPTY_FINGERPRINT, fingerprint

TEN_MB = ("Revenue grew 26.6% to $12.4M in fiscal 2023 across Germany and Poland. " * 140_000)[
    :10_000_000
]
CHUNK = "Acme Robotics reported revenue of $12.4M for fiscal 2023, up 26.6% year on year."
OTHER = "The Palletbot X2 lifts loads of up to 450 kg and navigates warehouse aisles with lidar."


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no str")


@pytest.mark.parametrize(
    ("chunks", "answer"),
    [
        ([None, None], None),
        ([b"Acme revenue \xff 2023", CHUNK.encode()], b"revenue 2023"),
        (["", "", ""], ""),
        ([CHUNK, Unprintable()], Unprintable()),
        ([12.5, 7], 12.5),
    ],
)
def test_odd_texts_give_a_result(chunks: list[Any], answer: Any) -> None:
    signals = signals_from_text(chunks, answer)
    assert signals.diagnosis.category in {
        "acceptable_fallback",
        "ungrounded_answer",
        "data_problem",
        "retrieval_composition",
        "navigation",
        "healthy",
    }


def test_none_answer_has_no_utilisation_and_no_grounding_status() -> None:
    signals = signals_from_text([CHUNK, OTHER], None)
    assert signals.utilisation.ratio is None
    assert signals.utilisation.undefined_reason == "empty_output"
    assert signals.grounding.status is None
    assert signals.diagnosis.category == "healthy"


def test_only_empty_chunks_is_no_usable_data() -> None:
    signals = signals_from_text(["", "  "], "Revenue was $12.4M.")
    assert signals.grounding.usable_data is False
    assert signals.diagnosis.category == "ungrounded_answer"


def test_ten_megabyte_texts_are_handled() -> None:
    signals = signals_from_text([TEN_MB, CHUNK], TEN_MB)
    assert signals.utilisation.ratio == 1.0
    assert fingerprint(TEN_MB).truncated is True


def test_nan_quality_scores_are_ignored() -> None:
    metadata: list[dict[str, Any]] = [
        {"semantic_density": float("nan"), "completeness": 0.8},
        {"completeness": "NaN"},
    ]
    signals = compute_set_signals([fingerprint(CHUNK), fingerprint(OTHER)], metadata=metadata)
    assert signals.quality.chunk_qualities == (0.8, None)
    assert signals.quality.quality_density == 0.8


@pytest.mark.parametrize(
    ("ids", "metadata", "embeddings", "count"),
    [
        (["a"], None, None, 2),
        (["a", "b", "c"], None, None, 3),
        (None, [{"completeness": 0.9}] * 4, None, 4),
        (["a", "b"], [{"completeness": 0.9}], [[1.0, 0.0]], 2),
        (["a", "b"], None, [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], 2),
    ],
)
def test_mismatched_lengths_use_the_longest_and_pad(
    ids: list[str] | None, metadata: list[dict[str, float]] | None, embeddings: Any, count: int
) -> None:
    signals = compute_step_signals(
        [fingerprint(CHUNK), fingerprint(OTHER)],
        fingerprint(CHUNK),
        chunk_ids=ids,
        metadata=metadata,
        embeddings=embeddings,
    )
    assert len(signals.retrieval.chunk_ids) == count
    assert signals.utilisation.retrieved_count == count
    assert signals.retrieval.similarity.method == "lexical"


def test_zero_norm_embeddings_fall_back_to_lexical() -> None:
    signals = compute_set_signals(
        [fingerprint(CHUNK), fingerprint(OTHER)], embeddings=[[0.0, 0.0], [0.0, 0.0]]
    )
    assert signals.similarity.method == "lexical"
    assert signals.similarity.embedding_fallback_reason == "embeddings_zero_norm"
    assert signals.similarity.coverage_diversity is not None


def test_nan_thresholds_use_the_defaults() -> None:
    from ragprov.signals.engine import Thresholds

    nan = float("nan")
    signals = signals_from_text(
        [CHUNK, OTHER], CHUNK, thresholds=Thresholds(nan, nan, nan, nan, nan, nan, nan)
    )
    assert signals.utilisation.threshold == 0.30
    assert signals.retrieval.similarity.redundancy_threshold == 0.70
    assert signals.diagnosis.reason.startswith("1 of 2 retrieved chunks used (0.50 ≥ 0.50)")


def test_no_chunks_no_answer() -> None:
    signals = compute_step_signals([], EMPTY_FINGERPRINT)
    assert signals.utilisation.undefined_reason == "no_chunks"
    assert signals.retrieval.similarity.undefined_reason == "fewer_than_two_chunks"
    assert signals.retrieval.quality.quality_density is None
    assert signals.diagnosis.category == "ungrounded_answer"

"""End-to-end scenarios: one retrieved set, one answer, every signal (ragprov.signals.engine)."""

from __future__ import annotations

import pytest

from ragprov.demo import scenarios
from ragprov.signals.engine import (
    Thresholds,
    compute_set_signals,
    compute_step_signals,
    signals_from_text,
)
from ragprov.signals.tokens import fingerprint

IDS = scenarios.IDS
DIVERSE = scenarios.DIVERSE
ANSWER_USES_FOUR = scenarios.ANSWER_USES_FOUR
ANSWER_USES_TWO = scenarios.ANSWER_USES_TWO
NEAR_DUPLICATES = scenarios.NEAR_DUPLICATES
ANSWER_REVENUE = scenarios.ANSWER_REVENUE
LOW_QUALITY_METADATA = scenarios.LOW_QUALITY_METADATA
ACKNOWLEDGING = scenarios.ACKNOWLEDGING
CONFIDENT = scenarios.CONFIDENT


def test_diverse_set_mostly_used_is_healthy() -> None:
    signals = signals_from_text(DIVERSE, ANSWER_USES_FOUR, chunk_ids=IDS)
    assert signals.utilisation.used_chunk_ids == tuple(IDS[:4])
    assert signals.utilisation.ratio == 0.8
    assert signals.utilisation.reliable is True
    assert signals.retrieval.similarity.coverage_diversity == pytest.approx(0.9678, abs=1e-4)
    assert signals.retrieval.quality.method == "heuristic"
    assert signals.grounding.status == "grounded"
    assert signals.diagnosis.category == "healthy"
    assert signals.diagnosis.reason == (
        "4 of 5 retrieved chunks used (0.80 ≥ 0.50), quality 0.94, diversity 0.97; if the answer "
        "is wrong, look at generation."
    )


def test_diverse_set_two_used_is_navigation() -> None:
    signals = signals_from_text(DIVERSE, ANSWER_USES_TWO, chunk_ids=IDS)
    assert signals.utilisation.used_chunk_ids == (IDS[0], IDS[4])
    assert signals.utilisation.ratio == 0.4
    assert signals.diagnosis.category == "navigation"
    assert signals.diagnosis.reason == (
        "2 of 5 retrieved chunks used (0.40 < 0.50) although quality 0.94 and diversity 0.97 were "
        "high."
    )


def test_near_duplicate_set_is_retrieval_composition() -> None:
    signals = signals_from_text(NEAR_DUPLICATES, ANSWER_REVENUE)
    similarity = signals.retrieval.similarity
    assert similarity.redundancy_ratio == 1.0
    assert similarity.coverage_diversity is not None
    assert similarity.coverage_diversity < 0.30
    assert signals.utilisation.ratio == 1.0
    assert signals.utilisation.reliable is False
    assert signals.diagnosis.category == "retrieval_composition"


def test_low_quality_metadata_is_data_problem() -> None:
    signals = signals_from_text(
        DIVERSE, ANSWER_USES_FOUR, chunk_ids=IDS, metadata=LOW_QUALITY_METADATA
    )
    quality = signals.retrieval.quality
    assert quality.method == "metadata"
    assert quality.chunk_qualities == pytest.approx([0.45, 0.5, 0.45, 0.5, 0.5])
    # (0.45·1 + 0.5·0.6309 + 0.45·0.5 + 0.5·0.4307 + 0.5·0.3869) / 2.9485 = 0.4746
    assert quality.quality_density == pytest.approx(0.4746, abs=1e-4)
    assert (quality.stale_chunk_count, quality.conflict_chunk_count) == (1, 1)
    assert signals.diagnosis.category == "data_problem"


def test_empty_retrieval_with_acknowledging_answer_is_acceptable_fallback() -> None:
    signals = signals_from_text([], ACKNOWLEDGING)
    assert signals.grounding.uncertainty_acknowledged is True
    assert signals.grounding.usable_data is False
    assert signals.grounding.status == "acknowledged_gap"
    assert signals.diagnosis.category == "acceptable_fallback"


def test_empty_retrieval_with_confident_answer_is_ungrounded_answer() -> None:
    signals = signals_from_text([], CONFIDENT)
    assert signals.grounding.uncertainty_acknowledged is False
    assert signals.grounding.status == "ungrounded"
    assert signals.diagnosis.category == "ungrounded_answer"


def test_answer_ignoring_good_context_is_context_ignored() -> None:
    signals = signals_from_text(DIVERSE, CONFIDENT, chunk_ids=IDS)
    assert signals.utilisation.ratio == 0.0
    assert signals.grounding.status == "context_ignored"
    assert signals.diagnosis.category == "navigation"


def test_tool_data_alone_is_usable_and_grounds_the_answer() -> None:
    signals = signals_from_text([], ANSWER_REVENUE, tool_outputs=[NEAR_DUPLICATES[0]])
    assert signals.grounding.tool_provided_data is True
    assert signals.grounding.status == "grounded"
    assert signals.diagnosis.category == "healthy"


def test_tool_returning_no_results_is_no_usable_data() -> None:
    signals = signals_from_text([], CONFIDENT, tool_outputs=["No results found."])
    assert signals.grounding.tool_provided_data is False
    assert signals.diagnosis.category == "ungrounded_answer"


def test_failed_tool_is_no_usable_data() -> None:
    signals = signals_from_text(
        [], ACKNOWLEDGING, tool_outputs=["partial"], tool_errors=[TimeoutError("slow")]
    )
    assert signals.grounding.tool_provided_data is False
    assert signals.diagnosis.category == "acceptable_fallback"


def test_embeddings_drive_similarity_when_given() -> None:
    vectors = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0], [0.0, 1.0, 1.0]]
    signals = signals_from_text(DIVERSE, ANSWER_USES_FOUR, embeddings=vectors)
    assert signals.retrieval.similarity.method == "embedding"
    # pairs: four at cos 1/sqrt(2), one at 1/2 (the two mixed vectors), five at 0  ->  mean 0.3328
    assert signals.retrieval.similarity.coverage_diversity == pytest.approx(
        1 - (4 * 2**-0.5 + 0.5) / 10
    )


def test_set_signals_can_be_computed_once_and_reused() -> None:
    chunks = [fingerprint(text) for text in DIVERSE]
    retrieval = compute_set_signals(chunks, chunk_ids=IDS)
    reused = compute_step_signals(chunks, fingerprint(ANSWER_USES_TWO), set_signals=retrieval)
    fresh = compute_step_signals(chunks, fingerprint(ANSWER_USES_TWO), chunk_ids=IDS)
    assert reused == fresh


def test_thresholds_flow_through_the_engine() -> None:
    thresholds = Thresholds(utilisation=0.9, diagnosis_utilisation=0.1)
    signals = signals_from_text(DIVERSE, ANSWER_USES_FOUR, thresholds=thresholds)
    assert signals.utilisation.threshold == 0.9
    assert signals.utilisation.used_count == 0
    assert signals.diagnosis.category == "navigation"


def test_results_are_plain_json_friendly_values() -> None:
    import dataclasses
    import json

    signals = signals_from_text(DIVERSE, ANSWER_USES_FOUR, chunk_ids=IDS)
    assert json.loads(json.dumps(dataclasses.asdict(signals)))["diagnosis"]["category"] == "healthy"

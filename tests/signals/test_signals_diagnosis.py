"""Diagnosis: first rule that fires, with a reason naming the numbers."""

from __future__ import annotations

from typing import Any

import pytest

from ragprov.signals.diagnosis import diagnose

GOOD: dict[str, Any] = {
    "usable_data": True,
    "uncertainty_acknowledged": False,
    "quality_density": 0.86,
    "coverage_diversity": 0.71,
    "utilisation_ratio": 0.8,
    "used_count": 4,
    "scorable_count": 5,
    "retrieved_count": 5,
}


def _diagnose(**changes: Any) -> tuple[str, str, int]:
    result = diagnose(**{**GOOD, **changes})
    return result.category, result.reason, result.rule


def test_no_usable_data_with_acknowledgement_is_acceptable_fallback() -> None:
    assert _diagnose(usable_data=False, uncertainty_acknowledged=True, retrieved_count=0) == (
        "acceptable_fallback",
        "No usable data (no chunks retrieved and no tool data) and the answer says so.",
        1,
    )


def test_no_usable_data_with_confident_answer_is_ungrounded_answer() -> None:
    assert _diagnose(usable_data=False, retrieved_count=0) == (
        "ungrounded_answer",
        "No usable data (no chunks retrieved and no tool data) but the answer does not "
        "acknowledge it.",
        1,
    )


def test_empty_chunks_are_named_in_the_no_data_reason() -> None:
    _, reason, _ = _diagnose(usable_data=False, retrieved_count=2)
    assert reason.startswith("No usable data (2 chunks retrieved, none with content, and no tool")


def test_low_quality_is_data_problem() -> None:
    assert _diagnose(quality_density=0.42, quality_method="metadata") == (
        "data_problem",
        "Retrieved chunks are of low quality (0.42 < 0.60, metadata): fix the data upstream "
        "(re-chunk, re-score).",
        2,
    )


def test_low_diversity_is_retrieval_composition() -> None:
    assert _diagnose(coverage_diversity=0.12) == (
        "retrieval_composition",
        "Coverage diversity 0.12 < 0.30: the 5 retrieved chunks repeat each other, so "
        "utilisation is not trusted.",
        3,
    )


def test_low_utilisation_is_navigation() -> None:
    assert _diagnose(utilisation_ratio=0.4, used_count=2) == (
        "navigation",
        "2 of 5 retrieved chunks used (0.40 < 0.50) although quality 0.86 and diversity 0.71 "
        "were high.",
        4,
    )


def test_navigation_reason_names_scorable_chunks_when_some_were_not() -> None:
    _, reason, _ = _diagnose(utilisation_ratio=0.25, used_count=1, scorable_count=4)
    assert reason.startswith("1 of 4 scorable chunks used (5 retrieved) (0.25 < 0.50)")


def test_otherwise_healthy() -> None:
    assert _diagnose() == (
        "healthy",
        "4 of 5 retrieved chunks used (0.80 ≥ 0.50), quality 0.86, diversity 0.71; if the "
        "answer is wrong, look at generation.",
        5,
    )


@pytest.mark.parametrize(
    ("changes", "category"),
    [
        (
            {"quality_density": 0.1, "coverage_diversity": 0.1, "utilisation_ratio": 0.1},
            "data_problem",
        ),
        ({"coverage_diversity": 0.1, "utilisation_ratio": 0.1}, "retrieval_composition"),
        ({"usable_data": False, "quality_density": 0.1}, "ungrounded_answer"),
    ],
)
def test_first_rule_that_fires_wins(changes: dict[str, Any], category: str) -> None:
    assert _diagnose(**changes)[0] == category


@pytest.mark.parametrize(
    ("changes", "category"),
    [
        ({"quality_density": None}, "healthy"),
        ({"quality_density": float("nan")}, "healthy"),
        ({"coverage_diversity": None}, "healthy"),
        ({"utilisation_ratio": None}, "healthy"),
        (
            {"quality_density": None, "coverage_diversity": None, "utilisation_ratio": 0.0},
            "navigation",
        ),
    ],
)
def test_missing_inputs_do_not_fire_their_rule(changes: dict[str, Any], category: str) -> None:
    assert _diagnose(**changes)[0] == category


def test_missing_inputs_are_named_in_the_reason() -> None:
    _, reason, _ = _diagnose(quality_density=None, coverage_diversity=None, utilisation_ratio=None)
    assert reason == (
        "Utilisation not measurable (no answer text or no scorable chunk), quality unknown, "
        "diversity undefined; if the answer is wrong, look at generation."
    )


def test_navigation_without_quality_or_diversity() -> None:
    _, reason, _ = _diagnose(
        quality_density=None, coverage_diversity=None, utilisation_ratio=0.0, used_count=0
    )
    assert reason == "0 of 5 retrieved chunks used (0.00 < 0.50) (quality and diversity unknown)."


@pytest.mark.parametrize(
    ("thresholds", "category"),
    [
        ({"quality_threshold": 0.9}, "data_problem"),
        ({"diversity_threshold": 0.8}, "retrieval_composition"),
        ({"utilisation_threshold": 0.9}, "navigation"),
    ],
)
def test_thresholds_are_configurable(thresholds: dict[str, float], category: str) -> None:
    assert _diagnose(**thresholds)[0] == category

"""Pre-ingestion quality read from store metadata: cleaned, never raising."""

from __future__ import annotations

import math

import pytest

from ragprov.signals.metadata import ChunkQuality, parse_chunk_quality


def test_reads_every_key() -> None:
    quality = parse_chunk_quality(
        {
            "semantic_density": 0.8,
            "completeness": 0.6,
            "faithfulness": 1.0,
            "freshness_status": "aging",
            "conflict_flag": True,
            "source_document_id": "doc-1",
        }
    )
    assert quality == ChunkQuality(0.8, 0.6, 1.0, "aging", True, "doc-1")
    assert quality.score == pytest.approx(0.8)
    assert quality.is_stale is False


def test_reads_aliases() -> None:
    quality = parse_chunk_quality(
        {"faithfulness_prediction": 0.4, "chunk_source_document_id": "doc-9"}
    )
    assert quality == ChunkQuality(faithfulness=0.4, source_document_id="doc-9")


def test_primary_key_wins_over_alias() -> None:
    quality = parse_chunk_quality({"faithfulness": 0.9, "faithfulness_prediction": 0.1})
    assert quality.faithfulness == 0.9


def test_alias_used_when_primary_key_is_unusable() -> None:
    quality = parse_chunk_quality({"faithfulness": "n/a", "faithfulness_prediction": 0.1})
    assert quality.faithfulness == 0.1


def test_score_is_mean_of_present_scores() -> None:
    assert parse_chunk_quality({"semantic_density": 0.5, "completeness": 1.0}).score == 0.75


def test_no_scores_means_no_score() -> None:
    quality = parse_chunk_quality({"freshness_status": "fresh"})
    assert quality.score is None
    assert quality.has_scores is False


@pytest.mark.parametrize(
    "bad",
    ["high", "", math.nan, -0.1, 1.5, math.inf, True, None, [0.5], {"v": 1}],
    ids=repr,
)
def test_bad_scores_are_dropped(bad: object) -> None:
    assert parse_chunk_quality({"completeness": bad}).completeness is None


def test_numeric_strings_are_scores() -> None:
    assert parse_chunk_quality({"completeness": " 0.25 "}).completeness == 0.25


@pytest.mark.parametrize("value", ["stale", "rot", " ROT "])
def test_stale_and_rot_are_stale(value: str) -> None:
    assert parse_chunk_quality({"freshness_status": value}).is_stale is True


@pytest.mark.parametrize("value", ["fresh", "aging"])
def test_fresh_and_aging_are_not_stale(value: str) -> None:
    assert parse_chunk_quality({"freshness_status": value}).is_stale is False


@pytest.mark.parametrize("value", ["old", 3, "", None])
def test_unknown_freshness_is_dropped(value: object) -> None:
    assert parse_chunk_quality({"freshness_status": value}).freshness_status is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (False, False),
        (1, True),
        (0, False),
        (0.0, False),
        (math.nan, False),
        ("true", True),
        ("Yes", True),
        ("false", False),
        ("0", False),
        ("maybe", False),
        (None, False),
    ],
    ids=repr,
)
def test_conflict_flag_values(value: object, expected: bool) -> None:
    assert parse_chunk_quality({"conflict_flag": value}).conflict_flag is expected


@pytest.mark.parametrize("metadata", [None, {}, "not a mapping", 42])
def test_missing_or_non_mapping_metadata_gives_empty_quality(metadata: object) -> None:
    assert parse_chunk_quality(metadata) == ChunkQuality()  # type: ignore[arg-type]


def test_unusable_logs_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("DEBUG", logger="ragprov.signals.metadata"):
        parse_chunk_quality({"completeness": "high"})
    assert "completeness='high' is not a number" in caplog.text


def test_stamped_heuristic_is_read_but_is_not_a_measured_score() -> None:
    quality = parse_chunk_quality({"heuristic_quality": 0.61})
    assert quality.heuristic_quality == 0.61
    assert quality.score is None
    assert quality.has_scores is False


def test_bad_stamped_heuristic_is_dropped() -> None:
    assert parse_chunk_quality({"heuristic_quality": "n/a"}).heuristic_quality is None


def test_a_mapping_that_is_not_a_plain_dict_is_still_parsed() -> None:
    from types import MappingProxyType

    quality = parse_chunk_quality(MappingProxyType({"completeness": 0.5}))
    assert quality.completeness == 0.5


def test_metadata_without_quality_keys_has_no_quality() -> None:
    assert parse_chunk_quality({"topic": "solar", "page": 3}) == ChunkQuality()

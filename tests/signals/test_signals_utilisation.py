"""Utilisation: per-chunk overlap, used chunks, ratio over distinct chunks, the diversity gate."""

from __future__ import annotations

import pytest

from ragprov.signals.tokens import fingerprint
from ragprov.signals.utilisation import (
    EMPTY_OUTPUT,
    NO_CHUNKS,
    NO_SCORABLE_CHUNKS,
    OUTPUT_WITHOUT_TOKENS,
    compute_utilisation,
    overlap_scores,
    resolve_chunk_ids,
    utilisation_from_text,
)

# Ten distinctive tokens: alpha … juliet.
TEN = "alpha bravo charlie delta echo foxtrot golf hotel india juliet"


@pytest.mark.parametrize(
    ("output", "score", "used"),
    [
        ("alpha bravo charlie", 0.3, True),
        ("alpha bravo", 0.2, False),
        ("alpha bravo charlie delta echo foxtrot golf hotel india juliet", 1.0, True),
        ("kilo lima mike", 0.0, False),
    ],
)
def test_chunk_is_used_when_its_token_share_in_the_output_reaches_the_threshold(
    output: str, score: float, used: bool
) -> None:
    result = utilisation_from_text([TEN], output)
    assert result.chunks[0].score == pytest.approx(score)
    assert result.chunks[0].used is used


def test_threshold_is_configurable() -> None:
    result = utilisation_from_text([TEN], "alpha bravo charlie", threshold=0.5)
    assert result.used_chunk_ids == ()
    assert result.threshold == 0.5


def test_method_and_threshold_are_reported() -> None:
    result = utilisation_from_text([TEN], "alpha")
    assert (result.method, result.threshold) == ("text_overlap_proxy", 0.30)


def test_ratio_is_used_over_retrieved_distinct_chunks() -> None:
    chunks = [TEN, "kilo lima mike november oscar", "papa quebec romeo sierra tango"]
    result = utilisation_from_text(
        chunks, "alpha bravo charlie kilo lima", chunk_ids=["a", "b", "c"]
    )
    assert result.used_chunk_ids == ("a", "b")
    assert result.ratio == pytest.approx(2 / 3)
    assert (result.used_count, result.retrieved_count) == (2, 3)


def test_repeated_chunk_id_counts_once_with_its_best_score() -> None:
    result = utilisation_from_text(
        [TEN, "kilo lima mike", TEN], "kilo lima mike", chunk_ids=["a", "b", "a"]
    )
    assert result.retrieved_count == 2
    assert result.ratio == 0.5
    assert [(c.chunk_id, c.score) for c in result.chunks] == [("a", 0.0), ("b", 1.0)]


def test_chunks_without_distinctive_tokens_are_reported_and_not_in_the_denominator() -> None:
    result = utilisation_from_text(
        [TEN, "--- | the end"], "alpha bravo charlie", chunk_ids=["a", "b"]
    )
    assert result.ratio == 1.0
    assert result.unscorable_chunk_ids == ("b",)
    assert (result.scorable_count, result.retrieved_count) == (1, 2)
    assert result.chunks[1].score is None


def test_nothing_used_is_a_zero_ratio_not_undefined() -> None:
    result = utilisation_from_text([TEN], "kilo lima mike")
    assert result.ratio == 0.0
    assert result.undefined_reason is None


@pytest.mark.parametrize(
    ("chunks", "output", "reason"),
    [
        ([TEN], "", EMPTY_OUTPUT),
        ([TEN], None, EMPTY_OUTPUT),
        ([TEN], "Yes.", OUTPUT_WITHOUT_TOKENS),
        ([], "alpha", NO_CHUNKS),
        (["---", "ok"], "alpha", NO_SCORABLE_CHUNKS),
    ],
)
def test_ratio_is_undefined_with_a_reason(
    chunks: list[str], output: str | None, reason: str
) -> None:
    result = utilisation_from_text(chunks, output)
    assert result.ratio is None
    assert result.undefined_reason == reason


@pytest.mark.parametrize(
    ("diversity", "reliable"),
    [(0.29, False), (0.0, False), (0.30, True), (0.9, True), (None, True), (float("nan"), True)],
)
def test_utilisation_is_unreliable_below_the_diversity_gate(
    diversity: float | None, reliable: bool
) -> None:
    result = utilisation_from_text([TEN], "alpha", coverage_diversity=diversity)
    assert result.reliable is reliable


def test_diversity_gate_is_configurable() -> None:
    result = utilisation_from_text([TEN], "alpha", coverage_diversity=0.4, diversity_gate=0.5)
    assert result.reliable is False
    assert result.diversity_gate == 0.5


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), None, "0.5"])
def test_unusable_threshold_falls_back_to_the_default(bad: object) -> None:
    result = utilisation_from_text([TEN], "alpha", threshold=bad)  # type: ignore[arg-type]
    assert result.threshold == 0.30


def test_out_of_range_threshold_is_clipped() -> None:
    assert utilisation_from_text([TEN], "alpha", threshold=3.0).threshold == 1.0


def test_missing_ids_become_rank_placeholders() -> None:
    assert resolve_chunk_ids(["a", None, ""], 4) == ("a", "#2", "#3", "#4")


def test_more_ids_than_fingerprints_adds_unscorable_chunks() -> None:
    result = compute_utilisation(
        [fingerprint(TEN)], fingerprint("alpha bravo charlie"), chunk_ids=["a", "b"]
    )
    assert result.retrieved_count == 2
    assert result.unscorable_chunk_ids == ("b",)
    assert result.ratio == 1.0


def test_unknown_chunk_text_is_unscorable() -> None:
    result = compute_utilisation([None, fingerprint(TEN)], fingerprint("alpha bravo charlie"))
    assert result.unscorable_chunk_ids == ("#1",)
    assert result.ratio == 1.0


def test_overlap_scores_are_vectorised_per_chunk() -> None:
    chunks = [
        fingerprint("alpha bravo"),
        None,
        fingerprint("---"),
        fingerprint("charlie delta echo kilo"),
    ]
    assert overlap_scores(chunks, fingerprint("alpha charlie delta")) == [0.5, None, None, 0.5]

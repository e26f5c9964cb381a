"""Properties that must hold for any input (hypothesis)."""

from __future__ import annotations

import math
import random
from itertools import combinations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ragprov.signals.engine import compute_step_signals
from ragprov.signals.quality import compute_quality
from ragprov.signals.similarity import compute_similarity, lexical_similarity
from ragprov.signals.tokens import distinctive_tokens, fingerprint
from ragprov.signals.utilisation import compute_utilisation

VOCABULARY = [f"word{letter}" for letter in "abcdefghijklmnopqrstuvwxyz"]
UNUSED_VOCABULARY = [f"other{letter}" for letter in "abcdefghij"]

chunk_text = st.lists(st.sampled_from(VOCABULARY), min_size=0, max_size=12).map(" ".join)
chunk_texts = st.lists(chunk_text, min_size=0, max_size=8)
answer_text = st.lists(st.sampled_from(VOCABULARY), min_size=0, max_size=20).map(" ".join)
vectors = st.lists(
    st.lists(st.floats(-1, 1, allow_nan=False), min_size=3, max_size=3), min_size=2, max_size=6
)
SETTINGS = settings(max_examples=150, deadline=None)


def _ids(count: int) -> list[str]:
    return [f"chunk-{index}" for index in range(count)]


def _in_unit_interval(value: float | None) -> bool:
    return value is None or 0.0 <= value <= 1.0


@SETTINGS
@given(chunk_texts, answer_text)
def test_every_ratio_is_in_the_unit_interval(texts: list[str], answer: str) -> None:
    chunks = [fingerprint(text) for text in texts]
    signals = compute_step_signals(chunks, fingerprint(answer), chunk_ids=_ids(len(texts)))
    values = [
        signals.utilisation.ratio,
        signals.retrieval.similarity.coverage_diversity,
        signals.retrieval.similarity.redundancy_ratio,
        signals.retrieval.quality.quality_density,
        *(usage.score for usage in signals.utilisation.chunks),
        *signals.retrieval.quality.chunk_qualities,
    ]
    assert all(_in_unit_interval(value) for value in values)


@SETTINGS
@given(chunk_texts.filter(lambda texts: len(texts) >= 2), answer_text, st.randoms())
def test_chunk_order_does_not_change_order_free_signals(
    texts: list[str], answer: str, rng: random.Random
) -> None:
    ids = _ids(len(texts))
    order = list(range(len(texts)))
    rng.shuffle(order)
    output = fingerprint(answer)
    before = compute_step_signals([fingerprint(t) for t in texts], output, chunk_ids=ids)
    after = compute_step_signals(
        [fingerprint(texts[i]) for i in order], output, chunk_ids=[ids[i] for i in order]
    )
    assert after.utilisation.ratio == before.utilisation.ratio
    assert set(after.utilisation.used_chunk_ids) == set(before.utilisation.used_chunk_ids)
    assert after.utilisation.reliable == before.utilisation.reliable
    similarity_before, similarity_after = before.retrieval.similarity, after.retrieval.similarity
    assert similarity_after.redundancy_ratio == similarity_before.redundancy_ratio
    if similarity_before.coverage_diversity is None:
        assert similarity_after.coverage_diversity is None
    else:
        assert math.isclose(
            similarity_after.coverage_diversity or 0.0,
            similarity_before.coverage_diversity,
            abs_tol=1e-12,
        )
    assert after.grounding.status == before.grounding.status


@SETTINGS
@given(chunk_texts.filter(lambda texts: len(texts) >= 1), st.data())
def test_a_duplicate_chunk_never_raises_lexical_diversity(
    texts: list[str], data: st.DataObject
) -> None:
    copy = data.draw(st.sampled_from(texts))
    before = compute_similarity([fingerprint(t) for t in texts]).coverage_diversity
    after = compute_similarity([fingerprint(t) for t in [*texts, copy]]).coverage_diversity
    if before is not None:
        assert after is not None
        assert after <= before + 1e-12


@SETTINGS
@given(vectors, st.data())
def test_a_duplicate_chunk_never_raises_embedding_diversity(
    rows: list[list[float]], data: st.DataObject
) -> None:
    copy = data.draw(st.sampled_from(rows))
    before = compute_similarity([None] * len(rows), embeddings=rows)
    after = compute_similarity([None] * (len(rows) + 1), embeddings=[*rows, copy])
    if before.method == "embedding" and before.coverage_diversity is not None:
        assert after.coverage_diversity is not None
        assert after.coverage_diversity <= before.coverage_diversity + 1e-12


@SETTINGS
@given(chunk_texts, answer_text, st.lists(st.sampled_from(UNUSED_VOCABULARY), max_size=8))
def test_adding_an_unused_chunk_never_raises_utilisation(
    texts: list[str], answer: str, unused_words: list[str]
) -> None:
    output = fingerprint(answer)
    chunks = [fingerprint(t) for t in texts]
    before = compute_utilisation(chunks, output, chunk_ids=_ids(len(texts)))
    after = compute_utilisation(
        [*chunks, fingerprint(" ".join(unused_words))], output, chunk_ids=_ids(len(texts) + 1)
    )
    if before.ratio is not None and after.ratio is not None:
        assert after.ratio <= before.ratio
    assert after.used_chunk_ids == before.used_chunk_ids


@SETTINGS
@given(st.lists(chunk_text.filter(bool), min_size=2, max_size=8))
def test_vectorised_lexical_similarity_equals_set_arithmetic(texts: list[str]) -> None:
    sets = [distinctive_tokens(t) for t in texts]
    chunks = [fingerprint(t) for t in texts]
    for strategy in ("auto", "dense", "sparse"):
        matrix = lexical_similarity(chunks, strategy=strategy)
        for i, j in combinations(range(len(texts)), 2):
            expected = len(sets[i] & sets[j]) / math.sqrt(len(sets[i]) * len(sets[j]))
            assert math.isclose(matrix[i, j], expected, abs_tol=1e-12)


@SETTINGS
@given(st.lists(st.sampled_from(VOCABULARY), min_size=1, max_size=20), st.randoms())
def test_word_order_does_not_change_the_fingerprint(words: list[str], rng: random.Random) -> None:
    shuffled = list(words)
    rng.shuffle(shuffled)
    assert np.array_equal(
        fingerprint(" ".join(words)).hashes, fingerprint(" ".join(shuffled)).hashes
    )


@SETTINGS
@given(st.decimals(min_value=0, max_value=10_000, places=2, allow_nan=False, allow_infinity=False))
def test_currency_and_magnitude_spellings_compare_equal(amount: object) -> None:
    assert distinctive_tokens(f"${amount}M") == distinctive_tokens(f"{amount} million")


@SETTINGS
@given(st.lists(st.one_of(st.none(), st.floats(allow_nan=True), st.text(max_size=5)), max_size=6))
def test_quality_never_leaves_the_unit_interval_on_garbage_metadata(values: list[object]) -> None:
    result = compute_quality([{"semantic_density": value} for value in values])
    assert _in_unit_interval(result.quality_density)

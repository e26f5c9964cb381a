"""Benchmarks of the signals engine (pytest-benchmark).

Run explicitly (testpaths is tests/): ``.venv/bin/pytest benchmarks/bench_signals.py
--benchmark-only``. Results are recorded in docs/performance.md ("Signals engine").

Texts are synthetic but shaped like real retrieval: ~2 KB chunks of sentences drawn from a shared
topical vocabulary (Zipf-distributed, with stop words, numbers and amounts), so chunks overlap
lexically the way chunks of one corpus do; the >= 1 KB answer reuses the opening sentences of
70 % of the chunks.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from ragprov.signals import tokens
from ragprov.signals.engine import compute_step_signals, signals_from_text
from ragprov.signals.similarity import compute_similarity
from ragprov.signals.tokens import TextFingerprint, fingerprint, fingerprint_all

_RNG = np.random.default_rng(20261123)
_SYLLABLES = ["ka", "lo", "mi", "ren", "tos", "va", "dri", "pel", "su", "gon", "ther", "quin"]
_VOCABULARY = ["".join(_RNG.choice(_SYLLABLES, size=int(_RNG.integers(2, 5)))) for _ in range(6000)]
_ZIPF = 1.0 / np.arange(1, len(_VOCABULARY) + 1) ** 1.1
_ZIPF /= _ZIPF.sum()
_STOP = ["the", "of", "and", "in", "to", "a", "was", "for", "with", "that", "from", "which"]


def _sentence(rng: np.random.Generator) -> str:
    words: list[str] = []
    for _ in range(int(rng.integers(8, 20))):
        roll = rng.random()
        if roll < 0.40:
            words.append(str(rng.choice(_STOP)))
        elif roll < 0.46:
            words.append(f"${rng.integers(1, 99)}.{rng.integers(0, 9)}M")
        elif roll < 0.50:
            words.append(f"{rng.integers(1, 99)}.{rng.integers(0, 9)}%")
        else:
            words.append(str(_VOCABULARY[rng.choice(len(_VOCABULARY), p=_ZIPF)]))
    return words[0].capitalize() + " " + " ".join(words[1:]) + "."


def _text(rng: np.random.Generator, size: int) -> tuple[str, list[str]]:
    sentences: list[str] = []
    while sum(len(s) + 1 for s in sentences) < size:
        sentences.append(_sentence(rng))
    return " ".join(sentences)[:size], sentences


def _corpus(k: int, seed: int = 7) -> tuple[list[str], str]:
    """k chunks of ~2 KB and an answer (>= 1 KB) from opening sentences of 70 % of the chunks."""
    rng = np.random.default_rng(seed)
    texts, sentence_lists = zip(*(_text(rng, 2048) for _ in range(k)), strict=True)
    used = max(1, int(k * 0.7))
    answer_parts = [" ".join(sentence_lists[i][:3]) for i in range(used)]
    answer = " ".join(answer_parts)[: max(1024, 200 * used)]
    return list(texts), answer


TEXTS_10, ANSWER_10 = _corpus(10)
IDS_10 = [f"doc-{i}#chunk" for i in range(10)]


def _fingerprints(k: int) -> tuple[list[TextFingerprint], TextFingerprint, list[str]]:
    texts, answer = _corpus(k)
    return fingerprint_all(texts), fingerprint(answer), [f"doc-{i}#chunk" for i in range(k)]


def test_tokenize_10_chunks_of_2kb_warm_token_memo(benchmark: Any) -> None:
    """New texts made of known words: the line memo is cleared before every round."""
    result = benchmark.pedantic(
        fingerprint_all,
        args=(TEXTS_10,),
        setup=lambda: tokens.clear_memos(tokens=False),
        rounds=200,
    )
    assert len(result) == 10


def test_tokenize_10_chunks_of_2kb_cold_cache(benchmark: Any) -> None:
    result = benchmark.pedantic(
        fingerprint_all, args=(TEXTS_10,), setup=tokens.clear_memos, rounds=200
    )
    assert len(result) == 10


def test_fingerprint_prompt_quoting_10_known_chunks(benchmark: Any) -> None:
    """A prompt made of 10 chunks fingerprinted at retrieval: their lines are memo hits."""
    fingerprint_all(TEXTS_10)
    prompt = "Answer from the context.\n\n" + "\n\n".join(TEXTS_10) + "\n\nQuestion: why?"
    result = benchmark(fingerprint, prompt)
    assert result.token_count > 0


def test_all_signals_k10_from_fingerprints(benchmark: Any) -> None:
    chunks, output, ids = _fingerprints(10)
    signals = benchmark(compute_step_signals, chunks, output, chunk_ids=ids)
    assert signals.utilisation.ratio is not None


def test_all_signals_k10_from_text_including_tokenization(benchmark: Any) -> None:
    signals = benchmark(signals_from_text, TEXTS_10, ANSWER_10, chunk_ids=IDS_10)
    assert signals.utilisation.ratio is not None


@pytest.mark.parametrize("k", [5, 10, 50, 200])
def test_all_signals_from_fingerprints_scaling(benchmark: Any, k: int) -> None:
    chunks, output, ids = _fingerprints(k)
    signals = benchmark(compute_step_signals, chunks, output, chunk_ids=ids)
    assert signals.utilisation.retrieved_count == k


@pytest.mark.parametrize("k", [10, 200])
def test_embedding_similarity_768d(benchmark: Any, k: int) -> None:
    embeddings = np.random.default_rng(k).normal(size=(k, 768))
    result = benchmark(compute_similarity, [None] * k, embeddings=embeddings)
    assert result.method == "embedding"


def _adversarial_fingerprints(k: int, per_chunk: int, holders: int) -> list[TextFingerprint]:
    """k chunks of ``per_chunk`` token hashes where every token is held by ``holders`` chunks."""
    rng = np.random.default_rng(k)
    tokens_ = np.repeat(np.arange(k * per_chunk // holders, dtype=np.uint64), holders)
    rng.shuffle(tokens_)
    return [
        TextFingerprint(hashes=np.unique(tokens_[i * per_chunk : (i + 1) * per_chunk]))
        for i in range(k)
    ]


@pytest.mark.parametrize(
    ("case", "holders"), [("every_token_in_2_chunks", 2), ("every_token_in_100_chunks", 100)]
)
def test_lexical_similarity_k200_adversarial(benchmark: Any, case: str, holders: int) -> None:
    chunks = _adversarial_fingerprints(200, 300, holders)
    result = benchmark(compute_similarity, chunks)
    assert result.method == "lexical"

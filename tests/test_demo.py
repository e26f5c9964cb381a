"""`ragprov demo` on a real embedded chromadb, run as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ragprov import ids
from ragprov.demo.corpus import QUESTIONS
from ragprov.demo.embedding import HashingEmbedder
from ragprov.model import RetrievalSetEnvelope

pytest.importorskip("chromadb")

RAGPROV = Path(sys.executable).parent / "ragprov"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(RAGPROV), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )


@pytest.fixture(scope="module")
def demo_envelopes() -> list[RetrievalSetEnvelope]:
    result = run_cli("demo", "--json")
    assert result.returncode == 0, result.stderr
    return [RetrievalSetEnvelope.model_validate_json(line) for line in result.stdout.splitlines()]


def test_demo_prints_one_envelope_per_question(demo_envelopes: list[RetrievalSetEnvelope]) -> None:
    assert len(demo_envelopes) == len(QUESTIONS)
    assert len({envelope.retrieval_set_id for envelope in demo_envelopes}) == len(QUESTIONS)


def test_demo_retrieves_top_k_chunks(demo_envelopes: list[RetrievalSetEnvelope]) -> None:
    assert [len(envelope.chunks) for envelope in demo_envelopes] == [4, 4, 4]
    assert [chunk.rank for chunk in demo_envelopes[0].chunks] == [1, 2, 3, 4]


def test_demo_ranks_the_relevant_chunk_first(demo_envelopes: list[RetrievalSetEnvelope]) -> None:
    returns, shipping, revenue = demo_envelopes
    assert returns.chunks[0].chunk_id == "handbook/returns#0"
    assert shipping.chunks[0].chunk_id == "handbook/shipping#1"
    assert revenue.chunks[0].chunk_id == ids.content_hash(
        "Third-quarter revenue grew to $12.4M, up 26.6% year over year, driven by the "
        "subscription plans launched in April."
    )


def test_demo_scores_are_similarities_in_rank_order(
    demo_envelopes: list[RetrievalSetEnvelope],
) -> None:
    for envelope in demo_envelopes:
        scores = [chunk.score for chunk in envelope.chunks]
        assert all(score is not None and -1.0 <= score <= 1.0 for score in scores)
        assert scores == sorted(scores, reverse=True)  # type: ignore[type-var]


def test_demo_reads_quality_metadata(demo_envelopes: list[RetrievalSetEnvelope]) -> None:
    top = demo_envelopes[0].chunks[0]
    assert top.quality.score == pytest.approx((0.86 + 0.92 + 0.95) / 3)
    assert top.source_document_id == "handbook/returns"


def test_demo_query_hash_is_the_hash_of_the_question(
    demo_envelopes: list[RetrievalSetEnvelope],
) -> None:
    assert [envelope.query_hash for envelope in demo_envelopes] == [
        ids.query_hash(question) for question in QUESTIONS
    ]


def test_demo_report_is_readable() -> None:
    result = run_cli("demo")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.count("chunk_set_hash") == len(QUESTIONS)
    assert "handbook/returns#0" in out
    assert "quality_density" in out
    # Privacy: the report shows ids and hashes, never the chunk text.
    assert "full refund" not in out


def test_demo_rejects_a_bad_top_k() -> None:
    result = run_cli("demo", "--top-k", "0")
    assert result.returncode == 2
    assert "--top-k must be at least 1" in result.stderr


def test_config_check_names_an_invalid_variable() -> None:
    result = subprocess.run(
        [str(RAGPROV), "config", "--check"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "RAGPROV_DIVERSITY_GATE": "wide"},
    )
    assert result.returncode == 2
    assert "RAGPROV_DIVERSITY_GATE='wide'" in result.stderr


def test_config_prints_effective_settings() -> None:
    result = subprocess.run(
        [str(RAGPROV), "config"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "RAGPROV_QUALITY_THRESHOLD": "0.7"},
    )
    assert "RAGPROV_QUALITY_THRESHOLD=0.7" in result.stdout.splitlines()
    assert "RAGPROV_CAPTURE_CONTENT=false" in result.stdout.splitlines()


def test_hashing_embedder_is_deterministic_and_normalised() -> None:
    embedder = HashingEmbedder(dimensions=64)
    first = embedder.embed(["Express delivery costs €12.50", "no distinctive"])
    second = HashingEmbedder(dimensions=64).embed(
        ["Express delivery costs €12.50", "no distinctive"]
    )
    assert np.array_equal(first, second)
    assert np.linalg.norm(first[0]) == pytest.approx(1.0)


def test_hashing_embedder_gives_text_without_tokens_the_zero_vector() -> None:
    assert not HashingEmbedder(dimensions=16).embed(["a an the"]).any()


def test_hashing_embedder_rejects_tiny_dimensions() -> None:
    with pytest.raises(ValueError, match="at least 8"):
        HashingEmbedder(dimensions=2)


def test_hashing_embedder_output_is_plain_lists() -> None:
    vectors = HashingEmbedder(dimensions=8)(["shipping costs"])
    assert isinstance(vectors, list)
    assert len(vectors[0]) == 8
    assert json.dumps(vectors)

"""`ragprov demo` on real embedded components, run as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from apps.harness import otlp_http_receiver

from ragprov import ids
from ragprov.demo import scenarios
from ragprov.demo.app import QUESTIONS
from ragprov.demo.embedding import HashingEmbedder
from ragprov.demo.responder import FALLBACK_ANSWER, running_responder

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
def demo_reports() -> list[dict[str, Any]]:
    result = run_cli("demo", "--json")
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_demo_answers_every_question(demo_reports: list[dict[str, Any]]) -> None:
    assert [report["question"] for report in demo_reports] == [q.question for q in QUESTIONS]


def test_demo_shows_every_diagnosis_category(demo_reports: list[dict[str, Any]]) -> None:
    assert [report["diagnosis"] for report in demo_reports] == [
        "healthy",
        "navigation",
        "retrieval_composition",
        "data_problem",
        "acceptable_fallback",
        "ungrounded_answer",
    ]
    assert [report["diagnosis"] for report in demo_reports] == [q.expected for q in QUESTIONS]


def test_demo_reads_utilisation_back_from_the_spans(demo_reports: list[dict[str, Any]]) -> None:
    assert [
        (report["used_chunks"], report["retrieved_chunks"], report["utilisation_ratio"])
        for report in demo_reports
    ] == [(4, 5, 0.8), (2, 5, 0.4), (5, 5, 1.0), (4, 5, 0.8), (0, 0, None), (0, 0, None)]
    assert [report["utilisation_reliable"] for report in demo_reports[:4]] == [
        True,
        True,
        False,
        True,
    ]


def test_demo_links_each_answer_to_its_retrieval(demo_reports: list[dict[str, Any]]) -> None:
    for report in demo_reports:
        assert len(report["retrieval_set_ids"]) == 1
    assert demo_reports[0]["chunk_set_hashes"] == [ids.chunk_set_hash(scenarios.IDS)]
    # An empty retrieval is still a set: the hash of no chunks.
    assert demo_reports[4]["chunk_set_hashes"] == [ids.chunk_set_hash([])]


def test_demo_quality_comes_from_metadata(demo_reports: list[dict[str, Any]]) -> None:
    assert [report["quality_method"] for report in demo_reports[:4]] == ["metadata"] * 2 + [
        "heuristic",
        "metadata",
    ]
    assert demo_reports[3]["quality_density"] < 0.6 < demo_reports[0]["quality_density"]


def test_demo_table_is_readable_and_holds_no_document_text() -> None:
    result = run_cli("demo")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for category in ("healthy", "navigation", "retrieval_composition", "data_problem"):
        assert category in out
    assert "[6/6]" in out
    assert "navigation: 2 of 5 retrieved chunks used (0.40 < 0.50)" in out
    assert "Palletbot" not in out  # chunk text stays in the process


def test_demo_exports_over_otlp() -> None:
    with otlp_http_receiver() as receiver:
        result = run_cli("demo", "--json", "--otlp", receiver.endpoint)
        assert result.returncode == 0, result.stderr
    spans = receiver.spans()
    roots = [span for span in spans if span["name"] == "rag request"]
    assert sorted(span["attributes"]["rag.diagnosis"] for span in roots) == sorted(
        q.expected for q in QUESTIONS
    )
    assert all("gen_ai.input.messages" not in span["attributes"] for span in spans)


def test_demo_uses_the_given_openai_endpoint() -> None:
    with running_responder({}) as url:  # knows no question: every answer is the fallback
        result = run_cli("demo", "--json", "--openai-base-url", url)
    assert result.returncode == 0, result.stderr
    reports = [json.loads(line) for line in result.stdout.splitlines()]
    assert {report["answer"] for report in reports} == {FALLBACK_ANSWER}


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

"""The processor on hand-built traces of the diagnosis scenarios: exact exported attributes.

Each test builds the spans an instrumented RAG app emits (tests/spans.py) — a request span, a
retrieval span with its chunk texts in the side channel, an LLM call with its prompt and answer —
and asserts what reaches the exporter.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from spans import MODEL, Pipeline, approx, chat, make_pipeline, pop_uuid, prompt, retrieve

from ragprov import ids
from ragprov.demo import scenarios
from ragprov.semconv.attributes import STEP_SPAN_ATTRIBUTES

QUESTION = "What do we know about Acme Robotics?"
CHAT = f"chat {MODEL}"


@pytest.fixture
def pipeline() -> Iterator[Pipeline]:
    pipeline = make_pipeline()
    yield pipeline
    pipeline.provider.shutdown()


def run_request(
    pipeline: Pipeline,
    texts: list[str],
    answer: str,
    *,
    chunk_ids: list[str] | None = None,
    metadata: list[dict[str, Any]] | None = None,
) -> str:
    with pipeline.tracer.start_as_current_span("request"):
        envelope = retrieve(
            pipeline.tracer, texts, chunk_ids=chunk_ids, metadata=metadata, query=QUESTION
        )
        chat(pipeline.tracer, prompt(texts, QUESTION), answer)
    return envelope.retrieval_set_id


@pytest.mark.parametrize(
    ("texts", "chunk_ids", "metadata", "answer", "diagnosis", "grounding"),
    [
        (scenarios.DIVERSE, scenarios.IDS, None, scenarios.ANSWER_USES_FOUR, "healthy", "grounded"),
        (
            scenarios.DIVERSE,
            scenarios.IDS,
            None,
            scenarios.ANSWER_USES_TWO,
            "navigation",
            "grounded",
        ),
        (
            scenarios.NEAR_DUPLICATES,
            None,
            None,
            scenarios.ANSWER_REVENUE,
            "retrieval_composition",
            "grounded",
        ),
        (
            scenarios.DIVERSE,
            scenarios.IDS,
            scenarios.LOW_QUALITY_METADATA,
            scenarios.ANSWER_USES_FOUR,
            "data_problem",
            "grounded",
        ),
        ([], None, None, scenarios.ACKNOWLEDGING, "acceptable_fallback", "acknowledged_gap"),
        ([], None, None, scenarios.CONFIDENT, "ungrounded_answer", "ungrounded"),
    ],
    ids=[
        "healthy",
        "navigation",
        "retrieval_composition",
        "data_problem",
        "acceptable_fallback",
        "ungrounded_answer",
    ],
)
def test_scenario_diagnosis_on_the_answer_and_the_root(
    pipeline: Pipeline,
    texts: list[str],
    chunk_ids: list[str] | None,
    metadata: list[dict[str, Any]] | None,
    answer: str,
    diagnosis: str,
    grounding: str,
) -> None:
    retrieval_set_id = run_request(pipeline, texts, answer, chunk_ids=chunk_ids, metadata=metadata)
    for name in (CHAT, "request"):
        attributes = pipeline.attributes(name)
        assert attributes["rag.diagnosis"] == diagnosis
        assert attributes["rag.grounding_status"] == grounding
        assert attributes["rag.ancestor_retrieval_set_ids"] == (retrieval_set_id,)


def test_healthy_answer_exact_attributes(pipeline: Pipeline) -> None:
    retrieval_set_id = run_request(
        pipeline, scenarios.DIVERSE, scenarios.ANSWER_USES_FOUR, chunk_ids=scenarios.IDS
    )
    attributes = pipeline.attributes(CHAT)
    assert attributes.pop("gen_ai.operation.name") == "chat"
    assert attributes.pop("gen_ai.request.model") == MODEL
    pop_uuid(attributes, "rag.step_id")
    assert attributes.pop("rag.transformation_type") == "generation"
    assert attributes.pop("rag.lineage_method") == "content_match"
    assert attributes.pop("rag.ancestor_retrieval_set_ids") == (retrieval_set_id,)
    assert attributes.pop("rag.ancestor_chunk_set_hashes") == (ids.chunk_set_hash(scenarios.IDS),)
    assert attributes.pop("rag.ancestor_data_source_ids") == ("reports",)
    assert attributes.pop("rag.utilisation_ratio") == 0.8
    assert attributes.pop("rag.used_chunk_ids") == tuple(scenarios.IDS[:4])
    assert attributes.pop("rag.used_chunk_count") == 4
    assert attributes.pop("rag.retrieved_chunk_count") == 5
    assert attributes.pop("rag.utilisation_method") == "text_overlap_proxy"
    assert attributes.pop("rag.utilisation_threshold") == 0.3
    assert attributes.pop("rag.utilisation_reliable") is True
    assert attributes.pop("rag.grounding_status") == "grounded"
    assert attributes.pop("rag.uncertainty_acknowledged") is False
    assert 0 < attributes.pop("rag.source_to_response_ratio") < 1
    assert attributes.pop("rag.diagnosis") == "healthy"
    assert attributes.pop("rag.diagnosis_reason") == (
        "4 of 5 retrieved chunks used (0.80 ≥ 0.50), quality 0.94, diversity 0.97; if the answer "
        "is wrong, look at generation."
    )
    assert attributes == {}


def test_answer_attributes_are_registered_step_attributes(pipeline: Pipeline) -> None:
    run_request(pipeline, scenarios.DIVERSE, scenarios.ANSWER_USES_FOUR, chunk_ids=scenarios.IDS)
    rag_keys = {key for key in pipeline.attributes(CHAT) if key.startswith("rag.")}
    assert rag_keys <= set(STEP_SPAN_ATTRIBUTES)


def test_retrieval_span_exact_attributes(pipeline: Pipeline) -> None:
    retrieval_set_id = run_request(
        pipeline, scenarios.DIVERSE, scenarios.ANSWER_USES_FOUR, chunk_ids=scenarios.IDS
    )
    attributes = pipeline.attributes("retrieval reports")
    assert attributes.pop("gen_ai.operation.name") == "retrieval"
    assert attributes.pop("gen_ai.data_source.id") == "reports"
    assert attributes.pop("rag.retrieval_set_id") == retrieval_set_id
    assert attributes.pop("rag.chunk_set_hash") == ids.chunk_set_hash(scenarios.IDS)
    assert attributes.pop("rag.chunk_ids") == tuple(scenarios.IDS)
    assert attributes.pop("rag.chunk_id_method") == "metadata"
    assert attributes.pop("rag.chunk_scores") == approx([0.9, 0.8, 0.7, 0.6, 0.5])
    assert attributes.pop("rag.retrieval_method") == "unknown"
    assert attributes.pop("rag.query_hash") == ids.query_hash(QUESTION)
    assert attributes.pop("rag.quality_density") == approx(0.9426)
    assert attributes.pop("rag.quality_method") == "heuristic"
    assert attributes.pop("rag.coverage_diversity") == approx(0.9678)
    assert attributes.pop("rag.redundancy_ratio") == 0.0
    assert attributes.pop("rag.similarity_method") == "lexical"
    assert attributes.pop("rag.stale_chunk_count") == 0
    assert attributes.pop("rag.conflict_chunk_count") == 0
    assert attributes == {}


def test_root_mirrors_the_final_answer(pipeline: Pipeline) -> None:
    retrieval_set_id = run_request(
        pipeline, scenarios.DIVERSE, scenarios.ANSWER_USES_TWO, chunk_ids=scenarios.IDS
    )
    attributes = pipeline.attributes("request")
    assert attributes.pop("rag.diagnosis") == "navigation"
    assert attributes.pop("rag.diagnosis_reason").startswith("2 of 5 retrieved chunks used")
    assert attributes.pop("rag.utilisation_ratio") == 0.4
    assert attributes.pop("rag.utilisation_reliable") is True
    assert attributes.pop("rag.used_chunk_count") == 2
    assert attributes.pop("rag.retrieved_chunk_count") == 5
    assert attributes.pop("rag.grounding_status") == "grounded"
    assert attributes.pop("rag.ancestor_retrieval_set_ids") == (retrieval_set_id,)
    assert attributes.pop("rag.ancestor_chunk_set_hashes") == (ids.chunk_set_hash(scenarios.IDS),)
    assert attributes.pop("rag.ancestor_data_source_ids") == ("reports",)
    assert attributes == {}


def test_answer_links_to_its_retrieval_span(pipeline: Pipeline) -> None:
    retrieval_set_id = run_request(
        pipeline, scenarios.DIVERSE, scenarios.ANSWER_USES_FOUR, chunk_ids=scenarios.IDS
    )
    retrieval_span = pipeline.span("retrieval reports")
    (link,) = pipeline.span(CHAT).links
    assert link.context == retrieval_span.context
    assert dict(link.attributes or {}) == {"rag.retrieval_set_id": retrieval_set_id}


def test_two_step_agent_lists_both_retrieval_sets_on_the_answer(pipeline: Pipeline) -> None:
    tracer = pipeline.tracer
    first_chunks, second_chunks = scenarios.DIVERSE[:2], scenarios.DIVERSE[2:]
    rewritten = "Palletbot lithium battery supplier risk and 2024 revenue outlook for Wrocław"
    with tracer.start_as_current_span("agent"):
        first = retrieve(tracer, first_chunks, query=QUESTION)
        chat(
            tracer,
            prompt(first_chunks, "Rewrite the question into a search query."),
            rewritten,
            name="chat rewrite",
            extra={"rag.transformation_type": "query_rewrite"},
        )
        second = retrieve(tracer, second_chunks, query=rewritten)
        chat(tracer, prompt(second_chunks, QUESTION), scenarios.ANSWER_USES_FOUR)

    rewrite = pipeline.attributes("chat rewrite")
    assert rewrite["rag.ancestor_retrieval_set_ids"] == (first.retrieval_set_id,)
    assert rewrite["rag.transformation_type"] == "query_rewrite"
    answer = pipeline.attributes(CHAT)
    assert answer["rag.lineage_method"] == "content_match"
    assert answer["rag.ancestor_retrieval_set_ids"] == (
        second.retrieval_set_id,
        first.retrieval_set_id,
    )
    assert answer["rag.ancestor_chunk_set_hashes"] == (
        second.chunk_set_hash,
        first.chunk_set_hash,
    )
    # Utilisation is measured on the sets that fed the answer directly.
    assert answer["rag.retrieved_chunk_count"] == 3
    assert pipeline.attributes("agent")["rag.ancestor_retrieval_set_ids"] == (
        second.retrieval_set_id,
        first.retrieval_set_id,
    )
    link_ids = {
        dict(link.attributes or {})["rag.retrieval_set_id"] for link in pipeline.span(CHAT).links
    }
    assert link_ids == {first.retrieval_set_id, second.retrieval_set_id}

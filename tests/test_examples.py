"""Every example app, run as a user runs it: `opentelemetry-instrument python examples/...`.

The apps import nothing from ragprov; the LLM is a local scripted OpenAI-compatible responder.
Spans are read from the console exporter's output. The LlamaIndex app runs in its own virtual
environment (.venv-llamaindex, built on first use, ~1 min): llama-index-llms-openai requires
openai < 3, and the dev environment tests the openai 3 client.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from apps.harness import Span, console_spans
from side_venvs import side_venv

from ragprov import ids
from ragprov.demo.responder import running_responder

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def llamaindex_bin() -> Path:
    """The bin directory of a venv with ragprov[chromadb,openai,llamaindex]."""
    return side_venv(".venv-llamaindex", extras="chromadb,openai,llamaindex")


def run_example(
    name: str, script: dict[str, str], venv_bin: Path = VENV_BIN, folder: Path = ROOT / "examples"
) -> tuple[str, list[Span]]:
    with running_responder(script) as url:
        env = {
            **os.environ,
            "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
            "OTEL_TRACES_EXPORTER": "console",
            "OTEL_METRICS_EXPORTER": "none",
            "OTEL_LOGS_EXPORTER": "none",
            # Export at shutdown only, after the printed answer: with the default 5 s delay a
            # slow run (a busy machine, a framework's imports) prints spans before it.
            "OTEL_BSP_SCHEDULE_DELAY": "600000",
            "OPENAI_BASE_URL": url,
            "ANTHROPIC_BASE_URL": url.removesuffix("/v1"),  # the client adds /v1/messages
        }
        result = subprocess.run(
            [str(venv_bin / "opentelemetry-instrument"), "python", str(folder / name)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    assert result.returncode == 0, result.stderr[-3000:]
    answer, _, printed_spans = result.stdout.partition("\n")
    return answer, console_spans(printed_spans)


def named(spans: list[Span], name: str) -> list[Span]:
    return [span for span in spans if span["name"] == name]


def test_chromadb_openai_example_links_the_answer_to_its_retrieval() -> None:
    question = "How long do customers have to return a product, and how are refunds paid?"
    answer = "Customers may return any unused product within 30 days of delivery for a full refund."
    printed, spans = run_example("chromadb_openai.py", {question: answer})
    assert printed == answer
    (retrieval,) = named(spans, "retrieval handbook")
    (chat,) = named(spans, "chat demo-model")
    retrieval_set_id = retrieval["attributes"]["rag.retrieval_set_id"]
    assert chat["attributes"]["rag.ancestor_retrieval_set_ids"] == [retrieval_set_id]
    assert chat["attributes"]["rag.lineage_method"] == "content_match"
    assert chat["attributes"]["rag.diagnosis"] in {"healthy", "navigation"}


def test_two_step_agent_answer_lists_both_retrieval_sets() -> None:
    question = "What could slow Acme down next year?"
    rewrite = "Rewrite this question as a short search query for the reports: " + question
    query = "lithium battery cells supplier risk 2024 revenue assembly line Wrocław"
    answer = (
        "The supply of lithium battery cells is the main operational risk; a second supplier in "
        "South Korea was qualified in November 2023."
    )
    printed, spans = run_example("two_step_agent.py", {rewrite: query, question: answer})
    assert printed == answer
    first, second = named(spans, "retrieval reports")
    rewrite_step, answer_step = named(spans, "chat demo-model")
    first_id = first["attributes"]["rag.retrieval_set_id"]
    second_id = second["attributes"]["rag.retrieval_set_id"]
    assert rewrite_step["attributes"]["rag.ancestor_retrieval_set_ids"] == [first_id]
    # Both sets, whichever way each was found (content match, or the rewritten query's upstream).
    assert set(answer_step["attributes"]["rag.ancestor_retrieval_set_ids"]) == {first_id, second_id}
    assert answer_step["attributes"]["rag.diagnosis"] in {
        "healthy",
        "navigation",
        "retrieval_composition",
        "data_problem",
    }


def test_qdrant_anthropic_example_links_the_answer_to_its_retrieval() -> None:
    question = "What do I need for a warranty claim, and how fast is the replacement shipped?"
    answer = (
        "A warranty claim needs the order number and a description of the fault; replacement "
        "devices ship within 10 business days of approval."
    )
    printed, spans = run_example("qdrant_anthropic.py", {question: answer})
    assert printed == answer
    (retrieval,) = named(spans, "retrieval handbook")
    # anthropic 2.x traces its own calls when a tracer provider is set; ragprov then enriches
    # that span (anthropic.messages.create) instead of adding a second one.
    (chat,) = [span for span in spans if span["attributes"].get("gen_ai.operation.name") == "chat"]
    assert retrieval["attributes"]["db.system.name"] == "qdrant"
    assert retrieval["attributes"]["rag.source_document_ids"][:2] == ["warranty", "warranty"]
    retrieval_set_id = retrieval["attributes"]["rag.retrieval_set_id"]
    assert isinstance(chat["attributes"]["rag.step_id"], str)
    assert chat["attributes"]["rag.ancestor_retrieval_set_ids"] == [retrieval_set_id]
    assert chat["attributes"]["rag.lineage_method"] == "content_match"
    assert isinstance(chat["attributes"]["rag.utilisation_ratio"], float)


def test_langchain_rag_example_links_the_answer_to_its_retrieval() -> None:
    question = "Which items cannot be returned, and how soon must damage be reported?"
    answer = (
        "Opened software, gift cards and personalised items cannot be returned; damaged "
        "deliveries must be reported within 48 hours."
    )
    printed, spans = run_example("langchain_rag.py", {question: answer})
    assert printed == answer
    (retrieval,) = named(spans, "retrieval handbook")
    (chat,) = named(spans, "chat demo-model")
    # The LangChain instrumentor's span around the chain's run, named after its run_name.
    (workflow,) = named(spans, "invoke_workflow answer question")
    # The retriever's k=2: the returns chunk that answers, then the support chunk.
    chunk_ids = [
        ids.content_hash(
            "Opened software, gift cards and personalised items cannot be returned. Damaged "
            "deliveries must be reported within 48 hours with a photograph of the packaging."
        ),
        ids.content_hash(
            "The support desk answers chat and email from 8:00 to 20:00 CET on weekdays. "
            "Premium subscribers also get phone support on Saturdays."
        ),
    ]
    assert retrieval["attributes"]["rag.chunk_ids"] == chunk_ids
    assert retrieval["attributes"]["rag.chunk_set_hash"] == ids.chunk_set_hash(chunk_ids)
    assert retrieval["attributes"]["rag.source_document_ids"] == ["returns", "support"]
    retrieval_set_id = retrieval["attributes"]["rag.retrieval_set_id"]
    # LangChain runs the retriever in a copy of the caller's context: the two calls are linked
    # through the trace of the workflow span, the trace's root (which mirrors the diagnosis).
    assert workflow["attributes"]["gen_ai.operation.name"] == "invoke_workflow"
    assert chat["attributes"]["rag.ancestor_retrieval_set_ids"] == [retrieval_set_id]
    assert chat["attributes"]["rag.lineage_method"] == "content_match"
    assert chat["attributes"]["rag.used_chunk_count"] == 1  # the answer ignores the support hours
    assert chat["attributes"]["rag.diagnosis"] == "healthy"
    assert workflow["attributes"]["rag.ancestor_retrieval_set_ids"] == [retrieval_set_id]
    assert workflow["attributes"]["rag.diagnosis"] == "healthy"


def test_llamaindex_rag_example_links_the_answer_to_its_retrieval(llamaindex_bin: Path) -> None:
    question = "What do I need for a warranty claim, and how fast is the replacement shipped?"
    answer = (
        "A warranty claim needs the order number and a description of the fault; replacement "
        "devices ship within 10 business days of approval."
    )
    printed, spans = run_example("llamaindex_rag.py", {question: answer}, llamaindex_bin)
    assert printed == answer
    (retrieval,) = named(spans, "retrieval handbook")
    (chat,) = named(spans, "chat demo-model")
    # similarity_top_k=3: both warranty chunks, then the shipping one; LlamaIndex keeps the node
    # text in chromadb's documents and the metadata beside its _node_content JSON.
    chunk_ids = [
        ids.content_hash(
            "Replacement devices ship within 10 business days of the claim's approval."
        ),
        ids.content_hash("Warranty claims need the order number and a description of the fault."),
        ids.content_hash(
            "Express delivery arrives the next business day when ordered before 14:00 CET."
        ),
    ]
    assert retrieval["attributes"]["rag.chunk_ids"] == chunk_ids
    assert retrieval["attributes"]["rag.chunk_set_hash"] == ids.chunk_set_hash(chunk_ids)
    assert retrieval["attributes"]["rag.source_document_ids"] == [
        "warranty",
        "warranty",
        "shipping",
    ]
    retrieval_set_id = retrieval["attributes"]["rag.retrieval_set_id"]
    assert chat["attributes"]["rag.ancestor_retrieval_set_ids"] == [retrieval_set_id]
    assert chat["attributes"]["rag.lineage_method"] == "content_match"
    assert chat["attributes"]["rag.used_chunk_count"] == 2  # both warranty chunks
    assert chat["attributes"]["rag.diagnosis"] == "healthy"


def test_llamaindex_retriever_over_the_default_store_gets_a_retrieval_span(
    llamaindex_bin: Path,
) -> None:
    """LlamaIndex's in-memory SimpleVectorStore, which ragprov does not instrument: the
    retriever's span carries the set (tests/apps/llamaindex_retriever_app.py, sync and async)."""
    printed, spans = run_example(
        "llamaindex_retriever_app.py", {}, llamaindex_bin, ROOT / "tests" / "apps"
    )
    calls = json.loads(printed)
    retrievals = named(spans, "retrieval VectorIndexRetriever")
    assert len(retrievals) == len(calls) == 2
    for retrieval, nodes in zip(retrievals, calls, strict=True):
        found = dict(retrieval["attributes"])
        chunk_ids = [ids.content_hash(text) for _, text, _ in nodes]
        assert found.pop("rag.chunk_ids") == chunk_ids
        assert found.pop("rag.chunk_set_hash") == ids.chunk_set_hash(chunk_ids)
        assert found.pop("rag.chunk_scores") == pytest.approx([score for _, _, score in nodes])
        assert isinstance(found.pop("rag.retrieval_set_id"), str)
        assert found.pop("gen_ai.operation.name") == "retrieval"
        assert found.pop("gen_ai.retrieval.top_k") == 2
        assert found.pop("rag.retrieval_method") == "dense"
        assert found.pop("rag.chunk_id_method") == "content_hash"
        assert found.pop("rag.query_hash") == ids.query_hash(
            "How long do customers have to return a product for a refund?"
        )
        assert found.pop("rag.source_document_ids")[0] == "returns"  # the refund text ranks first
        # The rest are the worker's set signals.
        assert set(found) <= {
            "rag.quality_density",
            "rag.quality_method",
            "rag.coverage_diversity",
            "rag.redundancy_ratio",
            "rag.similarity_method",
            "rag.stale_chunk_count",
            "rag.conflict_chunk_count",
        }, found

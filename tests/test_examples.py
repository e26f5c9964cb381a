"""Every example app, run as a user runs it: `opentelemetry-instrument python examples/...`.

The apps import nothing from ragprov; the LLM is a local scripted OpenAI-compatible responder.
Spans are read from the console exporter's output.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from apps.harness import Span, console_spans

from ragprov.demo.responder import running_responder

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent

pytestmark = pytest.mark.slow


def run_example(name: str, script: dict[str, str]) -> tuple[str, list[Span]]:
    with running_responder(script) as url:
        env = {
            **os.environ,
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "OTEL_TRACES_EXPORTER": "console",
            "OTEL_METRICS_EXPORTER": "none",
            "OTEL_LOGS_EXPORTER": "none",
            "OPENAI_BASE_URL": url,
            "ANTHROPIC_BASE_URL": url.removesuffix("/v1"),  # the client adds /v1/messages
        }
        result = subprocess.run(
            [str(VENV_BIN / "opentelemetry-instrument"), "python", str(ROOT / "examples" / name)],
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

"""One LLM span per call with the real OpenLLMetry and OpenInference instrumentations.

They live in their own virtual environment (``.venv-coexistence``, built on first use from
tests/coexistence-requirements.txt, with ragprov installed editable): each registers the
``opentelemetry_instrumentor`` entry point ``openai`` / ``anthropic`` and would activate in every
``opentelemetry-instrument`` run of the dev environment. ``coexistence_app.py`` runs there in a
subprocess against the local server, with the other instrumentation alone (the baseline), or with
ragprov's instrumentor set up before or after it, and reports every finished span.

The rule under test (docs/llm-clients.md, *Coexistence*): the other instrumentation keeps its
span — name, kind, scope, status and every attribute — and ragprov adds exactly
``rag.step_id`` and ``rag.transformation_type``, and hands the prompt and the answer to the
provenance processor keyed on that span. OpenInference wraps ``OpenAI.request`` on the subclass;
ragprov set up after it slips its own patch beneath that wrapper, so the order does not matter.
OpenLLMetry's anthropic instrumentation never makes its span current, nor does OpenInference's
``messages.stream()`` while the request is sent: ragprov finds their span in their wrapper's
frame on the stack.

The matrix — 2 clients x 2 instrumentations x {ragprov first, ragprov last} x 6 kinds of call
(sync / async; JSON, ``stream=True``, the client's stream helper) — has no double span left:
every call has exactly one LLM span, the other instrumentation's, with ragprov's step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from llm_support import ANSWER, LLMServer, is_uuid7, pop_exact
from side_venvs import COEXISTENCE_REQUIREMENTS, run_json_app, side_venv

from ragprov import foreign

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
APP = HERE / "coexistence_app.py"

SYSTEM = "Answer from the context only."
QUESTION = "What was Acme Robotics' revenue in 2024?"
CALLS = [
    "sync_json",
    "sync_stream",
    "async_json",
    "async_stream",
    "sync_helper_stream",
    "async_helper_stream",
]
CLIENTS = ["openai", "anthropic"]
OTHERS = ["openllmetry", "openinference"]
RAGPROV_STEP = {"rag.step_id": is_uuid7, "rag.transformation_type": "generation"}
# OpenLLMetry's switch for prompts and completions as attributes (on by default).
NO_CONTENT = {"TRACELOOP_TRACE_CONTENT": "false"}

Report = dict[str, Any]


@pytest.fixture(scope="session")
def venv_python() -> Path:
    return side_venv(".venv-coexistence", COEXISTENCE_REQUIREMENTS) / "python"


def run_app(
    venv_python: Path, url: str, *arguments: str, env: dict[str, str] | None = None
) -> Report:
    """``coexistence_app.py CLIENT OTHER PLACE URL [PIPELINE]``: ``arguments`` are all but URL."""
    report: Report = run_json_app(venv_python, APP, *arguments[:3], url, *arguments[3:], env=env)
    return report


@pytest.fixture(scope="module")
def reports(venv_python: Path, _server_process: LLMServer) -> dict[tuple[str, str, str], Report]:
    """What the app reported, per (client, other instrumentation, ragprov's place)."""
    return {
        (client, other, ragprov): run_app(venv_python, _server_process.url, client, other, ragprov)
        for client in CLIENTS
        for other in OTHERS
        for ragprov in ("none", "first", "last")
    }


@pytest.fixture(scope="module")
def processed_without_content(venv_python: Path, _server_process: LLMServer) -> dict[str, Report]:
    """anthropic + OpenLLMetry without its content capture, exported through ragprov's
    provenance processor after a retrieval, per ragprov's place."""
    return {
        ragprov: run_app(
            venv_python,
            _server_process.url,
            "anthropic",
            "openllmetry",
            ragprov,
            "provenance",
            env=NO_CONTENT,
        )
        for ragprov in ("none", "first", "last")
    }


def spans_of(report: Report, call: str) -> list[dict[str, Any]]:
    assert report[call]["answer"] == ANSWER
    return list(report[call]["spans"])


def only_span(report: Report, call: str) -> dict[str, Any]:
    spans = spans_of(report, call)
    assert len(spans) == 1, [(span["name"], span["scope"]) for span in spans]
    return dict(spans[0])


def spans_named(report: Report, call: str, name: str) -> list[dict[str, Any]]:
    return [span for span in spans_of(report, call) if span["name"] == name]


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize("other", OTHERS)
@pytest.mark.parametrize("client", CLIENTS)
def test_the_baseline_is_one_span_of_the_other_instrumentation_without_a_step(
    client: str, other: str, call: str, reports: dict[tuple[str, str, str], Report]
) -> None:
    span = only_span(reports[client, other, "none"], call)

    assert span["step"] is None
    assert not any(key.startswith("rag.") for key in span["attributes"])
    assert foreign.is_generation(span["attributes"])


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize("other", OTHERS)
@pytest.mark.parametrize("client", CLIENTS)
def test_the_provenance_processor_reads_the_prompt_and_answer_of_the_other_span(
    client: str, other: str, call: str, reports: dict[tuple[str, str, str], Report]
) -> None:
    """With content capture on (both instrumentations' default), the processor's fallback for
    spans ragprov did not see reads their text attributes."""
    attributes = only_span(reports[client, other, "none"], call)["attributes"]

    assert foreign.step_text(attributes, "input") == f"{SYSTEM}\n{QUESTION}"
    assert foreign.step_text(attributes, "output") == ANSWER


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize("ragprov", ["first", "last"], ids=["ragprov_first", "ragprov_last"])
@pytest.mark.parametrize("other", OTHERS)
@pytest.mark.parametrize("client", CLIENTS)
def test_ragprov_adds_the_step_to_the_other_span(
    client: str,
    other: str,
    ragprov: str,
    call: str,
    reports: dict[tuple[str, str, str], Report],
) -> None:
    baseline = only_span(reports[client, other, "none"], call)

    span = only_span(reports[client, other, ragprov], call)

    assert (span["name"], span["kind"], span["scope"], span["status"]) == (
        baseline["name"],
        baseline["kind"],
        baseline["scope"],
        baseline["status"],
    )
    pop_exact(span["attributes"], {**baseline["attributes"], **RAGPROV_STEP})
    assert span["step"] == {"input_texts": [SYSTEM, QUESTION], "output_text": ANSWER}


@pytest.fixture(scope="module")
def uninstrumented(venv_python: Path, _server_process: LLMServer) -> dict[str, Report]:
    """anthropic + OpenLLMetry, both instrumented, then one of them uninstrumented."""
    return {
        which: run_app(venv_python, _server_process.url, "anthropic", "openllmetry", which)
        for which in ("without_ragprov", "without_other")
    }


@pytest.mark.parametrize("call", CALLS)
def test_after_openllmetry_is_uninstrumented_ragprov_makes_the_one_span(
    call: str, uninstrumented: dict[str, Report]
) -> None:
    span = only_span(uninstrumented["without_other"], call)

    assert (span["name"], span["scope"]) == (
        "chat claude-test",
        "ragprov.instrumentation.anthropic",
    )
    assert span["step"] == {"input_texts": [SYSTEM, QUESTION], "output_text": ANSWER}


@pytest.mark.parametrize("call", CALLS)
def test_after_ragprov_is_uninstrumented_openllmetrys_span_is_left_alone(
    call: str, uninstrumented: dict[str, Report], reports: dict[tuple[str, str, str], Report]
) -> None:
    baseline = only_span(reports["anthropic", "openllmetry", "none"], call)

    span = only_span(uninstrumented["without_ragprov"], call)

    assert (span["name"], span["scope"], span["step"]) == (
        baseline["name"],
        baseline["scope"],
        None,
    )
    pop_exact(span["attributes"], baseline["attributes"])


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize("ragprov", ["first", "last"], ids=["ragprov_first", "ragprov_last"])
def test_without_openllmetrys_content_the_processor_measures_utilisation_from_ragprovs_text(
    ragprov: str, call: str, processed_without_content: dict[str, Report]
) -> None:
    """OpenLLMetry's span has no prompt or completion (TRACELOOP_TRACE_CONTENT=false); the text
    ragprov handed over keyed on that span is what the processor measures."""
    report = processed_without_content[ragprov]
    (retrieval,) = spans_named(report, call, "retrieval acme")
    (span,) = spans_named(report, call, "anthropic.chat")
    attributes = span["attributes"]

    assert len(spans_of(report, call)) == 3  # rag, the retrieval and one LLM span
    assert foreign.step_text(attributes, "input") is None
    assert foreign.step_text(attributes, "output") is None
    assert attributes["rag.transformation_type"] == "generation"
    assert is_uuid7(attributes["rag.step_id"])
    assert attributes["rag.lineage_method"] == "scope"
    assert attributes["rag.ancestor_retrieval_set_ids"] == [
        retrieval["attributes"]["rag.retrieval_set_id"]
    ]
    assert attributes["rag.used_chunk_ids"] == retrieval["attributes"]["rag.chunk_ids"]
    assert (attributes["rag.utilisation_ratio"], attributes["rag.grounding_status"]) == (
        1.0,
        "grounded",
    )


@pytest.mark.parametrize("call", CALLS)
def test_without_openllmetrys_content_or_ragprov_the_processor_links_but_cannot_measure(
    call: str, processed_without_content: dict[str, Report]
) -> None:
    report = processed_without_content["none"]
    (retrieval,) = spans_named(report, call, "retrieval acme")
    (span,) = spans_named(report, call, "anthropic.chat")
    attributes = span["attributes"]

    assert is_uuid7(attributes["rag.step_id"])
    assert attributes["rag.ancestor_retrieval_set_ids"] == [
        retrieval["attributes"]["rag.retrieval_set_id"]
    ]
    assert "rag.utilisation_ratio" not in attributes
    assert "rag.grounding_status" not in attributes

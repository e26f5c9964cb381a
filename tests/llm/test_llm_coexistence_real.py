"""One LLM span per call with the real OpenLLMetry and OpenInference instrumentations.

They live in their own virtual environment (``.venv-coexistence``, built on first use from
coexistence-requirements.txt, with ragprov installed editable): each registers the
``opentelemetry_instrumentor`` entry point ``openai`` / ``anthropic`` and would activate in every
``opentelemetry-instrument`` run of the dev environment. ``coexistence_app.py`` runs there in a
subprocess against the local server, with the other instrumentation alone (the baseline), or with
ragprov's instrumentor set up before or after it, and reports every finished span.

The rule under test (docs/llm-clients.md, *Coexistence*): the other instrumentation keeps its
span — name, kind, scope, status and every attribute — and ragprov adds exactly
``rag.step_id`` and ``rag.transformation_type``, and hands the prompt and the answer to the
provenance processor keyed on that span. OpenInference wraps ``OpenAI.request`` on the subclass;
ragprov set up after it slips its own patch beneath that wrapper, so the order does not matter.
The documented exception: OpenLLMetry's anthropic instrumentation never makes its span current,
so ragprov cannot find it and makes its own.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from llm_support import ANSWER, LLMServer, is_uuid7, pop_exact

from ragprov import foreign

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
REQUIREMENTS = HERE / "coexistence-requirements.txt"
VENV = ROOT / ".venv-coexistence"
APP = HERE / "coexistence_app.py"

SYSTEM = "Answer from the context only."
QUESTION = "What was Acme Robotics' revenue in 2024?"
CALLS = ["sync_json", "sync_stream", "async_json", "async_stream"]
CLIENTS = ["openai", "anthropic"]
OTHERS = ["openllmetry", "openinference"]
RAGPROV_STEP = {"rag.step_id": is_uuid7, "rag.transformation_type": "generation"}

Report = dict[str, Any]


def _venv_python() -> Path:
    """The coexistence environment's python, (re)built when the requirements change."""
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()[:16]
    stamp = VENV / f".installed-{digest}"
    if not stamp.exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
        pip = [str(VENV / "bin" / "python"), "-m", "pip", "install", "--quiet"]
        subprocess.run([*pip, "-r", str(REQUIREMENTS)], check=True, timeout=900)
        subprocess.run([*pip, "-e", str(ROOT)], check=True, timeout=900)
        stamp.touch()
    return VENV / "bin" / "python"


@pytest.fixture(scope="session")
def venv_python() -> Path:
    return _venv_python()


@pytest.fixture(scope="module")
def reports(venv_python: Path, _server_process: LLMServer) -> dict[tuple[str, str, str], Report]:
    """What the app reported, per (client, other instrumentation, ragprov's place)."""
    results: dict[tuple[str, str, str], Report] = {}
    for client in CLIENTS:
        for other in OTHERS:
            for ragprov in ("none", "first", "last"):
                command = [str(venv_python), str(APP), client, other, ragprov, _server_process.url]
                done = subprocess.run(
                    command, capture_output=True, text=True, timeout=120, check=False
                )
                assert done.returncode == 0, done.stderr
                assert "ragprov" not in done.stderr, done.stderr  # no warning, no failure logged
                results[client, other, ragprov] = json.loads(done.stdout)
    return results


def spans_of(report: Report, call: str) -> list[dict[str, Any]]:
    assert report[call]["answer"] == ANSWER
    return list(report[call]["spans"])


def only_span(report: Report, call: str) -> dict[str, Any]:
    spans = spans_of(report, call)
    assert len(spans) == 1, [(span["name"], span["scope"]) for span in spans]
    return dict(spans[0])


ENRICHED = [
    ("openai", "openllmetry"),
    ("openai", "openinference"),
    ("anthropic", "openinference"),
]


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
@pytest.mark.parametrize(("client", "other"), ENRICHED)
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


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize("ragprov", ["first", "last"], ids=["ragprov_first", "ragprov_last"])
def test_openllmetrys_anthropic_span_is_not_current_so_ragprov_makes_its_own(
    ragprov: str, call: str, reports: dict[tuple[str, str, str], Report]
) -> None:
    """opentelemetry-instrumentation-anthropic 0.62.4 starts its span without making it current:
    ragprov cannot see it, and traces the call itself (docs/llm-clients.md)."""
    baseline = only_span(reports["anthropic", "openllmetry", "none"], call)

    ours, theirs = spans_of(reports["anthropic", "openllmetry", ragprov], call)

    assert ours["name"] == "chat claude-test"
    assert ours["scope"] == "ragprov.instrumentation.anthropic"
    assert is_uuid7(ours["attributes"]["rag.step_id"])
    assert ours["step"] == {"input_texts": [SYSTEM, QUESTION], "output_text": ANSWER}
    assert ours["parent_id"] == theirs["parent_id"] is None  # neither is the other's child
    assert (theirs["name"], theirs["scope"], theirs["step"]) == (
        baseline["name"],
        baseline["scope"],
        None,
    )
    pop_exact(theirs["attributes"], baseline["attributes"])

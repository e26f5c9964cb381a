"""One retrieval event per LangChain retriever call with OpenInference's LangChain
instrumentation beside ragprov's.

OpenInference traces a retriever call with a ``RETRIEVER`` span that the provenance processor
reads as a retrieval. Its instrumentation lives in the coexistence environment
(``.venv-coexistence``, tests/side_venvs.py), where ``apps/framework_coexistence_app.py`` runs
in a subprocess: OpenInference's instrumentor alone (the baseline) or with ragprov's LangChain
instrumentor set up before or after it, each call through ragprov's processor.

The rule under test (docs/frameworks.md, *Other instrumentations*): OpenInference's span keeps
every attribute it has without ragprov, and takes ragprov's retrieval set id, so that the two
spans are one retrieval event — the answer lists it once — also when OpenInference hides its
documents.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from side_venvs import COEXISTENCE_REQUIREMENTS, side_venv

from ragprov import ids

pytestmark = pytest.mark.slow

APP = Path(__file__).resolve().parent / "apps" / "framework_coexistence_app.py"
CALLS = ["invoke", "ainvoke", "chain", "achain"]
CHAINS = ["chain", "achain"]
PLACES = ["first", "last"]
HIDDEN = {"OPENINFERENCE_HIDE_RETRIEVAL_DOCUMENTS": "true"}
ANSWER = "Standard shipping takes 3 to 5 business days within the European Union."
RETRIEVED = ["shipping#0", "refunds#2"]
RETRIEVED_TEXTS = [
    ANSWER,
    "Refunds are issued to the original payment method within 14 days.",
]

Report = dict[str, Any]
Span = dict[str, Any]


def run_app(python: Path, place: str, env: dict[str, str] | None = None) -> Report:
    done = subprocess.run(
        [str(python), str(APP), place],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **(env or {})},
    )
    assert done.returncode == 0, done.stderr
    assert "ragprov" not in done.stderr, done.stderr  # no warning, no failure logged
    report: Report = json.loads(done.stdout)
    return report


@pytest.fixture(scope="module")
def reports() -> dict[tuple[str, bool], Report]:
    """What the app reported, per (ragprov's place, OpenInference hides its documents)."""
    python = side_venv(".venv-coexistence", COEXISTENCE_REQUIREMENTS) / "python"
    return {
        (place, hidden): run_app(python, place, HIDDEN if hidden else None)
        for place in ("none", *PLACES)
        for hidden in (False, True)
    }


def spans_of(report: Report, call: str) -> list[Span]:
    answer = report[call]["answer"]
    assert answer == (ANSWER if call in CHAINS else RETRIEVED)
    return list(report[call]["spans"])


def openinference_retrieval(spans: list[Span]) -> Span:
    (span,) = [s for s in spans if s["attributes"].get("openinference.span.kind") == "RETRIEVER"]
    assert span["scope"] == "openinference.instrumentation.langchain"
    return span


def ragprov_retrieval(spans: list[Span]) -> Span:
    (span,) = [s for s in spans if s["name"] == "retrieval VectorStoreRetriever"]
    assert span["scope"] == "ragprov.instrumentation.langchain"
    return span


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize("place", PLACES)
def test_both_retrieval_spans_carry_one_retrieval_set_id(
    reports: dict[tuple[str, bool], Report], place: str, call: str
) -> None:
    spans = spans_of(reports[(place, False)], call)

    theirs = openinference_retrieval(spans)["attributes"]
    ours = ragprov_retrieval(spans)["attributes"]
    assert theirs["rag.retrieval_set_id"] == ours["rag.retrieval_set_id"]
    chunk_ids = [ids.content_hash(text) for text in RETRIEVED_TEXTS]
    assert theirs["rag.chunk_ids"] == ours["rag.chunk_ids"] == chunk_ids
    assert theirs["rag.chunk_set_hash"] == ours["rag.chunk_set_hash"]


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize("place", PLACES)
def test_openinference_span_changes_only_in_its_set_id(
    reports: dict[tuple[str, bool], Report], place: str, call: str
) -> None:
    alone = dict(openinference_retrieval(spans_of(reports[("none", False)], call))["attributes"])
    beside = dict(openinference_retrieval(spans_of(reports[(place, False)], call))["attributes"])

    assert beside.pop("rag.retrieval_set_id") != alone.pop("rag.retrieval_set_id")
    assert beside == alone


@pytest.mark.parametrize("hidden", [False, True], ids=["documents", "hidden_documents"])
@pytest.mark.parametrize("call", CHAINS)
@pytest.mark.parametrize("place", PLACES)
def test_every_step_of_the_chain_lists_the_retrieval_once(
    reports: dict[tuple[str, bool], Report], place: str, call: str, hidden: bool
) -> None:
    spans = spans_of(reports[(place, hidden)], call)

    ours = ragprov_retrieval(spans)["attributes"]
    steps = {s["name"]: s["attributes"] for s in spans if "rag.step_id" in s["attributes"]}
    # ragprov's OpenAI span, OpenInference's LLM span, ragprov's workflow span
    assert set(steps) == {"chat demo-model", "ChatOpenAI", "invoke_workflow RunnableSequence"}
    for step in steps.values():
        assert step["rag.ancestor_retrieval_set_ids"] == [ours["rag.retrieval_set_id"]]
        assert step["rag.ancestor_chunk_set_hashes"] == [ours["rag.chunk_set_hash"]]
    answer = steps["chat demo-model"]
    assert answer["rag.lineage_method"] == "content_match"
    assert answer["rag.utilisation_ratio"] > 0  # measured on ragprov's record of the set


@pytest.mark.parametrize("call", CALLS)
def test_hidden_documents_still_share_the_id(
    reports: dict[tuple[str, bool], Report], call: str
) -> None:
    """OpenInference exports no document, so its span is an empty set: the id tells it is the
    retrieval of ragprov's span, whose record the processor keeps."""
    spans = spans_of(reports[("first", True)], call)

    theirs = openinference_retrieval(spans)["attributes"]
    ours = ragprov_retrieval(spans)["attributes"]
    assert theirs["rag.retrieval_set_id"] == ours["rag.retrieval_set_id"]
    assert theirs["rag.chunk_ids"] == []
    assert ours["rag.chunk_ids"] == [ids.content_hash(text) for text in RETRIEVED_TEXTS]

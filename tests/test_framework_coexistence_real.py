"""One retrieval event per framework retriever call with OpenInference's instrumentation of
LangChain or LlamaIndex beside ragprov's.

OpenInference traces a LangChain retriever call with a ``RETRIEVER`` span, and a LlamaIndex one
with two (``retrieve`` around ``_retrieve``), that the provenance processor reads as retrievals.
Its instrumentations live in the coexistence environment (``.venv-coexistence``,
tests/side_venvs.py), where ``apps/framework_coexistence_app.py`` runs in a subprocess:
OpenInference's instrumentor alone (the baseline) or with ragprov's instrumentor of the same
framework set up before or after it, each call through ragprov's processor.

The rule under test (docs/processor.md, *One retrieval traced twice*): OpenInference's spans
keep every attribute they have without ragprov, and take ragprov's retrieval set id, so that
they and ragprov's span are one retrieval event — the answer lists it once — also when
OpenInference hides its documents.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from side_venvs import COEXISTENCE_REQUIREMENTS, run_json_app, side_venv

from ragprov import ids

pytestmark = pytest.mark.slow

APP = Path(__file__).resolve().parent / "apps" / "framework_coexistence_app.py"
FRAMEWORKS = ["langchain", "llamaindex"]
#: framework → its calls: retrievals, then calls whose answer reads the retrieval.
RETRIEVALS = {"langchain": ["invoke", "ainvoke"], "llamaindex": ["retrieve", "aretrieve"]}
ANSWERS = {"langchain": ["chain", "achain"], "llamaindex": ["answer"]}
CALLS = [(fw, call) for fw in FRAMEWORKS for call in RETRIEVALS[fw] + ANSWERS[fw]]
ANSWER_CALLS = [(fw, call) for fw in FRAMEWORKS for call in ANSWERS[fw]]
#: framework → (ragprov's retrieval span, OpenInference's scope, its retriever spans per call)
SPANS = {
    "langchain": ("retrieval VectorStoreRetriever", "openinference.instrumentation.langchain", 1),
    "llamaindex": (
        "retrieval VectorIndexRetriever",
        "openinference.instrumentation.llama_index",
        2,
    ),
}
#: framework → the steps of an answer: ragprov's OpenAI span, and the framework's own
STEPS = {
    "langchain": {"chat demo-model", "ChatOpenAI", "invoke_workflow RunnableSequence"},
    "llamaindex": {"chat demo-model"},
}
PLACES = ["first", "last"]
HIDDEN = {"OPENINFERENCE_HIDE_RETRIEVAL_DOCUMENTS": "true"}
ANSWER = "Standard shipping takes 3 to 5 business days within the European Union."
#: framework → the ids of the documents or nodes its retriever returns
RETURNED = {
    "langchain": ["shipping#0", "refunds#2"],
    "llamaindex": ["shipping#0", "returns#1"],
}

Report = dict[str, Any]
Span = dict[str, Any]
Reports = dict[tuple[str, str, bool], Report]


def run_app(python: Path, framework: str, place: str, hidden: bool) -> Report:
    report: Report = run_json_app(
        python, APP, framework, place, env=HIDDEN if hidden else None, timeout=180
    )
    return report


@pytest.fixture(scope="module")
def reports() -> Reports:
    """What the app reported, per (framework, ragprov's place, OpenInference hides documents)."""
    python = side_venv(".venv-coexistence", COEXISTENCE_REQUIREMENTS) / "python"
    return {
        (framework, place, hidden): run_app(python, framework, place, hidden)
        for framework in FRAMEWORKS
        for place in ("none", *PLACES)
        for hidden in (False, True)
    }


def spans_of(reports: Reports, framework: str, place: str, call: str, hidden: bool) -> list[Span]:
    report = reports[(framework, place, hidden)][call]
    assert report["answer"] == (ANSWER if call in ANSWERS[framework] else RETURNED[framework])
    return [dict(span, attributes=dict(span["attributes"])) for span in report["spans"]]


def openinference_retrievals(framework: str, spans: list[Span]) -> list[Span]:
    found = [s for s in spans if s["attributes"].get("openinference.span.kind") == "RETRIEVER"]
    _, scope, count = SPANS[framework]
    assert [span["scope"] for span in found] == [scope] * count
    return found


def ragprov_retrieval(framework: str, spans: list[Span]) -> Span:
    name = SPANS[framework][0]
    (span,) = [s for s in spans if s["name"] == name]
    assert span["scope"].startswith("ragprov.instrumentation.")
    return span


@pytest.mark.parametrize(("framework", "call"), CALLS)
@pytest.mark.parametrize("place", PLACES)
def test_every_retrieval_span_of_the_call_carries_one_set_id(
    reports: Reports, place: str, framework: str, call: str
) -> None:
    spans = spans_of(reports, framework, place, call, hidden=False)

    ours = ragprov_retrieval(framework, spans)["attributes"]
    theirs = [span["attributes"] for span in openinference_retrievals(framework, spans)]
    assert {span["rag.retrieval_set_id"] for span in theirs} == {ours["rag.retrieval_set_id"]}
    # OpenInference's outer span has the documents (LlamaIndex's inner one has none)
    assert theirs[-1]["rag.chunk_set_hash"] == ours["rag.chunk_set_hash"]


@pytest.mark.parametrize(("framework", "call"), CALLS)
@pytest.mark.parametrize("place", PLACES)
def test_openinference_spans_change_only_in_their_set_id(
    reports: Reports, place: str, framework: str, call: str
) -> None:
    alone = openinference_retrievals(framework, spans_of(reports, framework, "none", call, False))
    beside = openinference_retrievals(framework, spans_of(reports, framework, place, call, False))

    for without, beside_ragprov in zip(alone, beside, strict=True):
        expected, found = without["attributes"], beside_ragprov["attributes"]
        assert found.pop("rag.retrieval_set_id") != expected.pop("rag.retrieval_set_id")
        assert found == expected


@pytest.mark.parametrize("hidden", [False, True], ids=["documents", "hidden_documents"])
@pytest.mark.parametrize(("framework", "call"), ANSWER_CALLS)
@pytest.mark.parametrize("place", PLACES)
def test_every_step_of_the_answer_lists_the_retrieval_once(
    reports: Reports, place: str, framework: str, call: str, hidden: bool
) -> None:
    spans = spans_of(reports, framework, place, call, hidden)

    ours = ragprov_retrieval(framework, spans)["attributes"]
    steps = {s["name"]: s["attributes"] for s in spans if "rag.step_id" in s["attributes"]}
    assert set(steps) == STEPS[framework]
    for step in steps.values():
        assert step["rag.ancestor_retrieval_set_ids"] == [ours["rag.retrieval_set_id"]]
        assert step["rag.ancestor_chunk_set_hashes"] == [ours["rag.chunk_set_hash"]]
    answer = steps["chat demo-model"]
    assert answer["rag.lineage_method"] == "content_match"
    assert answer["rag.utilisation_ratio"] > 0  # measured on ragprov's record of the set


@pytest.mark.parametrize(("framework", "call"), CALLS)
def test_hidden_documents_still_share_the_id(reports: Reports, framework: str, call: str) -> None:
    """OpenInference exports no document text: its sets are the node ids it still exports
    (LlamaIndex) or empty (LangChain, whose documents it exports without ids). The id tells they
    are the retrieval of ragprov's span, whose record the processor keeps."""
    spans = spans_of(reports, framework, "first", call, hidden=True)

    ours = ragprov_retrieval(framework, spans)["attributes"]
    *inner, outer = [span["attributes"] for span in openinference_retrievals(framework, spans)]
    for theirs in (*inner, outer):
        assert theirs["rag.retrieval_set_id"] == ours["rag.retrieval_set_id"]
    assert [span["rag.chunk_ids"] for span in inner] == [[]] * len(inner)
    assert outer["rag.chunk_ids"] == (RETURNED[framework] if framework == "llamaindex" else [])
    assert len(ours["rag.chunk_ids"]) == 2
    assert ours["rag.chunk_set_hash"] == ids.chunk_set_hash(ours["rag.chunk_ids"])

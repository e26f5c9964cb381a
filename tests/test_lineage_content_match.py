"""Content match from a prompt's line keys gives exactly the lineage its fingerprint gives."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.trace import INVALID_SPAN_CONTEXT

from ragprov.lineage import infer_ancestors
from ragprov.semconv.attributes import RagLineageMethodValues
from ragprov.signals import fingerprint
from ragprov.signals.tokens import TextLines, clear_memos
from ragprov.trace_state import RetrievalRecord, StepRecord

WORDS = st.sampled_from(["revenue", "grew", "the", "margin", "Kraków", "12.4 M", "x2", "-", "fell"])
LINES = st.lists(WORDS, max_size=6).map(" ".join)
TEXTS = st.lists(LINES, min_size=1, max_size=3).map("\n".join)
THRESHOLDS = st.sampled_from([0.0, 0.3, 0.6, 1.0, 1.5])


def _retrieval(index: int, texts: list[str]) -> RetrievalRecord:
    return RetrievalRecord(
        retrieval_set_id=f"set-{index}",
        chunk_set_hash=f"hash-{index}",
        span_context=INVALID_SPAN_CONTEXT,
        chunk_ids=tuple(f"chunk-{index}-{rank}" for rank in range(len(texts))),
        fingerprints=tuple(fingerprint(text) for text in texts),
        qualities=(None,) * len(texts),
        embeddings=None,
        set_signals=None,
    )


def _step(index: int, output: str, is_tool: bool) -> StepRecord:
    ancestors = (f"upstream-{index}",) if index % 2 else ()
    return StepRecord(f"step-{index}", fingerprint(output), ancestors, is_tool=is_tool)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.lists(TEXTS, max_size=3), max_size=3),
    st.lists(st.tuples(TEXTS, st.booleans()), max_size=2),
    st.lists(st.one_of(TEXTS, st.sampled_from(["", "\n", "Question: ?"])), max_size=4),
    st.data(),
    THRESHOLDS,
    st.booleans(),
)
def test_line_keys_infer_the_same_ancestors_as_the_fingerprint(
    retrieved: list[list[str]],
    earlier_steps: list[tuple[str, bool]],
    extra_lines: list[str],
    data: st.DataObject,
    threshold: float,
    cold: bool,
) -> None:
    retrievals = [_retrieval(index, texts) for index, texts in enumerate(retrieved)]
    steps = [_step(index, text, tool) for index, (text, tool) in enumerate(earlier_steps)]
    texts = [text for texts in retrieved for text in texts] + [text for text, _ in earlier_steps]
    quoted = texts + [line for text in texts for line in text.split("\n")]  # whole or in part
    quotes = data.draw(st.lists(st.sampled_from(quoted)) if quoted else st.just([]))
    pieces = data.draw(st.permutations(extra_lines + quotes))
    prompt = data.draw(st.sampled_from(["\n", "\n\n", " \n"])).join(pieces)
    if cold:
        clear_memos()
    by_lines = infer_ancestors(
        step_input=TextLines(prompt), retrievals=retrievals, steps=steps, threshold=threshold
    )
    by_fingerprint = infer_ancestors(
        step_input=fingerprint(prompt), retrievals=retrievals, steps=steps, threshold=threshold
    )
    assert by_lines == by_fingerprint


def test_a_prompt_quoting_its_chunks_is_not_fingerprinted() -> None:
    chunks = ["Revenue grew 12% in 2023.", "Margins fell in Kraków."]
    retrievals = [_retrieval(0, chunks)]
    step_input = TextLines("Context:\n" + "\n\n".join(chunks) + "\nQuestion: what grew?")
    ancestry = infer_ancestors(step_input=step_input, retrievals=retrievals)
    assert ancestry.direct_retrieval_set_ids == ("set-0",)
    assert step_input._fingerprint is None


def test_an_unrelated_prompt_is_fingerprinted_and_matches_nothing() -> None:
    retrievals = [_retrieval(0, ["Revenue grew 12% in 2023."])]
    step_input = TextLines("Summarise the weather in Oslo.")
    ancestry = infer_ancestors(step_input=step_input, retrievals=retrievals)
    assert ancestry.method is RagLineageMethodValues.SCOPE
    assert ancestry.direct_retrieval_set_ids == ("set-0",)
    assert step_input._fingerprint == fingerprint("Summarise the weather in Oslo.")


def test_a_prompt_without_distinctive_tokens_matches_nothing_even_at_threshold_zero() -> None:
    retrievals = [_retrieval(0, ["Revenue grew 12% in 2023."])]
    for step_input in (TextLines("the - of"), fingerprint("the - of")):
        ancestry = infer_ancestors(step_input=step_input, retrievals=retrievals, threshold=0.0)
        assert ancestry.method is RagLineageMethodValues.SCOPE

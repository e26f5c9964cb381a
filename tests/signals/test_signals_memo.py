"""The line and token memos change nothing: a fingerprint equals the one of the whole text."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ragprov.signals import tokens

WORDS = st.sampled_from(
    ["revenue", "Revenue", "grew", "$12.4M", "12.4 M", "26.6%", "Kraków", "ﬁnance", "the", "x2"]
)
SEPARATORS = st.sampled_from([" ", "\n", "\n\n", " \n ", "\r\n", "\t", ", "])
TEXTS = st.lists(st.tuples(WORDS, SEPARATORS), max_size=40).map(
    lambda pairs: "".join(word + separator for word, separator in pairs)
)


def whole_text_hashes(text: str) -> np.ndarray:  # type: ignore[type-arg]
    return tokens.hash_tokens(tokens.distinctive_tokens(text))


@settings(max_examples=200, deadline=None)
@given(TEXTS, st.booleans())
def test_fingerprint_equals_the_whole_text_tokenization(text: str, warm: bool) -> None:
    if not warm:
        tokens.clear_memos()
    fingerprint = tokens.fingerprint(text)
    assert np.array_equal(fingerprint.hashes, whole_text_hashes(text))
    raw, _ = tokens._raw_tokens(tokens.unicodedata.normalize("NFKC", text).strip())
    assert fingerprint.word_count == len(raw)


def test_a_prompt_of_known_chunks_reuses_their_lines() -> None:
    tokens.clear_memos()
    chunks = ["Revenue grew to $12.4M in fiscal 2023.", "Engineering is 61% of the workforce."]
    for chunk in chunks:
        tokens.fingerprint(chunk)
    lines_before = len(tokens._LINE_CACHE)
    prompt = "\n".join(["Context:", *chunks, "Question: what grew?"])
    fingerprint = tokens.fingerprint(prompt)
    assert len(tokens._LINE_CACHE) == lines_before + 2  # only "Context:" and the question are new
    assert np.array_equal(fingerprint.hashes, whole_text_hashes(prompt))


def test_memos_hold_no_text() -> None:
    tokens.fingerprint("Confidential merger terms with Globex Corporation")
    keys = [*tokens._RAW_HASH_CACHE, *tokens._LINE_CACHE]
    assert keys
    assert all(isinstance(key, int) for key in keys)

"""Every shortcut of the step path gives exactly what the general computation gives (hypothesis).

The processor's worker takes cheaper routes for the common case (ASCII prose, a prompt quoting
its chunks, an answer without hedging). Each property below pins one shortcut to the slower,
obviously correct computation it replaces.
"""

from __future__ import annotations

import math
import unicodedata
from unittest.mock import patch

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ragprov.signals import tokens
from ragprov.signals.defaults import DEFAULT_UNCERTAINTY_PATTERNS, clean_fraction
from ragprov.signals.engine import compute_set_signals, compute_step_signals
from ragprov.signals.grounding import (
    compile_phrases,
    required_fragments,
    required_words,
    source_to_response_ratio,
    uncertainty_acknowledged,
)
from ragprov.signals.similarity import compute_similarity
from ragprov.signals.tokens import TextFingerprint, TextLines, fingerprint
from ragprov.signals.utilisation import (
    any_overlap_at_least,
    overlap_score,
    overlap_scores,
    resolve_chunk_ids,
)

SETTINGS = settings(max_examples=300, deadline=None)

# Text that exercises both tokenizer routes: ASCII with and without digits, punctuation that
# glues to numbers, currency, non-ASCII letters and combining marks, odd whitespace.
PIECES = st.sampled_from(
    [
        "revenue", "Revenue", "the", "x2", "snake_case", "__init__", "12.4 M", "$12,400.50",
        "26.6 %", "1,200", "3.50m", "million", "Kraków", "ﬁnance", "e\u0301t\u00e9", "東京",
        "can't", "couldn’t", "I  don't\tknow", "n/a", "-", ",", ".", "\u00a0", "\x0b", "\x1f",
    ]
)  # fmt: skip
SEPARATORS = st.sampled_from(["", " ", "  ", "\t", ", ", ". ", "\n", " \n "])
TEXTS = st.lists(st.tuples(PIECES, SEPARATORS), max_size=30).map(
    lambda pairs: "".join(piece + separator for piece, separator in pairs)
)
ANY_TEXT = st.one_of(TEXTS, st.text(max_size=80))

# Fingerprints over a small hash universe, so that chunks and outputs overlap often.
HASHES = st.lists(st.integers(0, 40), max_size=25).map(
    lambda values: np.array(sorted(set(values)), dtype=np.uint64)
)
FINGERPRINTS = st.one_of(st.none(), HASHES.map(lambda hashes: TextFingerprint(hashes=hashes)))
THRESHOLDS = st.floats(0.0, 1.0)
PHRASES = st.one_of(st.sampled_from(DEFAULT_UNCERTAINTY_PATTERNS), st.text(max_size=12))
CHUNK_IDS = st.one_of(st.none(), st.text(max_size=3), st.integers())


@SETTINGS
@given(ANY_TEXT)
def test_tokenizer_shortcut_finds_the_same_runs_as_the_token_regex(text: str) -> None:
    normalised = tokens.normalise_text(text)
    assert sorted(tokens._runs(normalised)) == sorted(tokens._TOKEN_RE.findall(normalised))


# ASCII text with numbers, glued and spaced suffixes and odd separators: the ASCII regex route.
ASCII_PIECES = st.sampled_from(
    [
        "revenue", "the", "x2", "a_1", "12", "12.4", "$12,400.50", "1,2345", "3.", "0.50",
        "%", "m", "k", "bn", "million", "thousands", "_", "$", ",", ".", "-", "'", "(",
    ]
)  # fmt: skip
ASCII_SEPARATORS = st.sampled_from(["", " ", "  ", "\t", ", ", ". ", "\x0b", "\x1f"])
ASCII_TEXTS = st.one_of(
    st.lists(st.tuples(ASCII_PIECES, ASCII_SEPARATORS), max_size=30).map(
        lambda pairs: "".join(piece + separator for piece, separator in pairs)
    ),
    st.text(st.characters(max_codepoint=127), max_size=80),
)


@SETTINGS
@given(ASCII_TEXTS)
def test_ascii_token_regex_finds_the_same_runs_as_the_token_regex(text: str) -> None:
    normalised = tokens.normalise_text(text)
    assert sorted(tokens._runs(normalised)) == sorted(tokens._TOKEN_RE.findall(normalised))
    marked = normalised.translate(tokens._ASCII_DIGITS_TO_ZERO)
    runs = tokens._ascii_runs_with_numbers(normalised, marked)  # whatever the digit density
    assert sorted(runs) == sorted(tokens._TOKEN_RE.findall(normalised))


def _regex_line(line: str) -> tuple[list[int], int]:
    """A line's distinct token hashes and run count, straight from the token regex."""
    runs = tokens._TOKEN_RE.findall(tokens.normalise_text(line))
    normalised = (tokens._normalise_token(run, tokens.MIN_TOKEN_LETTERS) for run in runs)
    return sorted({tokens.token_hash(token) for token in normalised if token}), len(runs)


@SETTINGS
@given(ANY_TEXT, st.sampled_from(["", " ", "\t ", "\u00a0", "\r"]))
def test_surrounding_whitespace_never_changes_a_lines_tokens(line: str, padding: str) -> None:
    line = line.replace("\n", " ")
    tokens.clear_memos()
    hashes, run_count = tokens._line_hashes(padding + line + padding, tokens.MIN_TOKEN_LETTERS)
    assert (sorted(set(hashes.tolist())), run_count) == _regex_line(line)


def test_a_chunk_quoted_with_a_trailing_space_reuses_its_line() -> None:
    tokens.clear_memos()
    chunk = "Revenue grew to $12.4M in fiscal 2023 "
    tokens.fingerprint(chunk)
    lines_before = len(tokens._LINE_CACHE)
    prompt = tokens.fingerprint(f"Context:\n{chunk}\nQuestion: what grew?")
    assert len(tokens._LINE_CACHE) == lines_before + 2  # "Context:" and the question
    assert set(tokens.fingerprint(chunk).hashes.tolist()) <= set(prompt.hashes.tolist())


# Lines of equal length that differ, with and without surrounding whitespace: a line's length
# alone must never identify it.
SAME_LENGTH_LINES = st.sampled_from(
    ["alpha beta", "gamma zeta", "delta iota", "  alpha beta", "alpha beta\t", "", "x2", "12.4 M"]
)


@SETTINGS
@given(st.lists(SAME_LENGTH_LINES, max_size=6), st.lists(SAME_LENGTH_LINES, max_size=3))
def test_a_text_holds_a_chunks_tokens_when_it_has_all_of_its_token_lines(
    text_lines: list[str], chunk_lines: list[str]
) -> None:
    chunk = fingerprint("\n".join(chunk_lines))
    lines = {line.strip() for line in text_lines}
    token_lines = {line.strip() for line in chunk_lines if fingerprint(line).token_count}
    expected = bool(token_lines) and token_lines <= lines
    assert TextLines("\n".join(text_lines)).contains_all_tokens_of(chunk) is expected
    with patch.object(tokens, "_SCANNED_LINES", 0):  # the set of all line keys instead
        assert TextLines("\n".join(text_lines)).contains_all_tokens_of(chunk) is expected


@SETTINGS
@given(ANY_TEXT, st.booleans())
def test_partly_known_runs_hash_like_unknown_ones(text: str, keep_some: bool) -> None:
    tokens.clear_memos()
    cold = fingerprint(text)
    tokens._LINE_CACHE.clear()
    if keep_some:  # forget every other run hash: lines mix memo hits and misses
        for key in list(tokens._RAW_HASH_CACHE)[::2]:
            del tokens._RAW_HASH_CACHE[key]
    assert fingerprint(text) == cold


@SETTINGS
@given(ANY_TEXT, st.lists(PHRASES, max_size=5))
def test_phrase_precheck_never_changes_the_verdict(text: str, extra: list[str]) -> None:
    for phrases in (DEFAULT_UNCERTAINTY_PATTERNS, tuple(extra)):
        regex = compile_phrases(phrases)
        expected = regex is not None and regex.search(text.lower()) is not None
        assert uncertainty_acknowledged(text, patterns=phrases) is expected


# Phrases whose words occur in HEDGED_TEXTS whole, inside longer words, or taken into a number.
HEDGES = st.sampled_from(
    [
        "sure", "unsure", "i'm not sure", "i'm", "million", "12 million", "m", "find", "can't find",
        "don`t know", "n/a", "e-mail", "x2", "snake_case", "kraków", "'", "estimated",
    ]
)  # fmt: skip
HEDGED_PIECES = st.one_of(
    st.sampled_from(
        [
            "sure", "unsure", "Sure.", "I'm", "i`m", "Iʼm", "not", "12 million", "12million", "5 m",
            "can't", "can’t", "canʼt", "find", "finds", "don`t", "know", "n/a", "e-mail",
            "Estimated", "underestimated", "SURE", "Kraków",
        ]
    ),
    PIECES,
)  # fmt: skip
HEDGED_TEXTS = st.lists(st.tuples(HEDGED_PIECES, SEPARATORS), max_size=20).map(
    lambda pairs: "".join(piece + separator for piece, separator in pairs)
)


@SETTINGS
@given(
    st.one_of(HEDGED_TEXTS, st.text(max_size=40)), st.lists(st.one_of(HEDGES, PHRASES), max_size=4)
)
@example("it is 12 million", ["million"])  # a suffix word is inside a number's run
@example("Iʼm out", ["i'm"])  # U+02BC: an apostrophe to phrases, a word character to \w
@example("I am unsure", ["sure", "unsure"])
def test_phrase_check_on_tokenizer_runs_never_changes_the_verdict(
    text: str, extra: list[str]
) -> None:
    tokens.clear_memos(tokens=False)  # every line tokenized, so that its runs are known
    fingerprinted, runs = tokens.fingerprint_with_runs(text)
    lines = [line.strip() for line in unicodedata.normalize("NFKC", text).split("\n")]
    lines = [line for line in lines if line]
    assert (runs is None) is (len(set(lines)) < len(lines))  # a repeated line is a memo hit
    assert fingerprinted == fingerprint(text)
    for phrases in (DEFAULT_UNCERTAINTY_PATTERNS, tuple(extra)):
        expected = uncertainty_acknowledged(text, patterns=phrases)
        assert uncertainty_acknowledged(text, patterns=phrases, runs=runs) is expected


def test_runs_of_a_remembered_line_are_not_known() -> None:
    fingerprint("We could not find the filing.")
    assert tokens.fingerprint_with_runs("We could not find the filing.")[1] is None


def test_runs_of_paragraphs_are_known_across_blank_lines() -> None:
    fingerprint("")
    _, runs = tokens.fingerprint_with_runs("First, the filing.\n\nThen 12 million\n \nsure")
    assert runs == {"first", "the", "filing", "then", "12 million", "sure"}


def test_a_phrase_word_that_is_not_all_letters_disables_the_run_check() -> None:
    assert required_words(("i'm not sure", "estimated")) == frozenset({"sure", "estimated"})
    assert required_words(("sure", "e-mail")) is None
    assert required_words(("sure", "12 million")) is None  # "million" hides in "12 million"


@SETTINGS
@given(st.lists(st.text(max_size=12), max_size=6))
def test_every_phrase_contains_one_of_the_required_fragments(phrases: list[str]) -> None:
    fragments = required_fragments(tuple(phrases))
    for phrase in phrases:
        if fragments is not None and phrase.strip():
            assert any(fragment in phrase.lower() for fragment in fragments)


def test_a_phrase_made_only_of_apostrophes_disables_the_precheck() -> None:
    assert required_fragments(("' '",)) is None
    assert uncertainty_acknowledged("say ' ’ twice", patterns=("' '",)) is True


@SETTINGS
@given(st.lists(FINGERPRINTS, max_size=6), FINGERPRINTS)
def test_batched_overlap_scores_equal_set_intersections(
    chunks: list[TextFingerprint | None], output: TextFingerprint | None
) -> None:
    found = set() if output is None else set(output.hashes.tolist())
    expected = [
        None if chunk is None or not chunk.hashes.size
        else float(len(found & set(chunk.hashes.tolist()))) / chunk.hashes.size
        for chunk in chunks
    ]  # fmt: skip
    assert overlap_scores(chunks, output) == expected


@SETTINGS
@given(FINGERPRINTS, FINGERPRINTS)
def test_single_overlap_score_equals_the_batched_one(
    chunk: TextFingerprint | None, output: TextFingerprint | None
) -> None:
    assert overlap_score(chunk, output) == overlap_scores([chunk], output)[0]


@SETTINGS
@given(st.lists(FINGERPRINTS, max_size=6), FINGERPRINTS, THRESHOLDS)
def test_early_exit_content_match_equals_scoring_every_chunk(
    chunks: list[TextFingerprint | None], output: TextFingerprint | None, threshold: float
) -> None:
    scores = overlap_scores(chunks, output)
    expected = any(score is not None and score >= threshold for score in scores)
    assert any_overlap_at_least(chunks, output, threshold) is expected


@SETTINGS
@given(st.lists(CHUNK_IDS, max_size=5), st.integers(0, 6))
def test_resolved_ids_resolve_to_themselves(chunk_ids: list[object], count: int) -> None:
    resolved = resolve_chunk_ids(chunk_ids, count)
    assert resolve_chunk_ids(resolved, count) == resolved
    assert resolve_chunk_ids(tuple(chunk_ids), count) == resolve_chunk_ids(chunk_ids, count)


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_clean_fraction_shortcut_keeps_the_clipping(value: float) -> None:
    expected = 0.5 if math.isnan(value) or math.isinf(value) else min(1.0, max(0.0, value))
    result = clean_fraction(value, 0.5)
    assert result == expected
    assert math.copysign(1.0, result) == math.copysign(1.0, expected)  # -0.0 becomes 0.0


@SETTINGS
@given(st.lists(FINGERPRINTS, max_size=6))
def test_lexical_similarity_counts_the_distinct_tokens_of_its_chunks(
    chunks: list[TextFingerprint | None],
) -> None:
    count = compute_similarity(chunks).distinct_token_count
    union = {value for chunk in chunks if chunk is not None for value in chunk.hashes.tolist()}
    assert count == len(union)


def test_embedding_similarity_leaves_the_token_count_unknown() -> None:
    chunks = [fingerprint("alpha beta"), fingerprint("gamma delta")]
    result = compute_similarity(chunks, embeddings=[[1.0, 0.0], [0.0, 1.0]])
    assert result.distinct_token_count is None


@SETTINGS
@given(st.lists(FINGERPRINTS, max_size=6), FINGERPRINTS)
def test_known_source_token_count_gives_the_same_step_signals(
    chunks: list[TextFingerprint | None], output: TextFingerprint | None
) -> None:
    set_signals = compute_set_signals(chunks)
    reused = compute_step_signals(
        chunks,
        output,
        set_signals=set_signals,
        source_token_count=set_signals.similarity.distinct_token_count,
    )
    assert reused == compute_step_signals(chunks, output, set_signals=set_signals)
    assert reused.grounding.source_to_response_ratio == source_to_response_ratio(output, chunks)

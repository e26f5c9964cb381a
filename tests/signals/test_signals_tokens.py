"""Distinctive tokens and fingerprints (ragprov.signals.tokens)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from ragprov.signals.defaults import MAX_TOKENIZE_CHARS
from ragprov.signals.tokens import (
    EMPTY_FINGERPRINT,
    TextFingerprint,
    distinctive_tokens,
    fingerprint,
    hash_tokens,
    token_hash,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The cat sat on a mat", set()),
        ("Data moved", {"data", "moved"}),
        ("REVENUE Revenue revenue", {"revenue"}),
        ("Müller visited Москва and Kraków", {"müller", "visited", "москва", "kraków"}),
        ("नमस्ते दुनिया", {"नमस्ते", "दुनिया"}),
        ("Straße", {"strasse"}),
        ("ﬁnancial ＡＢＣＤ", {"financial", "abcd"}),
    ],
)
def test_words_of_four_or_more_letters_are_lowercased_tokens(text: str, expected: set[str]) -> None:
    assert distinctive_tokens(text) == expected


def test_stop_words_are_not_tokens() -> None:
    assert distinctive_tokens("would which about there their because") == frozenset()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Q3", {"q3"}),
        ("the Palletbot X2", {"palletbot", "x2"}),
        ("covid19", {"covid19"}),
        ("7", {"7"}),
        ("2023abc", {"2023abc"}),
    ],
)
def test_any_token_with_a_digit_is_a_token(text: str, expected: set[str]) -> None:
    assert distinctive_tokens(text) == expected


@pytest.mark.parametrize(
    "text", ["$12.4M", "12.4m", "12.4 M", "12.4 million", "12.40M", "€12.4 mn", "£12.4M"]
)
def test_money_amounts_normalise_to_one_token(text: str) -> None:
    assert distinctive_tokens(text) == {"12.4m"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("26.6%", {"26.6%"}),
        ("26.6 %", {"26.6%"}),
        ("26.6", {"26.6"}),
        ("1,234,567", {"1234567"}),
        ("$3.5bn", {"3.5b"}),
        ("3.5 billion", {"3.5b"}),
        ("12 months", {"12", "months"}),
        ("version 3.10.2", {"version", "3.10.2"}),
        ("sold 4.0 units", {"sold", "4", "units"}),
    ],
)
def test_numbers_are_normalised(text: str, expected: set[str]) -> None:
    assert distinctive_tokens(text) == expected


def test_token_hash_is_blake2b_8_bytes_little_endian() -> None:
    digest = hashlib.blake2b(b"revenue", digest_size=8).digest()
    assert token_hash("revenue") == int.from_bytes(digest, "little")


def test_fingerprint_hashes_are_sorted_unique_uint64_of_the_tokens() -> None:
    fp = fingerprint("Revenue grew 12% in 2023. Revenue!")
    expected = sorted(token_hash(t) for t in ("revenue", "grew", "12%", "2023"))
    assert fp.hashes.dtype == np.uint64
    assert fp.hashes.tolist() == expected


def test_fingerprint_hashes_are_read_only() -> None:
    fp = fingerprint("Revenue grew")
    with pytest.raises(ValueError, match="read-only"):
        fp.hashes[0] = 1


def test_fingerprint_counts_characters_words_and_tokens() -> None:
    fp = fingerprint("  Revenue grew 12% in 2023.  ")
    assert (fp.char_count, fp.word_count, fp.token_count) == (25, 5, 4)


def test_hash_tokens_matches_fingerprint() -> None:
    assert (
        hash_tokens(["grew", "revenue", "grew"]).tolist()
        == fingerprint("grew revenue").hashes.tolist()
    )


def test_equal_texts_give_equal_fingerprints() -> None:
    assert fingerprint("Revenue grew.") == fingerprint("Revenue grew.")
    assert hash(fingerprint("Revenue grew.")) == hash(fingerprint("Revenue grew."))


def test_different_texts_give_different_fingerprints() -> None:
    assert fingerprint("Revenue grew.") != fingerprint("Revenue fell.")


@pytest.mark.parametrize("value", [None, "", "   \n\t", b""])
def test_empty_inputs_give_the_empty_fingerprint(value: object) -> None:
    assert fingerprint(value) == EMPTY_FINGERPRINT
    assert fingerprint(value).is_empty


def test_bytes_are_decoded_as_utf8_with_replacement() -> None:
    assert distinctive_tokens(b"Krak\xc3\xb3w \xff\xfe revenue") == {"kraków", "revenue"}


@pytest.mark.parametrize(
    ("text", "starts", "ends"),
    [
        ("Revenue grew by 12%.", True, True),
        ("revenue grew by 12%", False, False),
        ("12 robots shipped in May!", True, True),
        ("“Growth was strong,” said the CFO.", True, True),
        ("# Outlook\nThe board expects growth.", True, True),
        (", and then it grew (see table)", False, False),
        ("Was revenue up?", True, True),
        ("東京都の人口", True, False),
        ("It ended with a quote: “done.”", True, True),
    ],
)
def test_sentence_edges(text: str, starts: bool, ends: bool) -> None:
    fp = fingerprint(text)
    assert (fp.starts_clean, fp.ends_clean) == (starts, ends)


def test_texts_beyond_the_limit_are_tokenized_up_to_it() -> None:
    text = "a " * (MAX_TOKENIZE_CHARS // 2) + "revenue"
    fp = fingerprint(text)
    assert fp.truncated
    assert fp.token_count == 0
    assert fp.char_count == MAX_TOKENIZE_CHARS + 7


def test_fingerprint_of_constructed_value_reports_token_count() -> None:
    fp = TextFingerprint(hashes=np.array([3, 5], dtype=np.uint64), char_count=10, word_count=2)
    assert fp.token_count == 2
    assert not fp.is_empty

"""Distinctive tokens and text fingerprints.

Every text-based signal (utilisation, lexical similarity, the quality heuristic, lengths) works
on *distinctive tokens*: lower-cased words of 4+ letters that are not stop words, plus every token
containing a digit, with numbers normalised so that "$12.4M", "12.4m", "12.4 M" and
"12.4 million" are one token and "26.6%" stays one token.

The span processor keeps no text: it turns each chunk and answer into a :class:`TextFingerprint`
(the sorted unique 64-bit blake2b hashes of the tokens, plus a few length/edge facts) and drops
the text. All signal functions work from fingerprints.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from itertools import repeat
from operator import and_, lshift, or_
from typing import Any

import numpy as np
import numpy.typing as npt

from ragprov.signals.defaults import (
    LINE_CACHE_SIZE,
    MAX_TOKENIZE_CHARS,
    MIN_TOKEN_LETTERS,
    TOKEN_HASH_CACHE_SIZE,
)

HashArray = npt.NDArray[np.uint64]

_CURRENCY = "$€£¥₹"
# Combining marks that Python's \w does not match but that sit inside words: Latin diacritics
# left over after NFKC, Arabic harakat, Indic vowel signs (danda U+0964/5 excluded), Thai marks.
_MARKS = (
    "\u0300-\u036f\u0610-\u061a\u064b-\u065f\u0670"
    "\u0900-\u0963\u0966-\u0dff\u0e31\u0e34-\u0e3a\u0e47-\u0e4e"
)
_SUFFIXES = r"thousand|million|billion|trillion|bn|mn|k|m|b|t"
#: Words that a number token takes in ("12 million" is one run): not runs of their own there.
NUMBER_SUFFIXES = frozenset(_SUFFIXES.split("|"))
# One alternation, tried left to right at each position:
#   1. a number: optional currency, digits with optional thousands groups and decimals, then an
#      optional "%" or magnitude suffix (one optional space before it), not glued to more letters;
#   2. any run of word characters (letters, digits, underscore, combining marks).
_TOKEN_RE = re.compile(
    rf"[{_CURRENCY}]?\d+(?:,\d{{3}})*(?:\.\d+)*"
    rf"(?: ?%| ?(?:{_SUFFIXES})(?![\w{_MARKS}]))?(?![\w{_MARKS}])"
    rf"|[\w{_MARKS}]+"
)
# _TOKEN_RE for ASCII text, ~2x faster: there the currencies are "$", the marks never occur and
# Unicode \w and \d match what their ASCII forms do, so both find the same runs.
_ASCII_TOKEN_RE = re.compile(
    rf"\$?\d+(?:,\d{{3}})*(?:\.\d+)*(?: ?%| ?(?:{_SUFFIXES})(?!\w))?(?!\w)|\w+", re.ASCII
)
# The number alternative of _ASCII_TOKEN_RE (without its "$") on a copy of the text whose digits
# are all "0" (_ASCII_DIGITS_TO_ZERO), starting only at a digit after a non-word character: the
# leading literal "0" lets the regex engine jump from digit to digit instead of trying the
# pattern at every position.
_ASCII_DIGITS_TO_ZERO = str.maketrans("123456789", "000000000")
_MARKED_NUMBER_RE = re.compile(
    rf"0(?<!\w0)0*(?:,000)*(?:\.0+)*(?: ?%| ?(?:{_SUFFIXES})(?!\w))?(?!\w)", re.ASCII
)
#: ASCII text with more digits than one per this many characters takes _ASCII_TOKEN_RE: each
#: number costs :func:`_ascii_runs_with_numbers` a few Python steps (about even at one per 5).
_CHARS_PER_DIGIT = 6
_NUMBER_PARTS_RE = re.compile(rf"[{_CURRENCY}]?(\d[\d,.]*) ?(.*)")
_DIGIT_RE = re.compile(r"\d")
_SUFFIX_CANONICAL = {
    "thousand": "k",
    "million": "m",
    "mn": "m",
    "billion": "b",
    "bn": "b",
    "trillion": "t",
}
_CLEAN_START_PUNCTUATION = frozenset("\"'“‘«([{#*-–—•>|`¿¡")
_CLOSING_PUNCTUATION = "\"'”’»)]}*`"
_SENTENCE_END = frozenset(".!?…。！？|")

#: English function words of 4+ letters (shorter words are dropped by length anyway).
_STOP_WORDS_TEXT = """
    about above according across actually after again against almost along already also although
    always among amongst another anyone anything anyway anywhere around away back based became
    because become becomes been before being below beside besides between beyond both cannot
    could does doing done down during each either else elsewhere enough even ever every
    everyone everything except few from further furthermore given goes going gone have having
    hence here hereby herein hers herself himself however into itself just last least less like
    likely made mainly make many maybe might mine more moreover most mostly much must myself
    near nearly neither never nevertheless next none nobody noone nothing onto other others
    otherwise ours ourselves over own perhaps please quite rather really said same several shall
    should since some somehow someone something sometimes somewhere still such than that their
    theirs them themselves then there thereby therefore these they this those though through
    throughout thus together toward towards under unless unlike until upon used using very
    want wants well were what whatever when whenever where whereas whereby wherever whether
    which while whilst whom whose will with within without would your yours yourself yourselves
"""
STOP_WORDS: frozenset[str] = frozenset(_STOP_WORDS_TEXT.split())


@dataclass(frozen=True, slots=True, eq=False)
class TextFingerprint:
    """What the signals need to know about a text, without the text.

    ``hashes`` are the sorted, unique, read-only uint64 hashes of the distinctive tokens.
    ``char_count`` is the length of the (NFKC-normalised, stripped) text, ``word_count`` the number
    of word/number runs in it (stop words and short words included). ``starts_clean`` and
    ``ends_clean`` say whether the text begins and ends at a sentence boundary (heuristic quality).
    ``truncated`` is true when only the first MAX_TOKENIZE_CHARS characters were tokenized.
    ``line_keys`` are the keys (length and string hash, no text: :func:`_line_key`) of the lines
    that hold its tokens, when known: a text containing all of those lines contains all of its
    tokens (see :class:`TextLines`). They are not part of equality.
    """

    hashes: HashArray
    char_count: int = 0
    word_count: int = 0
    starts_clean: bool = False
    ends_clean: bool = False
    truncated: bool = False
    line_keys: tuple[int, ...] = ()

    @property
    def token_count(self) -> int:
        """Number of distinct distinctive tokens."""
        return int(self.hashes.size)

    @property
    def is_empty(self) -> bool:
        """True for an empty (or whitespace-only) text."""
        return self.char_count == 0

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TextFingerprint):
            return NotImplemented
        return (
            self.char_count == other.char_count
            and self.word_count == other.word_count
            and self.starts_clean == other.starts_clean
            and self.ends_clean == other.ends_clean
            and self.truncated == other.truncated
            and np.array_equal(self.hashes, other.hashes)
        )

    def __hash__(self) -> int:
        return hash((self.char_count, self.word_count, self.hashes.tobytes()))


def _frozen(array: HashArray) -> HashArray:
    array.setflags(write=False)
    return array


EMPTY_HASHES: HashArray = _frozen(np.empty(0, dtype=np.uint64))
#: The fingerprint of an empty text (and of None).
EMPTY_FINGERPRINT = TextFingerprint(hashes=EMPTY_HASHES)


def coerce_text(value: Any) -> str:
    """Any input as text: None -> "", bytes -> UTF-8 (invalid bytes replaced), else ``str()``.

    Never raises: an object whose ``__str__`` fails becomes "".
    """
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", errors="replace")
    try:
        return str(value)
    except Exception:
        return ""


def normalise_text(text: str) -> str:
    """NFKC (folds ligatures, full-width forms, composes accents), then Unicode case folding."""
    return unicodedata.normalize("NFKC", text).casefold()


def _normalise_token(raw: str, min_letters: int) -> str | None:
    """The distinctive form of one matched run, or None when it is not distinctive."""
    if raw.isalpha():
        return raw if len(raw) >= min_letters and raw not in STOP_WORDS else None
    first = raw[0]
    if first in _CURRENCY or first.isdigit():
        return _normalise_number(raw)
    if _DIGIT_RE.search(raw):
        return raw.strip("_") or None
    word = raw.strip("_")
    return word if len(word) >= min_letters and word not in STOP_WORDS else None


def _normalise_number(raw: str) -> str:
    """'$12,400.50 M' -> '12400.5m': no currency, no separators, no trailing decimal zeros."""
    match = _NUMBER_PARTS_RE.fullmatch(raw)
    if match is None:  # pragma: no cover - the token regex only produces matching numbers
        return raw
    number, suffix = match.group(1).replace(",", ""), match.group(2)
    if number.count(".") == 1:
        number = number.rstrip("0").rstrip(".") or "0"
    return number + _SUFFIX_CANONICAL.get(suffix, suffix)


# Every ASCII character that is not a word character (letters, digits, underscore) -> a space.
_ASCII_NON_WORD_TO_SPACE = str.maketrans(
    {chr(code): " " for code in range(128) if not (chr(code).isalnum() or chr(code) == "_")}
)
_ASCII_DIGITS = "0123456789"


def _runs(text: str) -> list[str]:
    """The runs of ``_TOKEN_RE.findall(text)``, in some order, faster for ASCII text (most prose).

    Without digits the number alternative (which needs a digit) never matches and the word
    alternative matches exactly the maximal runs of [A-Za-z0-9_], which a translate + split
    finds ~5x faster; with digits, see :func:`_ascii_runs_with_numbers`.
    """
    if not text.isascii():
        return _TOKEN_RE.findall(text)
    if not any(digit in text for digit in _ASCII_DIGITS):
        return text.translate(_ASCII_NON_WORD_TO_SPACE).split()
    marked = text.translate(_ASCII_DIGITS_TO_ZERO)
    if marked.count("0") * _CHARS_PER_DIGIT > len(text):
        return _ASCII_TOKEN_RE.findall(text)
    return _ascii_runs_with_numbers(text, marked)


def _ascii_runs_with_numbers(text: str, marked: str) -> list[str]:
    """The runs of ``_ASCII_TOKEN_RE.findall(text)``, numbers last, ~2x faster for prose
    (``marked`` is ``text`` through _ASCII_DIGITS_TO_ZERO).

    The regex tries a number only where no run is under way: at a digit after a non-word
    character (or at the "$" before it, which then always joins the number); and a number ends
    where a word run would. So its numbers are the matches of the number alternative at such
    digits (_MARKED_NUMBER_RE), and its other runs the word runs of the text between them.
    """
    numbers: list[str] = []
    between: list[str] = []
    done = 0
    for match in _MARKED_NUMBER_RE.finditer(marked):
        start, end = match.span()
        if start and text[start - 1] == "$":
            start -= 1
        numbers.append(text[start:end])
        between.append(text[done:start])
        done = end
    between.append(text[done:])
    runs = " ".join(between).translate(_ASCII_NON_WORD_TO_SPACE).split()
    runs += numbers
    return runs


def _raw_tokens(text: str) -> tuple[list[str], bool]:
    truncated = len(text) > MAX_TOKENIZE_CHARS
    if truncated:
        text = text[:MAX_TOKENIZE_CHARS]
    return _TOKEN_RE.findall(normalise_text(text)), truncated


def distinctive_tokens(text: Any, *, min_letters: int = MIN_TOKEN_LETTERS) -> frozenset[str]:
    """The distinct distinctive tokens of a text (readable form; fingerprints hash these)."""
    raw, _ = _raw_tokens(coerce_text(text))
    tokens = (_normalise_token(token, min_letters) for token in set(raw))
    return frozenset(token for token in tokens if token)


def token_hash(token: str) -> int:
    """Stable 64-bit hash of a token: blake2b, 8-byte digest, little-endian (not salted hash())."""
    return int.from_bytes(hashlib.blake2b(token.encode("utf-8"), digest_size=8).digest(), "little")


# Memos shared by all fingerprints, bounded (cleared when full). They are keyed by Python's own
# string hash, not by the text, so no words or lines stay in memory once fingerprinted (a 64-bit
# collision would give one token or line a wrong hash: negligible). Plain dict operations are
# atomic under the GIL, so threads may share them.
#   raw run -> hash of its distinctive form, or -1 when it is not distinctive
_RAW_HASH_CACHE: dict[int, int] = {}
_UNKNOWN = -2  # not in _RAW_HASH_CACHE (never a stored value)
#   line -> (hashes of its distinctive tokens, unsorted and possibly repeated; raw run count)
_LINE_CACHE: dict[int, tuple[HashArray, int]] = {}


def clear_memos(*, tokens: bool = True, lines: bool = True) -> None:
    """Empty the token and/or line memos (benchmarks measure cold paths with it)."""
    if tokens:
        _RAW_HASH_CACHE.clear()
    if lines:
        _LINE_CACHE.clear()


def _raw_hash(raw: str, min_letters: int) -> int:
    key = hash(raw)
    cached = _RAW_HASH_CACHE.get(key) if min_letters == MIN_TOKEN_LETTERS else None
    if cached is not None:
        return cached
    token = _normalise_token(raw, min_letters)
    value = token_hash(token) if token else -1
    if min_letters == MIN_TOKEN_LETTERS:
        if len(_RAW_HASH_CACHE) >= TOKEN_HASH_CACHE_SIZE:
            _RAW_HASH_CACHE.clear()
        _RAW_HASH_CACHE[key] = value
    return value


def _line_hashes(
    line: str, min_letters: int, line_runs: list[set[str] | None] | None = None
) -> tuple[HashArray, int]:
    """Token hashes and raw run count of one line, memoised.

    Tokens never span a line break, so a text's fingerprint is the union of its lines'. Prompts
    are mostly made of chunk lines fingerprinted moments before, at retrieval: those lines are
    looked up instead of tokenized again. The key is the stripped line (no token contains or
    depends on surrounding whitespace), so a chunk quoted with a trailing space still hits.

    ``line_runs``, when given, receives the line's distinct runs, or None for a memo hit.
    """
    use_cache = min_letters == MIN_TOKEN_LETTERS
    line = line.strip()
    key = hash(line)
    if use_cache:
        cached = _LINE_CACHE.get(key)
        if cached is not None:
            if line_runs is not None and line:  # (an empty line has no runs to miss)
                line_runs.append(None)
            return cached
    raw = _runs(normalise_text(line))
    distinct = set(raw)
    if line_runs is not None:
        line_runs.append(distinct)
    unique = list(distinct)
    if use_cache:
        # Most runs are known: look them all up at C speed, then hash only the misses.
        known = list(map(_RAW_HASH_CACHE.get, map(hash, unique), repeat(_UNKNOWN)))
        misses = known.count(_UNKNOWN)
        if misses * 8 > len(known):  # mostly new words: one pass
            known = [
                _raw_hash(run, min_letters) if value == _UNKNOWN else value
                for run, value in zip(unique, known, strict=True)
            ]
        elif misses:  # a few new words: jump from one to the next
            index = known.index(_UNKNOWN)
            while True:
                known[index] = _raw_hash(unique[index], min_letters)
                try:
                    index = known.index(_UNKNOWN, index + 1)
                except ValueError:
                    break
    else:
        known = [_raw_hash(run, min_letters) for run in unique]
    values = [value for value in known if value >= 0]
    result = (np.array(values, dtype=np.uint64), len(raw))
    if use_cache:
        if len(_LINE_CACHE) >= LINE_CACHE_SIZE:
            _LINE_CACHE.clear()
        _LINE_CACHE[key] = result
    return result


def hash_tokens(tokens: Iterable[str]) -> HashArray:
    """Sorted unique read-only uint64 hashes of already-normalised tokens."""
    hashes = np.fromiter((token_hash(token) for token in tokens), dtype=np.uint64)
    return _frozen(_sorted_unique(hashes))


_HASH_BITS = (1 << 64) - 1
#: TextLines with at most this many lines find a line key by scanning their line lengths; more
#: lines are all hashed, once, into a set of their keys.
_SCANNED_LINES = 32


def _line_key(line: str) -> int:
    """The key of a line: the length and the string hash of the line stripped (tokens ignore
    the whitespace), as one int: ``length << 64 | hash``. The length lets a text look for the
    line among its own lines of that length, without hashing the others."""
    line = line.strip()
    return len(line) << 64 | hash(line) & _HASH_BITS


def _source_lines(text: Any) -> tuple[str, list[str]]:
    """The normalised, stripped text and its lines, as fingerprints tokenize them."""
    source = unicodedata.normalize("NFKC", coerce_text(text)).strip()
    return source, source[:MAX_TOKENIZE_CHARS].split("\n") if source else []


def fingerprint(text: Any, *, min_letters: int = MIN_TOKEN_LETTERS) -> TextFingerprint:
    """Fingerprint a text (str, bytes, None or anything with ``str()``). Never raises."""
    return _fingerprint_lines(*_source_lines(text), min_letters)


def fingerprint_with_runs(text: Any) -> tuple[TextFingerprint, AbstractSet[str] | None]:
    """``fingerprint(text)``, and the distinct runs its tokenizer found in the text (words and
    numbers of its NFKC-normalised, case-folded lines, as :data:`_TOKEN_RE` matches them), or
    None when they are not all known (a line came from the memo, untokenized).

    A caller that searches the text for whole words can look them up here instead (see
    :func:`ragprov.signals.grounding.uncertainty_acknowledged`).
    """
    line_runs: list[set[str] | None] = []
    result = _fingerprint_lines(*_source_lines(text), MIN_TOKEN_LETTERS, line_runs)
    known = [runs for runs in line_runs if runs is not None]
    if len(known) < len(line_runs):
        return result, None
    return result, known[0] if len(known) == 1 else set().union(*known)


def _fingerprint_lines(
    source: str,
    lines: list[str],
    min_letters: int,
    line_runs: list[set[str] | None] | None = None,
) -> TextFingerprint:
    if not source:
        return EMPTY_FINGERPRINT
    parts = [_line_hashes(line, min_letters, line_runs) for line in lines]
    arrays = [hashes for hashes, _ in parts if hashes.size]
    if len(arrays) > 1:
        hashes = _sorted_unique(np.concatenate(arrays))
    else:  # np.sort copies: the memoised line array is never changed
        hashes = _sorted_unique(arrays[0]) if arrays else EMPTY_HASHES
    line_keys: tuple[int, ...] = ()  # keys stand for the memo's tokenization only
    if min_letters == MIN_TOKEN_LETTERS and len(lines) == 1:
        line_keys = (_line_key(lines[0]),) if arrays else ()
    elif min_letters == MIN_TOKEN_LETTERS:
        with_tokens = zip(lines, parts, strict=True)
        line_keys = tuple(
            dict.fromkeys(_line_key(line) for line, (found, _) in with_tokens if found.size)
        )
    return TextFingerprint(
        hashes=_frozen(hashes),
        char_count=len(source),
        word_count=sum(count for _, count in parts),
        starts_clean=_starts_clean(source),
        ends_clean=_ends_clean(source),
        truncated=len(source) > MAX_TOKENIZE_CHARS,
        line_keys=line_keys,
    )


class TextLines:
    """A text as the lineage content match first needs it: its lines, looked up by key (see
    :func:`_line_key`), with the fingerprint computed only if a question needs it.

    A prompt usually quotes its context chunks line for line; a chunk whose token lines are all
    lines of the prompt has all of its tokens in the prompt (share 1.0) without either being
    tokenized or compared token by token. A line is hashed only when a key of its length is
    looked up: the first quoted chunk usually settles the question.
    """

    __slots__ = ("_fingerprint", "_keys", "_lengths", "_lines", "_source")

    def __init__(self, text: Any) -> None:
        self._source, lines = _source_lines(text)
        self._lines = list(map(str.strip, lines))  # (the lines themselves when already stripped)
        self._lengths = list(map(len, self._lines))
        self._keys: frozenset[int] | None = None
        self._fingerprint: TextFingerprint | None = None

    @property
    def fingerprint(self) -> TextFingerprint:
        if self._fingerprint is None:
            self._fingerprint = _fingerprint_lines(self._source, self._lines, MIN_TOKEN_LETTERS)
        return self._fingerprint

    def contains_all_tokens_of(self, other: TextFingerprint | None) -> bool:
        """True when every token line of ``other`` (which has tokens) is a line of this text:
        then all of its tokens are in this text's fingerprint. False means "not known"."""
        return (
            other is not None
            and bool(other.line_keys)
            and other.hashes.size > 0
            and all(map(self.has_line, other.line_keys))
        )

    def has_line(self, key: int) -> bool:
        """True when one of this text's lines has the line key ``key`` (:func:`_line_key`)."""
        length, lengths = key >> 64, self._lengths
        if len(lengths) > _SCANNED_LINES:  # many lines: a scan per key would cost more
            if self._keys is None:  # every line's _line_key, at C speed
                shifted = map(lshift, lengths, repeat(64))
                self._keys = frozenset(
                    map(or_, shifted, map(and_, map(hash, self._lines), repeat(_HASH_BITS)))
                )
            return key in self._keys
        index = -1
        while True:
            try:
                index = lengths.index(length, index + 1)
            except ValueError:
                return False
            if _line_key(self._lines[index]) == key:  # the line's hash is cached after once
                return True


def _sorted_unique(values: HashArray) -> HashArray:
    """Sorted unique values (sort + drop repeats; faster than np.unique for small arrays)."""
    values = np.sort(values)
    if values.size > 1:
        repeats = values[1:] == values[:-1]
        if repeats.any():
            values = values[np.concatenate(([True], ~repeats))]
    return values


def fingerprint_all(texts: Iterable[Any]) -> tuple[TextFingerprint, ...]:
    """Fingerprint several texts (convenience for callers that hold a list)."""
    return tuple(fingerprint(text) for text in texts)


def _starts_clean(text: str) -> bool:
    """A text starts at a sentence boundary unless it opens with a lower-case letter or with
    mid-sentence punctuation (",", ";", ")" ...)."""
    first = text[0]
    if first.isalpha():
        return not first.islower()
    return first.isdigit() or first in _CLEAN_START_PUNCTUATION


def _ends_clean(text: str) -> bool:
    """A text ends at a sentence boundary when its last character, ignoring closing quotes and
    brackets, ends a sentence (".", "!", "?", "…", CJK full stops, or a table pipe)."""
    stripped = text.rstrip(_CLOSING_PUNCTUATION + " \t\r\n")
    return bool(stripped) and stripped[-1] in _SENTENCE_END

"""Grounding: does the answer rest on evidence, and does it admit when there is none?

- :func:`uncertainty_acknowledged` — the text contains an acknowledging phrase, matched on word
  boundaries (never as a bare substring: "estimated" does not fire on "underestimated").
- :func:`tool_provided_data` — a tool returned without error and with real output.
- :func:`source_to_response_ratio` — distinct distinctive tokens of the response divided by the
  distinct distinctive tokens of all usable sources together (may exceed 1).
- :func:`grounding_status` — grounded / context_ignored / acknowledged_gap / ungrounded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from ragprov.semconv.attributes import RagGroundingStatusValues
from ragprov.signals.defaults import (
    DEFAULT_NO_RESULT_PATTERNS,
    DEFAULT_TOOL_ERROR_PREFIXES,
    DEFAULT_UNCERTAINTY_PATTERNS,
    EMPTY_TOOL_OUTPUTS,
    MAX_TOKENIZE_CHARS,
    NO_RESULT_MAX_CHARS,
)
from ragprov.signals.tokens import NUMBER_SUFFIXES, HashArray, TextFingerprint, coerce_text

GROUNDED = RagGroundingStatusValues.GROUNDED.value
CONTEXT_IGNORED = RagGroundingStatusValues.CONTEXT_IGNORED.value
ACKNOWLEDGED_GAP = RagGroundingStatusValues.ACKNOWLEDGED_GAP.value
UNGROUNDED = RagGroundingStatusValues.UNGROUNDED.value

_APOSTROPHES = "['’‘ʼ`]"
#: Mapping keys whose empty value means "the tool found nothing".
_RESULT_KEYS = ("results", "result", "documents", "data", "items", "hits", "records", "matches")
_ERROR_KEYS = ("error", "errors", "exception")
_JSON_PARSE_MAX_CHARS = 10_000


def _phrase_regex(phrase: str) -> str:
    """One phrase as a regex: literal text, any apostrophe for ', any whitespace run for spaces."""
    words = [re.escape(word).replace("'", _APOSTROPHES) for word in phrase.split()]
    return r"\s+".join(words)


@lru_cache(maxsize=32)
def compile_phrases(phrases: tuple[str, ...]) -> re.Pattern[str] | None:
    """Word-bounded alternation of ``phrases``, lower-cased: search it in ``text.lower()``.

    Lower-casing the text once and matching case-sensitively is ~2.5x faster than
    ``re.IGNORECASE`` on an alternation of a few dozen phrases. None when there are no phrases.
    """
    parts = [_phrase_regex(phrase.lower()) for phrase in phrases if phrase.strip()]
    if not parts:
        return None
    return re.compile(rf"(?<!\w)(?:{'|'.join(parts)})(?!\w)")


def uncertainty_acknowledged(
    text: Any,
    *,
    patterns: Iterable[str] | re.Pattern[str] = DEFAULT_UNCERTAINTY_PATTERNS,
    runs: AbstractSet[str] | None = None,
) -> bool:
    """True when ``text`` acknowledges missing evidence ("I couldn't find …", "estimated" …).

    ``patterns`` are phrases (see :data:`DEFAULT_UNCERTAINTY_PATTERNS`), matched ignoring case,
    or a compiled regex, used as it is. Only the first MAX_TOKENIZE_CHARS characters are searched.
    ``runs`` are the text's runs from :func:`~ragprov.signals.tokens.fingerprint_with_runs`, if
    at hand: they can rule out every phrase without scanning the text.
    """
    searched = coerce_text(text)[:MAX_TOKENIZE_CHARS]
    if isinstance(patterns, re.Pattern):
        return patterns.search(searched) is not None
    phrases = patterns if isinstance(patterns, tuple) else tuple(patterns)
    regex = compile_phrases(phrases)
    if regex is None:
        return False
    if (
        runs is not None
        and type(text) is str
        and len(text) <= MAX_TOKENIZE_CHARS  # the runs cover all of it
        and text.isascii()  # apostrophes that are not word characters; NFKC changes nothing
    ):
        words = required_words(phrases)
        if words is not None and runs.isdisjoint(words):
            return False  # no phrase can match: skip the regex search
    lowered = searched.lower()
    fragments = required_fragments(phrases)
    if fragments is not None and not any(map(lowered.__contains__, fragments)):
        return False  # no phrase can match: skip the (4x slower) regex search
    return regex.search(lowered) is not None


@lru_cache(maxsize=32)
def required_fragments(phrases: tuple[str, ...]) -> tuple[str, ...] | None:
    """Literal substrings of which a text's lower-cased form must contain at least one for any
    of ``phrases`` to match: per phrase, its longest run without space or apostrophe (the only
    characters the phrase regex does not match literally). None when a phrase has no such run.
    """
    fragments: list[str] = []
    for phrase in phrases:
        if not phrase.strip():
            continue  # compile_phrases ignores it too
        runs = [run for word in phrase.lower().split() for run in word.split("'")]
        longest = max(runs, key=len)
        if not longest:
            return None
        fragments.append(longest)
    unique = list(dict.fromkeys(fragments))
    # A fragment containing another one adds nothing: where it occurs, so does the shorter one.
    return tuple(f for f in unique if not any(other != f and other in f for other in unique))


@lru_cache(maxsize=32)
def required_words(phrases: tuple[str, ...]) -> frozenset[str] | None:
    """Words of which an ASCII text must contain at least one as a whole run (see
    :data:`~ragprov.signals.tokens.NUMBER_SUFFIXES` for why not those) for any of ``phrases``
    to match: per phrase, its longest run without space or apostrophe. A phrase match has a
    non-word character (space, apostrophe, or the regex's word boundary) on both sides of each
    such run, so in a text where the apostrophes are not word characters (ASCII) a run made of
    letters is a whole run. None when a phrase's run is not made of ASCII letters only.
    """
    words: set[str] = set()
    for phrase in phrases:
        if not phrase.strip():
            continue  # compile_phrases ignores it too
        runs = [run for word in phrase.lower().split() for run in word.split("'")]
        longest = max(runs, key=len)
        if not (longest.isascii() and longest.isalpha()) or longest in NUMBER_SUFFIXES:
            return None
        words.add(longest)
    return frozenset(words)


def tool_provided_data(
    output: Any,
    *,
    error: object = None,
    no_result_patterns: Iterable[str] = DEFAULT_NO_RESULT_PATTERNS,
    error_prefixes: Sequence[str] = DEFAULT_TOOL_ERROR_PREFIXES,
    no_result_max_chars: int = NO_RESULT_MAX_CHARS,
) -> bool:
    """True when a tool call returned data: no ``error`` (an exception, an error flag or message),
    and an output that is not None, empty, an empty container, an error message ("Error: …") or a
    short "no results" message. Never raises.
    """
    if error is not None and error is not False and error != "":
        return False
    try:
        return _has_data(
            output, tuple(no_result_patterns), tuple(error_prefixes), no_result_max_chars
        )
    except Exception:  # a hostile object (raising __len__/__str__) is not data we can vouch for
        return False


def _has_data(
    output: Any, no_result: tuple[str, ...], error_prefixes: tuple[str, ...], max_chars: int
) -> bool:
    if output is None:
        return False
    if isinstance(output, Mapping):
        return _mapping_has_data(output)
    if isinstance(output, (list, tuple, set, frozenset)):
        return len(output) > 0
    text = coerce_text(output).strip()
    if not text or text.casefold() in EMPTY_TOOL_OUTPUTS:
        return False
    lowered = text[:100].casefold()
    if any(lowered.startswith(prefix.casefold()) for prefix in error_prefixes):
        return False
    if len(text) <= _JSON_PARSE_MAX_CHARS and text[0] in "[{":
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        if isinstance(parsed, (Mapping, list)):
            return _has_data(parsed, no_result, error_prefixes, max_chars)
    regex = compile_phrases(no_result)
    if len(text) <= max_chars and regex is not None:
        match = regex.search(text.lower())
        if match is not None and not re.search(r"\w", text[: match.start()]):
            return False
    return True


def _mapping_has_data(output: Mapping[Any, Any]) -> bool:
    if not output:
        return False
    if any(output.get(key) for key in _ERROR_KEYS):
        return False
    result_values = [output[key] for key in _RESULT_KEYS if key in output]
    return not result_values or not all(_is_empty(value) for value in result_values)


def _is_empty(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, (str, bytes, list, tuple, set, frozenset, Mapping)):
        return len(value) == 0
    return False


def source_to_response_ratio(
    response: TextFingerprint | None,
    sources: Sequence[TextFingerprint | None],
    *,
    source_token_count: int | None = None,
) -> float | None:
    """Distinct distinctive tokens of ``response`` / those of all ``sources`` together.

    None when the response is unknown or the sources have no distinctive tokens. Above 1 means the
    answer says more (in distinct terms) than all of its evidence. ``source_token_count``, when
    the caller already knows that count for ``sources``, is used instead of counting again.
    """
    if response is None:
        return None
    if source_token_count is None:
        hashes = [source.hashes for source in sources if source is not None and source.token_count]
        source_token_count = _distinct_count(hashes) if hashes else 0
    return response.token_count / source_token_count if source_token_count else None


def _distinct_count(arrays: list[HashArray]) -> int:
    """Number of distinct values across sorted-unique arrays (sort + count of changes; faster
    than np.unique for this size)."""
    if len(arrays) == 1:
        return int(arrays[0].size)
    merged = np.sort(np.concatenate(arrays))
    return 1 + int(np.count_nonzero(merged[1:] != merged[:-1]))


def grounding_status(
    *,
    usable_data: bool,
    evidence_used: bool | None,
    uncertainty_acknowledged: bool,
    output_empty: bool = False,
) -> str | None:
    """Grounding of one output, first rule that applies:

    1. empty output → None (nothing to judge);
    2. no usable data → acknowledged_gap if acknowledged, else ungrounded;
    3. evidence used → grounded;
    4. acknowledged → acknowledged_gap (data was there but did not answer the question);
    5. use not measurable (output without distinctive tokens) → None;
    6. otherwise → context_ignored.
    """
    if output_empty:
        return None
    if not usable_data:
        return ACKNOWLEDGED_GAP if uncertainty_acknowledged else UNGROUNDED
    if evidence_used:
        return GROUNDED
    if uncertainty_acknowledged:
        return ACKNOWLEDGED_GAP
    if evidence_used is None:
        return None
    return CONTEXT_IGNORED


@dataclass(frozen=True, slots=True)
class GroundingResult:
    """Grounding signals of one step output."""

    status: str | None
    uncertainty_acknowledged: bool
    tool_provided_data: bool | None
    usable_data: bool
    evidence_used: bool | None
    source_to_response_ratio: float | None

"""Default thresholds and constants of the signals engine, in one place.

Every function that uses one of these takes it as a keyword argument defaulting to the constant
here; ``ragprov.config`` reads environment variables and passes overrides in. The reasoning
behind each number is in docs/signals.md.
"""

from __future__ import annotations

import math
from numbers import Real
from typing import Final

# --- tokens -------------------------------------------------------------------------------------
#: A word without digits is distinctive from this many letters on ("data" yes, "the" no).
MIN_TOKEN_LETTERS: Final = 4
#: Texts longer than this (in characters) are tokenized only up to here; keeps a 10 MB tool dump
#: from stalling the processor. 1 MB is ~150k words, far beyond any chunk or answer.
MAX_TOKENIZE_CHARS: Final = 1_000_000
#: Bound of the token -> hash memo shared by all fingerprints (entries, not bytes; ~100 B each).
TOKEN_HASH_CACHE_SIZE: Final = 65_536
#: Bound of the line -> token hashes memo (entries; a 300-char line holds ~40 hashes, ~0.5 KB).
LINE_CACHE_SIZE: Final = 4_096

# --- utilisation --------------------------------------------------------------------------------
#: A chunk is *used* when at least this share of its distinctive tokens occurs in the output.
UTILISATION_THRESHOLD: Final = 0.30
#: Below this coverage_diversity, utilisation cannot tell "used" from "shares vocabulary".
DIVERSITY_GATE: Final = 0.30

# --- similarity ---------------------------------------------------------------------------------
#: Embedding-cosine similarity above which a pair of chunks counts as redundant.
REDUNDANCY_THRESHOLD: Final = 0.85
#: The same for lexical (binary distinctive-token) cosine. Lower, because one reworded sentence
#: in a five-sentence chunk already costs ~20 % of the token overlap while embeddings barely move:
#: two chunks sharing 70 % of their distinctive tokens are near-duplicates to a reader.
LEXICAL_REDUNDANCY_THRESHOLD: Final = 0.70
#: Two chunks whose similarity is at least 1 - this are the *same* content (exact duplicates).
DUPLICATE_TOLERANCE: Final = 1e-9

# --- quality ------------------------------------------------------------------------------------
#: Below this quality_density, diagnosis says data_problem.
QUALITY_THRESHOLD: Final = 0.6
#: Heuristic: distinct distinctive tokens per word at which density scores 1.0 (informative prose
#: sits around 0.35-0.5; boilerplate and filler well below).
HEURISTIC_DENSITY_TARGET: Final = 0.35
#: Heuristic: chunks shorter than this (characters) score proportionally less on length.
HEURISTIC_MIN_CHARS: Final = 200
#: Heuristic: chunks longer than this score max_chars / length on length (diluted context).
HEURISTIC_MAX_CHARS: Final = 4_000
#: Heuristic weights: clean start, clean end, token density, length (sum to 1).
HEURISTIC_WEIGHTS: Final = (0.25, 0.25, 0.25, 0.25)

# --- diagnosis ----------------------------------------------------------------------------------
#: Below this utilisation_ratio (with good quality and diversity), diagnosis says navigation.
UTILISATION_DIAGNOSIS_THRESHOLD: Final = 0.5
#: Below this coverage_diversity, diagnosis says retrieval_composition (same as the gate).
DIAGNOSIS_DIVERSITY_THRESHOLD: Final = DIVERSITY_GATE

# --- grounding ----------------------------------------------------------------------------------
#: Phrases that acknowledge missing evidence. Matched case-insensitively on word boundaries
#: ("estimated" does not fire on "underestimated"); an apostrophe matches ' and ’, a space any
#: whitespace run. Phrases, not regexes, so that they can come from an environment variable.
DEFAULT_UNCERTAINTY_PATTERNS: Final[tuple[str, ...]] = (
    "couldn't find",
    "could not find",
    "can't find",
    "cannot find",
    "didn't find",
    "did not find",
    "unable to find",
    "unable to locate",
    "unable to determine",
    "no relevant information",
    "no information about",
    "no information on",
    "not enough information",
    "insufficient information",
    "does not contain information",
    "doesn't contain information",
    "does not mention",
    "doesn't mention",
    "is not mentioned",
    "there is no mention",
    "i don't have",
    "i do not have",
    "i don't know",
    "i do not know",
    "i'm not sure",
    "i am not sure",
    "i'm not certain",
    "i am not certain",
    "based on general knowledge",
    "from general knowledge",
    "not available in the",
    "estimated",
)
#: A tool output that *starts* with one of these phrases (case-insensitive, on a word boundary) and
#: is at most NO_RESULT_MAX_CHARS long means "the tool found nothing".
DEFAULT_NO_RESULT_PATTERNS: Final[tuple[str, ...]] = (
    "no results",
    "no result",
    "0 results",
    "zero results",
    "no matches",
    "no match",
    "no matching",
    "no data",
    "no records",
    "no documents",
    "no entries",
    "nothing found",
    "not found",
)
#: Whole outputs (after stripping whitespace) that are empty in disguise.
EMPTY_TOOL_OUTPUTS: Final = frozenset({"none", "null", "nil", "n/a", "[]", "{}", "()", '""', "''"})
#: A tool output starting with one of these (case-insensitive) is an error message, at any length.
DEFAULT_TOOL_ERROR_PREFIXES: Final[tuple[str, ...]] = (
    "error:",
    "error -",
    "exception:",
    "traceback (most recent call last)",
)
#: A tool output longer than this (characters) is data even if it starts like a no-result message.
NO_RESULT_MAX_CHARS: Final = 200


def clean_fraction(value: object, default: float) -> float:
    """A threshold in [0, 1]: ``value`` clipped into range, or ``default`` when it is not a finite
    number (NaN, None, a string from a bad environment variable). Signals never raise over a
    misconfigured threshold."""
    if type(value) is float and 0.0 < value <= 1.0:
        return value  # the usual case, without the slower abstract-class check below
    if isinstance(value, bool) or not isinstance(value, Real):
        return default
    number = float(value)
    if not math.isfinite(number):
        return default
    return min(1.0, max(0.0, number))

"""Pre-ingestion quality facts read from a chunk's metadata.

Vector stores hand back whatever metadata was stored with a chunk, typed however the ingestion
pipeline (or a JSON round-trip) left it. This module turns that into a small, clean
:class:`ChunkQuality`: scores as floats in [0, 1], a known freshness value, a boolean conflict
flag. Anything unusable (a score that is not a number, NaN, out of range, an unknown freshness
value) is dropped with a debug log — instrumentation must never raise into the application over a
metadata typo.

Keys (aliases in brackets), as in the design's "pre-ingestion quality":
``semantic_density``, ``completeness``, ``faithfulness`` [``faithfulness_prediction``],
``freshness_status`` (fresh / aging / stale / rot), ``conflict_flag``,
``source_document_id`` [``chunk_source_document_id``]; and ``heuristic_quality``, the intrinsic
heuristic stamped at ingestion by ``ragprov.stamp()`` (used only where ragprov would otherwise
compute that same heuristic, never as a measured score).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import Field

_logger = logging.getLogger(__name__)

Freshness = Literal["fresh", "aging", "stale", "rot"]
FRESHNESS_VALUES: tuple[Freshness, ...] = ("fresh", "aging", "stale", "rot")
# "aging" is still usable evidence; only stale and rotten chunks count in rag.stale_chunk_count.
STALE_FRESHNESS_VALUES = frozenset({"stale", "rot"})

SCORE_KEYS: Mapping[str, tuple[str, ...]] = {
    "semantic_density": ("semantic_density",),
    "completeness": ("completeness",),
    "faithfulness": ("faithfulness", "faithfulness_prediction"),
}
FRESHNESS_KEY = "freshness_status"
CONFLICT_KEY = "conflict_flag"
SOURCE_DOCUMENT_KEYS = ("source_document_id", "chunk_source_document_id")
HEURISTIC_QUALITY_KEY = "heuristic_quality"
#: Every key the parser reads: a plain dict with none of them has no quality to parse.
QUALITY_KEYS = frozenset(
    {
        *(key for keys in SCORE_KEYS.values() for key in keys),
        FRESHNESS_KEY,
        CONFLICT_KEY,
        *SOURCE_DOCUMENT_KEYS,
        HEURISTIC_QUALITY_KEY,
    }
)

_TRUE_STRINGS = frozenset({"true", "1", "yes", "y", "t"})
_FALSE_STRINGS = frozenset({"false", "0", "no", "n", "f", ""})


@dataclass(frozen=True, slots=True)
class ChunkQuality:
    """Cleaned pre-ingestion quality of one chunk; ``None`` means "not stated"."""

    # The Annotated bounds only feed the JSON Schema of the provenance spec (ragprov.model);
    # parse_chunk_quality is what enforces them on untrusted metadata.
    semantic_density: Annotated[float | None, Field(ge=0.0, le=1.0)] = None
    completeness: Annotated[float | None, Field(ge=0.0, le=1.0)] = None
    faithfulness: Annotated[float | None, Field(ge=0.0, le=1.0)] = None
    freshness_status: Freshness | None = None
    conflict_flag: bool = False
    source_document_id: str | None = None
    #: Stamped at ingestion (``ragprov.stamp``); not a measured score, so not part of ``score``.
    heuristic_quality: Annotated[float | None, Field(ge=0.0, le=1.0)] = None

    @property
    def scores(self) -> tuple[float, ...]:
        """The quality scores that are present, in a fixed order."""
        return tuple(
            score
            for score in (self.semantic_density, self.completeness, self.faithfulness)
            if score is not None
        )

    @property
    def has_scores(self) -> bool:
        return bool(self.scores)

    @property
    def score(self) -> float | None:
        """Chunk quality: the mean of the scores present, ``None`` when there are none."""
        scores = self.scores
        return math.fsum(scores) / len(scores) if scores else None

    @property
    def is_stale(self) -> bool:
        return self.freshness_status in STALE_FRESHNESS_VALUES


_NO_QUALITY = ChunkQuality()


def parse_chunk_quality(metadata: Mapping[str, Any] | None) -> ChunkQuality:
    """Read a :class:`ChunkQuality` from store metadata. Never raises."""
    if not isinstance(metadata, Mapping) or not metadata:
        return _NO_QUALITY
    # The common case of an unstamped store, on the app thread for every retrieved chunk.
    if type(metadata) is dict and QUALITY_KEYS.isdisjoint(metadata):
        return _NO_QUALITY
    try:
        scores = {field: _first_score(metadata, keys, field) for field, keys in SCORE_KEYS.items()}
        return ChunkQuality(
            semantic_density=scores["semantic_density"],
            completeness=scores["completeness"],
            faithfulness=scores["faithfulness"],
            freshness_status=_freshness(metadata.get(FRESHNESS_KEY)),
            conflict_flag=_flag(metadata.get(CONFLICT_KEY)),
            source_document_id=_source_document_id(metadata),
            heuristic_quality=clean_score(metadata.get(HEURISTIC_QUALITY_KEY), "heuristic"),
        )
    except Exception:  # a hostile Mapping (raising __getitem__) must not reach the app
        _logger.debug("unreadable chunk metadata; quality ignored", exc_info=True)
        return ChunkQuality()


def clean_score(value: Any, name: str = "score") -> float | None:
    """A score in [0, 1] as float, or ``None`` (logged at debug) when it is not one.

    Numeric strings ("0.8") are accepted because many stores only keep strings in metadata;
    booleans are rejected because ``True`` is not a quality of 1.0.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        _logger.debug("quality %s=%r is a boolean, not a score; dropped", name, value)
        return None
    try:
        score = float(value.strip()) if isinstance(value, str) else float(value)
    except (TypeError, ValueError, OverflowError):
        _logger.debug("quality %s=%r is not a number; dropped", name, value)
        return None
    if math.isnan(score) or not 0.0 <= score <= 1.0:
        _logger.debug("quality %s=%r is outside [0, 1]; dropped", name, value)
        return None
    return score


def _first_score(metadata: Mapping[str, Any], keys: tuple[str, ...], name: str) -> float | None:
    for key in keys:
        if key in metadata:
            score = clean_score(metadata[key], name)
            if score is not None:
                return score
    return None


def _freshness(value: Any) -> Freshness | None:
    if value is None:
        return None
    if isinstance(value, str):
        normalised = value.strip().lower()
        for known in FRESHNESS_VALUES:
            if normalised == known:
                return known
    _logger.debug("freshness_status=%r is not one of %s; dropped", value, FRESHNESS_VALUES)
    return None


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        # Stores that keep no booleans write 1/0; any other finite non-zero number is a "yes".
        return value != 0 and not math.isnan(value)
    if isinstance(value, str):
        normalised = value.strip().lower()
        if normalised in _TRUE_STRINGS:
            return True
        if normalised in _FALSE_STRINGS:
            return False
    if value is not None:
        _logger.debug("conflict_flag=%r is not a boolean; treated as false", value)
    return False


def _source_document_id(metadata: Mapping[str, Any]) -> str | None:
    for key in SOURCE_DOCUMENT_KEYS:
        value = metadata.get(key)
        if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value):
            return str(value)
    return None

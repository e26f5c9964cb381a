"""Signals engine: pure functions (numpy + stdlib, no OpenTelemetry) that turn fingerprints of
chunks and answers into provenance signals — utilisation, diversity, redundancy, quality,
grounding and a diagnosis. Formulas and worked examples: docs/signals.md.
"""

from ragprov.signals.defaults import clean_fraction
from ragprov.signals.diagnosis import DiagnosisResult, diagnose
from ragprov.signals.engine import (
    DEFAULT_THRESHOLDS,
    SetSignals,
    StepSignals,
    Thresholds,
    compute_set_signals,
    compute_step_signals,
    signals_from_text,
)
from ragprov.signals.grounding import (
    GroundingResult,
    grounding_status,
    source_to_response_ratio,
    tool_provided_data,
    uncertainty_acknowledged,
)
from ragprov.signals.quality import (
    QualityResult,
    compute_quality,
    heuristic_quality,
    rank_weight,
    rank_weighted_mean,
    score_chunk,
)
from ragprov.signals.similarity import SimilarityResult, compute_similarity, similarity_from_text
from ragprov.signals.tokens import (
    EMPTY_FINGERPRINT,
    TextFingerprint,
    distinctive_tokens,
    fingerprint,
    fingerprint_all,
    token_hash,
)
from ragprov.signals.utilisation import (
    ChunkUsage,
    UtilisationResult,
    compute_utilisation,
    utilisation_from_text,
)

__all__ = [
    "DEFAULT_THRESHOLDS",
    "EMPTY_FINGERPRINT",
    "ChunkUsage",
    "DiagnosisResult",
    "GroundingResult",
    "QualityResult",
    "SetSignals",
    "SimilarityResult",
    "StepSignals",
    "TextFingerprint",
    "Thresholds",
    "UtilisationResult",
    "clean_fraction",
    "compute_quality",
    "compute_set_signals",
    "compute_similarity",
    "compute_step_signals",
    "compute_utilisation",
    "diagnose",
    "distinctive_tokens",
    "fingerprint",
    "fingerprint_all",
    "grounding_status",
    "heuristic_quality",
    "rank_weight",
    "rank_weighted_mean",
    "score_chunk",
    "signals_from_text",
    "similarity_from_text",
    "source_to_response_ratio",
    "token_hash",
    "tool_provided_data",
    "uncertainty_acknowledged",
    "utilisation_from_text",
]

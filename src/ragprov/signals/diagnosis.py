"""Diagnosis: one category per answer saying where to look, with a sentence naming the numbers.

Rules, first that fires (DESIGN.md):

1. no usable data → ``acceptable_fallback`` if the answer acknowledges it, else
   ``ungrounded_answer``;
2. quality_density < 0.6 → ``data_problem``;
3. coverage_diversity < 0.30 → ``retrieval_composition`` (utilisation not trusted);
4. utilisation_ratio < 0.5 → ``navigation``;
5. otherwise → ``healthy``.

A rule whose input is missing (None or NaN) does not fire: unknown quality is not a data problem,
an undefined diversity (fewer than two chunks) is not a composition problem, and an unmeasurable
utilisation (empty output) is not a navigation problem. The reason sentence says what was unknown.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ragprov.semconv.attributes import RagDiagnosisValues
from ragprov.signals.defaults import (
    DIAGNOSIS_DIVERSITY_THRESHOLD,
    QUALITY_THRESHOLD,
    UTILISATION_DIAGNOSIS_THRESHOLD,
    clean_fraction,
)

ACCEPTABLE_FALLBACK = RagDiagnosisValues.ACCEPTABLE_FALLBACK.value
UNGROUNDED_ANSWER = RagDiagnosisValues.UNGROUNDED_ANSWER.value
DATA_PROBLEM = RagDiagnosisValues.DATA_PROBLEM.value
RETRIEVAL_COMPOSITION = RagDiagnosisValues.RETRIEVAL_COMPOSITION.value
NAVIGATION = RagDiagnosisValues.NAVIGATION.value
HEALTHY = RagDiagnosisValues.HEALTHY.value


@dataclass(frozen=True, slots=True)
class DiagnosisResult:
    """The category, a one-sentence reason, and the number (1-5) of the rule that fired."""

    category: str
    reason: str
    rule: int


def diagnose(
    *,
    usable_data: bool,
    uncertainty_acknowledged: bool,
    quality_density: float | None,
    coverage_diversity: float | None,
    utilisation_ratio: float | None,
    used_count: int = 0,
    scorable_count: int = 0,
    retrieved_count: int = 0,
    quality_method: str | None = None,
    quality_threshold: float = QUALITY_THRESHOLD,
    diversity_threshold: float = DIAGNOSIS_DIVERSITY_THRESHOLD,
    utilisation_threshold: float = UTILISATION_DIAGNOSIS_THRESHOLD,
) -> DiagnosisResult:
    """Apply the diagnosis rules; the counts only feed the reason sentence."""
    quality_threshold = clean_fraction(quality_threshold, QUALITY_THRESHOLD)
    diversity_threshold = clean_fraction(diversity_threshold, DIAGNOSIS_DIVERSITY_THRESHOLD)
    utilisation_threshold = clean_fraction(utilisation_threshold, UTILISATION_DIAGNOSIS_THRESHOLD)
    quality = _known(quality_density)
    diversity = _known(coverage_diversity)
    utilisation = _known(utilisation_ratio)

    if not usable_data:
        evidence = (
            f"{retrieved_count} chunks retrieved, none with content, and no tool data"
            if retrieved_count
            else "no chunks retrieved and no tool data"
        )
        if uncertainty_acknowledged:
            return DiagnosisResult(
                ACCEPTABLE_FALLBACK, f"No usable data ({evidence}) and the answer says so.", 1
            )
        return DiagnosisResult(
            UNGROUNDED_ANSWER,
            f"No usable data ({evidence}) but the answer does not acknowledge it.",
            1,
        )
    if quality is not None and quality < quality_threshold:
        method = f", {quality_method}" if quality_method else ""
        return DiagnosisResult(
            DATA_PROBLEM,
            f"Retrieved chunks are of low quality ({quality:.2f} < {quality_threshold:.2f}"
            f"{method}): fix the data upstream (re-chunk, re-score).",
            2,
        )
    if diversity is not None and diversity < diversity_threshold:
        return DiagnosisResult(
            RETRIEVAL_COMPOSITION,
            f"Coverage diversity {diversity:.2f} < {diversity_threshold:.2f}: the "
            f"{retrieved_count} retrieved chunks repeat each other, so utilisation is not trusted.",
            3,
        )
    usage = _usage(used_count, scorable_count, retrieved_count)
    if utilisation is not None and utilisation < utilisation_threshold:
        return DiagnosisResult(
            NAVIGATION,
            f"{usage} ({utilisation:.2f} < {utilisation_threshold:.2f})"
            f"{_although(quality, diversity)}.",
            4,
        )
    if utilisation is None:
        usage_text = "utilisation not measurable (no answer text or no scorable chunk)"
    else:
        usage_text = f"{usage} ({utilisation:.2f} ≥ {utilisation_threshold:.2f})"
    return DiagnosisResult(
        HEALTHY,
        f"{usage_text[0].upper()}{usage_text[1:]}, {_describe(quality, diversity)}; "
        "if the answer is wrong, look at generation.",
        5,
    )


def _known(value: float | None) -> float | None:
    """A finite float, or None for missing/NaN/non-numeric input."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _usage(used: int, scorable: int, retrieved: int) -> str:
    if scorable == retrieved:
        return f"{used} of {retrieved} retrieved chunks used"
    return f"{used} of {scorable} scorable chunks used ({retrieved} retrieved)"


def _although(quality: float | None, diversity: float | None) -> str:
    known = [f"quality {quality:.2f}"] if quality is not None else []
    known += [f"diversity {diversity:.2f}"] if diversity is not None else []
    if not known:
        return " (quality and diversity unknown)"
    return f" although {' and '.join(known)} {'were' if len(known) > 1 else 'was'} high"


def _describe(quality: float | None, diversity: float | None) -> str:
    quality_text = f"quality {quality:.2f}" if quality is not None else "quality unknown"
    diversity_text = (
        f"diversity {diversity:.2f}" if diversity is not None else "diversity undefined"
    )
    return f"{quality_text}, {diversity_text}"

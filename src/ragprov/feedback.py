"""External verdicts on an answer: ``ragprov.record_feedback(...)``.

A user's thumbs-down or an evaluator's score usually arrives after the trace has been exported.
``record_feedback`` emits a small span that joins the answer's trace:

* it is a child of the given span (or, given only a trace id, a span of that trace whose parent
  is marked remote), so ``trace_id`` joins it with the trace's ``rag.diagnosis``;
* it links to the target span when one is given;
* it carries the official GenAI evaluation attributes, both on the span (easy to query) and as
  a ``gen_ai.evaluation.result`` event (the shape the GenAI conventions define):
  ``gen_ai.evaluation.name``, ``gen_ai.evaluation.score.value``,
  ``gen_ai.evaluation.score.label``, ``gen_ai.evaluation.explanation``.

Bad arguments (no score and no label, a non-finite score, a malformed trace id) raise
``ValueError`` at once: they are programming errors. Nothing else raises.
"""

from __future__ import annotations

import math
import random

from opentelemetry import trace
from opentelemetry.trace import Link, NonRecordingSpan, Span, SpanContext, SpanKind, TraceFlags
from opentelemetry.util.types import AttributeValue

EVALUATION_EVENT = "gen_ai.evaluation.result"
EVALUATION_NAME = "gen_ai.evaluation.name"
SCORE_VALUE = "gen_ai.evaluation.score.value"
SCORE_LABEL = "gen_ai.evaluation.score.label"
EXPLANATION = "gen_ai.evaluation.explanation"

Target = Span | SpanContext | int | str


def record_feedback(
    target: Target,
    *,
    score: float | None = None,
    label: str | None = None,
    explanation: str | None = None,
    name: str = "user_feedback",
    tracer_provider: trace.TracerProvider | None = None,
) -> SpanContext:
    """Record a verdict on the answer identified by ``target``; returns the feedback span's context.

    ``target`` is the answer's span or span context (from the app, e.g. kept with the response),
    or its trace id as an int or 32 hex digits (e.g. from a ``traceparent`` header the client
    kept). ``score`` is any finite number (higher is better by convention), ``label`` a short
    category such as "thumbs_down".
    """
    parent, known_span = _target_context(target)
    attributes = _attributes(name, score, label, explanation)
    tracer = trace.get_tracer("ragprov", tracer_provider=tracer_provider)
    links = [Link(parent)] if known_span else []
    span = tracer.start_span(
        f"evaluation {name}",
        context=trace.set_span_in_context(NonRecordingSpan(parent)),
        kind=SpanKind.INTERNAL,
        attributes=attributes,
        links=links,
    )
    span.add_event(EVALUATION_EVENT, attributes)
    span.end()
    return span.get_span_context()


def _target_context(target: Target) -> tuple[SpanContext, bool]:
    """The parent for the feedback span, and whether it is a real span (else only the trace)."""
    if isinstance(target, Span):
        target = target.get_span_context()
    if isinstance(target, SpanContext):
        if not target.is_valid:
            raise ValueError("record_feedback: the target span context is not valid")
        return target, True
    if isinstance(target, str):
        try:
            trace_id = int(target, 16)
        except ValueError:
            raise ValueError(
                f"record_feedback: {target!r} is not a trace id (32 hex digits)"
            ) from None
        if len(target) != 32:
            raise ValueError(f"record_feedback: {target!r} is not a trace id (32 hex digits)")
    elif isinstance(target, int) and not isinstance(target, bool):
        trace_id = target
    else:
        raise ValueError(f"record_feedback: cannot find a trace in {type(target).__name__}")
    if not 0 < trace_id < 2**128:
        raise ValueError("record_feedback: a trace id is a non-zero 128-bit number")
    # Only the trace is known: parent the feedback span on a remote span id of that trace, so the
    # backend files it into the trace (as a root-level orphan) without claiming a real parent.
    placeholder = SpanContext(
        trace_id=trace_id,
        span_id=random.getrandbits(64) or 1,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    return placeholder, False


def _attributes(
    name: str, score: float | None, label: str | None, explanation: str | None
) -> dict[str, AttributeValue]:
    if not isinstance(name, str) or not name:
        raise ValueError("record_feedback: name must be a non-empty string")
    if score is None and label is None:
        raise ValueError("record_feedback: give a score, a label, or both")
    attributes: dict[str, AttributeValue] = {EVALUATION_NAME: name}
    if score is not None:
        if isinstance(score, bool) or not isinstance(score, (int, float)):
            raise ValueError(f"record_feedback: score must be a number, not {score!r}")
        if not math.isfinite(score):
            raise ValueError(f"record_feedback: score must be finite, not {score!r}")
        attributes[SCORE_VALUE] = float(score)
    if label is not None:
        if not isinstance(label, str) or not label:
            raise ValueError("record_feedback: label must be a non-empty string")
        attributes[SCORE_LABEL] = label
    if explanation:
        attributes[EXPLANATION] = str(explanation)
    return attributes

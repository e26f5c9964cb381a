"""record_feedback: an evaluation span that joins the answer's trace."""

from __future__ import annotations

import math

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import ragprov


@pytest.fixture
def provider_and_exporter() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def test_feedback_on_a_span_is_its_child_and_links_to_it(
    provider_and_exporter: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = provider_and_exporter
    answer = provider.get_tracer("app").start_span("chat m")
    answer.end()
    ragprov.record_feedback(
        answer, score=0.0, label="thumbs_down", explanation="wrong date", tracer_provider=provider
    )
    feedback = exporter.get_finished_spans()[-1]
    assert feedback.name == "evaluation user_feedback"
    assert feedback.parent is not None
    assert feedback.parent.span_id == answer.get_span_context().span_id
    assert feedback.context is not None
    assert feedback.context.trace_id == answer.get_span_context().trace_id
    assert [link.context for link in feedback.links] == [answer.get_span_context()]
    expected = {
        "gen_ai.evaluation.name": "user_feedback",
        "gen_ai.evaluation.score.value": 0.0,
        "gen_ai.evaluation.score.label": "thumbs_down",
        "gen_ai.evaluation.explanation": "wrong date",
    }
    assert dict(feedback.attributes or {}) == expected
    (event,) = feedback.events
    assert event.name == "gen_ai.evaluation.result"
    assert dict(event.attributes or {}) == expected


@pytest.mark.parametrize("as_hex", [True, False])
def test_feedback_by_trace_id_joins_the_trace_without_a_link(
    provider_and_exporter: tuple[TracerProvider, InMemorySpanExporter], as_hex: bool
) -> None:
    provider, exporter = provider_and_exporter
    trace_id = 0x0AF7651916CD43DD8448EB211C80319C
    target = f"{trace_id:032x}" if as_hex else trace_id
    context = ragprov.record_feedback(
        target, label="correct", name="reviewer", tracer_provider=provider
    )
    (feedback,) = exporter.get_finished_spans()
    assert context.trace_id == trace_id
    assert feedback.parent is not None
    assert feedback.parent.is_remote
    assert feedback.links == ()
    assert dict(feedback.attributes or {}) == {
        "gen_ai.evaluation.name": "reviewer",
        "gen_ai.evaluation.score.label": "correct",
    }


@pytest.mark.parametrize(
    ("target", "kwargs", "message"),
    [
        (1, {}, "give a score, a label, or both"),
        (1, {"score": math.nan}, "score must be finite"),
        (1, {"score": True}, "score must be a number"),
        (1, {"label": ""}, "label must be a non-empty string"),
        ("xyz", {"score": 1.0}, "is not a trace id"),
        ("abc", {"score": 1.0}, "is not a trace id"),
        (0, {"score": 1.0}, "non-zero 128-bit number"),
        (None, {"score": 1.0}, "cannot find a trace in NoneType"),
    ],
)
def test_bad_arguments_raise_a_clear_error(
    target: object, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        ragprov.record_feedback(target, **kwargs)  # type: ignore[arg-type]

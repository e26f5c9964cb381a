"""The exported copy of an enriched span: the processor's shortcut equals the SDK's own cleaning."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.trace import Link
from spans import make_pipeline

from ragprov import lineage
from ragprov.processor import _merge_attributes

KEYS = st.sampled_from(["gen_ai.operation.name", "a", "b", "rag.diagnosis", "rag.used_chunk_ids"])
PLAIN = st.one_of(st.text(max_size=8), st.booleans(), st.integers(), st.floats(allow_nan=False))
VALUES = st.one_of(PLAIN, st.lists(st.text(max_size=8), max_size=3), st.tuples(st.integers()))
ATTRIBUTES = st.dictionaries(KEYS, VALUES, max_size=5)
LIMITS = st.sampled_from([None, 2, 4])


def _ended_span(
    attributes: dict[str, Any], max_attributes: int | None, max_length: int | None
) -> ReadableSpan:
    provider = TracerProvider(
        span_limits=SpanLimits(
            max_span_attributes=max_attributes, max_span_attribute_length=max_length
        )
    )
    span = provider.get_tracer("tests").start_span("span", attributes=attributes)
    span.end()
    assert isinstance(span, ReadableSpan)
    return span


def _sdk_merge(span: ReadableSpan, extra: dict[str, Any]) -> tuple[BoundedAttributes, int]:
    """What the processor did before its shortcut: the SDK cleans every value again."""
    bounded = span._attributes  # type: ignore[attr-defined]
    merged = dict(span.attributes or {})
    not_added = 0
    for key, value in extra.items():
        if key in merged or bounded.maxlen is None or len(merged) < bounded.maxlen:
            merged[key] = value
        else:
            not_added += 1
    attributes = BoundedAttributes(
        maxlen=bounded.maxlen,
        attributes=merged,
        immutable=True,
        max_value_len=bounded.max_value_len,
    )
    attributes.dropped += span.dropped_attributes + not_added
    return attributes, not_added


def _snapshot(attributes: BoundedAttributes) -> list[tuple[str, Any, type]]:
    return [(key, value, type(value)) for key, value in attributes.items()]


@settings(max_examples=300, deadline=None)
@given(ATTRIBUTES, ATTRIBUTES, LIMITS, st.sampled_from([None, 3]))
def test_merged_attributes_equal_the_sdks_cleaning(
    own: dict[str, Any], extra: dict[str, Any], max_attributes: int | None, max_length: int | None
) -> None:
    span = _ended_span(own, max_attributes, max_length)
    before = _snapshot(span._attributes)  # type: ignore[attr-defined]
    merged, not_added = _merge_attributes(span, dict(extra))
    expected, expected_not_added = _sdk_merge(span, dict(extra))
    assert _snapshot(merged) == _snapshot(expected)
    assert (merged.dropped, merged.maxlen, merged.max_value_len) == (
        expected.dropped,
        expected.maxlen,
        expected.max_value_len,
    )
    assert not_added == expected_not_added
    assert _snapshot(span._attributes) == before  # type: ignore[attr-defined]


def test_copy_keeps_dropped_event_and_link_counts() -> None:
    pipeline = make_pipeline(span_limits=SpanLimits(max_events=1, max_links=1))
    tracer = pipeline.tracer
    with lineage.new_scope():
        other = tracer.start_span("other").get_span_context()
        with tracer.start_as_current_span(
            "chat m", links=[Link(other), Link(other)], attributes={"gen_ai.operation.name": "chat"}
        ) as span:
            span.add_event("first")
            span.add_event("second")
            span.set_attribute("rag.step_id", "step-1")
    exported = pipeline.span("chat m")
    assert [event.name for event in exported.events] == ["second"]
    assert (exported.dropped_events, exported.dropped_links, len(exported.links)) == (1, 1, 1)
    assert dict(exported.attributes or {})["rag.transformation_type"] == "generation"  # enriched
    pipeline.provider.shutdown()


class _RenamedAttributes(BoundedAttributes):
    """A BoundedAttributes that keeps its items in ``_data`` instead of ``_dict``, as a future SDK
    might: the processor's shortcut reads and assigns ``_dict``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._data = self.__dict__.pop("_dict")

    def __len__(self) -> int:
        return len(self._data)

    def __iter__(self) -> Any:
        return iter(self._data)

    def __getitem__(self, key: str) -> Any:
        return self._data[key]


def test_the_copy_takes_the_sdk_path_when_the_sdk_keeps_its_items_elsewhere(
    monkeypatch: Any,
) -> None:
    span = _ended_span({}, None, None)
    span._attributes = _RenamedAttributes(  # type: ignore[attr-defined]
        attributes={"gen_ai.operation.name": "chat"}, immutable=True
    )
    monkeypatch.setattr("ragprov.processor.BoundedAttributes", _RenamedAttributes)

    attributes, not_added = _merge_attributes(span, {"rag.diagnosis": "healthy"})

    assert dict(attributes.items()) == {"gen_ai.operation.name": "chat", "rag.diagnosis": "healthy"}
    assert not_added == 0

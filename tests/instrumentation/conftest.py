"""Fixtures shared by the vector-store instrumentation tests."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from ragprov import sidechannel
from ragprov.config import CAPTURE_CONTENT_ENV, OTEL_CAPTURE_CONTENT_ENV


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracer_provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider
    provider.shutdown()


@pytest.fixture(autouse=True)
def _content_capture_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts with content capture off, whatever the environment says."""
    monkeypatch.delenv(CAPTURE_CONTENT_ENV, raising=False)
    monkeypatch.delenv(OTEL_CAPTURE_CONTENT_ENV, raising=False)


@pytest.fixture
def side_channel() -> Iterator[None]:
    """Act as the provenance processor: payloads are kept until taken."""
    sidechannel.attach_consumer()
    yield
    sidechannel.detach_consumer()


@pytest.fixture
def unique_name() -> Callable[[str], str]:
    """Collection / table names unique per test (ephemeral stores live for the process)."""
    return lambda prefix: f"{prefix}_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def event_loop_runner() -> Iterator[Callable[[Any], Any]]:
    """Run coroutines on one loop per test (async clients bind to the loop they started on).

    ``run_until_complete`` copies the caller's context into the task, so context keys attached
    by the test (suppression, an outer span) are visible to the instrumented coroutine.
    """
    loop = asyncio.new_event_loop()
    yield loop.run_until_complete
    loop.close()


class Suppressed:
    """``with Suppressed():`` sets OTel's suppress-instrumentation key."""

    def __enter__(self) -> None:
        self._token = otel_context.attach(
            otel_context.set_value(otel_context._SUPPRESS_INSTRUMENTATION_KEY, True)
        )

    def __exit__(self, *exc: object) -> None:
        otel_context.detach(self._token)


@pytest.fixture
def suppressed() -> type[Suppressed]:
    return Suppressed


def pop_exact(attributes: Mapping[str, Any], expected: Mapping[str, Any]) -> dict[str, Any]:
    """Pop every expected key, then assert nothing unexpected is left.

    Values compare with ``==`` (tuples equal lists, floats with a small tolerance); a callable
    expected value is a predicate on the actual one.
    """
    remaining = dict(attributes)
    for key, value in expected.items():
        assert key in remaining, f"missing attribute {key}"
        actual = remaining.pop(key)
        if callable(value):
            assert value(actual), f"{key}={actual!r}"
        elif isinstance(value, (list, tuple)):
            assert list(actual) == pytest.approx(list(value)), key
        elif isinstance(value, float):
            assert actual == pytest.approx(value), key
        else:
            assert actual == value, key
    assert remaining == {}, f"unexpected attributes: {sorted(remaining)}"
    return remaining


@pytest.fixture
def check_exact() -> Callable[[Mapping[str, Any], Mapping[str, Any]], dict[str, Any]]:
    return pop_exact


def is_uuid7(value: object) -> bool:
    try:
        return uuid.UUID(str(value)).version == 7
    except ValueError:
        return False


@pytest.fixture
def uuid7() -> Callable[[object], bool]:
    return is_uuid7


@pytest.fixture
def finished(exporter: InMemorySpanExporter) -> Callable[[], list[ReadableSpan]]:
    """Finished spans in end order."""
    return lambda: list(exporter.get_finished_spans())

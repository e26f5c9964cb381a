"""Fixtures of the LLM-client tests: the local server (see llm_support.py), an in-memory
exporter, the side channel as the provenance processor sees it, an event loop per test."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from llm_support import LLMServer, Script, start_server
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from ragprov import sidechannel
from ragprov.config import CAPTURE_CONTENT_ENV, OTEL_CAPTURE_CONTENT_ENV


@pytest.fixture(scope="session")
def _server_process() -> Iterator[LLMServer]:
    server, state = start_server()
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def llm_server(_server_process: LLMServer) -> LLMServer:
    """The local server, with the default script and no recorded requests."""
    _server_process.script = Script()
    _server_process.requests.clear()
    return _server_process


# --------------------------------------------------------------------------- telemetry


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracer_provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider
    provider.shutdown()


@pytest.fixture
def spans(exporter: InMemorySpanExporter) -> Callable[[], list[ReadableSpan]]:
    """Finished spans, in end order."""
    return lambda: list(exporter.get_finished_spans())


@pytest.fixture(autouse=True)
def _content_capture_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts with content capture off, whatever the environment says."""
    monkeypatch.delenv(CAPTURE_CONTENT_ENV, raising=False)
    monkeypatch.delenv(OTEL_CAPTURE_CONTENT_ENV, raising=False)


@pytest.fixture
def side_channel() -> Iterator[Callable[[ReadableSpan], sidechannel.StepPayload | None]]:
    """Act as the provenance processor; returns ``take(span)`` → the span's step payload."""
    sidechannel.attach_consumer()

    def take(span: ReadableSpan) -> sidechannel.StepPayload | None:
        assert span.context is not None
        payload = sidechannel.take(span.context.trace_id, span.context.span_id)
        assert payload is None or isinstance(payload, sidechannel.StepPayload)
        return payload

    yield take
    sidechannel.detach_consumer()


@pytest.fixture
def run() -> Iterator[Callable[[Any], Any]]:
    """Run coroutines on one loop per test (async clients bind to the loop they started on)."""
    loop = asyncio.new_event_loop()
    yield loop.run_until_complete
    loop.close()

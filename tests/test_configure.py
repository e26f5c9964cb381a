"""``ragprov.configure()``: the provenance processor for apps that set up the SDK.

In-process tests use their own ``TracerProvider`` (never the global one) and shut it down, so
no provenance processor outlives its test. The last test runs an app in a subprocess, as a user
does.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from apps.app_support import app_attributes, run_retrieval
from apps.harness import (
    app_env,
    assert_attributes,
    enriched_retrieval_attributes,
    only_span,
    run_app,
)
from opentelemetry import trace
from opentelemetry.sdk.trace import ConcurrentMultiSpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import ragprov.processor
from ragprov.config import Settings
from ragprov.install import ExportProcessors, configure, install
from ragprov.processor import ProvenanceSpanProcessor


@pytest.fixture(autouse=True)
def _no_switches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
    monkeypatch.delenv("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", raising=False)


@pytest.fixture
def provider() -> Iterator[TracerProvider]:
    provider = TracerProvider(shutdown_on_exit=False)
    yield provider
    provider.shutdown()


def registered(provider: TracerProvider) -> tuple[object, ...]:
    return provider._active_span_processor._span_processors


def exported_retrieval(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> dict[str, object]:
    run_retrieval(provider.get_tracer("test"))
    assert provider.force_flush()
    (span,) = exporter.get_finished_spans()
    # The SDK stores sequences as tuples; exporters write them as arrays, as the apps' spans.
    return {
        key: list(value) if isinstance(value, tuple) else value
        for key, value in (span.attributes or {}).items()
    }


def test_puts_the_registered_processors_under_one_provenance_processor(
    provider: TracerProvider,
) -> None:
    first, second = (
        SimpleSpanProcessor(InMemorySpanExporter()),
        SimpleSpanProcessor(InMemorySpanExporter()),
    )
    provider.add_span_processor(first)
    provider.add_span_processor(second)

    installed = configure(provider)

    assert isinstance(installed, ProvenanceSpanProcessor)
    assert registered(provider) == (installed,)
    assert isinstance(installed.downstream, ExportProcessors)
    assert installed.downstream._span_processors == (first, second)


def test_the_exported_span_carries_provenance_signals(provider: TracerProvider) -> None:
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    configure(provider)

    assert_attributes(exported_retrieval(provider, exporter), enriched_retrieval_attributes())


def test_calling_it_twice_returns_the_installed_processor_and_adds_none(
    provider: TracerProvider,
) -> None:
    provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))

    first = configure(provider)
    second = configure(provider)

    assert second is first
    assert registered(provider) == (first,)


def test_a_processor_added_after_configure_sees_spans_without_signals(
    provider: TracerProvider,
) -> None:
    provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    configure(provider)
    late = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(late))

    assert_attributes(exported_retrieval(provider, late), app_attributes())


def test_a_second_call_moves_processors_added_since_under_the_installed_one(
    provider: TracerProvider,
) -> None:
    early = SimpleSpanProcessor(InMemorySpanExporter())
    provider.add_span_processor(early)
    installed = configure(provider)
    late_exporter = InMemorySpanExporter()
    late = SimpleSpanProcessor(late_exporter)
    provider.add_span_processor(late)

    assert configure(provider) is installed

    assert installed is not None
    assert registered(provider) == (installed,)
    assert installed.downstream._span_processors == (early, late)  # type: ignore[attr-defined]
    assert_attributes(exported_retrieval(provider, late_exporter), enriched_retrieval_attributes())


def test_a_hand_composed_provenance_processor_is_returned_and_left_as_it_is(
    provider: TracerProvider,
) -> None:
    export = SimpleSpanProcessor(InMemorySpanExporter())
    composed = ProvenanceSpanProcessor(export)
    beside = SimpleSpanProcessor(InMemorySpanExporter())
    provider.add_span_processor(composed)
    provider.add_span_processor(beside)

    assert configure(provider) is composed

    assert registered(provider) == (composed, beside)
    assert composed.downstream is export


def test_defaults_to_the_global_tracer_provider(
    provider: TracerProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    monkeypatch.setattr("opentelemetry.trace.get_tracer_provider", lambda: provider)

    installed = configure()

    assert registered(provider) == (installed,)


def test_passes_the_given_settings_to_the_processor(provider: TracerProvider) -> None:
    provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    settings = Settings(utilisation_threshold=0.5)

    installed = configure(provider, settings=settings)

    assert installed is not None
    assert installed.settings is settings


def test_a_concurrent_multi_span_processor_is_wrapped_the_same_way() -> None:
    active = ConcurrentMultiSpanProcessor(num_threads=1)
    provider = TracerProvider(shutdown_on_exit=False, active_span_processor=active)
    export = SimpleSpanProcessor(InMemorySpanExporter())
    provider.add_span_processor(export)
    try:
        installed = configure(provider)

        assert active._span_processors == (installed,)
        assert installed is not None
        assert installed.downstream._span_processors == (export,)  # type: ignore[attr-defined]
    finally:
        provider.shutdown()


@pytest.mark.parametrize(
    "not_sdk", [trace.ProxyTracerProvider(), trace.NoOpTracerProvider()], ids=type
)
def test_a_provider_that_is_not_the_sdks_is_reported_and_left_alone(
    not_sdk: trace.TracerProvider, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="ragprov"):
        assert configure(not_sdk) is None

    assert [record.levelname for record in caplog.records] == ["WARNING"]
    assert "is not an OpenTelemetry SDK TracerProvider" in caplog.records[0].getMessage()


def test_zero_code_callers_log_a_provider_that_is_not_the_sdks_at_debug_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.DEBUG, logger="ragprov"):
        assert install(trace.ProxyTracerProvider()) is None

    assert [record.levelname for record in caplog.records] == ["DEBUG"]


def test_a_provider_without_processors_is_reported_and_left_alone(
    provider: TracerProvider, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="ragprov"):
        assert configure(provider) is None

    assert registered(provider) == ()
    assert "no span processor yet" in caplog.text


def test_sdk_disabled_installs_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    provider = TracerProvider(shutdown_on_exit=False)
    export = SimpleSpanProcessor(InMemorySpanExporter())
    provider.add_span_processor(export)
    try:
        assert configure(provider) is None

        assert registered(provider) == (export,)
    finally:
        provider.shutdown()


@pytest.mark.parametrize("value", ["ragprov", " requests , ragprov "])
def test_ragprov_in_disabled_instrumentations_installs_nothing(
    provider: TracerProvider, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", value)
    export = SimpleSpanProcessor(InMemorySpanExporter())
    provider.add_span_processor(export)

    assert configure(provider) is None

    assert registered(provider) == (export,)


@pytest.mark.parametrize("value", ["ragprov_chromadb", "*", "ragprov-extra", ""])
def test_other_disabled_instrumentations_keep_it_enabled(
    provider: TracerProvider, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", value)
    provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))

    assert isinstance(configure(provider), ProvenanceSpanProcessor)


def test_a_failure_inside_is_logged_and_leaves_the_processors_as_they_were(
    provider: TracerProvider, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken(ProvenanceSpanProcessor):
        def __init__(self, *args: object, **kwargs: object) -> None:
            raise RuntimeError("boom")

    monkeypatch.setattr(ragprov.processor, "ProvenanceSpanProcessor", Broken)
    export = SimpleSpanProcessor(InMemorySpanExporter())
    provider.add_span_processor(export)

    with caplog.at_level(logging.WARNING, logger="ragprov"):
        assert configure(provider) is None

    assert registered(provider) == (export,)
    assert "could not install the provenance span processor" in caplog.text


def test_an_app_that_builds_its_provider_and_calls_configure_twice_exports_signals(
    tmp_path: Path,
) -> None:
    run = run_app("configure_app.py", app_env(tmp_path), instrument=False)

    assert run.report["processors"] == [
        {
            "class": "ProvenanceSpanProcessor",
            "downstream": {
                "class": "ExportProcessors",
                "processors": [{"class": "BatchSpanProcessor", "exporter": "ConsoleSpanExporter"}],
            },
        }
    ]
    assert_attributes(only_span(run.console_spans())["attributes"], enriched_retrieval_attributes())

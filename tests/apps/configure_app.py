"""An app that sets up the SDK itself and calls ragprov's configure() (twice, to show it is safe).

Run with plain ``python`` (no opentelemetry-instrument).
"""

from __future__ import annotations

from app_support import run_retrieval, write_report
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

import ragprov

if __name__ == "__main__":
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    trace.set_tracer_provider(provider)
    ragprov.configure()
    ragprov.configure(provider)  # a second call finds the installed processor and adds none
    run_retrieval(trace.get_tracer("configure_app"))
    write_report()

"""Shared by the benchmark scripts: a no-op exporter and a way to time the application thread.

Benchmarks import it as ``_support`` (they run as scripts from the repository root, so their own
folder is on ``sys.path``).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from ragprov.processor import ProvenanceSpanProcessor, _Flush


class NoopExporter(SpanExporter):
    """Exports nothing and counts what it is given."""

    def __init__(self) -> None:
        self.count = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.count += len(spans)
        return SpanExportResult.SUCCESS


class _Gate(threading.Event):
    """A flush marker's event whose set() blocks the worker until the gate is released."""

    def __init__(self) -> None:
        super().__init__()
        self.reached = threading.Event()
        self.release = threading.Event()

    def set(self) -> None:
        self.reached.set()
        self.release.wait()
        super().set()


class PausedWorker:
    """Holds the processor's worker while the application thread is timed, then drains.

    The worker would otherwise compete for the interpreter lock during the timed loop; what is
    timed is then exactly what the application thread pays. Leaving the block drains the queue.
    """

    def __init__(self, processor: ProvenanceSpanProcessor | None) -> None:
        self.processor = processor
        self.gate = _Gate()

    def __enter__(self) -> None:
        if self.processor is not None:
            self.processor._ensure_worker()
            self.processor._queue.put(_Flush(self.gate))
            self.gate.reached.wait(5)

    def __exit__(self, *exc: object) -> None:
        if self.processor is not None:
            self.gate.release.set()
            self.processor.force_flush(600_000)

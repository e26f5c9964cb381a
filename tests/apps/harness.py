"""Test-side support for running the apps in a subprocess and reading what they exported.

* :func:`run_app` runs an app as a user would (``opentelemetry-instrument python app.py`` with
  the venv's ``bin`` first on ``PATH``), in an environment cleared of ``OTEL_*``/``RAGPROV_*``.
* :func:`console_spans` parses what ``ConsoleSpanExporter`` printed.
* :class:`OtlpHttpReceiver` / :class:`OtlpGrpcReceiver` are collector-like OTLP trace
  receivers on 127.0.0.1 that decode the protobuf requests.
* :func:`enriched_retrieval_attributes` is what the exported retrieval span of the apps must
  carry, and :func:`assert_attributes` checks an attribute set exactly.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from apps import app_support
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from ragprov.signals import compute_set_signals, fingerprint

APPS = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent
REPORT_ENV = "RAGPROV_TEST_REPORT"

# Exported spans as {"name": ..., "attributes": {...}}, attribute lists as Python lists.
Span = dict[str, Any]

RETRIEVAL_SPAN_NAME = f"retrieval {app_support.DATA_SOURCE_ID}"


def enriched_retrieval_attributes() -> dict[str, Any]:
    """The app's own attributes plus the set signals the provenance processor adds.

    Quality comes from the chunks' metadata (mean of the three scores per chunk, weighted by
    1/log2(rank + 1)); one chunk is stale, one has a conflict flag. Diversity and redundancy are
    lexical (no embeddings) and taken from the signals engine, which has its own tests.
    """
    texts = [text for text, _, _, _ in app_support.CHUNKS]
    metadata = [meta for _, meta, _, _ in app_support.CHUNKS]
    qualities = [
        (meta["semantic_density"] + meta["completeness"] + meta["faithfulness"]) / 3
        for meta in metadata
    ]
    weights = [1 / math.log2(rank + 1) for rank in range(1, len(qualities) + 1)]
    similarity = compute_set_signals(
        [fingerprint(text) for text in texts], metadata=metadata
    ).similarity
    return {
        **app_support.app_attributes(),
        "rag.quality_method": "metadata",
        "rag.quality_density": sum(q * w for q, w in zip(qualities, weights, strict=True))
        / sum(weights),
        "rag.stale_chunk_count": 1,
        "rag.conflict_chunk_count": 1,
        "rag.similarity_method": "lexical",
        "rag.coverage_diversity": similarity.coverage_diversity,
        "rag.redundancy_ratio": similarity.redundancy_ratio,
    }


def assert_attributes(actual: Mapping[str, Any], expected: Mapping[str, Any]) -> None:
    """``actual`` has exactly the ``expected`` attributes (floats to 1e-12)."""
    remaining = dict(actual)
    for key, value in expected.items():
        assert key in remaining, f"missing attribute {key}"
        got = remaining.pop(key)
        if isinstance(value, float):
            assert got == pytest.approx(value, rel=1e-12, abs=1e-12), key
        else:
            assert got == value, key
    assert remaining == {}, "unexpected attributes"


def only_span(spans: list[Span], name: str = RETRIEVAL_SPAN_NAME) -> Span:
    """The single exported span, checked to be the one named ``name``."""
    assert [span["name"] for span in spans] == [name]
    return spans[0]


@dataclass
class AppRun:
    stdout: str
    stderr: str
    report: dict[str, Any]

    def console_spans(self) -> list[Span]:
        return console_spans(self.stdout)


def app_env(tmp_path: Path, bin_dir: Path = VENV_BIN, **variables: str) -> dict[str, str]:
    """The environment of a user's shell: venv bin first on PATH, only the OTEL_* given."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OTEL_", "RAGPROV_")) and key not in {"PYTHONPATH", "VIRTUAL_ENV"}
    }
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["OTEL_METRICS_EXPORTER"] = "none"
    env["OTEL_LOGS_EXPORTER"] = "none"
    env[REPORT_ENV] = str(tmp_path / "report.json")
    env.update(variables)
    return env


def run_app(
    app: str,
    env: Mapping[str, str],
    *,
    instrument: bool = True,
    bin_dir: Path = VENV_BIN,
) -> AppRun:
    """Run ``tests/apps/<app>`` (under opentelemetry-instrument unless told otherwise)."""
    script = str(APPS / app)
    command = [str(bin_dir / "python"), script]
    if instrument:
        command = [str(bin_dir / "opentelemetry-instrument"), "python", script]
    done = subprocess.run(
        command, env=dict(env), capture_output=True, text=True, timeout=180, check=False
    )
    assert done.returncode == 0, f"{command} failed:\n{done.stderr}"
    report_path = Path(env[REPORT_ENV])
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    return AppRun(done.stdout, done.stderr, report)


def console_spans(stdout: str) -> list[Span]:
    """The spans ConsoleSpanExporter printed (one indented JSON document per span)."""
    decoder = json.JSONDecoder()
    spans: list[Span] = []
    position = 0
    while True:
        while position < len(stdout) and stdout[position].isspace():
            position += 1
        if position >= len(stdout):
            return spans
        document, position = decoder.raw_decode(stdout, position)
        spans.append({"name": document["name"], "attributes": dict(document["attributes"])})


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    return getattr(value, kind) if kind is not None else None


def _spans_of(request: trace_service_pb2.ExportTraceServiceRequest) -> list[Span]:
    return [
        {
            "name": span.name,
            "attributes": {attribute.key: _value(attribute.value) for attribute in span.attributes},
        }
        for resource_spans in request.resource_spans
        for scope_spans in resource_spans.scope_spans
        for span in scope_spans.spans
    ]


class _Collected:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spans: list[Span] = []

    def add(self, request: trace_service_pb2.ExportTraceServiceRequest) -> None:
        with self._lock:
            self._spans.extend(_spans_of(request))

    def spans(self) -> list[Span]:
        with self._lock:
            return list(self._spans)


class OtlpHttpReceiver(_Collected):
    """OTLP/HTTP (protobuf) trace receiver; ``endpoint`` is the full ``/v1/traces`` URL."""

    endpoint: str


@contextmanager
def otlp_http_receiver() -> Iterator[OtlpHttpReceiver]:
    receiver = OtlpHttpReceiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            if self.path != "/v1/traces":
                self.send_response(404)
                self.end_headers()
                return
            receiver.add(trace_service_pb2.ExportTraceServiceRequest.FromString(body))
            reply = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.endpoint = f"http://127.0.0.1:{server.server_address[1]}/v1/traces"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


class OtlpGrpcReceiver(_Collected):
    """OTLP/gRPC trace receiver; ``endpoint`` is ``http://127.0.0.1:<port>``."""

    endpoint: str


@contextmanager
def otlp_grpc_receiver() -> Iterator[OtlpGrpcReceiver]:
    import grpc  # type: ignore[import-untyped]
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

    receiver = OtlpGrpcReceiver()

    class Service(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(
            self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
        ) -> trace_service_pb2.ExportTraceServiceResponse:
            receiver.add(request)
            return trace_service_pb2.ExportTraceServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Service(), server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    receiver.endpoint = f"http://127.0.0.1:{port}"
    try:
        yield receiver
    finally:
        server.stop(grace=None)

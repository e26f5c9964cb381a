"""End to end against a real OTLP backend: Arize Phoenix.

An example app that uses no ragprov API runs under `opentelemetry-instrument`, exports over OTLP
(HTTP, then gRPC) to a Phoenix server started here on loopback, and the provenance attributes
and lineage are read back over Phoenix's REST API with their types. Phoenix lives in its own
virtual environment (.venv-phoenix, created on first use from phoenix-requirements.txt, ~1 min).
The server is always stopped, whatever the test outcome.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ragprov.demo.responder import running_responder

pytestmark = [pytest.mark.slow, pytest.mark.phoenix]

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = Path(__file__).with_name("phoenix-requirements.txt")
PHOENIX_VENV = ROOT / ".venv-phoenix"
EXAMPLE = ROOT / "examples" / "chromadb_openai.py"
VENV_BIN = Path(sys.executable).parent
QUESTION = "How long do customers have to return a product, and how are refunds paid?"
ANSWER = (
    "Customers may return any unused product within 30 days of delivery for a full refund; "
    "refunds go to the original payment method within 5 business days."
)
DIAGNOSES = {
    "acceptable_fallback",
    "ungrounded_answer",
    "data_problem",
    "retrieval_composition",
    "navigation",
    "healthy",
}
HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass
class Phoenix:
    http_port: int
    grpc_port: int

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def spans(self, project: str) -> list[dict[str, Any]]:
        url = f"{self.base_url}/v1/projects/{project}/spans?limit=1000"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return list(json.load(response)["data"])
        except urllib.error.HTTPError as error:
            if error.code == 404:  # the project exists once its first span is ingested
                return []
            raise


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _phoenix_bin() -> Path:
    version = REQUIREMENTS.read_text().split("==")[-1].strip()
    stamp = PHOENIX_VENV / f".installed-{version}"
    if not stamp.exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(PHOENIX_VENV)], check=True)
        subprocess.run(
            [str(PHOENIX_VENV / "bin" / "pip"), "install", "--quiet", "-r", str(REQUIREMENTS)],
            check=True,
            timeout=900,
        )
        stamp.touch()
    return PHOENIX_VENV / "bin" / "phoenix"


@pytest.fixture(scope="module")
def phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Phoenix]:
    server = Phoenix(_free_port(), _free_port())
    working_dir = tmp_path_factory.mktemp("phoenix")
    env = {
        **os.environ,
        "PHOENIX_WORKING_DIR": str(working_dir),
        "PHOENIX_HOST": "127.0.0.1",
        "PHOENIX_PORT": str(server.http_port),
        "PHOENIX_GRPC_PORT": str(server.grpc_port),
        "PHOENIX_TELEMETRY_ENABLED": "false",
        "PHOENIX_ALLOW_EXTERNAL_RESOURCES": "false",
    }
    log = (working_dir / "phoenix.log").open("w")
    process = subprocess.Popen(
        [str(_phoenix_bin()), "serve"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        _wait_healthy(server, process, working_dir / "phoenix.log")
        yield server
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
        log.close()


def _wait_healthy(server: Phoenix, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"phoenix exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{server.base_url}/healthz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"phoenix was not healthy within 180 s:\n{log.read_text()[-3000:]}")


def _run_example(project: str, exporter_env: dict[str, str], llm_url: str) -> None:
    env = {
        **os.environ,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_SERVICE_NAME": "ragprov-example",
        "OTEL_RESOURCE_ATTRIBUTES": f"openinference.project.name={project}",
        "OPENAI_BASE_URL": llm_url,
        **exporter_env,
    }
    result = subprocess.run(
        [str(VENV_BIN / "opentelemetry-instrument"), "python", str(EXAMPLE)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert ANSWER in result.stdout


def _read_back(phoenix: Phoenix, project: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The retrieval span and the answer span, once Phoenix has ingested them."""
    deadline = time.monotonic() + 90
    while True:
        spans = phoenix.spans(project)
        retrievals = [span for span in spans if span["name"] == "retrieval handbook"]
        answers = [span for span in spans if "rag.utilisation_ratio" in span.get("attributes", {})]
        if retrievals and answers:
            return retrievals[0], answers[0]
        if time.monotonic() > deadline:
            pytest.fail(f"spans not ingested; got {[span['name'] for span in spans]}")
        time.sleep(1)


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_provenance_reaches_phoenix_with_its_types(phoenix: Phoenix, protocol: str) -> None:
    project = "ragprov-e2e-" + ("http" if protocol == "http/protobuf" else "grpc")
    endpoint = (
        f"{phoenix.base_url}/v1/traces"
        if protocol == "http/protobuf"
        else f"http://127.0.0.1:{phoenix.grpc_port}"
    )
    with running_responder({QUESTION: ANSWER}) as llm_url:
        _run_example(
            project,
            {
                "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": endpoint,
            },
            llm_url,
        )
    retrieval_span, answer_span = _read_back(phoenix, project)

    retrieval = retrieval_span["attributes"]
    assert retrieval["gen_ai.operation.name"] == "retrieval"
    assert retrieval["gen_ai.data_source.id"] == "handbook"
    assert isinstance(retrieval["rag.retrieval_set_id"], str)
    assert HEX64.match(retrieval["rag.chunk_set_hash"])
    assert len(retrieval["rag.chunk_ids"]) == 3
    assert all(isinstance(chunk_id, str) for chunk_id in retrieval["rag.chunk_ids"])
    assert all(isinstance(score, float) for score in retrieval["rag.chunk_scores"])
    assert isinstance(retrieval["rag.quality_density"], float)
    assert isinstance(retrieval["rag.coverage_diversity"], float)
    assert isinstance(retrieval["rag.stale_chunk_count"], int)
    assert "gen_ai.retrieval.documents" not in retrieval  # content capture is off

    answer = answer_span["attributes"]
    assert answer["rag.ancestor_retrieval_set_ids"] == [retrieval["rag.retrieval_set_id"]]
    assert answer["rag.ancestor_chunk_set_hashes"] == [retrieval["rag.chunk_set_hash"]]
    assert answer["rag.lineage_method"] in ("content_match", "scope")
    assert isinstance(answer["rag.step_id"], str)
    assert isinstance(answer["rag.utilisation_ratio"], float)
    assert isinstance(answer["rag.utilisation_reliable"], bool)
    assert isinstance(answer["rag.used_chunk_count"], int)
    assert answer["rag.diagnosis"] in DIAGNOSES
    assert isinstance(answer["rag.diagnosis_reason"], str)
    assert "gen_ai.input.messages" not in answer

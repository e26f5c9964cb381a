"""Zero-code setup: ``opentelemetry-instrument python app.py`` exports enriched spans.

The apps in tests/apps run in a subprocess exactly as a user runs them (venv ``bin`` first on
``PATH``, only the ``OTEL_*`` variables a test sets). Each app writes a small report of how the
SDK ended up configured (``RAGPROV_TEST_REPORT``), so a test can state which span processors
exist. The coexistence tests install ``opentelemetry-distro`` beside ragprov in a separate venv.
"""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from apps.app_support import app_attributes
from apps.harness import (
    app_env,
    assert_attributes,
    enriched_retrieval_attributes,
    only_span,
    otlp_grpc_receiver,
    otlp_http_receiver,
    run_app,
)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import ragprov.distro
from ragprov.distro import RagprovDistro, post_instrument
from ragprov.processor import ProvenanceSpanProcessor

REPO = Path(__file__).resolve().parents[1]


def wrapped(*exporters: str) -> list[dict[str, Any]]:
    """The report of one provenance processor owning a BatchSpanProcessor per exporter."""
    return [
        {
            "class": "ProvenanceSpanProcessor",
            "downstream": {
                "class": "ExportProcessors",
                "processors": [
                    {"class": "BatchSpanProcessor", "exporter": exporter} for exporter in exporters
                ],
            },
        }
    ]


# -- opentelemetry-instrument with ragprov alone -------------------------------------------------


def test_console_exporter_prints_the_retrieval_span_with_provenance_signals(
    tmp_path: Path,
) -> None:
    run = run_app("retrieval_app.py", app_env(tmp_path, OTEL_TRACES_EXPORTER="console"))

    span = only_span(run.console_spans())
    assert_attributes(span["attributes"], enriched_retrieval_attributes())


def test_ragprov_configurator_puts_the_exporter_processor_under_the_provenance_processor(
    tmp_path: Path,
) -> None:
    run = run_app("retrieval_app.py", app_env(tmp_path, OTEL_TRACES_EXPORTER="console"))

    assert run.report["ragprov_configurator_ran"] is True
    assert run.report["processors"] == wrapped("ConsoleSpanExporter")


def test_otlp_http_protobuf_delivers_the_enriched_span_to_a_receiver(tmp_path: Path) -> None:
    with otlp_http_receiver() as receiver:
        env = app_env(
            tmp_path,
            OTEL_TRACES_EXPORTER="otlp",
            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
            OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=receiver.endpoint,
        )
        run_app("retrieval_app.py", env)

    span = only_span(receiver.spans())
    assert_attributes(span["attributes"], enriched_retrieval_attributes())


def test_otlp_grpc_is_the_default_protocol_and_delivers_the_enriched_span(tmp_path: Path) -> None:
    with otlp_grpc_receiver() as receiver:
        env = app_env(
            tmp_path,
            OTEL_TRACES_EXPORTER="otlp",
            OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=receiver.endpoint,
        )
        run_app("retrieval_app.py", env)

    span = only_span(receiver.spans())
    assert_attributes(span["attributes"], enriched_retrieval_attributes())


def test_otlp_is_the_default_exporter_as_with_opentelemetry_distro(tmp_path: Path) -> None:
    with otlp_grpc_receiver() as receiver:
        env = app_env(tmp_path, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=receiver.endpoint)
        run = run_app("retrieval_app.py", env)

    assert run.report["processors"] == wrapped("OTLPSpanExporter")
    assert_attributes(only_span(receiver.spans())["attributes"], enriched_retrieval_attributes())


def test_two_exporters_share_one_provenance_processor_and_both_get_signals(
    tmp_path: Path,
) -> None:
    with otlp_http_receiver() as receiver:
        env = app_env(
            tmp_path,
            OTEL_TRACES_EXPORTER="console,otlp",
            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
            OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=receiver.endpoint,
        )
        run = run_app("retrieval_app.py", env)

    assert run.report["processors"] == wrapped("ConsoleSpanExporter", "OTLPSpanExporter")
    expected = enriched_retrieval_attributes()
    assert_attributes(only_span(run.console_spans())["attributes"], expected)
    assert_attributes(only_span(receiver.spans())["attributes"], expected)


def test_ragprov_in_disabled_instrumentations_exports_the_span_as_the_app_made_it(
    tmp_path: Path,
) -> None:
    env = app_env(
        tmp_path,
        OTEL_TRACES_EXPORTER="console",
        OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="requests, ragprov",
    )
    run = run_app("retrieval_app.py", env)

    assert run.report["processors"] == [
        {"class": "BatchSpanProcessor", "exporter": "ConsoleSpanExporter"}
    ]
    assert_attributes(only_span(run.console_spans())["attributes"], app_attributes())


def test_wildcard_in_disabled_instrumentations_skips_instrumentors_but_keeps_signals(
    tmp_path: Path,
) -> None:
    env = app_env(
        tmp_path, OTEL_TRACES_EXPORTER="console", OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="*"
    )
    run = run_app("retrieval_app.py", env)

    assert_attributes(only_span(run.console_spans())["attributes"], enriched_retrieval_attributes())


def test_sdk_disabled_exports_nothing_and_installs_no_provenance_processor(
    tmp_path: Path,
) -> None:
    env = app_env(tmp_path, OTEL_TRACES_EXPORTER="console", OTEL_SDK_DISABLED="true")
    run = run_app("retrieval_app.py", env)

    assert run.stdout == ""
    assert run.report["processors"] == [
        {"class": "BatchSpanProcessor", "exporter": "ConsoleSpanExporter"}
    ]


def test_the_configurator_variable_set_by_the_distro_is_not_left_for_child_processes(
    tmp_path: Path,
) -> None:
    run = run_app("retrieval_app.py", app_env(tmp_path, OTEL_TRACES_EXPORTER="console"))

    assert run.report["OTEL_PYTHON_CONFIGURATOR"] is None


def test_a_configurator_variable_the_user_set_is_kept(tmp_path: Path) -> None:
    env = app_env(
        tmp_path, OTEL_TRACES_EXPORTER="console", OTEL_PYTHON_CONFIGURATOR="ragprov_configurator"
    )
    run = run_app("retrieval_app.py", env)

    assert run.report["OTEL_PYTHON_CONFIGURATOR"] == "ragprov_configurator"


# -- the distro and the hook, in process ---------------------------------------------------------

DISTRO_VARIABLES = (
    "OTEL_TRACES_EXPORTER",
    "OTEL_METRICS_EXPORTER",
    "OTEL_LOGS_EXPORTER",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_PYTHON_CONFIGURATOR",
)


@pytest.fixture
def clean_distro_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in DISTRO_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setitem(ragprov.distro._state, "set_configurator", False)
    return monkeypatch


def test_distro_sets_opentelemetry_distro_defaults_and_ragprov_configurator(
    clean_distro_env: pytest.MonkeyPatch,
) -> None:
    RagprovDistro().configure()

    assert {name: os.environ.get(name) for name in DISTRO_VARIABLES} == {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_METRICS_EXPORTER": "otlp",
        "OTEL_LOGS_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_PYTHON_CONFIGURATOR": "ragprov_configurator",
    }


def test_distro_keeps_every_value_the_user_set(clean_distro_env: pytest.MonkeyPatch) -> None:
    user = {
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_PYTHON_CONFIGURATOR": "vendor_configurator",
    }
    for name, value in user.items():
        clean_distro_env.setenv(name, value)

    RagprovDistro().configure()

    assert {name: os.environ.get(name) for name in DISTRO_VARIABLES} == user


def test_post_instrument_unsets_the_configurator_variable_only_when_the_distro_set_it(
    clean_distro_env: pytest.MonkeyPatch,
) -> None:
    clean_distro_env.setattr(ragprov.distro, "install", lambda: None)
    RagprovDistro().configure()

    post_instrument()

    assert "OTEL_PYTHON_CONFIGURATOR" not in os.environ


def test_post_instrument_keeps_a_configurator_variable_the_user_set(
    clean_distro_env: pytest.MonkeyPatch,
) -> None:
    clean_distro_env.setattr(ragprov.distro, "install", lambda: None)
    clean_distro_env.setenv("OTEL_PYTHON_CONFIGURATOR", "vendor_configurator")
    RagprovDistro().configure()

    post_instrument()

    assert os.environ["OTEL_PYTHON_CONFIGURATOR"] == "vendor_configurator"


def test_post_instrument_wraps_the_processors_of_the_global_sdk_provider(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    provider = TracerProvider(shutdown_on_exit=False)
    export = SimpleSpanProcessor(InMemorySpanExporter())
    provider.add_span_processor(export)
    monkeypatch.setattr("opentelemetry.trace.get_tracer_provider", lambda: provider)
    try:
        post_instrument()

        (installed,) = provider._active_span_processor._span_processors
        assert isinstance(installed, ProvenanceSpanProcessor)
        assert installed.downstream._span_processors == (export,)  # type: ignore[attr-defined]
    finally:
        provider.shutdown()


# -- beside opentelemetry-distro (separate venv) -------------------------------------------------


@pytest.fixture(scope="session")
def distro_venv_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv holding ragprov (from this work tree) and opentelemetry-distro, from the registry.

    opentelemetry-distro is pinned to the opentelemetry-instrumentation release of the test venv,
    so both venvs run the same loader code.
    """
    root = tmp_path_factory.mktemp("venv-with-opentelemetry-distro")
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True, timeout=120)
    bin_dir = root / "bin"
    pin = f"opentelemetry-distro=={version('opentelemetry-instrumentation')}"
    done = subprocess.run(
        [str(bin_dir / "python"), "-m", "pip", "install", "-q", str(REPO), pin],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"could not install ragprov and {pin}:\n{done.stdout}\n{done.stderr}")
    return bin_dir


@pytest.mark.slow
def test_separate_venv_has_both_distros_and_both_configurators(distro_venv_bin: Path) -> None:
    listing = subprocess.run(
        [
            str(distro_venv_bin / "python"),
            "-c",
            "from importlib.metadata import entry_points as e\n"
            "for g in ('opentelemetry_distro', 'opentelemetry_configurator'):\n"
            "    print(g, sorted(p.name for p in e(group=g)))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()

    assert listing == [
        "opentelemetry_distro ['distro', 'ragprov_distro']",
        "opentelemetry_configurator ['configurator', 'ragprov_configurator']",
    ]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("distro", "configurator"),
    [
        (None, None),
        ("distro", None),
        ("distro", "configurator"),
        ("ragprov_distro", None),
        ("ragprov_distro", "configurator"),
    ],
    ids=[
        "discovery-order",
        "their-distro",
        "their-distro-and-configurator",
        "ragprov-distro",
        "ragprov-distro-their-configurator",
    ],
)
def test_beside_opentelemetry_distro_one_provenance_processor_enriches_the_export(
    distro_venv_bin: Path, tmp_path: Path, distro: str | None, configurator: str | None
) -> None:
    selection = {"OTEL_PYTHON_DISTRO": distro, "OTEL_PYTHON_CONFIGURATOR": configurator}
    env = app_env(
        tmp_path,
        bin_dir=distro_venv_bin,
        OTEL_TRACES_EXPORTER="console",
        **{name: value for name, value in selection.items() if value is not None},
    )
    run = run_app("retrieval_app.py", env, bin_dir=distro_venv_bin)

    assert run.report["processors"] == wrapped("ConsoleSpanExporter")
    assert_attributes(only_span(run.console_spans())["attributes"], enriched_retrieval_attributes())


@pytest.mark.slow
def test_their_configurator_is_wrapped_by_the_post_instrument_hook(
    distro_venv_bin: Path, tmp_path: Path
) -> None:
    env = app_env(
        tmp_path,
        bin_dir=distro_venv_bin,
        OTEL_TRACES_EXPORTER="console",
        OTEL_PYTHON_DISTRO="distro",
        OTEL_PYTHON_CONFIGURATOR="configurator",
    )
    run = run_app("retrieval_app.py", env, bin_dir=distro_venv_bin)

    assert run.report["ragprov_configurator_ran"] is False
    assert run.report["processors"] == wrapped("ConsoleSpanExporter")


@pytest.mark.slow
def test_ragprov_distro_selects_ragprov_configurator_beside_theirs(
    distro_venv_bin: Path, tmp_path: Path
) -> None:
    env = app_env(
        tmp_path,
        bin_dir=distro_venv_bin,
        OTEL_TRACES_EXPORTER="console",
        OTEL_PYTHON_DISTRO="ragprov_distro",
    )
    run = run_app("retrieval_app.py", env, bin_dir=distro_venv_bin)

    assert run.report["ragprov_configurator_ran"] is True

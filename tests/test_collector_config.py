"""Checks of the collector configurations in collector-config/, without the collector binary.

Each check is a function returning a list of problems; the tests run it on the shipped files
(expecting none) and on deliberately broken copies (expecting the problem to be reported).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ragprov.semconv.attributes import ALL_RAG_ATTRIBUTES, RagDiagnosisValues

ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = ROOT / "collector-config"
COMPONENTS_FILE = CONFIG_DIR / "components-otelcol-contrib.txt"
CONFIG_FILES = ("jaeger.yaml", "datadog.yaml", "honeycomb.yaml", "tail-sampling.yaml")

KINDS = ("receivers", "processors", "exporters", "connectors", "extensions")
SIGNALS = ("traces", "metrics", "logs")

# Message and retrieval content that must never leave the collector (DESIGN: privacy defaults).
CONTENT_ATTRIBUTES = frozenset(
    {
        "gen_ai.input.messages",
        "gen_ai.output.messages",
        "gen_ai.system_instructions",
        "gen_ai.retrieval.query.text",
        "gen_ai.retrieval.documents",
    }
)
# Diagnoses whose traces are always kept; healthy and acceptable_fallback are sampled.
KEPT_DIAGNOSES = frozenset(
    {"ungrounded_answer", "navigation", "data_problem", "retrieval_composition"}
)
SPANMETRICS_REQUIRED_DIMENSIONS = frozenset({"rag.diagnosis", "gen_ai.data_source.id"})
# Per-event or per-set values: as metric dimensions they would create unbounded series.
HIGH_CARDINALITY = frozenset(
    {
        "rag.retrieval_set_id",
        "rag.chunk_set_hash",
        "rag.chunk_ids",
        "rag.chunk_scores",
        "rag.source_document_ids",
        "rag.query_hash",
        "rag.step_id",
        "rag.ancestor_retrieval_set_ids",
        "rag.ancestor_chunk_set_hashes",
        "rag.used_chunk_ids",
        "rag.diagnosis_reason",
    }
)

# Signals each checked component supports, from the stability section of its metadata.yaml.
SIGNAL_SUPPORT: dict[str, dict[str, frozenset[str]]] = {
    "receivers": {"otlp": frozenset(SIGNALS)},
    "processors": {
        "batch": frozenset(SIGNALS),
        "memory_limiter": frozenset(SIGNALS),
        "attributes": frozenset(SIGNALS),
        "transform": frozenset(SIGNALS),
        "redaction": frozenset(SIGNALS),
        "tail_sampling": frozenset({"traces"}),
        "probabilistic_sampler": frozenset({"traces", "logs"}),
    },
    "exporters": {
        "debug": frozenset(SIGNALS),
        "otlp": frozenset(SIGNALS),
        "otlphttp": frozenset(SIGNALS),
        "datadog": frozenset(SIGNALS),
    },
}
# (exporter-side signal, receiver-side signal) pairs each checked connector supports.
CONNECTOR_SUPPORT: dict[str, frozenset[tuple[str, str]]] = {
    "forward": frozenset((signal, signal) for signal in SIGNALS),
    "spanmetrics": frozenset({("traces", "metrics")}),
    "datadog": frozenset({("traces", "metrics"), ("traces", "traces")}),
}

RAG_NAME = re.compile(r"\brag\.[a-z0-9_]*[a-z0-9]")
ENV_REF = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?::-[^}]*)?\}")
SECRET_KEY = re.compile(r"(^|[-_.])(key|api[-_]?key|token|authorization|x-honeycomb-team)$", re.I)


# -- the kept component list -------------------------------------------------------------------


def load_components(path: Path = COMPONENTS_FILE) -> tuple[str, dict[str, dict[str, str]]]:
    """Returns (collector version, {kind: {config type: Go module}}) of the checked types."""
    version = ""
    kinds: dict[str, dict[str, str]] = {}
    current: str | None = None
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line.startswith("#"):
            found = re.search(r"Collector version: .* (v\d+\.\d+\.\d+)", line)
            if found:
                version = found.group(1)
            continue
        if not line:
            continue
        section = re.fullmatch(r"\[(\w+)\]", line)
        if section:
            current = section.group(1)
            kinds.setdefault(current, {})
            continue
        assert current is not None, f"entry outside a section: {line!r}"
        config_type, module = line.split()
        if config_type != "-":
            assert config_type not in kinds[current], f"duplicate {current} type {config_type}"
            kinds[current][config_type] = module
    return version, kinds


def manifest_modules(path: Path = COMPONENTS_FILE) -> dict[str, list[str]]:
    modules: dict[str, list[str]] = {}
    current = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        section = re.fullmatch(r"\[(\w+)\]", line)
        if section:
            current = section.group(1)
            modules[current] = []
        else:
            modules[current].append(line.split()[1])
    return modules


# -- generic helpers --------------------------------------------------------------------------


def component_type(component_id: str) -> str:
    return component_id.split("/", 1)[0]


def pipeline_signal(pipeline_id: str) -> str:
    return component_type(pipeline_id)


def pipelines(config: dict[str, Any]) -> dict[str, dict[str, list[str]]]:
    return (config.get("service") or {}).get("pipelines") or {}


def defined(config: dict[str, Any], kind: str) -> dict[str, Any]:
    return config.get(kind) or {}


def walk(node: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk(value, (*path, str(key)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, (*path, str(index)))


# -- checks -----------------------------------------------------------------------------------


def wiring_problems(config: dict[str, Any], checked: dict[str, dict[str, str]]) -> list[str]:
    """Pipelines reference defined components only, everything defined is used, connectors
    join two pipelines, every type is a checked otelcol-contrib type supporting the signal."""
    problems: list[str] = []
    receivers, processors = defined(config, "receivers"), defined(config, "processors")
    exporters, connectors = defined(config, "exporters"), defined(config, "connectors")
    extensions = defined(config, "extensions")
    if not pipelines(config):
        problems.append("no pipelines")

    for kind in KINDS:
        for component_id in defined(config, kind):
            if component_type(component_id) not in checked.get(kind, {}):
                problems.append(f"{kind[:-1]} {component_id!r}: type not in the component list")

    used: dict[str, set[str]] = {kind: set() for kind in KINDS}
    connector_as_exporter: dict[str, set[str]] = {}
    connector_as_receiver: dict[str, set[str]] = {}
    for pipeline_id, pipeline in pipelines(config).items():
        signal = pipeline_signal(pipeline_id)
        if signal not in SIGNALS:
            problems.append(f"pipeline {pipeline_id!r}: unknown signal {signal!r}")
            continue
        if not pipeline.get("receivers") or not pipeline.get("exporters"):
            problems.append(f"pipeline {pipeline_id!r}: needs receivers and exporters")
        for role, sources in (
            ("receivers", (receivers, connectors)),
            ("processors", (processors,)),
            ("exporters", (exporters, connectors)),
        ):
            for component_id in pipeline.get(role) or []:
                if not any(component_id in source for source in sources):
                    problems.append(
                        f"pipeline {pipeline_id!r}: {role[:-1]} {component_id!r} undefined"
                    )
                    continue
                if component_id in connectors and role != "processors":
                    side = connector_as_exporter if role == "exporters" else connector_as_receiver
                    side.setdefault(component_id, set()).add(pipeline_id)
                    used["connectors"].add(component_id)
                    continue
                used[role].add(component_id)
                support = SIGNAL_SUPPORT[role].get(component_type(component_id))
                if support is not None and signal not in support:
                    problems.append(
                        f"pipeline {pipeline_id!r}: {component_id!r} does not support {signal}"
                    )
    used["extensions"] = set((config.get("service") or {}).get("extensions") or [])
    for extension_id in used["extensions"] - set(extensions):
        problems.append(f"service extension {extension_id!r} undefined")

    for kind in KINDS:
        for component_id in set(defined(config, kind)) - used[kind]:
            problems.append(f"{kind[:-1]} {component_id!r} defined but not used")

    for connector_id in connectors:
        as_exporter = connector_as_exporter.get(connector_id, set())
        as_receiver = connector_as_receiver.get(connector_id, set())
        if not as_exporter or not as_receiver or as_exporter == as_receiver:
            problems.append(
                f"connector {connector_id!r} must be an exporter in one pipeline and a receiver "
                "in another"
            )
        supported = CONNECTOR_SUPPORT.get(component_type(connector_id))
        if supported is None:
            continue
        for exporting in as_exporter:
            for receiving in as_receiver:
                pair = (pipeline_signal(exporting), pipeline_signal(receiving))
                if exporting != receiving and pair not in supported:
                    problems.append(
                        f"connector {connector_id!r} cannot join {pair[0]} to {pair[1]}"
                    )
    return problems


def content_deleted_by(processor: dict[str, Any] | None) -> set[str] | None:
    """Keys an attributes processor deletes, or None when it does anything else."""
    actions = (processor or {}).get("actions") or []
    if not actions or any(a.get("action") != "delete" or "pattern" in a for a in actions):
        return None
    return {str(action.get("key")) for action in actions}


def redaction_problems(config: dict[str, Any]) -> list[str]:
    """Every trace and log pipeline fed by the app deletes exactly the content attributes."""
    problems: list[str] = []
    processors = defined(config, "processors")
    redactors = {
        processor_id: content_deleted_by(processor)
        for processor_id, processor in processors.items()
        if component_type(processor_id) == "attributes"
        and content_deleted_by(processor) is not None
    }
    for processor_id, keys in redactors.items():
        if keys != CONTENT_ATTRIBUTES:
            missing = sorted(CONTENT_ATTRIBUTES - (keys or set()))
            extra = sorted((keys or set()) - CONTENT_ATTRIBUTES)
            problems.append(
                f"{processor_id!r} deletes wrong keys: missing {missing}, extra {extra}"
            )
    for pipeline_id, pipeline in pipelines(config).items():
        fed_by_app = any(
            component_type(r) == "otlp" and r in defined(config, "receivers")
            for r in pipeline.get("receivers") or []
        )
        if pipeline_signal(pipeline_id) not in ("traces", "logs") or not fed_by_app:
            continue
        if not any(p in redactors for p in pipeline.get("processors") or []):
            problems.append(f"pipeline {pipeline_id!r} does not delete message/retrieval content")
    return problems


def _policies(policies: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for policy in policies or []:
        yield policy
        for nested_key in ("and", "composite"):
            nested = policy.get(nested_key) or {}
            yield from _policies(nested.get(f"{nested_key}_sub_policy") or [])


def tail_sampling_problems(config: dict[str, Any]) -> list[str]:
    """Failing diagnoses are kept (exactly the four), the rest is sampled, span metrics are
    computed before sampling."""
    problems: list[str] = []
    samplers = {
        pid: p
        for pid, p in defined(config, "processors").items()
        if component_type(pid) == "tail_sampling"
    }
    if not samplers:
        return ["no tail_sampling processor"]
    for sampler_id, sampler in samplers.items():
        top_level = (sampler or {}).get("policies") or []
        diagnosis_policies = [
            p
            for p in _policies(top_level)
            if p.get("type") == "string_attribute"
            and (p.get("string_attribute") or {}).get("key") == "rag.diagnosis"
        ]
        if not diagnosis_policies:
            problems.append(f"{sampler_id!r}: no string_attribute policy on rag.diagnosis")
        for policy in diagnosis_policies:
            settings = policy["string_attribute"]
            if set(settings.get("values") or []) != KEPT_DIAGNOSES:
                problems.append(
                    f"{sampler_id!r} policy {policy.get('name')!r} keeps "
                    f"{sorted(settings.get('values') or [])}, expected {sorted(KEPT_DIAGNOSES)}"
                )
            if settings.get("invert_match") or settings.get("enabled_regex_matching"):
                problems.append(f"{sampler_id!r} policy {policy.get('name')!r}: must match exactly")
        if any(p.get("type") == "drop" for p in top_level):
            problems.append(f"{sampler_id!r}: a drop policy could drop failing traces")
        rates = [
            (p.get("probabilistic") or {}).get("sampling_percentage")
            for p in top_level
            if p.get("type") == "probabilistic"
        ]
        if len(rates) != 1 or not isinstance(rates[0], (int, float)) or not 0 < rates[0] < 100:
            problems.append(f"{sampler_id!r}: needs one probabilistic policy between 0 and 100 %")
    for pipeline_id, pipeline in pipelines(config).items():
        samples = any(p in samplers for p in pipeline.get("processors") or [])
        counts = any(
            component_type(e) == "spanmetrics" and e in defined(config, "connectors")
            for e in pipeline.get("exporters") or []
        )
        if samples and counts:
            problems.append(f"pipeline {pipeline_id!r}: span metrics computed after sampling")
    return problems


def spanmetrics_problems(config: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    for connector_id, connector in defined(config, "connectors").items():
        if component_type(connector_id) != "spanmetrics":
            continue
        names = {d.get("name") for d in (connector or {}).get("dimensions") or []}
        missing = sorted(SPANMETRICS_REQUIRED_DIMENSIONS - names)
        if missing:
            problems.append(f"{connector_id!r} lacks dimensions {missing}")
        if names & HIGH_CARDINALITY:
            problems.append(
                f"{connector_id!r} has unbounded dimensions {sorted(names & HIGH_CARDINALITY)}"
            )
    return problems


def header_problems(text: str, filename: str, version: str) -> list[str]:
    """The leading comment block says what, which version, which env vars and how to run."""
    lines = text.splitlines()
    header: list[str] = []
    for line in lines:
        if not line.startswith("#"):
            break
        header.append(line)
    block = "\n".join(header)
    problems: list[str] = []
    if len(header) < 5:
        problems.append("no leading comment block")
    if "What it is for" not in block:
        problems.append("header does not say what the file is for")
    if version not in block:
        problems.append(f"header does not name collector version {version}")
    if f"otelcol-contrib --config collector-config/{filename}" not in block:
        problems.append("header does not say how to run it")
    body = "\n".join(lines[len(header) :])
    for name in sorted(set(ENV_REF.findall(body))):
        if name not in block:
            problems.append(f"header does not list environment variable {name}")
    return problems


def secret_problems(config: dict[str, Any]) -> list[str]:
    """API keys and auth headers come from the environment, never from the file."""
    problems: list[str] = []
    for kind in ("exporters", "extensions"):
        for path, value in walk(defined(config, kind), (kind,)):
            if (
                path
                and SECRET_KEY.search(path[-1])
                and not (isinstance(value, str) and ENV_REF.fullmatch(value))
            ):
                problems.append(f"{'.'.join(path)} must be a ${{env:...}} reference")
    return problems


def unknown_rag_names(text: str) -> set[str]:
    return set(RAG_NAME.findall(text)) - set(ALL_RAG_ATTRIBUTES)


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def components() -> tuple[str, dict[str, dict[str, str]]]:
    return load_components()


def load_config(name: str) -> dict[str, Any]:
    loaded = yaml.safe_load((CONFIG_DIR / name).read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


# -- the component list -----------------------------------------------------------------------


def test_component_list_names_version_and_source(components):
    version, checked = components
    assert re.fullmatch(r"v\d+\.\d+\.\d+", version)
    header = COMPONENTS_FILE.read_text(encoding="utf-8")
    assert "distributions/otelcol-contrib/manifest.yaml" in header
    assert set(checked) == set(KINDS)


def test_component_list_types_belong_to_manifest_modules(components):
    _, checked = components
    modules = manifest_modules()
    for kind, types in checked.items():
        for config_type, module in types.items():
            assert module in modules[kind], (kind, config_type)
    # the full manifest, not only the used components
    assert sum(len(m) for m in modules.values()) > 200
    assert all(len(set(m)) == len(m) for m in modules.values())


# -- the shipped configurations ---------------------------------------------------------------


def test_config_files_present():
    present = sorted(p.name for p in CONFIG_DIR.glob("*.yaml"))
    assert present == sorted(CONFIG_FILES)
    assert (CONFIG_DIR / "README.md").exists()
    readme = (CONFIG_DIR / "README.md").read_text(encoding="utf-8")
    for name in (*CONFIG_FILES, COMPONENTS_FILE.name):
        assert f"]({name})" in readme, name


@pytest.mark.parametrize("name", CONFIG_FILES)
def test_config_wiring(name, components):
    _, checked = components
    assert wiring_problems(load_config(name), checked) == []


@pytest.mark.parametrize("name", CONFIG_FILES)
def test_config_deletes_content(name):
    config = load_config(name)
    assert redaction_problems(config) == []
    assert any(pipeline_signal(p) == "traces" for p in pipelines(config))


@pytest.mark.parametrize("name", CONFIG_FILES)
def test_config_header(name, components):
    version, _ = components
    text = (CONFIG_DIR / name).read_text(encoding="utf-8")
    assert header_problems(text, name, version) == []


@pytest.mark.parametrize("name", CONFIG_FILES)
def test_config_secrets_from_environment(name):
    assert secret_problems(load_config(name)) == []


@pytest.mark.parametrize("name", CONFIG_FILES)
def test_config_spanmetrics_dimensions(name):
    assert spanmetrics_problems(load_config(name)) == []


def test_tail_sampling_config():
    config = load_config("tail-sampling.yaml")
    assert tail_sampling_problems(config) == []
    assert any(component_type(c) == "spanmetrics" for c in defined(config, "connectors"))


def test_kept_diagnoses_are_the_failing_categories():
    values = {member.value for member in RagDiagnosisValues}
    assert values - KEPT_DIAGNOSES == {"healthy", "acceptable_fallback"}


def test_rag_names_in_collector_config_exist():
    texts = [p.read_text(encoding="utf-8") for p in sorted(CONFIG_DIR.iterdir()) if p.is_file()]
    found = set().union(*(RAG_NAME.findall(text) for text in texts))
    assert "rag.diagnosis" in found
    assert found - set(ALL_RAG_ATTRIBUTES) == set()


# -- each check catches what it is meant to catch ---------------------------------------------

MINIMAL = {
    "receivers": {"otlp": {"protocols": {"grpc": None}}},
    "processors": {
        "attributes/drop": {
            "actions": [{"key": key, "action": "delete"} for key in sorted(CONTENT_ATTRIBUTES)]
        },
        "tail_sampling": {
            "policies": [
                {
                    "name": "keep",
                    "type": "string_attribute",
                    "string_attribute": {"key": "rag.diagnosis", "values": sorted(KEPT_DIAGNOSES)},
                },
                {
                    "name": "rest",
                    "type": "probabilistic",
                    "probabilistic": {"sampling_percentage": 10},
                },
            ]
        },
    },
    "connectors": {
        "spanmetrics": {
            "dimensions": [{"name": "rag.diagnosis"}, {"name": "gen_ai.data_source.id"}]
        },
        "forward": None,
    },
    "exporters": {"otlp": {"endpoint": "x:4317"}, "datadog": {"api": {"key": "${env:DD_API_KEY}"}}},
    "service": {
        "pipelines": {
            "traces": {
                "receivers": ["otlp"],
                "processors": ["attributes/drop"],
                "exporters": ["spanmetrics", "forward"],
            },
            "traces/sampled": {
                "receivers": ["forward"],
                "processors": ["tail_sampling"],
                "exporters": ["otlp"],
            },
            "metrics": {"receivers": ["spanmetrics"], "exporters": ["datadog"]},
        }
    },
}


def test_minimal_config_passes_every_check(components):
    _, checked = components
    assert wiring_problems(MINIMAL, checked) == []
    assert redaction_problems(MINIMAL) == []
    assert tail_sampling_problems(MINIMAL) == []
    assert spanmetrics_problems(MINIMAL) == []
    assert secret_problems(MINIMAL) == []


def _mutated(change) -> dict[str, Any]:
    config = copy.deepcopy(MINIMAL)
    change(config)
    return config


def _pipelines(config):
    return config["service"]["pipelines"]


def _add_exporter(config, exporter_id):
    config["exporters"][exporter_id] = None
    _pipelines(config)["traces/sampled"]["exporters"].append(exporter_id)


# The problem each broken copy below must report (a substring of the message).
EXPECTED_PROBLEM = {
    "undefined exporter": "'otlp/x' undefined",
    "undefined processor": "'batch' undefined",
    "unused receiver": "'otlp/unused' defined but not used",
    "unused exporter": "'debug' defined but not used",
    "connector only exported to": "must be an exporter in one pipeline",
    "unknown type": "type not in the component list",
    "unsupported signal": "does not support metrics",
    "wrong connector signals": "cannot join traces to logs",
    "unknown pipeline signal": "unknown signal",
    "undefined extension": "extension 'health_check' undefined",
    "missing key": "missing ['gen_ai.system_instructions']",
    "extra key": "extra ['rag.diagnosis']",
    "not in pipeline": "pipeline 'traces' does not delete",
    "logs pipeline without it": "pipeline 'logs' does not delete",
    "three values": "policy 'keep' keeps",
    "healthy kept": "policy 'keep' keeps",
    "other key": "no string_attribute policy on rag.diagnosis",
    "inverted": "must match exactly",
    "no sampling of the rest": "needs one probabilistic policy",
    "keep everything": "needs one probabilistic policy",
    "metrics after sampling": "span metrics computed after sampling",
    "no sampler": "no tail_sampling processor",
    "no data source": "lacks dimensions ['gen_ai.data_source.id']",
    "hash dimension": "unbounded dimensions ['rag.chunk_set_hash']",
}


WIRING_BREAKS = {
    "undefined exporter": lambda c: _pipelines(c)["traces/sampled"]["exporters"].append("otlp/x"),
    "undefined processor": lambda c: _pipelines(c)["traces"]["processors"].append("batch"),
    "unused receiver": lambda c: c["receivers"].update({"otlp/unused": None}),
    "unused exporter": lambda c: c["exporters"].update({"debug": None}),
    "connector only exported to": lambda c: _pipelines(c).pop("metrics"),
    "unknown type": lambda c: _add_exporter(c, "otlp_grpc"),
    "unsupported signal": lambda c: _pipelines(c)["metrics"].update(
        {"processors": ["tail_sampling"]}
    ),
    "wrong connector signals": lambda c: _pipelines(c).update(
        {"logs": {"receivers": ["spanmetrics"], "exporters": ["otlp"]}}
    ),
    "unknown pipeline signal": lambda c: _pipelines(c).update(
        {"profiles": {"receivers": ["otlp"], "exporters": ["otlp"]}}
    ),
    "undefined extension": lambda c: c["service"].update({"extensions": ["health_check"]}),
}


@pytest.mark.parametrize("name", WIRING_BREAKS)
def test_wiring_check_catches(name, components):
    _, checked = components
    problems = wiring_problems(_mutated(WIRING_BREAKS[name]), checked)
    assert any(EXPECTED_PROBLEM[name] in problem for problem in problems), problems


def _drop_actions(config):
    return config["processors"]["attributes/drop"]["actions"]


REDACTION_BREAKS = {
    "missing key": lambda c: _drop_actions(c).pop(),
    "extra key": lambda c: _drop_actions(c).append({"key": "rag.diagnosis", "action": "delete"}),
    "not in pipeline": lambda c: _pipelines(c)["traces"].update({"processors": []}),
    "logs pipeline without it": lambda c: _pipelines(c).update(
        {"logs": {"receivers": ["otlp"], "exporters": ["otlp"]}}
    ),
}


@pytest.mark.parametrize("name", REDACTION_BREAKS)
def test_redaction_check_catches(name):
    problems = redaction_problems(_mutated(REDACTION_BREAKS[name]))
    assert any(EXPECTED_PROBLEM[name] in problem for problem in problems), problems


def _policy(config, index):
    return config["processors"]["tail_sampling"]["policies"][index]


SAMPLING_BREAKS = {
    "three values": lambda c: _policy(c, 0)["string_attribute"]["values"].pop(),
    "healthy kept": lambda c: _policy(c, 0)["string_attribute"]["values"].append("healthy"),
    "other key": lambda c: _policy(c, 0)["string_attribute"].update(
        {"key": "rag.grounding_status"}
    ),
    "inverted": lambda c: _policy(c, 0)["string_attribute"].update({"invert_match": True}),
    "no sampling of the rest": lambda c: c["processors"]["tail_sampling"]["policies"].pop(),
    "keep everything": lambda c: _policy(c, 1)["probabilistic"].update(
        {"sampling_percentage": 100}
    ),
    "metrics after sampling": lambda c: _pipelines(c)["traces/sampled"]["exporters"].append(
        "spanmetrics"
    ),
    "no sampler": lambda c: c["processors"].pop("tail_sampling"),
}


@pytest.mark.parametrize("name", SAMPLING_BREAKS)
def test_tail_sampling_check_catches(name):
    problems = tail_sampling_problems(_mutated(SAMPLING_BREAKS[name]))
    assert any(EXPECTED_PROBLEM[name] in problem for problem in problems), problems


SPANMETRICS_BREAKS = {
    "no data source": lambda c: c["connectors"]["spanmetrics"]["dimensions"].pop(),
    "hash dimension": lambda c: c["connectors"]["spanmetrics"]["dimensions"].append(
        {"name": "rag.chunk_set_hash"}
    ),
}


@pytest.mark.parametrize("name", SPANMETRICS_BREAKS)
def test_spanmetrics_check_catches(name):
    problems = spanmetrics_problems(_mutated(SPANMETRICS_BREAKS[name]))
    assert any(EXPECTED_PROBLEM[name] in problem for problem in problems), problems


def test_secret_check_catches_literal_key():
    config = _mutated(lambda c: c["exporters"]["datadog"]["api"].update({"key": "abc123"}))
    assert secret_problems(config)
    config = _mutated(
        lambda c: c["exporters"]["otlp"].update({"headers": {"x-honeycomb-team": "literal"}})
    )
    assert secret_problems(config)


def test_header_check_catches():
    good = (CONFIG_DIR / "jaeger.yaml").read_text(encoding="utf-8")
    version, _ = load_components()
    assert header_problems(good, "jaeger.yaml", version) == []
    assert header_problems(good, "other.yaml", version)
    assert header_problems(good, "jaeger.yaml", "v9.9.9")
    assert header_problems(good + "\nx: ${env:UNLISTED_VARIABLE}\n", "jaeger.yaml", version)
    assert header_problems("receivers: {}\n", "jaeger.yaml", version)


def test_rag_name_check_catches():
    assert unknown_rag_names("key: rag.diagnosis") == set()
    assert unknown_rag_names("key: rag.diagnosiss and rag.utilization_ratio") == {
        "rag.diagnosiss",
        "rag.utilization_ratio",
    }


def test_every_broken_copy_names_its_expected_problem():
    cases = [*WIRING_BREAKS, *REDACTION_BREAKS, *SAMPLING_BREAKS, *SPANMETRICS_BREAKS]
    assert sorted(cases) == sorted(EXPECTED_PROBLEM)

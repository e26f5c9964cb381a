"""The semantic-convention registry in semconv/ and the files generated from it.

The registry YAML is read here directly (not through the generator) so that the checks are
independent of the code they check. The expected attribute lists below are the contract of
DESIGN.md, written out literally on purpose: removing or renaming an attribute must fail here.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import json
import re
import sys
from enum import Enum
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SEMCONV = ROOT / "semconv"
SCHEMA_PATH = SEMCONV / "schemas" / "semconv.schema.json"
MANIFEST_PATH = SEMCONV / "manifest.yaml"

# --- the contract (DESIGN.md, "Attribute contract") -------------------------------------------

# attribute id -> registry type ("enum" for string enums, with members in EXPECTED_ENUMS)
EXPECTED_RAG_ATTRIBUTES: dict[str, str] = {
    # on retrieval spans
    "rag.retrieval_set_id": "string",
    "rag.chunk_set_hash": "string",
    "rag.chunk_ids": "string[]",
    "rag.chunk_id_method": "enum",
    "rag.chunk_scores": "double[]",
    "rag.source_document_ids": "string[]",
    "rag.retrieval_method": "enum",
    "rag.query_hash": "string",
    "rag.step_id": "string",
    "rag.quality_density": "double",
    "rag.quality_method": "enum",
    "rag.coverage_diversity": "double",
    "rag.redundancy_ratio": "double",
    "rag.similarity_method": "enum",
    "rag.stale_chunk_count": "int",
    "rag.conflict_chunk_count": "int",
    # on step spans
    "rag.ancestor_retrieval_set_ids": "string[]",
    "rag.ancestor_chunk_set_hashes": "string[]",
    "rag.ancestor_data_source_ids": "string[]",
    "rag.transformation_type": "enum",
    "rag.lineage_method": "enum",
    "rag.utilisation_ratio": "double",
    "rag.used_chunk_ids": "string[]",
    "rag.used_chunk_count": "int",
    "rag.retrieved_chunk_count": "int",
    "rag.utilisation_method": "enum",
    "rag.utilisation_threshold": "double",
    "rag.utilisation_reliable": "boolean",
    "rag.grounding_status": "enum",
    "rag.uncertainty_acknowledged": "boolean",
    "rag.tool_provided_data": "boolean",
    "rag.requested_tool_call_ids": "string[]",
    "rag.requested_tool_names": "string[]",
    "rag.source_to_response_ratio": "double",
    "rag.diagnosis": "enum",
    "rag.diagnosis_reason": "string",
    # on ingestion spans (beyond the design's tables: the quality summary of written chunks)
    "rag.ingest.quality_mean": "double",
    "rag.ingest.quality_scored_count": "int",
}

# enum attribute id -> (Python class name, member values in order)
EXPECTED_ENUMS: dict[str, tuple[str, tuple[str, ...]]] = {
    "rag.diagnosis": (
        "RagDiagnosisValues",
        (
            "acceptable_fallback",
            "ungrounded_answer",
            "data_problem",
            "retrieval_composition",
            "navigation",
            "healthy",
        ),
    ),
    "rag.grounding_status": (
        "RagGroundingStatusValues",
        ("grounded", "context_ignored", "acknowledged_gap", "ungrounded"),
    ),
    "rag.chunk_id_method": ("RagChunkIdMethodValues", ("metadata", "content_hash", "store_id")),
    "rag.retrieval_method": (
        "RagRetrievalMethodValues",
        ("dense", "sparse", "hybrid", "reranked", "unknown"),
    ),
    "rag.similarity_method": ("RagSimilarityMethodValues", ("embedding", "lexical")),
    "rag.quality_method": ("RagQualityMethodValues", ("metadata", "heuristic")),
    "rag.utilisation_method": ("RagUtilisationMethodValues", ("text_overlap_proxy",)),
    "rag.lineage_method": ("RagLineageMethodValues", ("explicit", "content_match", "scope")),
    "rag.transformation_type": (
        "RagTransformationTypeValues",
        ("generation", "query_rewrite", "rerank", "summarize", "tool_call", "other"),
    ),
}

EXPECTED_RETRIEVAL_SPAN_RAG = {
    "rag.retrieval_set_id",
    "rag.chunk_set_hash",
    "rag.chunk_ids",
    "rag.chunk_id_method",
    "rag.chunk_scores",
    "rag.source_document_ids",
    "rag.retrieval_method",
    "rag.query_hash",
    "rag.step_id",
    "rag.quality_density",
    "rag.quality_method",
    "rag.coverage_diversity",
    "rag.redundancy_ratio",
    "rag.similarity_method",
    "rag.stale_chunk_count",
    "rag.conflict_chunk_count",
}

EXPECTED_STEP_SPAN_RAG = {
    "rag.step_id",
    "rag.ancestor_retrieval_set_ids",
    "rag.ancestor_chunk_set_hashes",
    "rag.ancestor_data_source_ids",
    "rag.transformation_type",
    "rag.lineage_method",
    "rag.utilisation_ratio",
    "rag.used_chunk_ids",
    "rag.used_chunk_count",
    "rag.retrieved_chunk_count",
    "rag.utilisation_method",
    "rag.utilisation_threshold",
    "rag.utilisation_reliable",
    "rag.grounding_status",
    "rag.uncertainty_acknowledged",
    "rag.tool_provided_data",
    "rag.requested_tool_call_ids",
    "rag.requested_tool_names",
    "rag.source_to_response_ratio",
    "rag.diagnosis",
    "rag.diagnosis_reason",
}

EXPECTED_INGEST_SPAN_RAG = {
    "rag.chunk_ids",
    "rag.chunk_id_method",
    "rag.source_document_ids",
    "rag.ingest.quality_mean",
    "rag.ingest.quality_scored_count",
    "rag.quality_method",
    "rag.stale_chunk_count",
    "rag.conflict_chunk_count",
}

# Official OpenTelemetry attributes the span groups may reference (resolved by weaver through the
# manifest's dependencies; not vendored here). span group id -> {attribute: requirement level}
EXPECTED_EXTERNAL_REFS: dict[str, dict[str, str]] = {
    "span.rag.retrieval": {
        "gen_ai.operation.name": "required",
        "gen_ai.data_source.id": "conditionally_required",
        "gen_ai.retrieval.top_k": "recommended",
        "gen_ai.retrieval.query.text": "opt_in",
        "gen_ai.retrieval.documents": "opt_in",
        "db.system.name": "recommended",
        "error.type": "conditionally_required",
    },
    "span.rag.step": {
        "gen_ai.operation.name": "conditionally_required",
        "gen_ai.provider.name": "conditionally_required",
        "gen_ai.request.model": "conditionally_required",
        "error.type": "conditionally_required",
    },
    "span.rag.ingest": {
        "db.system.name": "required",
        "db.operation.name": "required",
        "db.collection.name": "conditionally_required",
        "db.operation.batch.size": "conditionally_required",
    },
}
ALLOWED_EXTERNAL_REFS = frozenset(ref for refs in EXPECTED_EXTERNAL_REFS.values() for ref in refs)

ATTRIBUTE_ID = re.compile(r"^rag\.[a-z_.]+$")
LOWER_SNAKE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
SIMPLE_TYPES = {"string", "int", "double", "boolean", "string[]", "int[]", "double[]", "boolean[]"}


# --- helpers -----------------------------------------------------------------------------------


def _load_generator() -> ModuleType:
    name = "ragprov_semconv_generate"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, SEMCONV / "generate.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is created
    spec.loader.exec_module(module)
    return module


generate = _load_generator()


def _registry_files() -> list[Path]:
    files = sorted(
        path
        for pattern in ("*.yaml", "*.yml")
        for path in SEMCONV.rglob(pattern)
        if path.name not in {"manifest.yaml", "registry_manifest.yaml"}
    )
    assert files, "no registry YAML under semconv/"
    return files


def _groups() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = []
    for path in _registry_files():
        groups.extend(yaml.safe_load(path.read_text(encoding="utf-8"))["groups"])
    return groups


def _definitions() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for group in _groups():
        for attr in group.get("attributes", []):
            if "id" in attr:
                assert attr["id"] not in found, f"{attr['id']} defined twice"
                found[attr["id"]] = attr
    return found


def _span_groups() -> dict[str, dict[str, Any]]:
    return {g["id"]: g for g in _groups() if g.get("type") == "span"}


def _type_name(attr: dict[str, Any]) -> str:
    return "enum" if isinstance(attr["type"], dict) else str(attr["type"])


def _examples(attr: dict[str, Any]) -> list[Any]:
    examples = attr.get("examples")
    if examples is None:
        return []
    return examples if isinstance(examples, list) else [examples]


def _requirement_level(ref: dict[str, Any]) -> str:
    level = ref.get("requirement_level", "recommended")
    return level if isinstance(level, str) else next(iter(level))


def _scalar_ok(value: Any, scalar: str) -> bool:
    if scalar == "string":
        return isinstance(value, str)
    if scalar == "boolean":
        return isinstance(value, bool)
    if scalar == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if scalar == "double":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    raise AssertionError(f"unknown scalar type {scalar}")


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


# --- schema validation -------------------------------------------------------------------------


@pytest.mark.parametrize("path", _registry_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_registry_file_is_valid_weaver_v1(
    path: Path, validator: jsonschema.protocols.Validator
) -> None:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


@pytest.mark.parametrize(
    "attribute",
    [
        {"id": "rag.x", "type": "strng", "stability": "development", "brief": "b"},
        {"id": "rag.x", "type": "string", "stability": "experimental", "brief": "b"},
        {"id": "rag.x", "type": "string", "brief": "b"},
        {"id": "rag.x", "type": {"members": [{"id": "a", "value": "a"}]}, "stability": "stable"},
    ],
    ids=["bad-type", "bad-stability", "no-stability", "member-without-stability"],
)
def test_schema_validation_catches_errors(
    attribute: dict[str, Any], validator: jsonschema.protocols.Validator
) -> None:
    document = {
        "groups": [
            {
                "id": "registry.rag.x",
                "type": "attribute_group",
                "brief": "b",
                "attributes": [attribute],
            }
        ]
    }
    assert list(validator.iter_errors(document))


def test_vendored_schema_is_documented() -> None:
    source = (SEMCONV / "schemas" / "SOURCE.md").read_text(encoding="utf-8")
    assert "afa9700cfd607f15de2553dc8a110d435c22df31" in source
    assert "Apache-2.0" in source


def test_manifest() -> None:
    manifest = yaml.safe_load(MANIFEST_PATH.read_text(encoding="utf-8"))
    assert re.fullmatch(r"https?://[^/]+/.+/\d+\.\d+\.\d+", manifest["schema_url"])
    assert manifest["stability"] == "development"
    assert manifest["description"].strip()
    for dependency in manifest["dependencies"]:
        assert re.fullmatch(
            r"https?://[^/]+/.+/\d+\.\d+\.\d+(-[0-9A-Za-z.]+)?", dependency["schema_url"]
        )


# --- the contract ------------------------------------------------------------------------------


def test_every_design_attribute_is_defined_with_its_type() -> None:
    defined = {attr_id: _type_name(attr) for attr_id, attr in _definitions().items()}
    missing = sorted(set(EXPECTED_RAG_ATTRIBUTES) - set(defined))
    unexpected = sorted(set(defined) - set(EXPECTED_RAG_ATTRIBUTES))
    assert not missing, f"attributes of the contract missing from the registry: {missing}"
    assert not unexpected, f"attributes not in the contract (update this test): {unexpected}"
    assert defined == EXPECTED_RAG_ATTRIBUTES


@pytest.mark.parametrize("attr_id", sorted(EXPECTED_ENUMS))
def test_enum_members(attr_id: str) -> None:
    attr = _definitions()[attr_id]
    members = attr["type"]["members"]
    assert tuple(m["value"] for m in members) == EXPECTED_ENUMS[attr_id][1]
    ids = [m["id"] for m in members]
    assert len(ids) == len(set(ids)), f"duplicate member ids in {attr_id}"
    assert len({m["value"] for m in members}) == len(members), f"duplicate values in {attr_id}"
    for member in members:
        assert LOWER_SNAKE.fullmatch(member["id"]), member["id"]
        assert member["id"] == member["value"]
        assert member["stability"] == "development"
        assert str(member.get("brief", "")).strip(), f"{attr_id}.{member['id']} has no brief"


def test_transformation_type_is_documented_as_open() -> None:
    note = _definitions()["rag.transformation_type"]["note"].lower()
    assert "open enum" in note
    assert "custom values" in note


@pytest.mark.parametrize("attr_id", sorted(EXPECTED_RAG_ATTRIBUTES))
def test_attribute_definition(attr_id: str) -> None:
    attr = _definitions()[attr_id]
    assert ATTRIBUTE_ID.fullmatch(attr_id)
    assert attr["stability"] == "development"
    assert str(attr.get("brief", "")).strip(), f"{attr_id} has no brief"
    type_name = _type_name(attr)
    examples = _examples(attr)
    if type_name == "enum":
        values = {m["value"] for m in attr["type"]["members"]}
        assert all(example in values for example in examples)
        return
    assert type_name in SIMPLE_TYPES
    if type_name.startswith("string"):
        assert examples, f"{attr_id}: weaver requires examples for string attributes"
    for example in examples:
        if type_name.endswith("[]"):
            assert isinstance(example, list), f"{attr_id}: array examples must be lists"
            assert example, f"{attr_id}: empty array example"
            assert all(_scalar_ok(v, type_name[:-2]) for v in example), (attr_id, example)
        else:
            assert _scalar_ok(example, type_name), (attr_id, example)


def test_registry_group_ids() -> None:
    ids = [g["id"] for g in _groups()]
    assert len(ids) == len(set(ids)), "duplicate group ids"
    for group in _groups():
        assert str(group.get("brief", "")).strip(), f"{group['id']} has no brief"
        if group["type"] == "attribute_group":
            assert re.fullmatch(r"registry\.rag\.[a-z_.]+", group["id"]), group["id"]
            assert all("id" in attr for attr in group["attributes"]), "refs in a registry group"
        else:
            assert group["type"] == "span", group["id"]
            assert all("ref" in attr for attr in group["attributes"]), "definitions in a span"


def test_span_groups_reference_the_contract() -> None:
    spans = _span_groups()
    assert set(spans) == {"span.rag.retrieval", "span.rag.step", "span.rag.ingest"}
    assert spans["span.rag.retrieval"]["span_kind"] == "client"
    assert spans["span.rag.ingest"]["span_kind"] == "client"
    expected = {
        "span.rag.retrieval": EXPECTED_RETRIEVAL_SPAN_RAG,
        "span.rag.step": EXPECTED_STEP_SPAN_RAG,
        "span.rag.ingest": EXPECTED_INGEST_SPAN_RAG,
    }
    for span_id, span in spans.items():
        refs = [attr["ref"] for attr in span["attributes"]]
        assert len(refs) == len(set(refs)), f"{span_id} references an attribute twice"
        assert {r for r in refs if r.startswith("rag.")} == expected[span_id]
        external = {
            attr["ref"]: _requirement_level(attr)
            for attr in span["attributes"]
            if not attr["ref"].startswith("rag.")
        }
        assert external == EXPECTED_EXTERNAL_REFS[span_id]


def test_every_ref_resolves() -> None:
    defined = set(_definitions())
    for span_id, span in _span_groups().items():
        for attr in span["attributes"]:
            ref = attr["ref"]
            assert ref in defined or ref in ALLOWED_EXTERNAL_REFS, f"{span_id}: unresolved {ref}"
            level = attr.get("requirement_level", "recommended")
            if isinstance(level, dict):
                ((name, condition),) = level.items()
                assert name in {"conditionally_required", "recommended", "opt_in"}
                assert str(condition).strip()


def test_generator_rejects_an_unresolved_rag_ref(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "groups:\n"
        "  - id: span.rag.bad\n"
        "    type: span\n"
        "    span_kind: internal\n"
        "    stability: development\n"
        "    brief: bad\n"
        "    attributes:\n"
        "      - ref: rag.does_not_exist\n",
        encoding="utf-8",
    )
    with pytest.raises(generate.RegistryError, match=r"rag\.does_not_exist"):
        generate.load_registry([*_registry_files(), bad])


# --- generated files ---------------------------------------------------------------------------


GENERATED_PATHS = (
    ROOT / "src" / "ragprov" / "semconv" / "attributes.py",
    ROOT / "docs" / "attributes.md",
)


def _generated() -> dict[Path, str]:
    outputs: dict[Path, str] = generate.render_all()
    return outputs


def test_generated_outputs_are_the_expected_files() -> None:
    assert set(_generated()) == set(GENERATED_PATHS)


@pytest.mark.parametrize("path", GENERATED_PATHS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_generated_file_has_not_drifted(path: Path) -> None:
    expected = _generated()[path].encode("utf-8")
    assert path.is_file(), f"{path} is missing: run `python semconv/generate.py`"
    assert path.read_bytes() == expected, (
        f"{path.relative_to(ROOT)} differs from the registry: run `python semconv/generate.py`"
    )


def test_generated_files_say_they_are_generated() -> None:
    for path, text in _generated().items():
        head = "\n".join(text.splitlines()[:3])
        assert "GENERATED" in head, path
        assert "python semconv/generate.py" in head, path


def test_drift_is_detected(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    assert generate.drifted({target: "x\n"}) == [target]  # missing
    target.write_bytes(b"x\r\n")
    assert generate.drifted({target: "x\n"}) == [target]  # differs by one byte
    target.write_bytes(b"x\n")
    assert generate.drifted({target: "x\n"}) == []


def test_check_mode_passes_on_a_clean_tree(capsys: pytest.CaptureFixture[str]) -> None:
    assert generate.main(["--check"]) == 0
    assert "drifted" not in capsys.readouterr().out


@pytest.fixture(scope="module")
def attributes() -> ModuleType:
    return importlib.import_module("ragprov.semconv.attributes")


def test_generated_constants_equal_registry_names(attributes: ModuleType) -> None:
    for attr_id in EXPECTED_RAG_ATTRIBUTES:
        const = attr_id.upper().replace(".", "_")
        assert getattr(attributes, const) == attr_id
    assert tuple(sorted(EXPECTED_RAG_ATTRIBUTES)) == attributes.ALL_RAG_ATTRIBUTES
    assert set(attributes.RETRIEVAL_SPAN_ATTRIBUTES) == EXPECTED_RETRIEVAL_SPAN_RAG
    assert set(attributes.STEP_SPAN_ATTRIBUTES) == EXPECTED_STEP_SPAN_RAG
    span_refs = {
        span_id: tuple(a["ref"] for a in span["attributes"] if a["ref"].startswith("rag."))
        for span_id, span in _span_groups().items()
    }
    assert span_refs["span.rag.retrieval"] == attributes.RETRIEVAL_SPAN_ATTRIBUTES
    assert span_refs["span.rag.step"] == attributes.STEP_SPAN_ATTRIBUTES
    constants = {name for name in vars(attributes) if name.startswith("RAG_")}
    assert len(constants) == len(EXPECTED_RAG_ATTRIBUTES)


@pytest.mark.parametrize("attr_id", sorted(EXPECTED_ENUMS))
def test_generated_enums(attributes: ModuleType, attr_id: str) -> None:
    class_name, values = EXPECTED_ENUMS[attr_id]
    enum_cls = getattr(attributes, class_name)
    assert issubclass(enum_cls, str)
    assert issubclass(enum_cls, Enum)
    assert [m.value for m in enum_cls] == list(values)
    for value in values:
        member = enum_cls[value.upper()]
        assert member == value  # str enum: usable directly as an attribute value
        assert member.value == value


def test_generated_module_imports_only_the_standard_library() -> None:
    source = (ROOT / "src" / "ragprov" / "semconv" / "attributes.py").read_text(encoding="utf-8")
    imported: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module or "")
    assert imported == {"enum", "typing"}


def test_generated_docs_cover_every_attribute_and_member() -> None:
    docs = (ROOT / "docs" / "attributes.md").read_text(encoding="utf-8")
    for attr_id in EXPECTED_RAG_ATTRIBUTES:
        assert f"| `{attr_id}` |" in docs, attr_id
    for _class_name, values in EXPECTED_ENUMS.values():
        for value in values:
            assert f"| `{value}` |" in docs, value
    for span_id, refs in EXPECTED_EXTERNAL_REFS.items():
        assert f"### {span_id}" in docs
        for ref in refs:
            assert f"| `{ref}` |" in docs, ref


def test_package_reexports_the_attributes() -> None:
    package = importlib.import_module("ragprov.semconv")
    assert package.RAG_CHUNK_SET_HASH == "rag.chunk_set_hash"
    assert package.RagDiagnosisValues.NAVIGATION == "navigation"
    assert package.attributes.RAG_STALE_CHUNK_COUNT == "rag.stale_chunk_count"

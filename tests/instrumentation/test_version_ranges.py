"""The declared client version ranges: they admit the installed clients, and the documentation
states the same ranges as the code.

``scripts/version_matrix.py`` checks the other end of each range (the oldest supported version,
in a virtual environment of its own); this module is the fast check that runs with every test
run.
"""

from __future__ import annotations

import importlib
import re
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
from opentelemetry.instrumentation.dependencies import get_dependency_conflicts
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "vector-stores.md"

#: store module → (instrumentor class, entry point name)
STORES = {
    "chromadb": ("ChromaInstrumentor", "ragprov_chromadb"),
    "qdrant": ("QdrantInstrumentor", "ragprov_qdrant"),
    "lancedb": ("LanceDBInstrumentor", "ragprov_lancedb"),
    "pinecone": ("PineconeInstrumentor", "ragprov_pinecone"),
}


def declared(store: str) -> Requirement:
    module = importlib.import_module(f"ragprov.instrumentation.{store}")
    instrumentor = getattr(module, STORES[store][0])()
    (requirement,) = instrumentor.instrumentation_dependencies()
    assert tuple(instrumentor.instrumentation_dependencies()) == module.SUPPORTED_VERSIONS
    return Requirement(requirement)


def documented_ranges() -> dict[str, str]:
    """store → the range in the table of instrumentors at the top of docs/vector-stores.md."""
    rows: dict[str, str] = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) >= 4 and cells[0] in STORES and "ragprov.instrumentation" in cells[1]:
            rows[cells[0]] = cells[3].strip("`")
    return rows


def documented_oldest() -> dict[str, str]:
    """store → the oldest version in the "Supported versions" table (``| store | x.y | …``)."""
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## Supported versions", 1)[1].split("\n## ", 1)[0]
    oldest: dict[str, str] = {}
    for line in section.splitlines():
        cells = [cell.strip().strip("`") for cell in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0] in STORES:
            assert Requirement(cells[1]) == declared(cells[0]), line
            oldest[cells[0]] = cells[2]
    return oldest


@pytest.mark.parametrize("store", list(STORES))
def test_range_admits_the_installed_client(store: str) -> None:
    requirement = declared(store)
    try:
        installed = version(requirement.name)
    except PackageNotFoundError:
        pytest.skip(f"{requirement.name} is not installed")
    assert requirement.specifier.contains(installed, prereleases=True), (requirement, installed)
    assert get_dependency_conflicts([str(requirement)]) is None


@pytest.mark.parametrize("store", list(STORES))
def test_documented_range_matches_the_code(store: str) -> None:
    documented = documented_ranges()
    assert store in documented, f"{store} missing from the table in {DOC.name}"
    assert Requirement(documented[store]) == declared(store)


@pytest.mark.parametrize("store", list(STORES))
def test_documented_oldest_version_is_the_lower_bound(store: str) -> None:
    """The version the matrix tests (the ``>=`` bound) is the one the docs name as oldest."""
    lower = [spec.version for spec in declared(store).specifier if spec.operator == ">="]
    assert len(lower) == 1
    assert re.fullmatch(r"[0-9][0-9.]*", lower[0])
    assert documented_oldest().get(store) == lower[0]

"""The signals package: pure, importable without OpenTelemetry, public API re-exported."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import ragprov.signals

SIGNALS_DIR = Path(ragprov.signals.__file__).parent


@pytest.mark.parametrize("path", sorted(SIGNALS_DIR.glob("*.py")), ids=lambda path: path.name)
def test_signal_modules_do_not_import_opentelemetry(path: Path) -> None:
    imported: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            imported += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.append(node.module)
    assert [name for name in imported if name.startswith("opentelemetry")] == []


@pytest.mark.parametrize("name", ragprov.signals.__all__)
def test_public_names_are_exported(name: str) -> None:
    assert getattr(ragprov.signals, name) is not None

#!/usr/bin/env python3
"""The project's task runner: the README's two commands and the maintenance tasks.

    python3 scripts/dev.py demo       set up .venv and run `ragprov demo`
    python3 scripts/dev.py test       set up .venv and run every check and test (what CI runs),
                                      then each vector-store test file against the oldest
                                      supported client (scripts/version_matrix.py)
    python3 scripts/dev.py generate   regenerate semconv constants, docs/attributes.md, docs/spec/
    python3 scripts/dev.py bench      run the benchmarks in benchmarks/ (not part of `test`)

Needs only Python >= 3.10 with the standard library: everything else is installed into
``.venv`` from pyproject.toml. The install is skipped when pyproject.toml has not changed since
the last one (a stamp file in .venv records its hash). Extra arguments after ``test`` go to
pytest, after ``demo`` to ``ragprov demo``.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")

# What each task needs installed. The test environment holds every instrumented client the
# tests exercise against real components, and LangChain for its example app. (The LlamaIndex
# example gets its own venv from tests/test_examples.py: llama-index-llms-openai needs openai < 3.)
DEMO_EXTRAS = "chromadb,openai"
TEST_EXTRAS = "dev,chromadb,qdrant,lancedb,pinecone,openai,anthropic,langchain"


def main(argv: list[str]) -> int:
    # Checked at run time: this script is run by whatever python3 the machine has.
    if sys.version_info < (3, 10):  # noqa: UP036
        sys.exit(f"ragprov needs Python >= 3.10; this is {sys.version.split()[0]}")
    if not argv or argv[0] not in TASKS:
        print(__doc__)
        return 2
    task, rest = argv[0], argv[1:]
    return TASKS[task](rest)


def ensure_venv(extras: str) -> None:
    """Create .venv and install the project with ``extras`` unless already up to date."""
    if not PYTHON.exists():
        print(f"==> creating {VENV.relative_to(ROOT)}", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
        run([PYTHON, "-m", "pip", "install", "--quiet", "--upgrade", "pip"])
    pyproject_hash = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()[:16]
    stamp = VENV / f".ragprov-installed-{extras.replace(',', '-')}-{pyproject_hash}"
    if stamp.exists():
        return
    print(f"==> installing ragprov[{extras}] into {VENV.relative_to(ROOT)}", flush=True)
    run([PYTHON, "-m", "pip", "install", "--quiet", "--editable", f".[{extras}]"])
    stamp.touch()


def run(command: list[str | Path]) -> None:
    """Run ``command`` in the repository; stop the whole task with its exit code if it fails."""
    result = subprocess.run([str(part) for part in command], cwd=ROOT, check=False)
    if result.returncode != 0:
        sys.exit(result.returncode)


def demo(args: list[str]) -> int:
    ensure_venv(DEMO_EXTRAS)
    run([BIN / "ragprov", "demo", *args])
    return 0


def test(args: list[str]) -> int:
    ensure_venv(TEST_EXTRAS)
    steps: list[tuple[str, list[str | Path]]] = [
        ("ruff lint", [BIN / "ruff", "check", "."]),
        ("ruff format", [BIN / "ruff", "format", "--check", "."]),
        ("mypy (strict, src/)", [BIN / "mypy"]),
    ]
    if not args:  # the whole run: also the oldest supported version of each vector-store client
        steps.append(("oldest supported clients", [sys.executable, "scripts/version_matrix.py"]))
    steps.append(("pytest", [PYTHON, "-m", "pytest", *args]))
    for title, command in steps:
        print(f"==> {title}", flush=True)
        run(command)
    return 0


def generate(args: list[str]) -> int:
    """Regenerate every generated file; the tests fail when one of them drifts."""
    ensure_venv(TEST_EXTRAS)
    run([PYTHON, "semconv/generate.py", *args])
    run([PYTHON, "scripts/export_spec.py", *args])
    return 0


def bench(args: list[str]) -> int:
    """Run every benchmark: pytest-benchmark files, then the scripts that print their ratios."""
    ensure_venv(TEST_EXTRAS)
    for path in sorted((ROOT / "benchmarks").glob("bench_*.py")):
        relative = path.relative_to(ROOT)
        print(f"==> {relative}", flush=True)
        if "def test_" in path.read_text(encoding="utf-8"):
            run([PYTHON, "-m", "pytest", str(relative), "--benchmark-only", *args])
        else:
            run([PYTHON, str(relative), *args])
    return 0


TASKS = {"demo": demo, "test": test, "generate": generate, "bench": bench}

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

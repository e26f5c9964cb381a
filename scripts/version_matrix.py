#!/usr/bin/env python3
"""Run each library's instrumentation tests against the OLDEST version its instrumentor supports.

    python3 scripts/version_matrix.py                      # every store, oldest version
    python3 scripts/version_matrix.py qdrant lancedb       # some stores
    python3 scripts/version_matrix.py --version pinecone=7.3.0 --version pinecone=8.1.2
    python3 scripts/version_matrix.py --list               # the declared ranges, nothing run

For each (store, version) it creates a virtual environment under ``.venv-matrix/<store>-<version>``
(kept between runs: a second run only re-runs the tests), installs ragprov editable with the
``dev`` extra and *only* that client pinned exactly (``pip install -e .[dev] <client>==<version>``),
then runs ``tests/instrumentation/test_<store>.py`` (or the files ``TEST_FILES`` names) in it.
It prints one table: store × version × result × seconds (install and test times apart).

The oldest version is read from ``SUPPORTED_VERSIONS`` in ``src/ragprov/instrumentation/<store>.py``
(the ``>=`` bound of what ``instrumentation_dependencies()`` returns), without importing ragprov,
so this script needs only Python >= 3.10 and its standard library, like scripts/dev.py.

Exit status: 0 when every run passed, 1 otherwise. Network access to the package index is needed
the first time a version is installed (pip's cache makes later installs fast).
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
import venv
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INSTRUMENTATION = ROOT / "src" / "ragprov" / "instrumentation"
TESTS = ROOT / "tests" / "instrumentation"
DEFAULT_CACHE = ROOT / ".venv-matrix"

#: store module → the distribution that SUPPORTED_VERSIONS names.
STORES = {
    "chromadb": "chromadb",
    "qdrant": "qdrant-client",
    "lancedb": "lancedb",
    "pinecone": "pinecone",
    # tests/instrumentation/test_langchain.py needs langchain-core alone (the RAG chain's
    # lineage tests, which need langchain-chroma and langchain-openai, are in another file).
    "langchain": "langchain-core",
    # tests/instrumentation/test_llamaindex_retriever.py needs llama-index-core alone (the RAG
    # example over Chroma runs in tests/test_examples.py's LlamaIndex venv).
    "llamaindex": "llama-index-core",
}

#: store module → its test files under tests/instrumentation/ when not just ``test_{store}.py``
#: (each needs that client alone).
TEST_FILES = {
    "langchain": ("test_langchain.py", "test_langchain_retriever.py"),
    "llamaindex": ("test_llamaindex_retriever.py",),
}


def environment_pins(store: str, version: str) -> list[str]:
    """Extra pins a user of that client version needs anyway (not ragprov's requirements)."""
    release = tuple(int(part) for part in re.findall(r"\d+", version)[:3])
    if store == "chromadb" and release < (0, 6):
        return ["numpy<2"]  # chromadb 0.5 uses np.float_, removed in NumPy 2 (undeclared)
    if store == "qdrant" and release < (1, 11):
        return ["numpy<2"]  # local-mode fusion uses np.NINF, removed in NumPy 2 (undeclared)
    if store == "pinecone" and (6,) <= release < (9,):
        return [f"pinecone[asyncio]=={version}"]  # the asyncio index needs the extra there
    return []


# Long test output goes to a log file per run; the table shows its last line.
LOG_NAME = "pytest.log"


@dataclass
class Outcome:
    store: str
    version: str
    result: str
    install_s: float
    test_s: float
    summary: str


def declared_range(store: str) -> str:
    """The requirement string in SUPPORTED_VERSIONS of the store's module (read with ast)."""
    source = (INSTRUMENTATION / f"{store}.py").read_text(encoding="utf-8")
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "SUPPORTED_VERSIONS" for t in node.targets)
            and isinstance(node.value, ast.Tuple)
        ):
            (first,) = node.value.elts
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                return first.value
    raise SystemExit(f"no SUPPORTED_VERSIONS tuple in {store}.py")


def oldest_version(requirement: str) -> str:
    match = re.search(r">=\s*([0-9][0-9A-Za-z.]*)", requirement)
    if match is None:
        raise SystemExit(f"no lower bound in {requirement!r}")
    return match.group(1)


def bin_dir(env: Path) -> Path:
    return env / ("Scripts" if os.name == "nt" else "bin")


def run(command: list[str], log: Path | None = None, timeout: float = 1800) -> tuple[int, str]:
    """Run in the repository; return (exit code, combined output). Output also goes to ``log``."""
    result = subprocess.run(
        command,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PYTHONDONTWRITEBYTECODE": "1"},
    )
    output = result.stdout + result.stderr
    if log is not None:
        log.write_text(output, encoding="utf-8")
    return result.returncode, output


def ensure_env(
    env: Path, distribution: str, version: str, pins: list[str], python: str
) -> tuple[bool, str]:
    """Create and fill the environment unless a stamp says it is up to date."""
    pyproject = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()[:16]
    key = hashlib.sha256(" ".join([distribution, version, *pins]).encode()).hexdigest()[:8]
    stamp = env / f".matrix-{key}-{pyproject}"
    if stamp.exists():
        return True, "cached"
    if env.exists():
        shutil.rmtree(env)
    if python == sys.executable:
        venv.EnvBuilder(with_pip=True, clear=True).create(env)
    else:
        code, output = run([python, "-m", "venv", str(env)])
        if code:
            return False, output.strip().splitlines()[-1] if output.strip() else "venv failed"
    pip = [str(bin_dir(env) / "python"), "-m", "pip", "install", "--quiet"]
    run([*pip, "--upgrade", "pip"])
    requirements = ["--editable", ".[dev]", f"{distribution}=={version}", *pins]
    code, output = run([*pip, *requirements], env / "pip.log")
    if code:
        lines = [line for line in output.splitlines() if "ERROR" in line] or output.splitlines()
        return False, (lines[-1] if lines else "pip failed")[:120]
    stamp.touch()
    return True, "installed"


def run_store(store: str, version: str, cache: Path, python: str) -> Outcome:
    distribution = STORES[store]
    env = cache / f"{store}-{version}"
    print(f"==> {store}: {distribution}=={version} in {env}", flush=True)
    started = time.perf_counter()
    ok, note = ensure_env(env, distribution, version, environment_pins(store, version), python)
    install_s = time.perf_counter() - started
    if not ok:
        return Outcome(store, version, "INSTALL FAILED", install_s, 0.0, note)
    started = time.perf_counter()
    command = [
        str(bin_dir(env) / "python"),
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        *(
            str((TESTS / name).relative_to(ROOT))
            for name in TEST_FILES.get(store, (f"test_{store}.py",))
        ),
    ]
    code, output = run(command, env / LOG_NAME)
    test_s = time.perf_counter() - started
    lines = [line for line in output.strip().splitlines() if line.strip()]
    summary = lines[-1].strip("= ") if lines else ""
    return Outcome(store, version, "pass" if code == 0 else "FAIL", install_s, test_s, summary)


def print_table(outcomes: list[Outcome], total_s: float) -> None:
    print()
    header = f"{'store':<10} {'version':<13} {'result':<14} {'install s':>9} {'tests s':>8}  pytest"
    print(header)
    print("-" * len(header))
    for o in outcomes:
        print(
            f"{o.store:<10} {o.version:<13} {o.result:<14} {o.install_s:>9.1f} {o.test_s:>8.1f}  "
            f"{o.summary}"
        )
    print(f"\ntotal {total_s:.0f} s; logs in <env>/{LOG_NAME} and <env>/pip.log")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("stores", nargs="*", help=f"some of {', '.join(STORES)} (default: all)")
    parser.add_argument(
        "--version",
        action="append",
        default=[],
        metavar="STORE=VERSION",
        help="test this version instead of the oldest (repeatable)",
    )
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--python", default=sys.executable, help="interpreter for the venvs")
    parser.add_argument("--list", action="store_true", help="print the declared ranges and exit")
    args = parser.parse_args(argv)

    requested: dict[str, list[str]] = {}
    for item in args.version:
        store, _, version = item.partition("=")
        if store not in STORES or not version:
            parser.error(f"--version wants STORE=VERSION with STORE in {sorted(STORES)}")
        requested.setdefault(store, []).append(version)
    unknown = sorted(set(args.stores) - set(STORES))
    if unknown:
        parser.error(f"unknown stores {unknown}; choose from {sorted(STORES)}")
    stores = list(dict.fromkeys([*args.stores, *requested])) or list(STORES)

    if args.list:
        for store in STORES:
            requirement = declared_range(store)
            print(f"{store:<10} {requirement:<32} oldest {oldest_version(requirement)}")
        return 0

    args.cache_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    outcomes: list[Outcome] = []
    for store in stores:
        versions = requested.get(store) or [oldest_version(declared_range(store))]
        for version in versions:
            outcomes.append(run_store(store, version, args.cache_dir.resolve(), args.python))
    print_table(outcomes, time.perf_counter() - started)
    return 0 if all(o.result == "pass" for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Side virtual environments of the slow tests, built on first use and kept between runs.

Some packages cannot live in the dev environment: other instrumentations register plain
``opentelemetry_instrumentor`` names (``openai``, ``langchain``) and would activate in every
``opentelemetry-instrument`` run there, and LlamaIndex's OpenAI LLM needs ``openai < 3``. The
tests that need them run an app in a subprocess with a side environment's Python.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
#: Other GenAI instrumentations beside ragprov (see the file's comments).
COEXISTENCE_REQUIREMENTS = Path(__file__).resolve().parent / "coexistence-requirements.txt"


def side_venv(name: str, requirements: Path | None = None, extras: str = "") -> Path:
    """The bin directory of ``ROOT/name``: a venv with ``requirements`` (a requirements file)
    and ragprov installed editable with ``extras``, rebuilt when either file or
    pyproject.toml changes."""
    venv = ROOT / name
    inputs = [ROOT / "pyproject.toml", *([requirements] if requirements else [])]
    digest = hashlib.sha256(b"".join(path.read_bytes() for path in inputs))
    digest.update(extras.encode())
    stamp = venv / f".installed-{digest.hexdigest()[:16]}"
    python = venv / "bin" / "python"
    if not stamp.exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        (venv / ".gitignore").write_text("*\n")  # as Python >= 3.13's venv does
        pip = [str(python), "-m", "pip", "install", "--quiet"]
        if requirements is not None:
            subprocess.run([*pip, "-r", str(requirements)], check=True, timeout=900)
        editable = f"{ROOT}[{extras}]" if extras else str(ROOT)
        subprocess.run([*pip, "--editable", editable], check=True, timeout=900)
        stamp.touch()
    return python.parent


def run_json_app(
    python: Path,
    app: Path,
    *arguments: str,
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> Any:
    """Run ``app`` with a side environment's ``python`` (``env`` added to this process's) and
    return the JSON document it prints; the app must succeed and log nothing about ragprov (no
    warning, no failure)."""
    done = subprocess.run(
        [str(python), str(app), *arguments],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, **(env or {})},
    )
    assert done.returncode == 0, done.stderr
    assert "ragprov" not in done.stderr, done.stderr
    return json.loads(done.stdout)

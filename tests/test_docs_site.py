"""The documentation site builds with `mkdocs build --strict` and lists every page."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
MKDOCS_YML = ROOT / "mkdocs.yml"

# Plugins that build offline (material's social cards and privacy plugins fetch from the web).
OFFLINE_PLUGINS = {"search"}


def load_mkdocs_config() -> dict[str, Any]:
    config = yaml.safe_load(MKDOCS_YML.read_text(encoding="utf-8"))
    assert isinstance(config, dict)
    return config


def nav_targets(nav: Any) -> list[str]:
    """Every file path in a mkdocs nav, in order (titles and nesting dropped)."""
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, list):
        return [target for item in nav for target in nav_targets(item)]
    if isinstance(nav, dict):
        return [target for value in nav.values() for target in nav_targets(value)]
    return []


def test_nav_lists_every_page():
    config = load_mkdocs_config()
    targets = nav_targets(config["nav"])
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    assert "diagnosis.md" in pages
    assert pages - set(targets) == set(), "pages missing from nav"
    assert len(targets) == len(set(targets)), "page listed twice"
    for target in targets:
        assert "://" not in target, target
        assert (DOCS / target).is_file(), f"nav entry {target} does not exist"


def test_nav_lists_the_json_schemas():
    targets = set(nav_targets(load_mkdocs_config()["nav"]))
    schemas = {p.relative_to(DOCS).as_posix() for p in (DOCS / "spec").glob("*.json")}
    assert schemas
    assert schemas <= targets


def test_site_dir_is_outside_docs_and_ignored_by_git():
    config = load_mkdocs_config()
    site_dir = config["site_dir"].rstrip("/")
    assert config.get("docs_dir", "docs") == "docs"
    assert not site_dir.startswith("docs")
    ignored = {
        line.strip().strip("/")
        for line in (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()
    }
    assert site_dir in ignored


def test_no_plugin_fetches_from_the_network():
    config = load_mkdocs_config()
    plugins = config.get("plugins") or []
    names = {p if isinstance(p, str) else next(iter(p)) for p in plugins}
    assert names <= OFFLINE_PLUGINS
    assert config["theme"]["name"] == "material"
    assert config["theme"].get("font") is False  # no Google Fonts request from the pages


def mkdocs_build(config_file: Path, site: Path) -> subprocess.CompletedProcess[str]:
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("material") is None:
        pytest.skip("mkdocs and mkdocs-material are not installed (pip install -e '.[dev]')")
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "--config-file",
            str(config_file),
            "--site-dir",
            str(site),
        ],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_mkdocs_build_strict(tmp_path):
    site = tmp_path / "site"
    result = mkdocs_build(MKDOCS_YML, site)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (site / "diagnosis" / "index.html").is_file()
    assert (site / "backends" / "grafana-tempo" / "index.html").is_file()
    assert (site / "dashboards" / "grafana-tempo.json").is_file()
    assert (site / "spec" / "ChunkProvenance.schema.json").is_file()


@pytest.mark.parametrize(
    "breakage",
    [
        pytest.param(
            ("diagnosis.md", "\n[gone](no-such-page.md)\n", "no-such-page.md"), id="broken link"
        ),
        pytest.param(("unlisted.md", "# Not in nav\n", "unlisted.md"), id="page missing from nav"),
    ],
)
def test_mkdocs_build_strict_fails_on(breakage, tmp_path):
    docs = tmp_path / "docs"
    shutil.copytree(DOCS, docs)
    name, text, reported = breakage
    with (docs / name).open("a", encoding="utf-8") as page:
        page.write(text)
    config = load_mkdocs_config()
    config["docs_dir"] = str(docs)
    config_file = tmp_path / "mkdocs.yml"
    config_file.write_text(yaml.safe_dump(config), encoding="utf-8")
    result = mkdocs_build(config_file, tmp_path / "site")
    assert result.returncode != 0
    assert reported in result.stdout + result.stderr

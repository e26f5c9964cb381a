#!/usr/bin/env python3
"""Generate ragprov's attribute constants and attribute docs from the semconv/ registry.

Usage (from the repository root, with the dev extra installed):

    python semconv/generate.py           # (re)write the generated files
    python semconv/generate.py --check   # exit 1 and list the files that drifted

The registry is weaver v1 YAML (``groups:``). This is a small, dependency-light stand-in for
``weaver registry generate``: it reads every ``*.yaml`` under ``semconv/`` (except the manifest),
resolves ``ref:`` entries against the ``rag.*`` attributes defined there, and renders the Jinja2
templates in ``semconv/templates/``. References to attributes of the official OpenTelemetry
registries (``gen_ai.*``, ``db.*``, ``error.*`` ...) are kept as external references.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import yaml

SEMCONV_DIR = Path(__file__).resolve().parent
ROOT = SEMCONV_DIR.parent
TEMPLATES_DIR = SEMCONV_DIR / "templates"
MANIFEST_NAMES = frozenset({"manifest.yaml", "registry_manifest.yaml"})

ATTRIBUTES_PY = ROOT / "src" / "ragprov" / "semconv" / "attributes.py"
ATTRIBUTES_MD = ROOT / "docs" / "attributes.md"

REGENERATE_COMMAND = "python semconv/generate.py"
LINE_LENGTH = 100
RAG_PREFIX = "rag."
RETRIEVAL_SPAN_ID = "span.rag.retrieval"
STEP_SPAN_ID = "span.rag.step"


class RegistryError(Exception):
    """The registry is inconsistent (unresolved reference, duplicate id, ...)."""


@dataclass(frozen=True)
class EnumMember:
    id: str
    value: str | int | bool
    brief: str
    note: str
    stability: str

    @property
    def const_name(self) -> str:
        return self.id.upper()


@dataclass(frozen=True)
class Attribute:
    """A ``rag.*`` attribute defined in a registry group."""

    id: str
    type: str  # a weaver simple type, or "enum"
    brief: str
    note: str
    stability: str
    examples: tuple[Any, ...]
    group_id: str
    members: tuple[EnumMember, ...] = ()

    @property
    def is_enum(self) -> bool:
        return self.type == "enum"

    @property
    def const_name(self) -> str:
        return re.sub(r"[^A-Za-z0-9]", "_", self.id).upper()

    @property
    def enum_class_name(self) -> str:
        parts = re.split(r"[._]", self.id)
        return "".join(part.capitalize() for part in parts if part) + "Values"

    @property
    def enum_value_type(self) -> str:
        kinds = {type(m.value).__name__ for m in self.members}
        names = {"str": "string", "int": "int", "bool": "boolean"}
        return "/".join(sorted(names.get(kind, kind) for kind in kinds)) or "string"

    @property
    def display_type(self) -> str:
        return f"{self.enum_value_type} (enum)" if self.is_enum else self.type


@dataclass(frozen=True)
class AttributeRef:
    """An attribute as used by a span group: a ``ref`` plus its requirement level."""

    id: str
    requirement_level: str
    condition: str
    brief: str
    note: str
    definition: Attribute | None  # None for external (official OpenTelemetry) attributes

    @property
    def is_external(self) -> bool:
        return self.definition is None

    @property
    def display_requirement(self) -> str:
        label = {
            "required": "Required",
            "conditionally_required": "Conditionally required",
            "recommended": "Recommended",
            "opt_in": "Opt-In",
        }[self.requirement_level]
        return f"{label}: {self.condition}" if self.condition else label


@dataclass(frozen=True)
class Group:
    id: str
    type: str
    brief: str
    note: str
    display_name: str
    stability: str
    span_kind: str
    attributes: tuple[Attribute, ...] = ()
    refs: tuple[AttributeRef, ...] = ()

    @property
    def rag_refs(self) -> tuple[Attribute, ...]:
        """The ``rag.*`` attributes this group references, in declaration order."""
        return tuple(ref.definition for ref in self.refs if ref.definition is not None)


@dataclass
class Registry:
    groups: list[Group] = field(default_factory=list)

    @property
    def attribute_groups(self) -> list[Group]:
        return [g for g in self.groups if g.type == "attribute_group"]

    @property
    def span_groups(self) -> list[Group]:
        return [g for g in self.groups if g.type == "span"]

    @property
    def attributes(self) -> list[Attribute]:
        """Every defined attribute, sorted by id."""
        found = [a for g in self.attribute_groups for a in g.attributes]
        return sorted(found, key=lambda a: a.id)

    @property
    def enum_attributes(self) -> list[Attribute]:
        return [a for a in self.attributes if a.is_enum]

    def span(self, group_id: str) -> Group:
        for group in self.span_groups:
            if group.id == group_id:
                return group
        raise RegistryError(f"span group {group_id!r} is not defined")


# --------------------------------------------------------------------------------------------
# Loading


def registry_files(semconv_dir: Path = SEMCONV_DIR) -> list[Path]:
    """The registry YAML files (semantic-convention files; the manifest is not one)."""
    files = [
        path
        for pattern in ("*.yaml", "*.yml")
        for path in semconv_dir.rglob(pattern)
        if path.name not in MANIFEST_NAMES
    ]
    return sorted(files)


def _text(value: Any) -> str:
    return " ".join(str(value).split()) if value is not None else ""


def _examples(value: Any) -> tuple[Any, ...]:
    if value is None:
        return ()
    if isinstance(value, list):
        return tuple(value)
    return (value,)


def _requirement(value: Any) -> tuple[str, str]:
    if value is None:
        return "recommended", ""
    if isinstance(value, str):
        return value, ""
    if isinstance(value, dict) and len(value) == 1:
        ((level, condition),) = value.items()
        return str(level), _text(condition)
    raise RegistryError(f"invalid requirement_level: {value!r}")


def _parse_attribute(raw: dict[str, Any], group_id: str) -> Attribute:
    raw_type = raw["type"]
    members: tuple[EnumMember, ...] = ()
    if isinstance(raw_type, dict):
        members = tuple(
            EnumMember(
                id=str(m["id"]),
                value=m["value"],
                brief=_text(m.get("brief", m["id"])),
                note=_text(m.get("note")),
                stability=str(m["stability"]),
            )
            for m in raw_type["members"]
        )
        attr_type = "enum"
    else:
        attr_type = str(raw_type)
    return Attribute(
        id=str(raw["id"]),
        type=attr_type,
        brief=_text(raw.get("brief")),
        note=_text(raw.get("note")),
        stability=str(raw["stability"]),
        examples=_examples(raw.get("examples")),
        group_id=group_id,
        members=members,
    )


def load_registry(files: Iterable[Path] | None = None) -> Registry:
    """Load and resolve the registry."""
    paths = list(registry_files() if files is None else files)
    raw_groups: list[dict[str, Any]] = []
    for path in paths:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        raw_groups.extend(document.get("groups", []))

    definitions: dict[str, Attribute] = {}
    for raw in raw_groups:
        for raw_attr in raw.get("attributes", []):
            if "id" in raw_attr:
                attr = _parse_attribute(raw_attr, str(raw["id"]))
                if attr.id in definitions:
                    raise RegistryError(f"attribute {attr.id!r} is defined twice")
                definitions[attr.id] = attr

    registry = Registry()
    seen_groups: set[str] = set()
    for raw in raw_groups:
        group_id = str(raw["id"])
        if group_id in seen_groups:
            raise RegistryError(f"group {group_id!r} is defined twice")
        seen_groups.add(group_id)
        attributes: list[Attribute] = []
        refs: list[AttributeRef] = []
        for raw_attr in raw.get("attributes", []):
            if "id" in raw_attr:
                attributes.append(definitions[str(raw_attr["id"])])
                continue
            ref_id = str(raw_attr["ref"])
            definition = definitions.get(ref_id)
            if definition is None and ref_id.startswith(RAG_PREFIX):
                raise RegistryError(f"{group_id}: ref {ref_id!r} does not resolve")
            level, condition = _requirement(raw_attr.get("requirement_level"))
            refs.append(
                AttributeRef(
                    id=ref_id,
                    requirement_level=level,
                    condition=condition,
                    brief=_text(raw_attr.get("brief")) or (definition.brief if definition else ""),
                    note=_text(raw_attr.get("note")) or (definition.note if definition else ""),
                    definition=definition,
                )
            )
        registry.groups.append(
            Group(
                id=group_id,
                type=str(raw.get("type", "span")),
                brief=_text(raw.get("brief")),
                note=_text(raw.get("note")),
                display_name=_text(raw.get("display_name")) or group_id,
                stability=str(raw.get("stability", "")),
                span_kind=str(raw.get("span_kind", "")),
                attributes=tuple(attributes),
                refs=tuple(refs),
            )
        )
    return registry


# --------------------------------------------------------------------------------------------
# Template filters


def py_docstring(paragraphs: Sequence[str], indent: int = 0) -> str:
    """A triple-quoted docstring wrapped to the line length, already in ruff-format shape.

    The first line is returned without indentation (the template places it); the following
    lines carry ``indent`` spaces.
    """
    body = [p.replace("\\", "\\\\").replace('"""', '\\"\\"\\"') for p in paragraphs if p]
    pad = " " * indent
    if len(body) == 1 and indent + len(body[0]) + 6 <= LINE_LENGTH:
        return f'"""{body[0]}"""'
    # A lone paragraph must wrap to two lines at least: ruff format joins a one-line docstring
    # with its closing quotes even when that line is then too long.
    width = LINE_LENGTH - 3 if len(body) == 1 else LINE_LENGTH
    lines: list[str] = []
    for index, paragraph in enumerate(body):
        if index:
            lines.append("")
        lines.extend(
            textwrap.wrap(
                paragraph,
                width=width,
                initial_indent=pad + ('"""' if index == 0 else ""),
                subsequent_indent=pad,
                break_long_words=False,
                break_on_hyphens=False,
            )
        )
    lines.append(f'{pad}"""')
    return "\n".join(lines)[indent:]


def md_cell(value: object) -> str:
    """Text safe for one Markdown table cell."""
    return " ".join(str(value).split()).replace("|", "\\|")


def md_examples(examples: Sequence[Any]) -> str:
    return "; ".join(f"`{json.dumps(example, ensure_ascii=False)}`" for example in examples)


def py_literal(value: object) -> str:
    return json.dumps(value) if isinstance(value, str) else repr(value)


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["py_docstring"] = py_docstring
    env.filters["md_cell"] = md_cell
    env.filters["md_examples"] = md_examples
    env.filters["py_literal"] = py_literal
    return env


# --------------------------------------------------------------------------------------------
# Rendering


def render_all(registry: Registry | None = None) -> dict[Path, str]:
    """Render every generated file: absolute output path -> exact file content."""
    reg = load_registry() if registry is None else registry
    env = environment()
    context = {
        "registry": reg,
        "retrieval_span": reg.span(RETRIEVAL_SPAN_ID),
        "step_span": reg.span(STEP_SPAN_ID),
        "regenerate_command": REGENERATE_COMMAND,
    }
    outputs = {
        ATTRIBUTES_PY: env.get_template("attributes.py.j2").render(context),
        ATTRIBUTES_MD: env.get_template("attributes.md.j2").render(context),
    }
    return {path: _normalise(text) for path, text in outputs.items()}


def _normalise(text: str) -> str:
    """Strip trailing whitespace and collapse trailing blank lines to one final newline."""
    lines = [line.rstrip() for line in text.splitlines()]
    return "\n".join(lines).rstrip("\n") + "\n"


def drifted(outputs: dict[Path, str]) -> list[Path]:
    """The generated files whose content on disk differs from ``outputs`` (or are missing)."""
    stale: list[Path] = []
    for path, text in outputs.items():
        if not path.is_file() or path.read_bytes() != text.encode("utf-8"):
            stale.append(path)
    return stale


def _display(path: Path) -> str:
    return path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--check",
        action="store_true",
        help="do not write; exit 1 listing the generated files that differ from the registry",
    )
    args = parser.parse_args(argv)
    try:
        outputs = render_all()
    except (RegistryError, KeyError, jinja2.TemplateError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.check:
        stale = drifted(outputs)
        for path in stale:
            print(f"drifted: {_display(path)}")
        if stale:
            print(f"run `{REGENERATE_COMMAND}` to regenerate", file=sys.stderr)
            return 1
        print("generated files are up to date")
        return 0
    for path, text in outputs.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.is_file() or path.read_bytes() != text.encode("utf-8"):
            path.write_bytes(text.encode("utf-8"))
            print(f"wrote {_display(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

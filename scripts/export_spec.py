#!/usr/bin/env python3
"""Write the JSON Schemas of the provenance spec models to docs/spec/.

    python scripts/export_spec.py           write docs/spec/*.schema.json
    python scripts/export_spec.py --check   exit 1 listing the files that differ

The schemas come from the pydantic models in ``ragprov.model``; tests/test_model.py fails when
the files on disk are not what this script produces.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ragprov.model import json_schemas

SPEC_DIR = Path(__file__).resolve().parent.parent / "docs" / "spec"


def render_spec() -> dict[Path, str]:
    """Every spec file's path and exact text."""
    return {
        SPEC_DIR / name: json.dumps(schema, indent=2, sort_keys=True) + "\n"
        for name, schema in json_schemas().items()
    }


def main(argv: list[str]) -> int:
    rendered = render_spec()
    if "--check" in argv:
        drifted = [
            path
            for path, text in rendered.items()
            if not path.exists() or path.read_text(encoding="utf-8") != text
        ]
        for path in drifted:
            print(f"out of date: {path} (run: python3 scripts/dev.py generate)")
        return 1 if drifted else 0
    SPEC_DIR.mkdir(parents=True, exist_ok=True)
    for path, text in rendered.items():
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

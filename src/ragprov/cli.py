"""The ``ragprov`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ragprov import __version__


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ragprov",
        description="Provenance, lineage and grounding signals for RAG and agent traces.",
    )
    parser.add_argument("--version", action="version", version=f"ragprov {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="store a small corpus in an embedded chromadb, query it, print the provenance",
    )
    demo.add_argument(
        "--json", action="store_true", help="print each retrieval set envelope as a JSON line"
    )
    demo.add_argument("--top-k", type=int, default=4, help="chunks per query (default: 4)")

    config = commands.add_parser("config", help="print the effective settings")
    config.add_argument(
        "--check", action="store_true", help="exit 2 when an environment variable is invalid"
    )

    args = parser.parse_args(argv)
    if args.command == "demo":
        return _demo(json_lines=args.json, top_k=args.top_k)
    return _config(check=args.check)


def _demo(*, json_lines: bool, top_k: int) -> int:
    from ragprov.demo import run_demo

    if top_k < 1:
        print("ragprov demo: --top-k must be at least 1", file=sys.stderr)
        return 2
    try:
        run_demo(sys.stdout, json_lines=json_lines, top_k=top_k)
    except ModuleNotFoundError as error:
        if error.name != "chromadb":
            raise
        print("ragprov demo needs chromadb: pip install 'ragprov[chromadb]'", file=sys.stderr)
        return 1
    return 0


def _config(*, check: bool) -> int:
    from ragprov.config import ConfigError, load_settings

    try:
        settings = load_settings(strict=check)
    except ConfigError as error:
        print(f"ragprov: invalid configuration: {error}", file=sys.stderr)
        return 2
    for name, value in settings.as_env().items():
        print(f"{name}={value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

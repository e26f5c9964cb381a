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
        help="run a small RAG app on embedded components and show what ragprov diagnoses",
    )
    demo.add_argument(
        "--json", action="store_true", help="print one JSON line per answer instead of the table"
    )
    demo.add_argument(
        "--otlp",
        metavar="URL",
        help="also export the spans over OTLP to URL (default protocol http/protobuf; the "
        "OTEL_EXPORTER_OTLP_* variables are honoured when this is not given)",
    )
    demo.add_argument(
        "--otlp-protocol",
        choices=("http/protobuf", "grpc"),
        default="http/protobuf",
        help="protocol for --otlp (default: http/protobuf)",
    )
    demo.add_argument(
        "--openai-base-url",
        metavar="URL",
        help="use this OpenAI-compatible endpoint instead of the local scripted responder "
        "(default: $OPENAI_BASE_URL; the key is read from $OPENAI_API_KEY)",
    )
    demo.add_argument("--model", default=None, help="model name (default: demo-model)")

    config = commands.add_parser("config", help="print the effective settings")
    config.add_argument(
        "--check", action="store_true", help="exit 2 when an environment variable is invalid"
    )

    args = parser.parse_args(argv)
    if args.command == "demo":
        return _demo(args)
    return _config(check=args.check)


def _demo(args: argparse.Namespace) -> int:
    from ragprov.demo import run_demo
    from ragprov.demo.app import DEFAULT_MODEL

    try:
        run_demo(
            sys.stdout,
            json_lines=args.json,
            otlp_endpoint=args.otlp,
            otlp_protocol=args.otlp_protocol,
            openai_base_url=args.openai_base_url,
            model=args.model or DEFAULT_MODEL,
        )
    except ModuleNotFoundError as error:
        if error.name not in ("chromadb", "openai"):
            raise
        print(
            f"ragprov demo needs {error.name}: pip install 'ragprov[chromadb,openai]'",
            file=sys.stderr,
        )
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

"""The ``shotwatch`` command.

Subcommands are discovered: every module in :mod:`shotwatch.cli` other than this one defines
``register(subparsers)``, which adds its parser and sets ``func`` (taking the parsed
arguments, returning an exit code). Adding a command never edits this file.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

import shotwatch
import shotwatch.cli as cli_pkg
from shotwatch.core.errors import ShotWatchError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shotwatch",
        description="Acoustic gunshot detection, location and evidence system.",
    )
    parser.add_argument("--version", action="version", version=f"shotwatch {shotwatch.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(cli_pkg.__path__), key=lambda m: m.name):
        if info.name in ("main", "common") or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"shotwatch.cli.{info.name}")
        register = getattr(module, "register", None)
        if register is None:
            raise RuntimeError(f"shotwatch.cli.{info.name} defines no register(subparsers)")
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except ShotWatchError as exc:
        print(f"shotwatch {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

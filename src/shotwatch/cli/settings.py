"""``shotwatch settings``: show the settings or write their reference page."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from shotwatch.cli.common import add_config_option
from shotwatch.core.settings import load_settings, settings_reference_markdown


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("settings", help="show settings or generate their reference docs")
    p.add_argument(
        "action",
        choices=["show", "docs"],
        help="show: effective settings as JSON; docs: write the reference page",
    )
    p.add_argument("--out", default="docs/reference/settings.md", help="where docs are written")
    add_config_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.action == "show":
        print(json.dumps(load_settings(args.config).model_dump(), indent=2))
        return 0
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(settings_reference_markdown() + "\n", encoding="utf-8")
    print(f"wrote {out}")
    return 0

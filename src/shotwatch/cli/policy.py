"""``shotwatch policy``: validate the policy files, show the generated Cedar, render the
published policy documents from the running configuration."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from shotwatch.cli.common import add_config_option


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("policy", help="check, show and publish the use policies")
    psub = p.add_subparsers(dest="policy_command", metavar="SUBCOMMAND", required=True)

    ck = psub.add_parser("check", help="validate every policy file (errors name file and field)")
    add_config_option(ck)
    ck.set_defaults(func=run_check)

    cd = psub.add_parser("cedar", help="print the Cedar policies generated from the files")
    add_config_option(cd)
    cd.set_defaults(func=run_cedar)

    r = psub.add_parser(
        "render",
        help="write the Impact and Use / Surveillance Technology "
        "Policy documents (Markdown, HTML, PDF)",
    )
    add_config_option(r)
    r.add_argument("--out", default="policy-docs", help="output folder")
    r.add_argument("--formats", default="md,html,pdf", help="comma list of md, html, pdf")
    r.add_argument("--policy", default=None, help="only this policy id")
    r.set_defaults(func=run_render)


def _load(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from shotwatch.core.settings import load_settings
    from shotwatch.policy.schema import load_policies, packaged_policy_texts

    settings = load_settings(args.config)
    folder = settings.policy.policy_dir or None
    policies = load_policies(folder)
    if folder:
        texts = {str(p): p.read_text("utf-8") for p in sorted(Path(folder).glob("*.toml"))}
    else:
        texts = dict(packaged_policy_texts())
    return settings, policies, texts


def run_check(args: argparse.Namespace) -> int:
    _, policies, _ = _load(args)
    for pol in policies:
        print(
            f"{pol.policy.id}: {len(pol.permit)} permit, {len(pol.forbid)} forbid, "
            f"{len(pol.retention)} retention, {len(pol.statement)} statements"
        )
    return 0


def run_cedar(args: argparse.Namespace) -> int:
    from shotwatch.policy.cedar import compile_policies

    _, policies, _ = _load(args)
    print(compile_policies(policies)[0])
    return 0


def run_render(args: argparse.Namespace) -> int:
    from shotwatch.core.errors import InputError
    from shotwatch.policy.render import document, file_digest, to_html, to_markdown, to_pdf

    settings, policies, texts = _load(args)
    formats = {f.strip() for f in args.formats.split(",") if f.strip()}
    bad = formats - {"md", "html", "pdf"}
    if bad:
        raise InputError("--formats", "formats", f"unknown format(s) {sorted(bad)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from shotwatch.policy.schema import parse_policy

    digests = {
        parse_policy(text, where).policy.id: file_digest(text) for where, text in texts.items()
    }
    written = []
    for pol in policies:
        if args.policy and pol.policy.id != args.policy:
            continue
        stem = pol.policy.id
        src_digest = next(
            (
                d
                for k, d in digests.items()
                if k.replace("_", "-") in stem or stem.replace("-", "_").startswith(k)
            ),
            "",
        )
        blocks = document(pol, settings.policy, src_digest)
        title = f"{pol.policy.agency}: {pol.policy.title}"
        if "md" in formats:
            (out / f"{stem}.md").write_text(to_markdown(blocks), encoding="utf-8")
            written.append(f"{stem}.md")
        if "html" in formats:
            (out / f"{stem}.html").write_text(to_html(blocks, title), encoding="utf-8")
            written.append(f"{stem}.html")
        if "pdf" in formats:
            (out / f"{stem}.pdf").write_bytes(to_pdf(blocks, title))
            written.append(f"{stem}.pdf")
    print(json.dumps({"out": str(out), "written": written}, indent=2))
    return 0

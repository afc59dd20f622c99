"""``shotwatch audit``: verify the log, print and check inclusion proofs, focused audits."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path

from shotwatch.cli.common import add_config_option, add_db_option
from shotwatch.core.clock import SystemClock
from shotwatch.core.errors import InputError
from shotwatch.core.settings import load_settings


def _parse_time(value: str | None, field: str) -> float | None:
    if value is None:
        return None
    try:
        dt = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InputError("--" + field, field, f"not an ISO date/time: {value!r}") from exc
    if dt.tzinfo is None:
        raise InputError("--" + field, field, "give a time zone (e.g. 2026-01-01T00:00+00:00)")
    return dt.timestamp()


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("audit", help="verify the audit log, prove entries, focused audits")
    asub = p.add_subparsers(dest="audit_command", metavar="SUBCOMMAND", required=True)

    def common(q: argparse.ArgumentParser) -> None:
        add_db_option(q)
        add_config_option(q)
        q.add_argument(
            "--key", default=None, help="Ed25519 signing key (PEM); default from settings"
        )

    v = asub.add_parser("verify", help="check every entry and checkpoint; exit 1 on tampering")
    common(v)
    v.add_argument(
        "--public-key", default=None, help="base64 public key to trust (default: --key's)"
    )
    v.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes that check the rows (same report; worth it for large logs)",
    )
    v.set_defaults(func=run_verify)

    pr = asub.add_parser("proof", help="print an inclusion proof for entry ID (JSON)")
    common(pr)
    pr.add_argument("id", type=int)
    pr.set_defaults(func=run_proof)

    cs = asub.add_parser("consistency", help="RFC 6962 consistency proof between two sizes")
    common(cs)
    cs.add_argument("old_size", type=int)
    cs.add_argument("new_size", type=int)
    cs.set_defaults(func=run_consistency)

    cp = asub.add_parser("checkpoint", help="sign and store a checkpoint of the log now")
    common(cp)
    cp.set_defaults(func=run_checkpoint)

    ck = asub.add_parser("check-proof", help="check a proof file with no database")
    ck.add_argument("file", help="proof JSON ('-' for stdin)")
    ck.add_argument("--public-key", default=None, help="base64 public key obtained separately")
    ck.set_defaults(func=run_check_proof)

    q = asub.add_parser("query", help="focused audit by user, item and period; CSV or JSON")
    common(q)
    q.add_argument("--user", default=None)
    q.add_argument("--item", default=None)
    q.add_argument("--since", default=None, help="ISO time with zone")
    q.add_argument("--until", default=None, help="ISO time with zone")
    q.add_argument("--format", choices=["csv", "json"], default="csv")
    q.add_argument("--out", default="-", help="file to write ('-': stdout)")
    q.set_defaults(func=run_query)


def _log(args: argparse.Namespace, *, need_key: bool = False):  # type: ignore[no-untyped-def]
    from shotwatch.audit.log import AuditLog
    from shotwatch.audit.signing import load_or_create_key
    from shotwatch.storage.db import make_engine, migrate

    settings = load_settings(args.config)
    url = args.db or settings.storage.url
    migrate(url)
    key_path = args.key or settings.policy.audit_signing_key
    key = None
    if need_key or Path(key_path).exists():
        key = load_or_create_key(key_path, create=need_key)
    return AuditLog(make_engine(url), SystemClock(), signing_key=key)


def run_verify(args: argparse.Namespace) -> int:
    from shotwatch.audit.signing import load_public_b64

    log = _log(args)
    pub = load_public_b64(args.public_key) if args.public_key else None
    report = log.verify(pub, workers=max(1, args.workers))
    out = {
        "ok": report.ok,
        "entries": report.entries,
        "checkpoints": report.checkpoints,
        "root_hash": report.root,
    }
    if report.problem is not None:
        out["first_problem"] = {
            "seq": report.problem.seq,
            "kind": report.problem.kind,
            "detail": report.problem.detail,
        }
    print(json.dumps(out, indent=2))
    if report.problem is not None:
        print(
            f"audit log TAMPERED: entry {report.problem.seq} {report.problem.kind}: "
            f"{report.problem.detail}",
            file=sys.stderr,
        )
        return 1
    return 0


def run_proof(args: argparse.Namespace) -> int:
    log = _log(args)
    print(json.dumps(log.inclusion(args.id), indent=2))
    return 0


def run_consistency(args: argparse.Namespace) -> int:
    log = _log(args)
    proof = log.consistency(args.old_size, args.new_size)
    print(json.dumps({"old_size": args.old_size, "new_size": args.new_size, "proof": proof}))
    return 0


def run_checkpoint(args: argparse.Namespace) -> int:
    log = _log(args, need_key=True)
    cp = log.checkpoint()
    print(json.dumps(cp.__dict__ if cp else {"tree_size": 0}, indent=2))
    return 0


def run_check_proof(args: argparse.Namespace) -> int:
    from shotwatch.audit.log import check_inclusion_proof

    raw = sys.stdin.read() if args.file == "-" else Path(args.file).read_text("utf-8")
    try:
        proof = json.loads(raw)
    except ValueError as exc:
        raise InputError(args.file, "proof", f"not JSON: {exc}") from exc
    ok, why = check_inclusion_proof(proof, args.public_key)
    print(("OK: " if ok else "FAILED: ") + why)
    return 0 if ok else 1


def run_query(args: argparse.Namespace) -> int:
    from shotwatch.audit.log import export_entries

    log = _log(args)
    entries = log.query(
        actor=args.user,
        item=args.item,
        since_s=_parse_time(args.since, "since"),
        until_s=_parse_time(args.until, "until"),
    )
    text = export_entries(entries, args.format)
    if args.out == "-":
        sys.stdout.write(text)
    else:
        Path(args.out).write_text(text, encoding="utf-8")
    return 0

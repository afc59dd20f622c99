"""``shotwatch retention``: what would go and why; two-approver disposal."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime

from shotwatch.cli.common import add_config_option, add_db_option
from shotwatch.core.errors import InputError


def _as_of(text: str) -> datetime:
    try:
        dt = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InputError("--as-of", "as_of", f"not an ISO date: {text!r}") from exc
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("retention", help="retention plan and two-approver disposal")
    rsub = p.add_subparsers(dest="retention_command", metavar="SUBCOMMAND", required=True)

    def common(q: argparse.ArgumentParser) -> None:
        add_db_option(q)
        add_config_option(q)
        q.add_argument("--key", default=None, help="Ed25519 signing key (PEM)")

    pl = rsub.add_parser("plan", help="what would be disposed on a date, and under which rule")
    common(pl)
    pl.add_argument("--as-of", required=True, help="ISO date (UTC if no zone)")
    pl.add_argument("--format", choices=["text", "json"], default="text")
    pl.set_defaults(func=run_plan)

    pr = rsub.add_parser("propose", help="open a disposal request for what is due")
    common(pr)
    pr.add_argument("--as-of", required=True)
    pr.add_argument("--by", required=True)
    pr.set_defaults(func=run_propose)

    ap = rsub.add_parser("approve", help="approve a disposal request (two different people)")
    common(ap)
    ap.add_argument("request", type=int)
    ap.add_argument("--by", required=True)
    ap.set_defaults(func=run_approve)

    ex = rsub.add_parser("execute", help="dispose and print the signed destruction certificate")
    common(ex)
    ex.add_argument("request", type=int)
    ex.add_argument("--by", required=True)
    ex.set_defaults(func=run_execute)

    ho = rsub.add_parser(
        "hold", help="place a legal hold on a record, or on an incident's sensor audio"
    )
    common(ho)
    what = ho.add_mutually_exclusive_group(required=True)
    what.add_argument("--record", help="the record's id")
    what.add_argument(
        "--incident", help="an incident's id: every snippet of its pulses is kept until release"
    )
    ho.add_argument("--reason", required=True, help="why (subpoena, preservation letter, ...)")
    ho.add_argument("--by", required=True)
    ho.set_defaults(func=run_hold)

    re_ = rsub.add_parser("release", help="release a legal hold")
    common(re_)
    re_.add_argument("hold", type=int)
    re_.add_argument("--by", required=True)
    re_.set_defaults(func=run_release)

    hl = rsub.add_parser("holds", help="list the legal holds in force")
    common(hl)
    hl.add_argument("--all", action="store_true", help="released holds too")
    hl.set_defaults(func=run_holds)


def _service(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from shotwatch.audit.log import AuditLog
    from shotwatch.audit.signing import load_or_create_key
    from shotwatch.core.clock import SystemClock
    from shotwatch.core.settings import load_settings
    from shotwatch.policy.schema import load_policies
    from shotwatch.records.service import RecordsService
    from shotwatch.storage.db import make_engine, migrate

    settings = load_settings(args.config)
    url = args.db or settings.storage.url
    migrate(url)
    engine = make_engine(url)
    key = load_or_create_key(args.key or settings.policy.audit_signing_key)
    clock = SystemClock()
    audit = AuditLog(
        engine, clock, signing_key=key, checkpoint_every=settings.policy.audit_checkpoint_every
    )
    policies = load_policies(settings.policy.policy_dir or None)
    return RecordsService(engine, clock, policies, audit, key)


def run_plan(args: argparse.Namespace) -> int:
    svc = _service(args)
    as_of = _as_of(args.as_of)
    p = svc.plan(as_of)
    if args.format == "json":
        out = {
            "as_of": as_of.isoformat(),
            "due": [d.__dict__ | {"due": d.due.isoformat() if d.due else None} for d in p.due],
            "held": [d.__dict__ | {"due": d.due.isoformat() if d.due else None} for d in p.held],
            "errors": [e.to_dict() for e in p.errors],
        }
        print(json.dumps(out, indent=2))
    else:
        print(f"Retention plan as of {as_of.isoformat()}: {len(p.due)} due, {len(p.held)} held")
        for d in p.due:
            print(f"  {d.action:8s} {d.record_id}  [{d.rule_id}] due {d.due:%Y-%m-%d}: {d.reason}")
        for d in p.held:
            print(f"  HOLD     {d.record_id}  [{d.rule_id}]: {d.reason}")
        for e in p.errors:
            print(f"  ERROR    {e}")
    return 1 if p.errors else 0


def run_propose(args: argparse.Namespace) -> int:
    print(json.dumps({"request": _service(args).propose(_as_of(args.as_of), by=args.by)}))
    return 0


def run_approve(args: argparse.Namespace) -> int:
    _service(args).approve(args.request, approver=args.by)
    return 0


def run_execute(args: argparse.Namespace) -> int:
    print(json.dumps(_service(args).execute(args.request, by=args.by), indent=2))
    return 0


def run_hold(args: argparse.Namespace) -> int:
    hid = _service(args).place_hold(
        args.record, incident_id=args.incident, reason=args.reason, by=args.by
    )
    print(json.dumps({"hold": hid}))
    return 0


def run_release(args: argparse.Namespace) -> int:
    _service(args).release_hold(args.hold, by=args.by)
    return 0


def run_holds(args: argparse.Namespace) -> int:
    print(json.dumps(_service(args).holds(active_only=not args.all), indent=2))
    return 0

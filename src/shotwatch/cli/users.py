"""``shotwatch users``: accounts in the identity service that ``shotwatch serve`` signs in.

An operator's tool on the server host (it writes to the database directly); every change is
made through :class:`~shotwatch.policy.identity.IdentityService` and so audited, with
``--by`` as the person responsible.
"""

from __future__ import annotations

import argparse
import getpass
import json
import secrets
import sys
from typing import Any

from shotwatch.cli.common import add_config_option, add_db_option
from shotwatch.core.errors import InputError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("users", help="people and service accounts the server signs in")
    usub = p.add_subparsers(dest="users_command", metavar="SUBCOMMAND", required=True)

    def common(q: argparse.ArgumentParser) -> None:
        add_db_option(q)
        add_config_option(q)
        q.add_argument("--by", required=True, help="who makes the change (audited)")

    a = usub.add_parser("add", help="create a person (password read from the terminal)")
    common(a)
    a.add_argument("user_id")
    for f in ("agency", "role", "rank", "command"):
        a.add_argument(f"--{f}", required=True)
    a.add_argument("--bureau", default="")
    a.add_argument("--no-password", action="store_true", help="service account: no password")
    a.set_defaults(func=run_add)

    g = usub.add_parser("grant", help="technology access (requested and approved by two people)")
    common(g)
    g.add_argument("user_id")
    g.add_argument("policy_id")
    g.add_argument("--requested-by", required=True)
    g.set_defaults(func=run_grant)

    k = usub.add_parser("acknowledge", help="record that the user acknowledged the training")
    common(k)
    k.add_argument("user_id")
    k.add_argument("policy_id")
    k.set_defaults(func=run_ack)

    t = usub.add_parser("totp", help="enroll a new TOTP secret (printed once)")
    common(t)
    t.add_argument("user_id")
    t.set_defaults(func=run_totp)

    tr = usub.add_parser("transfer", help="move to another command: access and sessions end")
    common(tr)
    tr.add_argument("user_id")
    tr.add_argument("--command", required=True)
    tr.add_argument("--role", default=None)
    tr.add_argument("--rank", default=None)
    tr.set_defaults(func=run_transfer)

    s = usub.add_parser("token", help="new service token for an account; prints the users-file row")
    common(s)
    s.add_argument("user_id")
    s.add_argument("--workstation", default="")
    s.set_defaults(func=run_token)


def _identity(args: argparse.Namespace) -> Any:
    from shotwatch.audit.log import AuditLog
    from shotwatch.core.clock import SystemClock
    from shotwatch.core.settings import load_settings
    from shotwatch.policy.identity import IdentityService
    from shotwatch.policy.schema import load_policies
    from shotwatch.storage.db import make_engine, migrate, resolve_url

    settings = load_settings(args.config)
    url = resolve_url(args.db or settings.storage.url)
    migrate(url)
    db = make_engine(url)
    clock = SystemClock()
    pst = settings.policy
    audit = AuditLog(db, clock, checkpoint_every=pst.audit_checkpoint_every)
    return IdentityService(db, clock, pst, load_policies(pst.policy_dir or None), audit=audit)


def run_add(args: argparse.Namespace) -> int:
    password = None
    if not args.no_password:
        password = getpass.getpass(f"password for {args.user_id}: ")
        if len(password) < 12:
            raise InputError("password", "length", "at least 12 characters")
    _identity(args).create_user(
        user_id=args.user_id,
        username=args.user_id,
        agency=args.agency,
        rank=args.rank,
        role=args.role,
        command=args.command,
        bureau=args.bureau,
        password=password,
        created_by=args.by,
    )
    print(f"created {args.user_id}", file=sys.stderr)
    return 0


def run_grant(args: argparse.Namespace) -> int:
    _identity(args).grant_access(
        args.user_id, args.policy_id, requested_by=args.requested_by, approved_by=args.by
    )
    return 0


def run_ack(args: argparse.Namespace) -> int:
    _identity(args).acknowledge_training(args.user_id, args.policy_id)
    return 0


def run_totp(args: argparse.Namespace) -> int:
    import pyotp

    secret = _identity(args).enroll_totp(args.user_id)
    print(secret)
    print(pyotp.TOTP(secret).provisioning_uri(name=args.user_id, issuer_name="ShotWatch"))
    return 0


def run_transfer(args: argparse.Namespace) -> int:
    _identity(args).transfer(
        args.user_id, command=args.command, role=args.role, rank=args.rank, by=args.by
    )
    return 0


def run_token(args: argparse.Namespace) -> int:
    from shotwatch.api.auth import token_digest

    _identity(args).actor_by_id(args.user_id)  # the account must exist
    token = secrets.token_urlsafe(32)
    print(f"token (give to the client, shown once): {token}", file=sys.stderr)
    print("[[user]]")
    print(f"user_id = {json.dumps(args.user_id)}")
    print(f'token_sha256 = "{token_digest(token)}"')
    if args.workstation:
        print(f"workstation = {json.dumps(args.workstation)}")
    return 0

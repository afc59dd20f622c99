"""``shotwatch db upgrade``: bring a database to every domain's newest schema."""

from __future__ import annotations

import argparse

from alembic.runtime.migration import MigrationContext

from shotwatch.cli.common import add_db_option
from shotwatch.storage.db import make_engine, migrate, resolve_url


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("db", help="database schema: upgrade to the newest migrations")
    p.add_argument(
        "action",
        choices=["upgrade", "current"],
        help="upgrade: apply every branch's migrations; current: print the applied revisions",
    )
    add_db_option(p)
    p.set_defaults(func=run)


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def run(args: argparse.Namespace) -> int:
    url = resolve_url(args.db)
    if args.action == "upgrade":
        migrate(url)
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            heads = sorted(MigrationContext.configure(conn).get_current_heads())
    finally:
        engine.dispose()
    verb = "upgraded" if args.action == "upgrade" else "at"
    print(f"{_redacted(url)}: {verb} {', '.join(heads) if heads else '(no migrations applied)'}")
    return 0

"""Database plumbing shared by every domain: one declarative Base, engines, sessions, migrations.

Each domain keeps its tables in its own module (``storage/tables.py`` for the pipeline's
objects, ``audit/tables.py``, ...) on this one :class:`Base`, and its schema changes in its own
Alembic branch (``branch_labels = ("<domain>",)``, starting from no parent). :func:`migrate`
upgrades every branch head, so domains evolve their schemas independently (ADR 0002).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import pkgutil
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, MetaData, create_engine, event
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import NullPool

from shotwatch.core.errors import InputError

DEFAULT_URL = "sqlite:///shotwatch.db"
MIGRATIONS = Path(__file__).with_name("migrations")

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def import_domain_tables() -> list[str]:
    """Import every ``shotwatch.<domain>.tables`` module so their tables join :class:`Base`.

    Alembic's environment and anything that compares the schema call this; a domain adds
    tables by adding its own ``tables.py`` and editing nothing shared.
    """
    import shotwatch

    found = []
    for info in pkgutil.iter_modules(shotwatch.__path__):
        if not info.ispkg:
            continue
        name = f"shotwatch.{info.name}.tables"
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name)
            found.append(name)
    return found


def resolve_url(url: str | None) -> str:
    """``--db`` value, else $SHOTWATCH_STORAGE__URL, else the SQLite default."""
    return url or os.environ.get("SHOTWATCH_STORAGE__URL") or DEFAULT_URL


def make_engine(url: str | None = None, *, pooled: bool = True) -> Engine:
    """An engine for ``url``; SQLite gets foreign keys and WAL so readers do not block."""
    resolved = resolve_url(url)
    kwargs: dict[str, Any] = {"pool_pre_ping": True} if pooled else {"poolclass": NullPool}
    try:
        engine = create_engine(resolved, **kwargs)
    except Exception as exc:  # ArgumentError, NoSuchModuleError: name the bad URL
        raise InputError("--db", "url", f"cannot use database URL {resolved!r}: {exc}") from exc
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=5000")
            cur.close()

    return engine


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("version_locations", str(MIGRATIONS / "versions"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate(url: str | None = None, revision: str = "heads") -> str:
    """Bring the database at ``url`` to ``revision`` (every branch head by default)."""
    resolved = resolve_url(url)
    command.upgrade(alembic_config(resolved), revision)
    return resolved

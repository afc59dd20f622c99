"""Options shared by several subcommands."""

from __future__ import annotations

import argparse

DEFAULT_DB_URL = "sqlite:///shotwatch.db"


def add_db_option(parser: argparse.ArgumentParser) -> None:
    """``--db URL`` on every command that stores: SQLite file by default, PostgreSQL by URL."""
    parser.add_argument(
        "--db",
        metavar="URL",
        default=None,
        help=f"database URL (default: $SHOTWATCH_STORAGE__URL or {DEFAULT_DB_URL}); "
        "e.g. postgresql+psycopg://user@127.0.0.1:5432/shotwatch",
    )


def add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", default=None, help="settings file (TOML)")

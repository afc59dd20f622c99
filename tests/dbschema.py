"""A private PostgreSQL schema per test, so helpers sharing the test database never collide.

The shared ``db_url`` fixture gives every test the same PostgreSQL database; other domains'
migrations (and their Alembic version rows) live there too. Tests that migrate or count rows
wrap it with :func:`isolated_url`, which points ``search_path`` at a fresh schema and drops it
afterwards. SQLite URLs are already per-test files and pass through unchanged.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

from sqlalchemy import create_engine, text


@contextmanager
def isolated_url(db_url: str) -> Iterator[str]:
    if not db_url.startswith("postgresql"):
        yield db_url
        return
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(db_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in db_url else "?"
    try:
        yield f"{db_url}{sep}options={quote(f'-csearch_path={schema}')}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

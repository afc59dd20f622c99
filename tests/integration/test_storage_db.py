from __future__ import annotations

import pytest
from sqlalchemy import inspect, text
from tests.dbschema import isolated_url

from shotwatch.core.errors import InputError
from shotwatch.storage.db import make_engine, migrate


def test_migrate_runs_on_both_backends(db_url: str) -> None:
    # a private schema: other domains migrate the shared test database with revisions this
    # checkout may not have
    with isolated_url(db_url) as url:
        migrate(url)
        engine = make_engine(url)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar() == 1
        # Alembic records where every branch stands.
        assert "alembic_version" in inspect(engine).get_table_names()
        engine.dispose()


def test_bad_url_is_named() -> None:
    with pytest.raises(InputError, match="nosuchdriver"):
        make_engine("nosuchdriver://x")

"""Shared fixtures: the real data folder, database URLs, and service checks.

Real data lives beside the project at ../shared/data (or $SHOTWATCH_DATA); tests that need it
skip with a message saying where they looked. In CI (CI=true) the PostgreSQL and Mosquitto
services are required: a test that needs them fails instead of skipping.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SHOTWATCH_DATA", ROOT.parent / "shared" / "data"))
PG_URL = os.environ.get(
    "SHOTWATCH_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/shotwatch_test"
)
IN_CI = os.environ.get("CI", "").lower() == "true"


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _need_service(port: int, name: str) -> None:
    if not _port_open(port):
        msg = f"{name} is not reachable on 127.0.0.1:{port} (run scripts/services.sh)"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA.is_dir():
        pytest.skip(f"real data not found at {DATA} (set SHOTWATCH_DATA); skipping")
    return DATA


@pytest.fixture(scope="session")
def pittsburgh_dir(data_dir: Path) -> Path:
    p = data_dir / "pittsburgh-2018"
    if not p.is_dir():
        pytest.skip(f"Pittsburgh live-fire data not found at {p}")
    return p


@pytest.fixture(scope="session")
def chicago_dir(data_dir: Path) -> Path:
    p = data_dir / "chicago-examples"
    if not p.is_dir():
        pytest.skip(f"Chicago example audio not found at {p}")
    return p


@pytest.fixture(scope="session")
def boundaries_dir(data_dir: Path) -> Path:
    p = data_dir / "boundaries"
    if not p.is_dir():
        pytest.skip(f"police boundaries not found at {p}")
    return p


@pytest.fixture(scope="session")
def pg_url() -> str:
    _need_service(5432, "PostgreSQL")
    return PG_URL


@pytest.fixture(scope="session")
def mqtt_broker() -> tuple[str, int]:
    _need_service(1883, "Mosquitto")
    return ("127.0.0.1", 1883)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every storage test runs on both backends."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shotwatch.db'}"
    return str(request.getfixturevalue("pg_url"))

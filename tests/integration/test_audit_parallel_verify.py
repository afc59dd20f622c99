"""A verification split over processes reports exactly what one process reports, including
the first bad entry when the damage sits at or next to a range boundary."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text

from shotwatch.audit import log as audit_log
from shotwatch.audit.log import AuditLog
from shotwatch.core.clock import ReplayClock
from shotwatch.storage.db import make_engine, migrate

N = 90
KEY = Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("audit") / "log.db"
    url = f"sqlite:///{path}"
    migrate(url)
    engine = make_engine(url)
    log = AuditLog(engine, ReplayClock(1_700_000_000.0), signing_key=KEY, checkpoint_every=30)
    for i in range(N):
        log.append(
            actor=f"u{i % 7}",
            action="incident.view",
            kind="view",
            allowed=True,
            item=f"inc-{i}",
            reference=f"C-{i}",
        )
    engine.dispose()
    return path


def _tampered(pristine: Path, tmp_path: Path, statements: list[str]) -> AuditLog:
    path = tmp_path / "copy.db"
    shutil.copy(pristine, path)
    engine = make_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(text("DROP TRIGGER audit_entries_no_update"))
        conn.execute(text("DROP TRIGGER audit_entries_no_delete"))
        for st in statements:
            conn.execute(text(st))
    return AuditLog(engine, ReplayClock(1_700_000_000.0), signing_key=KEY)


def _swap(k: int) -> list[str]:
    return [
        f"UPDATE audit_entries SET seq = -1 WHERE seq = {k}",
        f"UPDATE audit_entries SET seq = {k} WHERE seq = {k + 1}",
        f"UPDATE audit_entries SET seq = {k + 1} WHERE seq = -1",
    ]


CASES = {
    "intact": [],
    **{
        f"altered-{k}": [
            f"UPDATE audit_entries SET entry = replace(entry, 'inc-', 'inx-') WHERE seq = {k}"
        ]
        for k in (1, 30, 31, 45, 46, 60, 61, 90)
    },
    **{
        f"deleted-{k}": [f"DELETE FROM audit_entries WHERE seq = {k}"]
        for k in (1, 30, 31, 45, 46, 60, 61, 89)
    },
    **{f"swapped-{k}": _swap(k) for k in (1, 29, 30, 44, 45, 59, 60, 89)},
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_parallel_report_equals_sequential(
    case: str, pristine: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audit_log, "PARALLEL_MIN_ROWS", 1)
    log = _tampered(pristine, tmp_path, CASES[case])
    one = log.verify(workers=1)
    assert one.ok == (case == "intact"), one
    for workers in (2, 3):
        assert log.verify(workers=workers) == one, (case, workers)
    log.engine.dispose()

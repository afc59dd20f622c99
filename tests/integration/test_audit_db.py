from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from tests.pgutil import fresh_database

from shotwatch.audit import log as audit_log
from shotwatch.audit.log import AuditLog, check_inclusion_proof, export_entries
from shotwatch.audit.merkle import verify_consistency
from shotwatch.audit.signing import load_or_create_key, public_key_b64
from shotwatch.cli.main import main
from shotwatch.core.clock import ReplayClock
from shotwatch.storage.db import make_engine, migrate


def fill(log: AuditLog, clock: ReplayClock, n: int) -> None:
    for i in range(n):
        clock.advance_by(60.0)
        log.append(
            actor=f"user-{i % 3}",
            action="incident.view",
            kind="view",
            allowed=i % 4 != 0,
            item=f"inc-{i % 5}",
            purpose="criminal_investigation",
            reference=f"C-{i}",
            rules=["NYPD-SS-ACCESS"],
            policy="nypd-shotspotter",
        )


def test_sqlite_log_proofs_tamper_and_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    key_path = tmp_path / "k.pem"
    migrate(url)
    clock = ReplayClock(1_700_000_000.0)
    log = AuditLog(
        make_engine(url), clock, signing_key=load_or_create_key(key_path), checkpoint_every=10
    )
    fill(log, clock, 25)
    assert [c.tree_size for c in log.checkpoints()] == [10, 20]
    assert log.checkpoint() is not None
    assert log.verify().ok

    # focused audits by user, item and period, exportable
    by_user = log.query(actor="user-1")
    assert by_user and {e["actor"] for e in by_user} == {"user-1"}
    by_item = log.query(item="inc-2", since_s=1_700_000_000.0 + 600, until_s=1_700_000_000.0 + 1200)
    assert all(
        e["item"] == "inc-2" and 1_700_000_600 <= e["time_s"] < 1_700_001_200 for e in by_item
    )
    rows = list(csv.DictReader(io.StringIO(export_entries(by_user, "csv"))))
    assert [int(r["seq"]) for r in rows] == [e["seq"] for e in by_user]
    assert json.loads(export_entries(by_user, "json")) == by_user

    # the database refuses UPDATE and DELETE
    with log.engine.begin() as conn, pytest.raises(DBAPIError, match="append-only"):
        conn.execute(text("UPDATE audit_entries SET entry='x' WHERE seq=3"))
    with log.engine.begin() as conn, pytest.raises(DBAPIError, match="append-only"):
        conn.execute(text("DELETE FROM audit_entries WHERE seq=3"))

    # CLI: proof, independent check
    db = ["--db", url, "--key", str(key_path)]
    assert main(["audit", "proof", "7", *db]) == 0
    proof_text = capsys.readouterr().out
    proof_file = tmp_path / "p.json"
    proof_file.write_text(proof_text)
    pub = public_key_b64(load_or_create_key(key_path).public_key())
    assert main(["audit", "check-proof", str(proof_file), "--public-key", pub]) == 0
    ok, _ = check_inclusion_proof(json.loads(proof_text), pub)
    assert ok
    forged = json.loads(proof_text)
    forged["entry"] = forged["entry"].replace("user-0", "user-2")
    ok, why = check_inclusion_proof(forged, pub)
    assert not ok and "audit path" in why

    assert main(["audit", "verify", *db]) == 0
    capsys.readouterr()
    # consistency between two published checkpoints
    assert main(["audit", "consistency", "10", "20", *db]) == 0
    cons = json.loads(capsys.readouterr().out)
    c10, c20 = log.checkpoints()[:2]
    assert verify_consistency(
        10,
        20,
        bytes.fromhex(c10.root_hash),
        bytes.fromhex(c20.root_hash),
        [bytes.fromhex(h) for h in cons["proof"]],
    )
    # focused audit from the command line: by user and period, as CSV and JSON
    out_csv = tmp_path / "u1.csv"
    args = ["audit", "query", "--user", "user-1", "--since", "2023-11-14T22:20:00+00:00", *db]
    assert main([*args, "--format", "csv", "--out", str(out_csv)]) == 0
    rows = list(csv.DictReader(out_csv.open()))
    assert rows and {r["actor"] for r in rows} == {"user-1"}
    assert all(float(r["time_s"]) >= 1_700_000_400 for r in rows)
    assert main([*args, "--format", "json"]) == 0
    assert [e["seq"] for e in json.loads(capsys.readouterr().out)] == [int(r["seq"]) for r in rows]
    assert main(["audit", "query", "--since", "yesterday", *db]) == 2
    # an attacker with the database file: drops the trigger and edits entry 13
    with log.engine.begin() as conn:
        conn.execute(text("DROP TRIGGER audit_entries_no_update"))
        conn.execute(
            text("UPDATE audit_entries SET entry = replace(entry, 'C-12', 'C-99') WHERE seq=13")
        )
    assert main(["audit", "verify", *db]) == 1
    err = capsys.readouterr().err
    assert "entry 13 altered" in err
    monkeypatch.setattr(audit_log, "PARALLEL_MIN_ROWS", 1)  # this small log, split in two
    assert main(["audit", "verify", "--workers", "2", *db]) == 1
    assert "entry 13 altered" in capsys.readouterr().err


@pytest.mark.postgres
def test_postgres_refuses_update_delete_truncate(pg_url: str) -> None:
    with fresh_database(pg_url) as url:
        migrate(url)
        clock = ReplayClock(1_700_000_000.0)
        engine = make_engine(url)
        log = AuditLog(engine, clock)
        fill(log, clock, 5)
        for stmt in (
            "UPDATE audit_entries SET entry='x' WHERE seq=2",
            "DELETE FROM audit_entries WHERE seq=2",
            "TRUNCATE audit_entries",
            "UPDATE audit_checkpoints SET root_hash='00'",
        ):
            with engine.begin() as conn, pytest.raises(DBAPIError, match="append-only"):
                conn.execute(text(stmt))
        assert log.verify().ok and log.verify().entries == 5
        # a second writer (another process) appends in between: the chain stays linear
        other = AuditLog(make_engine(url), clock)
        for i in range(6):
            (log if i % 2 else other).append(
                actor="u", action="incident.view", kind="view", allowed=True, item=f"x{i}"
            )
        rep = log.verify()
        assert rep.ok and rep.entries == 11, rep
        assert [e["seq"] for e in log.query()] == list(range(1, 12))
        log.close()
        other.close()
        other.engine.dispose()
        engine.dispose()

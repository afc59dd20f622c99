from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from shotwatch.audit.log import AuditLog
from shotwatch.audit.signing import load_or_create_key
from shotwatch.cli.main import main
from shotwatch.core.clock import ReplayClock
from shotwatch.policy.schema import load_policies
from shotwatch.records.service import DisposalRefused, RecordsService, verify_certificate
from shotwatch.records.tables import RecordRow
from shotwatch.storage.db import make_engine, migrate

T0 = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
SS = "nypd-shotspotter"


@dataclass
class _Records:
    url: str
    key_path: Path
    engine: Engine
    clock: ReplayClock
    audit: AuditLog
    svc: RecordsService


def _records(tmp_path: Path) -> _Records:
    """A migrated SQLite database with a signing key, a replay clock at ``T0``, the audit log
    and the records service over the packaged policies."""
    url = f"sqlite:///{tmp_path / 'r.db'}"
    key_path = tmp_path / "k.pem"
    migrate(url)
    engine = make_engine(url)
    key = load_or_create_key(key_path)
    clock = ReplayClock(T0)
    audit = AuditLog(engine, clock, signing_key=key)
    return _Records(
        url,
        key_path,
        engine,
        clock,
        audit,
        RecordsService(engine, clock, load_policies(), audit, key),
    )


def test_two_approvers_hold_stub_and_signed_certificate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    r = _records(tmp_path)
    url, key_path, engine, clock, audit, svc = r.url, r.key_path, r.engine, r.clock, r.audit, r.svc
    for i in range(3):
        svc.add(
            record_id=f"audio-{i}",
            policy_id=SS,
            record_class="sensor_audio",
            content=f"pcm-{i}".encode() * 100,
            created_at_s=T0,
            by="sensor-7",
        )
    svc.add(
        record_id="clip-1",
        policy_id=SS,
        record_class="incident_audio",
        content=b"clip",
        created_at_s=T0,
        by="sensor-7",
    )
    hold = svc.place_hold("audio-1", reason="subpoena 2026-17", by="legal1")

    # the CLI shows what would go and why
    assert (
        main(["retention", "plan", "--as-of", "2026-01-03", "--db", url, "--key", str(key_path)])
        == 0
    )
    out = capsys.readouterr().out
    assert "audio-0" in out and "NYPD-SS-SENSOR-AUDIO-30H" in out and "HOLD     audio-1" in out
    assert "clip-1" not in out  # confirmed-incident audio is evidence

    clock.advance_by(2 * 86400)
    as_of = datetime.fromtimestamp(clock.now(), UTC)
    req = svc.propose(as_of, by="ico75")
    svc.approve(req, approver="ico75")
    with pytest.raises(DisposalRefused, match="2 different approvers"):
        svc.execute(req, by="ico75")
    with pytest.raises(DisposalRefused, match="already approved"):
        svc.approve(req, approver="ico75")
    svc.place_hold("audio-2", reason="late preservation letter", by="legal1")  # after proposal
    svc.approve(req, approver="co75")
    cert = svc.execute(req, by="ico75")

    body = cert["certificate"]
    assert [i["record_id"] for i in body["items"]] == ["audio-0"]
    assert body["approvers"] == ["co75", "ico75"]
    assert {s["record_id"] for s in body["skipped"]} == {"audio-2"}
    ok, why = verify_certificate(cert)
    assert ok, why
    forged = copy.deepcopy(cert)
    forged["certificate"]["items"][0]["content_sha256"] = "0" * 64
    assert not verify_certificate(forged)[0]
    with Session(engine) as s:
        stub = s.get(RecordRow, "audio-0")
        assert stub is not None and stub.content is None and stub.disposed_at_s is not None
        assert len(stub.content_sha256) == 64
        held = s.get(RecordRow, "audio-1")
        assert held is not None and held.content is not None
    with pytest.raises(DisposalRefused, match="already executed"):
        svc.execute(req, by="ico75")
    history = audit.query(item="record:audio-0")
    assert [e["action"] for e in history] == ["record.create", "retention.dispose"]
    svc.release_hold(hold, by="legal1")
    clock.advance_by(60)
    assert "audio-1" in [d.record_id for d in svc.plan(as_of + timedelta(minutes=2)).due]
    assert audit.verify().ok


def test_disposal_from_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    r = _records(tmp_path)
    url, key_path, svc = r.url, r.key_path, r.svc
    svc.add(
        record_id="audio-9",
        policy_id=SS,
        record_class="sensor_audio",
        content=b"pcm" * 50,
        created_at_s=T0,
        by="sensor-1",
    )
    db = ["--db", url, "--key", str(key_path)]
    assert main(["retention", "propose", "--as-of", "2026-01-03", "--by", "ico1", *db]) == 0
    req = json.loads(capsys.readouterr().out)["request"]
    assert main(["retention", "approve", str(req), "--by", "ico1", *db]) == 0
    assert main(["retention", "execute", str(req), "--by", "ico1", *db]) == 2  # one approver
    assert "2 different approvers" in capsys.readouterr().err
    assert main(["retention", "approve", str(req), "--by", "co1", *db]) == 0
    assert main(["retention", "execute", str(req), "--by", "ico1", *db]) == 0
    cert = json.loads(capsys.readouterr().out)
    assert [i["record_id"] for i in cert["certificate"]["items"]] == ["audio-9"]
    assert verify_certificate(cert)[0]
    assert main(["audit", "verify", *db]) == 0


def test_legal_holds_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A hold names a record or an incident, with a reason; the held record is not proposed
    for disposal until released; every step is audited; mistakes are refused by name."""
    import json

    from shotwatch.core.model import Incident, Provenance
    from shotwatch.storage.db import session_factory
    from shotwatch.storage.service import save_incidents

    r = _records(tmp_path)
    url, key_path, engine, audit, svc = r.url, r.key_path, r.engine, r.audit, r.svc
    svc.add(
        record_id="audio-5",
        policy_id=SS,
        record_class="sensor_audio",
        content=b"pcm" * 50,
        created_at_s=T0,
        by="sensor-1",
    )
    prov = Provenance.automatic("t", "1", T0)
    with session_factory(engine).begin() as s:
        save_incidents(
            [
                Incident(
                    "inc-7", (), T0, T0 + 1, 1.0, 2.0, 1, 1, (), False, None, None, provenance=prov
                )
            ],
            session=s,
        )
    db = ["--db", url, "--key", str(key_path)]

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(["retention", *argv, *db])
        out, err = capsys.readouterr()
        return code, out, err

    code, out, _ = run("hold", "--record", "audio-5", "--reason", "subpoena 9", "--by", "legal1")
    assert code == 0
    record_hold = json.loads(out)["hold"]
    code, out, _ = run("hold", "--incident", "inc-7", "--reason", "letter 3", "--by", "legal1")
    assert code == 0
    incident_hold = json.loads(out)["hold"]
    code, out, _ = run("holds")
    listed = json.loads(out)
    assert [(h["record_id"], h["incident_id"], h["reason"]) for h in listed] == [
        ("audio-5", None, "subpoena 9"),
        (None, "inc-7", "letter 3"),
    ]
    code, out, _ = run("plan", "--as-of", "2026-01-03")
    assert "HOLD     audio-5" in out

    # refused, by name: unknown record or incident, an empty reason, a second release
    code, _, err = run("hold", "--record", "audio-6", "--reason", "x", "--by", "legal1")
    assert code == 2 and "no record 'audio-6'" in err
    code, _, err = run("hold", "--incident", "inc-8", "--reason", "x", "--by", "legal1")
    assert code == 2 and "no incident 'inc-8'" in err
    code, _, err = run("hold", "--incident", "inc-7", "--reason", " ", "--by", "legal1")
    assert code == 2 and "needs a reason" in err
    with pytest.raises(SystemExit):  # neither subject: argparse refuses
        main(["retention", "hold", "--reason", "x", "--by", "legal1", *db])
    capsys.readouterr()

    assert run("release", str(record_hold), "--by", "legal1")[0] == 0
    code, _, err = run("release", str(record_hold), "--by", "legal1")
    assert code == 2 and "released already" in err
    code, out, _ = run("holds")
    assert [h["id"] for h in json.loads(out)] == [incident_hold]
    code, out, _ = run("holds", "--all")
    assert [h["released_by"] for h in json.loads(out)] == ["legal1", None]
    code, out, _ = run("plan", "--as-of", "2026-01-03")
    assert "HOLD" not in out and "audio-5" in out
    assert [e["action"] for e in audit.query(item="incident:inc-7")] == ["retention.hold"]
    holds = [e for e in audit.query(item="record:audio-5") if e["action"] == "retention.hold"]
    assert [(e["actor"], e["detail"]["placed"]) for e in holds] == [
        ("legal1", True),
        ("legal1", False),
    ]
    assert audit.verify().ok

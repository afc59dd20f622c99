from __future__ import annotations

from pathlib import Path

import pyotp
import pytest
from argon2 import PasswordHasher

from shotwatch.audit.log import AuditLog
from shotwatch.core.clock import ReplayClock
from shotwatch.core.errors import InputError
from shotwatch.core.settings import PolicySettings
from shotwatch.policy.actions import Action
from shotwatch.policy.engine import Resource, default_engine
from shotwatch.policy.identity import AuthError, IdentityService
from shotwatch.policy.service import Authorizer
from shotwatch.storage.db import make_engine, migrate

SS = "nypd-shotspotter"
SF = "sf-dem-gunshot-detection"
ONSITE = "10.1.2.3"
HOME = "203.0.113.9"


@pytest.fixture
def world(tmp_path: Path) -> tuple[IdentityService, Authorizer, ReplayClock, AuditLog]:
    url = f"sqlite:///{tmp_path / 'id.db'}"
    migrate(url)
    engine = make_engine(url)
    clock = ReplayClock(1_800_000_000.0)
    audit = AuditLog(engine, clock)
    fast = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)  # argon2id, test-sized
    ids = IdentityService(
        engine, clock, PolicySettings(), default_engine().policies, audit=audit, hasher=fast
    )
    ids.create_user(
        user_id="det1",
        username="det1",
        agency="NYPD",
        rank="detective",
        role="investigator",
        command="pct-75",
        bureau="detective",
        password="s3cret-pass",
    )
    ids.grant_access("det1", SS, requested_by="co75", approved_by="itb1")
    ids.acknowledge_training("det1", SS)
    return ids, Authorizer(default_engine(), audit), clock, audit


def incident(command: str = "pct-75") -> Resource:
    return Resource("inc-9", SS, "incident", command, created_at_s=1_800_000_000.0 - 600)


def test_password_is_argon2id(world) -> None:  # type: ignore[no-untyped-def]
    ids, *_ = world
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from shotwatch.policy.tables import UserRow

    with Session(ids.engine) as s:
        h = s.scalars(select(UserRow.password_hash).where(UserRow.id == "det1")).one()
    assert h is not None and h.startswith("$argon2id$") and "s3cret" not in h


def test_transfer_removes_access_at_once_including_open_sessions(world) -> None:  # type: ignore[no-untyped-def]
    ids, authz, clock, audit = world
    login = ids.login("det1", "s3cret-pass", address=ONSITE)
    actor, ctx = ids.actor_for_session(
        login.token, purpose="criminal_investigation", reference="C-1"
    )
    assert authz.authorize(actor, Action.INCIDENT_VIEW, incident(), ctx).allow
    clock.advance_by(5)
    ids.transfer("det1", command="pct-40", by="itb1")
    with pytest.raises(AuthError, match="transferred"):
        ids.actor_for_session(login.token)
    # even a fresh session in the new command sees nothing until access is granted again
    login2 = ids.login("det1", "s3cret-pass", address=ONSITE)
    actor2, ctx2 = ids.actor_for_session(
        login2.token, purpose="criminal_investigation", reference="C-1"
    )
    assert actor2.access == frozenset()
    assert not authz.authorize(actor2, Action.INCIDENT_VIEW, incident("pct-40"), ctx2).allow
    hist = ids.assignments("det1")
    assert [a.command for a in hist] == ["pct-75", "pct-40"] and hist[0].end_s is not None
    assert audit.verify().ok
    kinds = [e["action"] for e in audit.query(actor="det1")]
    assert "auth.login" in kinds and "incident.view" in kinds


def test_remote_needs_totp(world) -> None:  # type: ignore[no-untyped-def]
    ids, _, clock, _ = world
    with pytest.raises(AuthError, match="none is enrolled"):
        ids.login("det1", "s3cret-pass", address=HOME)
    secret = ids.enroll_totp("det1")
    with pytest.raises(AuthError, match="TOTP"):
        ids.login("det1", "s3cret-pass", address=HOME, totp_code="000000")
    code = pyotp.TOTP(secret).at(int(clock.now()))
    res = ids.login("det1", "s3cret-pass", address=HOME, totp_code=code)
    assert res.remote and res.second_factor
    on = ids.login("det1", "s3cret-pass", address=ONSITE)
    assert not on.remote


def test_lockout_and_expiry(world) -> None:  # type: ignore[no-untyped-def]
    ids, _, clock, audit = world
    for _ in range(5):
        with pytest.raises(AuthError):
            ids.login("det1", "wrong", address=ONSITE)
    with pytest.raises(AuthError, match="locked"):
        ids.login("det1", "s3cret-pass", address=ONSITE)
    clock.advance_by(901)
    tok = ids.login("det1", "s3cret-pass", address=ONSITE).token
    clock.advance_by(600)
    ids.actor_for_session(tok)
    clock.advance_by(901)
    with pytest.raises(AuthError, match="idle"):
        ids.actor_for_session(tok)
    tok = ids.login("det1", "s3cret-pass", address=ONSITE).token
    for _ in range(40):  # keep it busy past the 8 h absolute limit
        clock.advance_by(800)
        if clock.now() >= 1_800_000_000.0 + 8 * 3600 + 2500:
            break
        try:
            ids.actor_for_session(tok)
        except AuthError as exc:
            assert "expired" in exc.reason
            break
    else:
        pytest.fail("session never expired")
    failures = [
        e for e in audit.query(actor="det1") if e["action"] == "auth.login" and not e["allowed"]
    ]
    assert len(failures) >= 6


def test_training_required_and_sf_sanctions(world) -> None:  # type: ignore[no-untyped-def]
    ids, authz, clock, _ = world
    ids.create_user(
        user_id="sup1",
        username="sup1",
        agency="SF-DEM",
        rank="public_safety_supervisor_8239",
        role="supervisor",
        command="dec",
        password="another-pass",
    )
    ids.grant_access("sup1", SF, requested_by="mgr", approved_by="adm")
    tok = ids.login("sup1", "another-pass", address=ONSITE, workstation="DEM-SUP-WS-2").token
    res = Resource("inc-1", SF, "incident", "dec", created_at_s=clock.now() - 60)
    actor, ctx = ids.actor_for_session(tok, purpose="dispatch", reference="I-1")
    assert not authz.authorize(actor, Action.INCIDENT_VIEW, res, ctx).allow  # untrained
    ids.acknowledge_training("sup1", SF)
    actor, ctx = ids.actor_for_session(tok, purpose="dispatch", reference="I-1")
    assert authz.authorize(actor, Action.INCIDENT_VIEW, res, ctx).allow
    measures = [ids.record_sanction("sup1", SF, by="mgr").measure for _ in range(4)]
    assert measures == [
        "Retraining",
        "Formal Counseling",
        "Letter of Reprimand",
        "Letter of Reprimand",
    ]
    # retraining withdrew the acknowledgment: access stops until the user acknowledges again
    actor, ctx = ids.actor_for_session(tok, purpose="dispatch", reference="I-1")
    assert SF not in actor.trained
    with pytest.raises(InputError, match="no sanction steps"):
        ids.record_sanction("det1", SS, by="co75")


def test_grant_needs_two_people_and_known_role(world) -> None:  # type: ignore[no-untyped-def]
    ids, *_ = world
    with pytest.raises(InputError, match="two different"):
        ids.grant_access("det1", SS, requested_by="x", approved_by="x")
    with pytest.raises(InputError, match="role"):
        ids.create_user(
            user_id="u9", username="u9", agency="NYPD", rank="detective", role="wizard", command="c"
        )

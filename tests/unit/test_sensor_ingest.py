from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text

from shotwatch.core.model import iso_utc
from shotwatch.sensor.ingest import (
    Ingest,
    IngestLimits,
    MemoryIngestStore,
    Rejection,
    RejectReason,
    SqlIngestStore,
    VerifiedReport,
)
from shotwatch.sensor.keys import public_key_text
from shotwatch.sensor.messages import MessageType, ReportFields, canonical_json, seal
from shotwatch.sensor.sequence import SequenceCounter
from shotwatch.sensor.signer import SensorSigner
from shotwatch.storage.db import make_engine, migrate, session_factory

T = 1_800_000_000.25
SR = 12000


def _fields(arrival_s: float = T) -> ReportFields:
    return ReportFields(
        arrival_utc=iso_utc(arrival_s),
        clock_error_s=0.0004,
        x_m=10.0,
        y_m=-5.0,
        z_m=6.0,
        lat_deg=None,
        lon_deg=None,
        elevation_m=None,
        snr_db=21.5,
        level_dbfs=-12.0,
        score=0.8,
    )


def _snippet(n: int = 2 * SR) -> np.ndarray:
    return (np.sin(np.arange(n) * 0.01) * 1000).astype(np.int16)


@pytest.fixture
def setup(tmp_path: Path) -> tuple[SensorSigner, Ingest, MemoryIngestStore]:
    key = Ed25519PrivateKey.generate()
    signer = SensorSigner("SN-1", key, tmp_path / "seq")
    store = MemoryIngestStore({"SN-1": key.public_key()})
    return signer, Ingest(store, IngestLimits()), store


def _report(signer: SensorSigner, arrival_s: float = T) -> bytes:
    return signer.report(_fields(arrival_s), _snippet(), SR, arrival_s - 1.0)[1]


def test_valid_report_is_accepted_once(
    setup: tuple[SensorSigner, Ingest, MemoryIngestStore],
) -> None:
    signer, ingest, _ = setup
    data = _report(signer)
    ok = ingest.verify_report(data, received_s=T + 1)
    assert isinstance(ok, VerifiedReport) and ok.kind is MessageType.REPORT
    pulse = ok.pulse()
    assert pulse.t_s == pytest.approx(T, abs=1e-6) and pulse.sensor == "SN-1"
    assert pulse.clock_error_s == 0.0004 and pulse.score == 0.8
    audio = ok.audio()
    assert audio is not None and np.array_equal(audio[0], _snippet())
    again = ingest.verify_report(data, received_s=T + 2)
    assert isinstance(again, Rejection) and again.reason is RejectReason.DUPLICATE
    assert again.already_accepted


def _reason(ingest: Ingest, data: bytes) -> RejectReason:
    out = ingest.verify_report(data, received_s=T + 1)
    assert isinstance(out, Rejection), out
    return out.reason


def test_rejections_name_their_reason(
    setup: tuple[SensorSigner, Ingest, MemoryIngestStore], tmp_path: Path
) -> None:
    signer, ingest, _ = setup
    good = json.loads(_report(signer))

    tampered = dict(good, body=dict(good["body"], snr_db=40.0))
    assert _reason(ingest, canonical_json(tampered)) is RejectReason.BAD_SIGNATURE
    moved = dict(good, body=dict(good["body"], position=dict(good["body"]["position"], x_m=99.0)))
    assert _reason(ingest, canonical_json(moved)) is RejectReason.BAD_SIGNATURE
    assert _reason(ingest, canonical_json(dict(good, seq=good["seq"] + 5))) is (
        RejectReason.BAD_SIGNATURE
    )

    stranger = SensorSigner("SN-X", Ed25519PrivateKey.generate(), tmp_path / "seqx")
    assert _reason(ingest, _report(stranger)) is RejectReason.UNKNOWN_SENSOR
    impostor = SensorSigner("SN-1", Ed25519PrivateKey.generate(), tmp_path / "seqi")
    assert _reason(ingest, _report(impostor)) is RejectReason.BAD_SIGNATURE

    short = signer.report(_fields(), _snippet(2 * SR - 100), SR, T - 1.0)[1]
    assert _reason(ingest, short) is RejectReason.SNIPPET_LENGTH
    long_ = signer.report(_fields(), _snippet(5 * SR), SR, T - 1.0)[1]
    assert _reason(ingest, long_) in (RejectReason.SNIPPET_LENGTH, RejectReason.OVERSIZED)
    shifted = signer.report(_fields(), _snippet(), SR, T - 3.0)[1]
    assert _reason(ingest, shifted) is RejectReason.SNIPPET_LENGTH

    assert _reason(ingest, b"x" * (ingest.limits.search_message_bytes() + 1)) is (
        RejectReason.OVERSIZED
    )
    small = Ingest(ingest.store, IngestLimits(max_message_bytes=4096))
    assert _reason(small, _report(signer)) is RejectReason.OVERSIZED
    assert _reason(ingest, b"{not json") is RejectReason.MALFORMED
    bad_type = seal(signer.key, MessageType.SEARCH_REQUEST, "SN-1", 10**9, {})
    assert _reason(ingest, bad_type) is RejectReason.UNKNOWN_TYPE

    future = _report(signer, arrival_s=T + 3600)
    out = ingest.verify_report(future, received_s=T)
    assert isinstance(out, Rejection) and "future" in out.detail


def test_replayed_and_old_sequences_are_rejected(
    setup: tuple[SensorSigner, Ingest, MemoryIngestStore],
) -> None:
    signer, ingest, _ = setup
    first = _report(signer, T)
    second = _report(signer, T + 5)
    assert isinstance(ingest.verify_report(second, received_s=T + 6), VerifiedReport)
    out = ingest.verify_report(first, received_s=T + 7)  # older, never accepted
    assert isinstance(out, Rejection) and out.reason is RejectReason.REPLAYED
    assert "not above the last accepted" in out.detail


def test_sequence_survives_restart(tmp_path: Path) -> None:
    a = SequenceCounter(tmp_path / "seq", block=10)
    got = [a.next() for _ in range(25)]
    b = SequenceCounter(tmp_path / "seq", block=10)  # "crash" without a clean shutdown
    assert b.next() > max(got)
    assert got == sorted(set(got))


@pytest.fixture(params=["sqlite", "postgresql"])
def sensor_db_url(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    """SQLite file, or a throw-away PostgreSQL database (other branches' migrations in the
    shared test database must not meet this tree's Alembic history)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'db.sqlite'}"
        return
    base = request.getfixturevalue("pg_url")
    name = f"sw_sensor_{uuid.uuid4().hex[:12]}"
    admin = make_engine(base, pooled=False).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    try:
        yield base.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


def test_sql_store_dedupes_across_instances(tmp_path: Path, sensor_db_url: str) -> None:
    url = sensor_db_url
    migrate(url)
    engine = make_engine(url)
    key = Ed25519PrivateKey.generate()
    SqlIngestStore(session_factory(engine)).register("SN-1", public_key_text(key), registered_s=T)
    signer = SensorSigner("SN-1", key, tmp_path / "seq")
    data = [_report(signer, T + i) for i in range(3)]
    ingest1 = Ingest(SqlIngestStore(session_factory(engine)))
    ingest2 = Ingest(SqlIngestStore(session_factory(engine)))  # e.g. a second server worker
    assert isinstance(ingest1.verify_report(data[0], received_s=T + 9), VerifiedReport)
    assert isinstance(ingest2.verify_report(data[1], received_s=T + 9), VerifiedReport)
    dup = ingest1.verify_report(data[1], received_s=T + 9)
    assert isinstance(dup, Rejection) and dup.reason is RejectReason.DUPLICATE
    old = ingest2.verify_report(seal(key, MessageType.HEARTBEAT, "SN-1", 1, {}), received_s=T + 9)
    assert isinstance(old, Rejection) and old.reason is RejectReason.INVALID_FIELD
    assert isinstance(ingest2.verify_report(data[2], received_s=T + 9), VerifiedReport)
    engine.dispose()


def test_sql_store_lists_registered_sensors_for_the_associator(sensor_db_url: str) -> None:
    """The server's associator learns the network from the registry: local positions as
    registered, lat/lon placed in the deployment's frame; sensors without a position and
    retired ones are left out."""
    from shotwatch.core.geo import LocalFrame
    from shotwatch.sensor.tables import SensorRecord

    migrate(sensor_db_url)
    engine = make_engine(sensor_db_url)
    sessions = session_factory(engine)
    store = SqlIngestStore(sessions)
    key = public_key_text(Ed25519PrivateKey.generate())
    frame = LocalFrame(40.68, -73.88)
    lat, lon, _ = frame.to_geo(300.0, -200.0, 0.0)
    store.register("SN-A", key, registered_s=T, x_m=10.0, y_m=-5.0, z_m=6.0)
    store.register("SN-B", key, registered_s=T, lat_deg=lat, lon_deg=lon)
    store.register("SN-C", key, registered_s=T)  # position only from its reports
    store.register("SN-D", key, registered_s=T, x_m=1.0, y_m=1.0)
    with sessions.begin() as s:
        rec = s.get(SensorRecord, "SN-D")
        assert rec is not None
        rec.active = False
    got = {s.serial: s for s in store.sensors(frame)}
    assert sorted(got) == ["SN-A", "SN-B"]
    assert got["SN-A"].xyz == (10.0, -5.0, 6.0)
    assert got["SN-B"].x_m == pytest.approx(300.0, abs=0.01)
    assert got["SN-B"].y_m == pytest.approx(-200.0, abs=0.01)
    # without a frame, lat/lon alone cannot be placed
    assert [s.serial for s in store.sensors()] == ["SN-A"]
    engine.dispose()

"""The console's evidence past memory and past a restart (ADR 0114), on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tests.dbschema import isolated_url

from shotwatch.api.evidence_store import SqlEvidenceStore
from shotwatch.api.media import AudioClip, EvidenceIndex
from shotwatch.core.errors import InputError
from shotwatch.core.geo import LocalFrame
from shotwatch.core.model import Incident, Provenance, Pulse, ShotLocation
from shotwatch.storage.db import make_engine, migrate, session_factory
from shotwatch.storage.service import save_pulses, save_shots
from shotwatch.storage.tables import PulseAudioRow

T = 1_800_000_000.0
RATE = 12_000


def _scene(n_incidents: int) -> tuple[list[Pulse], list[ShotLocation], list[Incident]]:
    """``n_incidents`` one-shot incidents, each heard by three sensors."""
    pulses, shots, incidents = [], [], []
    for k in range(n_incidents):
        prov = Provenance.automatic("t", "1", T + 10 * k + 1)
        ps = [
            Pulse(
                f"SN-{j}-{k}",
                f"SN-{j}",
                T + 10 * k + 0.3 * j,
                100.0 * j,
                0.0,
                0.0,
                20.0,
                provenance=prov,
            )
            for j in range(3)
        ]
        shot = ShotLocation(
            f"shot-{k}",
            T + 10 * k,
            50.0,
            20.0,
            0.0,
            tuple(p.pulse_id for p in ps),
            tuple(p.sensor for p in ps),
            {},
            0.001,
            10.0,
            None,
            None,
            2,
            0.9,
            provenance=prov,
        )
        inc = Incident(
            f"inc-{k}",
            (shot.shot_id,),
            shot.t0_s,
            shot.t0_s,
            50.0,
            20.0,
            1,
            1,
            ((50.0, 20.0),),
            False,
            None,
            None,
            provenance=prov,
        )
        pulses += ps
        shots.append(shot)
        incidents.append(inc)
    return pulses, shots, incidents


def _clip(p: Pulse) -> AudioClip:
    rng = np.random.default_rng(abs(hash(p.pulse_id)) % 2**32)
    return AudioClip(p.sensor, p.t_s - 1.0, RATE, rng.integers(-3000, 3000, 2 * RATE, np.int16))


def test_snippets_outlive_memory_and_a_restart(db_url: str, tmp_path: Path) -> None:
    pulses, shots, incidents = _scene(4)
    with isolated_url(db_url) as url:
        migrate(url)
        engine = make_engine(url)
        sessions = session_factory(engine)
        with sessions.begin() as s:  # what the pipeline's store writes
            save_pulses(pulses, session=s)
            save_shots(shots, session=s)
        store = SqlEvidenceStore(sessions, tmp_path)
        # memory holds two snippets' worth: most of the night's audio is not in memory
        ev = EvidenceIndex(store=store, max_audio_bytes=2 * 2 * 2 * RATE, max_pulses=5)
        for p in pulses:
            ev.add_pulse(p, _clip(p))
        for sh in shots:
            ev.add_shot(sh)
        assert len(ev.audio) == 2 and ev.audio_bytes <= ev.max_audio_bytes
        assert len(ev.pulses) == 5
        assert store.flush(10.0)
        assert store.stored == len(pulses) and not store.errors
        first = incidents[0]
        got = ev.clip(first, "SN-1")  # let go of in memory: read back
        assert got is not None
        assert np.array_equal(got.samples, _clip(pulses[1]).samples)
        assert got.start_s == pulses[1].t_s - 1.0 and got.rate_hz == RATE
        assert [s["audio"] for s in ev.sensors(first)] == [True, True, True]
        store.close()

        # a restarted server: nothing in memory, everything from the database (the sensors'
        # map positions from the pulses read back)
        frame = LocalFrame(40.68, -73.88)
        again = EvidenceIndex(frame=frame, store=SqlEvidenceStore(sessions, tmp_path))
        for inc, sh in zip(incidents, shots, strict=True):
            assert [s["serial"] for s in again.sensors(inc)] == ["SN-0", "SN-1", "SN-2"]
            assert [t["shot_id"] for t in again.timeline(inc)] == [sh.shot_id]
            lat, lon = frame.to_geo(100.0, 0.0, 0.0)[:2]
            sn1 = again.sensors(inc)[1]
            assert (sn1["lat_deg"], sn1["lon_deg"]) == pytest.approx((lat, lon))
            layers = [f["properties"]["layer"] for f in again.map_geojson(inc)["features"]]
            assert layers.count("sensor") == 3
            c = again.clip(inc, "SN-2")
            assert c is not None
            k = int(inc.incident_id.split("-")[1])
            assert np.array_equal(c.samples, _clip(pulses[3 * k + 2]).samples)
        # a retried report's snippet is stored once
        store2 = SqlEvidenceStore(sessions, tmp_path)
        store2.put_audio(pulses[0].pulse_id, _clip(pulses[0]))
        assert store2.flush(10.0) and store2.stored == 0 and not store2.errors
        store2.close()
        # a file changed under its hash, or gone, is refused, named
        with sessions() as s:
            rel = s.get(PulseAudioRow, pulses[0].pulse_id).path  # type: ignore[union-attr]
            rel1 = s.get(PulseAudioRow, pulses[1].pulse_id).path  # type: ignore[union-attr]
        (tmp_path / rel).write_bytes(b"\x00\x01" * RATE)
        with pytest.raises(InputError, match=f"{pulses[0].pulse_id}.*SHA-256"):
            again.store.audio([pulses[0].pulse_id])  # type: ignore[union-attr]
        (tmp_path / rel1).unlink()
        with pytest.raises(InputError, match=f"{pulses[1].pulse_id}.*cannot read"):
            again.store.audio([pulses[1].pulse_id])  # type: ignore[union-attr]
        engine.dispose()


def test_without_a_store_memory_is_bounded_and_what_is_let_go_is_gone() -> None:
    pulses, shots, incidents = _scene(3)
    ev = EvidenceIndex(max_audio_bytes=3 * 2 * 2 * RATE)
    for p in pulses:
        ev.add_pulse(p, _clip(p))
    for sh in shots:
        ev.add_shot(sh)
    assert ev.audio_bytes == 3 * 2 * 2 * RATE
    assert ev.clip(incidents[0], "SN-0") is None  # the oldest snippets went first
    newest = ev.clip(incidents[2], "SN-2")
    assert newest is not None and np.array_equal(newest.samples, _clip(pulses[8]).samples)
    # a pulse sent again with its snippet does not count its bytes twice
    ev.add_pulse(pulses[8], _clip(pulses[8]))
    assert ev.audio_bytes == 3 * 2 * 2 * RATE and len(ev.audio) == 3


def test_snippets_follow_the_sensor_audio_rule(db_url: str, tmp_path: Path) -> None:
    """Past the policy's 30 hours only the snippets of confirmed or undecided incidents, and
    of incidents under a legal hold, stay; those of dismissed or withdrawn incidents, and of
    pulses in no incident, go (a held one's at the first purge after the hold's release)."""
    from shotwatch.audit.log import AuditLog
    from shotwatch.audit.signing import load_or_create_key
    from shotwatch.core.clock import ReplayClock
    from shotwatch.dispatch.tables import ReviewRecordRow
    from shotwatch.policy.engine import default_engine
    from shotwatch.records.sensor_audio import purge_sensor_audio, sensor_audio_rule
    from shotwatch.records.service import RecordsService
    from shotwatch.storage.service import (
        PulseAudio,
        load_pulse_audio,
        save_incidents,
        save_pulse_audio,
    )

    rule = sensor_audio_rule([default_engine().policy("nypd-shotspotter")])
    assert rule is not None and rule.period_s == 30 * 3600
    assert rule.rule_id == "NYPD-SS-SENSOR-AUDIO-30H"
    pulses, shots, incidents = _scene(4)
    stray = Pulse("SN-9-x", "SN-9", T + 5.0, 900.0, 0.0, 0.0, provenance=pulses[0].provenance)
    states = ["confirmed", "open", "dismissed", "withdrawn"]
    with isolated_url(db_url) as url:
        migrate(url)
        engine = make_engine(url)
        sessions = session_factory(engine)
        with sessions.begin() as s:
            save_pulses([*pulses, stray], session=s)
            save_shots(shots, session=s)
            save_incidents(incidents, session=s)
            for inc, state in zip(incidents, states, strict=True):
                s.add(ReviewRecordRow(incident_id=inc.incident_id, arrival_s=T, state=state))
            save_pulse_audio(
                [
                    PulseAudio(p.pulse_id, p.sensor, p.t_s - 1.0, RATE, _clip(p).samples)
                    for p in [*pulses, stray]
                ],
                session=s,
                root=tmp_path,
            )
        ids = [p.pulse_id for p in [*pulses, stray]]
        key = load_or_create_key(tmp_path / "k.pem")
        clock = ReplayClock(T + 3600)
        records = RecordsService(engine, clock, [], AuditLog(engine, clock, signing_key=key), key)
        # a preservation letter for the dismissed incident, one for an incident never stored
        hold = records.place_hold(incident_id="inc-2", reason="letter 2026-41", by="legal1")
        with pytest.raises(InputError, match="no incident 'inc-9'"):
            records.place_hold(incident_id="inc-9", reason="letter 2026-42", by="legal1")
        with sessions.begin() as s:  # 29 h later: nothing is due
            assert (
                purge_sensor_audio(s, now_s=T + 29 * 3600, period_s=rule.period_s, root=tmp_path)
                == 0
            )
        with sessions.begin() as s:
            gone = purge_sensor_audio(s, now_s=T + 31 * 3600, period_s=rule.period_s, root=tmp_path)
        with sessions() as s:
            left = set(load_pulse_audio(ids, session=s, root=tmp_path))
        # the confirmed and the open incident's, and the held (dismissed) one's
        kept = {p.pulse_id for p in pulses[:9]}
        assert left == kept
        assert gone == len(ids) - len(kept)
        # the files went with their rows: only the kept snippets' files are left
        assert len(list((tmp_path / "audio").rglob("*.s16le"))) == len(kept)

        records.release_hold(hold, by="legal1")
        with pytest.raises(InputError, match="released already"):
            records.release_hold(hold, by="legal1")
        with sessions.begin() as s:
            gone = purge_sensor_audio(s, now_s=T + 32 * 3600, period_s=rule.period_s, root=tmp_path)
        with sessions() as s:
            left = set(load_pulse_audio(ids, session=s, root=tmp_path))
        assert gone == 3 and left == {p.pulse_id for p in pulses[:6]}
        engine.dispose()


class _CountingStore:
    """A store that records every read (the event loop must make none)."""

    def __init__(self) -> None:
        self.reads: list[str] = []

    def put_audio(self, pulse_id: str, clip: AudioClip) -> None:
        pass

    def shots(self, ids: object) -> list[ShotLocation]:
        self.reads.append("shots")
        return []

    def pulses(self, ids: object) -> list[Pulse]:
        self.reads.append("pulses")
        return []

    def audio(self, ids: object) -> dict[str, AudioClip]:
        self.reads.append("audio")
        return {}


def test_live_scoring_reads_memory_only_and_requests_read_the_store() -> None:
    """Scoring gathers snippets on the event loop: a forming incident's provisional shot is in
    no store, and asking the database for it blocked the loop once per preliminary version."""
    from shotwatch.api.classify import snippet_jobs

    pulses, shots, incidents = _scene(2)
    store = _CountingStore()
    ev = EvidenceIndex(store=store)  # type: ignore[arg-type]
    for p in pulses:
        ev.add_pulse(p, _clip(p))
    ev.add_shot(shots[0])
    known, jobs = snippet_jobs(incidents[0], ev)
    assert [s.shot_id for s in known] == ["shot-0"] and len(jobs) == 3
    provisional = incidents[1]  # its shot never came out final: not in memory
    assert snippet_jobs(provisional, ev) == ([], [])
    assert store.reads == []
    ev.sensors(provisional)  # a reviewer's request (on a worker thread) reads back
    assert store.reads[0] == "shots"

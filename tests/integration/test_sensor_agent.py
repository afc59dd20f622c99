"""The sensor agent end to end: real recordings, the CLI, search, and the simulator."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shotwatch.cli.main import main
from shotwatch.core.errors import InputError
from shotwatch.core.model import parse_utc
from shotwatch.sensor.agent import SensorAgent, load_agent_config
from shotwatch.sensor.ingest import Ingest, MemoryIngestStore, VerifiedReport
from shotwatch.sensor.keys import load_or_create_signing_key, public_key_text
from shotwatch.sensor.search import SearchLog, sign_search_request
from shotwatch.sensor.spool import Spool

SERIAL = "SCP-00-BNQ-0979"


def _config(tmp_path: Path, source: str, extra: str = "") -> Path:
    cfg = tmp_path / "agent.toml"
    cfg.write_text(
        "[agent]\n"
        f'serial = "{SERIAL}"\n'
        'data_dir = "data"\n'
        'signing_key_file = "keys/sensor.key"\n'
        'kek_file = "keys/buffer.kek"\n'
        f"{extra}\n"
        "[agent.source]\n"
        f'path = "{source}"\n'
        "[sensor]\nsegment_s = 10\n"
    )
    return cfg


def _verified(
    tmp_path: Path, serial: str = SERIAL, key_name: str = "sensor.key"
) -> list[VerifiedReport]:
    key = load_or_create_signing_key(tmp_path / "keys" / key_name, create=False)
    ingest = Ingest(MemoryIngestStore({serial: key.public_key()}))
    spool = Spool(tmp_path / "data" / "spool.sqlite")
    out = []
    for _, _, payload in spool.head(100_000):
        v = ingest.verify_report(payload, received_s=2e9)
        assert isinstance(v, VerifiedReport), v
        out.append(v)
    spool.close()
    return out


@pytest.mark.realdata
def test_replay_of_real_recordings_reports_the_vendors_pulses(
    tmp_path: Path, pittsburgh_dir: Path
) -> None:
    folder = pittsburgh_dir / "FP1"
    cfg = _config(tmp_path, str(folder))
    agent_cfg, settings = load_agent_config(cfg)
    summary = SensorAgent(agent_cfg, settings).run()
    assert summary.source_errors == []
    msgs = _verified(tmp_path)
    reports = np.array(sorted(m.pulse().t_s for m in msgs if m.kind == "report"))
    assert len(reports) == summary.reports > 0
    # Evaluation only: the vendor's own pulse list for this sensor (SNR >= 10 dB).
    truth = [
        parse_utc(p["arrival_time_utc"])
        for f in sorted(folder.glob("test_*/test_*.allpulses.json"))
        for p in json.loads(f.read_text())
        if p["serial_number"] == SERIAL and p["signal_to_noise_dB"] >= 10
    ]
    near = [float(np.min(np.abs(reports - t))) for t in truth]
    matched = [d for d in near if d < 0.003]
    assert len(matched) >= 0.65 * len(truth), (len(matched), len(truth))
    assert np.median(matched) < 0.001  # the vendor's times have 1 ms resolution
    beats = [m for m in msgs if m.kind == "heartbeat"]
    assert beats and all(b.body["buffer_span_s"] <= 30 * 3600 for b in beats)
    sides = [json.loads(f.read_text()) for f in folder.glob(f"test_*/test_*.audio.{SERIAL}.json")]
    side = max(sides, key=lambda d: parse_utc(d["timestamp"]))  # the position heard last
    assert beats[-1].body["position"]["x_m"] == pytest.approx(side["location"]["x"])


@pytest.mark.realdata
def test_cli_run_status_and_missed_shot_search(
    tmp_path: Path, pittsburgh_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = Ed25519PrivateKey.generate()
    cfg = _config(
        tmp_path,
        str(pittsburgh_dir / "FP1" / "test_001"),
        f'server_public_key = "{public_key_text(server)}"',
    )
    assert main(["sensor", "keygen", "--config", str(cfg)]) == 0
    assert main(["sensor", "run", "--config", str(cfg), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert summary["reports"] >= 1 and summary["buffer_span_s"] == pytest.approx(10.0)
    assert main(["sensor", "status", "--config", str(cfg)]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["buffer_segments"] == 1 and status["spool_pending"] == summary["pending"]

    meta = json.loads(
        (pittsburgh_dir / "FP1" / "test_001" / f"test_001.audio.{SERIAL}.json").read_text()
    )
    t0 = parse_utc(meta["timestamp"])
    req = tmp_path / "req.json"
    req.write_bytes(
        sign_search_request(
            server,
            serial=SERIAL,
            seq=1,
            request_id="MS-1",
            requester="analyst-3",
            reference="INC-556267",
            reason="resident heard shots, no alert",
            start_s=t0 + 2.0,
            end_s=t0 + 6.0,
            issued_s=t0 + 9.0,
        )
    )
    out = tmp_path / "answer.json"
    assert (
        main(["sensor", "search", "--config", str(cfg), "--request", str(req), "--out", str(out)])
        == 0
    )
    answer = json.loads(out.read_bytes())
    assert answer["type"] == "search_result" and len(answer["body"]["pieces"]) == 1
    assert answer["body"]["pieces"][0]["n_samples"] == 4 * 12000  # that window only
    bad = tmp_path / "bad.json"
    bad.write_bytes(
        sign_search_request(
            server,
            serial=SERIAL,
            seq=2,
            request_id="MS-2",
            requester="analyst-3",
            reference="INC-556267",
            reason="too much",
            start_s=t0 - 100,
            end_s=t0 + 5,
            issued_s=t0 + 9.0,
        )
    )
    assert (
        main(["sensor", "search", "--config", str(cfg), "--request", str(bad), "--out", str(out)])
        == 1
    )
    assert json.loads(out.read_bytes())["body"]["reason"] == "expired_window"
    log = SearchLog(tmp_path / "data" / "searches.jsonl")
    assert [e["decision"] for e in log.entries()] == ["granted", "refused"] and log.verify()


def test_retention_above_policy_is_refused_in_the_config(tmp_path: Path) -> None:
    cfg = tmp_path / "a.toml"
    cfg.write_text('[agent]\ndata_dir="d"\nsigning_key_file="k"\n[sensor]\nretention_h = 48\n')
    assert main(["sensor", "run", "--config", str(cfg)]) == 2  # named error, no run


def test_simulator_source(tmp_path: Path) -> None:
    cfg = tmp_path / "sim.toml"
    cfg.write_text(
        '[agent]\ndata_dir = "data"\nsigning_key_file = "keys/s.key"\nkek_file = "keys/kek"\n'
        '[agent.source]\nkind = "sim"\npath = "city_single_shooter"\n'
    )
    agent_cfg, settings = load_agent_config(cfg)
    agent = SensorAgent(agent_cfg, settings)
    summary = agent.run()
    assert summary.serial.startswith("SIM") and summary.reports >= 1
    msgs = _verified(tmp_path, summary.serial, "s.key")
    assert {m.kind for m in msgs} == {"report", "heartbeat"}
    assert all(m.body["position"]["x_m"] is not None for m in msgs if m.kind == "report")


@pytest.mark.realdata
def test_replay_of_smj0_recordings_uses_their_time_position_and_clock_bound(
    tmp_path: Path, chicago_dir: Path
) -> None:
    from shotwatch.io.smj0 import read_smj0

    wav = sorted((chicago_dir / "district5-incident-556267").glob("*.wav"))[0]
    meta = read_smj0(wav)
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[agent]\ndata_dir = "data"\nsigning_key_file = "keys/sensor.key"\nkek_file = "keys/k"\n'
        f'[agent.source]\npath = "{wav}"\nspeed = "realtime"\n'
    )
    agent_cfg, settings = load_agent_config(cfg)
    summary = SensorAgent(agent_cfg, settings).run()  # 2 s of audio, paced in real time
    assert summary.serial == meta.serial and summary.audio_s == pytest.approx(meta.duration_s)
    msgs = _verified(tmp_path, meta.serial)
    reports = [m for m in msgs if m.kind == "report"]
    assert reports, "the incident's impulse is reported"
    from shotwatch.core.geo import LocalFrame

    frame = LocalFrame(meta.latitude_deg, meta.longitude_deg, meta.elevation_m)
    for m in reports:
        pulse = m.pulse(frame)
        assert meta.start_utc_s <= pulse.t_s <= meta.start_utc_s + meta.duration_s
        assert abs(pulse.x_m) < 0.01 and abs(pulse.y_m) < 0.01
        assert m.body["position"]["lat_deg"] == pytest.approx(meta.latitude_deg)
        if meta.clock_error_s is not None:
            assert m.body["clock_error_s"] == pytest.approx(meta.clock_error_s)


def test_register_cli_then_sql_ingest(tmp_path: Path) -> None:
    from shotwatch.sensor.ingest import SqlIngestStore
    from shotwatch.sensor.messages import MessageType
    from shotwatch.sensor.signer import SensorSigner
    from shotwatch.storage.db import make_engine, session_factory

    key = Ed25519PrivateKey.generate()
    url = f"sqlite:///{tmp_path / 'server.db'}"
    argv = [
        "sensor",
        "register",
        "--db",
        url,
        "--serial",
        "SN-R",
        "--public-key",
        public_key_text(key),
        "--x-m",
        "1.5",
        "--y-m",
        "2.5",
    ]
    assert main(argv) == 0
    engine = make_engine(url)
    ingest = Ingest(SqlIngestStore(session_factory(engine)))
    signer = SensorSigner("SN-R", key, tmp_path / "seq")
    hb = {
        "sent_utc": "2027-01-15T08:00:00Z",
        "uptime_s": 5.0,
        "clock_error_s": 0.0003,
        "clock_synced": True,
        "disk_bytes": 1,
        "buffer_span_s": 1.0,
        "clipped_fraction": 0.0,
        "position": {"x_m": 1.5, "y_m": 2.5},
    }
    assert isinstance(
        ingest.verify_report(signer.seal(MessageType.HEARTBEAT, hb)[1]), VerifiedReport
    )
    engine.dispose()


def test_retention_is_capped_by_the_deployments_policy_file(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(
        '[[retention]]\nid = "CITY-SENSOR-AUDIO-24H"\nrecord_class = "sensor_audio"\n'
        'clock = "after_creation"\nperiod_s = 86400\n'
        '[[retention]]\nid = "OTHER"\nrecord_class = "incident_audio"\nperiod_s = 1\n'
    )
    cfg = tmp_path / "a.toml"
    base = '[agent]\ndata_dir="d"\nsigning_key_file="k"\npolicy_file="policy.toml"\n'
    cfg.write_text(base + "[sensor]\nretention_h = 30\n")
    with pytest.raises(InputError, match=r"sensor\.retention_h.*CITY-SENSOR-AUDIO-24H"):
        load_agent_config(cfg)
    cfg.write_text(base + "[sensor]\nretention_h = 24\n")
    assert load_agent_config(cfg)[1].sensor.retention_h == 24


@pytest.mark.realdata
def test_agent_delivers_everything_over_https_and_server_watches_its_health(
    tmp_path: Path, pittsburgh_dir: Path
) -> None:
    import httpx

    from shotwatch.sensor.health import HealthMonitor
    from shotwatch.sensor.transport import HTTP_PATH, HttpTransport

    cfg = _config(tmp_path, str(pittsburgh_dir / "FP1" / "test_002"))
    agent_cfg, settings = load_agent_config(cfg)
    key = load_or_create_signing_key(agent_cfg.signing_key_file)
    ingest = Ingest(MemoryIngestStore({SERIAL: key.public_key()}))
    monitor = HealthMonitor(registered={SERIAL: {"x_m": None, "y_m": None}})
    accepted: list[VerifiedReport] = []

    def server(request: httpx.Request) -> httpx.Response:
        assert request.url.path == HTTP_PATH
        out = ingest.verify_report(request.content, received_s=2e9)
        if isinstance(out, VerifiedReport):
            accepted.append(out)
            monitor.observe_message(out)
        return httpx.Response(200 if isinstance(out, VerifiedReport) else 422, json=out.to_dict())

    client = httpx.Client(base_url="https://server.test", transport=httpx.MockTransport(server))
    agent = SensorAgent(
        agent_cfg, settings, transport=HttpTransport("https://server.test", client=client)
    )
    summary = agent.run()
    assert summary.pending == 0 and summary.rejected == 0
    assert summary.delivered == len(accepted) == summary.reports + summary.heartbeats
    assert [m.seq for m in accepted] == sorted(m.seq for m in accepted)
    assert monitor.active(SERIAL) == frozenset()  # synchronized, quiet, not moved
    assert [a.kind.value for a in monitor.check(2e9 + 3600)] == ["offline"]

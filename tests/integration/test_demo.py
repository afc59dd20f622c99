"""``shotwatch demo`` end to end on a tiny scenario, into a temporary SQLite file."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

import pytest
from sqlalchemy import func, select

from shotwatch.cli.main import main
from shotwatch.sim import example_scenarios
from shotwatch.storage.db import make_engine, session_factory
from shotwatch.storage.tables import IncidentRow, PulseRow, SensorRow, ShotRow

TINY = """
name = "tiny-block"
description = "Two rounds inside a 1 km square of 16 sensors."
start_utc = "2026-07-04T22:00:00Z"
duration_s = 12.0

[frame]
lat0_deg = 40.4406
lon0_deg = -79.9959

[sensors]
layout = "grid"
area_m = [1000.0, 1000.0]
density_per_km2 = 16.0
jitter_m = 20.0
height_m = 6.0

[environment]
temperature_c = 10.0

[detection]
pick_error_s = 0.0003
false_pulses_per_sensor_per_hour = 10.0

[[sources]]
kind = "gunfire"
name = "shooter"
position_m = [480.0, 530.0, 1.5]
start_s = 3.0
calibre = "9mm"
rounds = 2
cadence_rps = 1.0
"""


def _counts(db: Path) -> dict[str, int]:
    engine = make_engine(f"sqlite:///{db}")
    with session_factory(engine)() as s:
        out = {
            t.__tablename__: int(s.scalar(select(func.count()).select_from(t)) or 0)
            for t in (SensorRow, PulseRow, ShotRow, IncidentRow)
        }
    engine.dispose()
    return out


def test_demo_end_to_end_on_a_tiny_scenario(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scen = tmp_path / "tiny.toml"
    scen.write_text(TINY, encoding="utf-8")
    db = tmp_path / "demo.db"
    args = ["demo", "--db", f"sqlite:///{db}", "--no-real", "--no-live", "--scenario", str(scen)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "Incidents: simulated" in out
    assert "tiny-block" in out
    counts = _counts(db)
    # the summary reports what the database holds
    m = re.search(
        r"1 inputs, (\d+) pulses -> (\d+) shots, (\d+) incidents: (\d+) rounds, (\d+) shooters",
        out,
    )
    assert m is not None, out
    pulses, shots, incidents, rounds, shooters = (int(g) for g in m.groups())
    assert (pulses, shots, incidents) == (counts["pulses"], counts["shots"], counts["incidents"])
    assert incidents >= 1 and rounds >= 2 and shooters >= 1 and counts["sensors"] == 16
    # geo-referenced through the scenario's frame (near Pittsburgh)
    assert re.search(r"40\.44\d+, -79\.99\d+", out)
    # the evaluation step: both true rounds located close to the truth
    ev = re.search(r"(\d+)/2 rounds located, median ([\d.]+) m", out)
    assert ev is not None, out
    assert int(ev.group(1)) == 2 and float(ev.group(2)) < 10.0

    # running it again stores nothing new and finds the same incident
    assert main(args) == 0
    again = capsys.readouterr().out
    assert "0 new pulses stored" in again and "0 new incidents" in again
    assert _counts(db) == counts


def test_demo_rejects_an_unknown_scenario(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    rc = main(["demo", "--db", f"sqlite:///{tmp_path / 'x.db'}", "--no-real", "--scenario", "nope"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "--scenario" in err and "nope" in err and "city_single_shooter" in err


def test_shipped_demo_scenarios_exist() -> None:
    from shotwatch.cli.demo import DEFAULT_SCENARIOS

    shipped = example_scenarios()
    for name in DEFAULT_SCENARIOS:
        assert name in shipped
        assert tomllib.loads(shipped[name].read_text(encoding="utf-8"))["sources"]


@pytest.mark.realdata
def test_demo_on_real_live_fire_tests(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], data_dir: Path
) -> None:
    scen = tmp_path / "tiny.toml"
    scen.write_text(TINY, encoding="utf-8")
    args = [
        "demo",
        "--db",
        f"sqlite:///{tmp_path / 'real.db'}",
        "--data",
        str(data_dir),
        "--real-tests",
        "3",
        "--no-live",
        "--scenario",
        str(scen),
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "Incidents: pittsburgh-2018" in out and "FP1/test_001" in out
    real = out.split("Incidents: pittsburgh-2018", 1)[1]
    m = re.search(r"pittsburgh-2018: 3 inputs, \d+ pulses -> (\d+) shots, (\d+) incidents", real)
    assert m is not None, out
    assert int(m.group(2)) >= 3  # at least one incident per test
    # evaluation against the surveyed positions: tests 1-3 of FP1 fire 3 rounds each
    ev = re.search(r"(\d+)/(\d+) rounds located, median ([\d.]+) m", real)
    assert ev is not None, out
    assert int(ev.group(2)) == 9 and int(ev.group(1)) >= 8
    assert float(ev.group(3)) < 10.0
    # the reader's reports of bad records reach the summary
    assert "input problems reported" in real and "duplicate" in real


def test_live_demo_brings_incidents_to_the_review_queue(tmp_path: Path) -> None:
    """`shotwatch demo`'s live part (`serve --demo`): simulated sensors post signed reports
    over HTTP to the running server, whose pipeline puts incidents in the review queue; with
    --live-for it stops by itself. Runs with no real data (made-up districts)."""
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "SHOTWATCH_DATA": str(tmp_path / "no-data")}
    db = f"sqlite:///{tmp_path / 'live.db'}"
    cmd = [sys.executable, "-m", "shotwatch", "serve", "--demo", "--live-for", "75"]
    proc = subprocess.run(
        [*cmd, "--port", str(port), "--db", db],
        check=False,
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "made-up demo districts" in proc.stderr
    assert "sign in as demo.analyst" in proc.stderr
    m = re.search(r"incidents in the review queue: (\d+)", proc.stderr)
    # scenario 1 (at ~5 s) and the automatic fire (at ~35 s) are in the queue by 75 s
    assert m is not None and int(m.group(1)) >= 2, proc.stderr


def test_demo_plan_through_signed_reports_gives_one_incident_per_scenario(
    tmp_path: Path,
) -> None:
    """The live demo's reports, signed, verified by Ingest as the server does and fed to the
    pipeline, give each scenario its own incident in its own made-up district. (A demo that
    gave each scenario its own sensors, or sent every pulse at one level, lost three of the
    four: the associator doubts a shot most nearby sensors did not hear.)"""
    from dataclasses import replace

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from shotwatch.api.demo_live import DEMO_ORIGIN, demo_boundaries, plan
    from shotwatch.core.clock import ReplayClock
    from shotwatch.core.geo import LocalFrame
    from shotwatch.core.model import iso_utc
    from shotwatch.core.settings import Settings
    from shotwatch.pipeline import ListSink, Pipeline, replay
    from shotwatch.sensor.ingest import Ingest, IngestLimits, MemoryIngestStore
    from shotwatch.sensor.signer import SensorSigner

    reports = plan()
    serials = sorted({r.serial for r in reports})
    keys = {s: Ed25519PrivateKey.generate() for s in serials}
    signers = {s: SensorSigner(s, k, tmp_path / s) for s, k in keys.items()}
    start = 1.8e9
    clock = ReplayClock(start)
    ingest = Ingest(
        MemoryIngestStore({s: k.public_key() for s, k in keys.items()}), IngestLimits(), clock
    )
    pulses = []
    for r in reports:
        t = start + r.t_rel_s
        clock.advance_to(t)
        _, body = signers[r.serial].report(
            replace(r.fields, arrival_utc=iso_utc(t)), r.snippet, r.rate_hz, t - 1.0
        )
        pulse = ingest.verify_report(body, received_s=t).pulse()
        assert pulse.level_db_spl == pytest.approx(r.fields.level_dbfs + 120.0, abs=1e-6)
        pulses.append(pulse)
    frame = LocalFrame(*DEMO_ORIGIN)
    run_clock = ReplayClock(start)
    pipe = Pipeline(Settings(), run_clock, ListSink(), frame=frame)
    incidents = sorted(replay(pipe, pulses, run_clock), key=lambda i: i.start_s)
    assert len(incidents) == 4, [(i.rounds, i.shooters) for i in incidents]
    single, automatic, two, moving = incidents
    assert single.rounds == 3
    assert automatic.automatic and 12 <= automatic.rounds <= 18
    assert two.shooters == 2 and 6 <= two.rounds <= 8
    assert moving.movement is not None and abs(moving.movement.heading_deg - 45.0) < 20.0
    districts = demo_boundaries(*DEMO_ORIGIN)
    routed = [districts.route(i.lat_deg, i.lon_deg).unit_id for i in incidents]  # type: ignore[arg-type]
    assert routed == ["D1", "D2", "D3", "D4"]

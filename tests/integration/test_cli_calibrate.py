"""``shotwatch calibrate`` on stored shots (SQLite and PostgreSQL, the ``db_url`` fixture)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator

import numpy as np
import pytest
from tests.dbschema import isolated_url

from shotwatch.cli.main import main
from shotwatch.core.model import Provenance, Pulse, Sensor
from shotwatch.location import locate
from shotwatch.storage import service as svc
from shotwatch.storage.db import make_engine, migrate, session_factory

C = 340.0
T0 = 1_796_600_000.0
AUTO = Provenance.automatic("test", "1", T0)


@pytest.fixture
def url(db_url: str) -> Iterator[str]:
    with isolated_url(db_url) as u:
        migrate(u)
        yield u


def _store(url: str, speed_error: float, n: int = 12, t_offset: float = 0.0) -> None:
    """A 5 x 5 grid (300 m) and ``n`` shots heard within 900 m, sound ``speed_error``
    faster than the locator assumes; pulses, sensors and located shots stored."""
    rng = np.random.default_rng(3)
    g = np.arange(5) * 300.0
    sensors = [
        Sensor(f"S{i}", float(x), float(y), 0.0)
        for i, (x, y) in enumerate(zip(*(a.ravel() for a in np.meshgrid(g, g)), strict=True))
    ]
    pulses, shots = [], []
    for k in range(n):
        sx, sy = rng.uniform(200, 1000, 2)
        group = []
        for s in sensors:
            d = math.hypot(s.x_m - sx, s.y_m - sy)
            if d <= 900.0:
                t = T0 + t_offset + 60.0 * k + d / (C * (1 + speed_error))
                t += float(rng.normal(0, 0.0005))
                pid = f"p{t_offset:.0f}-{k}-{s.serial}"
                group.append(Pulse(pid, s.serial, t, s.x_m, s.y_m, s.z_m, provenance=AUTO))
        shot = locate(group, c_mps=C, dims=2, created_s=T0)
        assert shot is not None
        pulses += group
        shots.append(shot)
    eng = make_engine(url)
    try:
        with session_factory(eng)() as session:
            svc.save_sensors(sensors, session=session, provenance=AUTO)
            svc.save_pulses(pulses, session=session)
            svc.save_shots(shots, session=session)
            session.commit()
    finally:
        eng.dispose()


def test_calibrate_measures_the_stored_network(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _store(url, 0.02)
    assert main(["calibrate", "--db", url, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["shots"] == 12
    assert out["pairs"] >= 100
    assert 0.002 < out["propagation_error"] <= 0.02
    assert out["current_setting"] == 0.0
    # the plain form says how to set it
    assert main(["calibrate", "--db", url]) == 0
    assert "SHOTWATCH_ASSOCIATION__PROPAGATION_ERROR=" in capsys.readouterr().out


def test_calibrate_reads_only_the_window_asked(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _store(url, 0.0)  # a still day ...
    _store(url, 0.02, t_offset=86_400.0)  # ... and a warm one a day later
    assert main(["calibrate", "--db", url, "--json", "--until", "2026-12-07T00:00:00Z"]) == 0
    still = json.loads(capsys.readouterr().out)
    assert main(["calibrate", "--db", url, "--json", "--since", "2026-12-07T00:00:00Z"]) == 0
    warm = json.loads(capsys.readouterr().out)
    assert still["shots"] == warm["shots"] == 12
    assert still["propagation_error"] < 0.0005
    assert warm["propagation_error"] > 0.002


def test_calibrate_says_what_is_missing(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["calibrate", "--db", url]) == 1
    assert "not enough located shots: 0 sensor pairs from 0 of 0" in capsys.readouterr().err
    assert main(["calibrate", "--db", url, "--since", "yesterday"]) == 2
    assert "--since" in capsys.readouterr().err
    assert main(["calibrate", "--db", url, "--quantile", "1.5"]) == 2
    assert "--quantile" in capsys.readouterr().err

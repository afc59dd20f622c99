"""The scenario simulator: determinism, physics sanity, validation errors, audio, CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from shotwatch.cli.main import main
from shotwatch.core.acoustics import speed_of_sound_mps
from shotwatch.core.errors import InputError
from shotwatch.sim import (
    PathKind,
    build_scene,
    example_scenarios,
    load_scenario,
    parse_scenario,
    simulate_audio,
    simulate_pulses,
)
from shotwatch.sim.physics import air_absorption_db_per_m, crack_arrival


def scenario_dict(**env: Any) -> dict[str, Any]:
    det = env.pop("detection", {})
    sources = env.pop("sources", None)
    return {
        "name": "unit",
        "duration_s": 10.0,
        "sensors": {
            "layout": "grid",
            "area_m": [1500.0, 1500.0],
            "density_per_km2": 12.0,
            "jitter_m": 30.0,
            "clock_error_bound_s": 0.002,
        },
        "environment": {"temperature_c": 20.0, **env},
        "detection": {"false_pulses_per_sensor_per_hour": 0.0, **det},
        "sources": sources
        or [
            {
                "kind": "gunfire",
                "position_m": [700.0, 800.0, 1.5],
                "start_s": 2.0,
                "rounds": 2,
                "cadence_rps": 1.0,
            }
        ],
    }


CLEAN = {
    "nlos_share": 0.0,
    "echoes_per_path": 0.0,
    "detection": {"pick_error_s": 0.0},
}


def test_same_seed_same_pulses_other_seed_differs() -> None:
    sc = parse_scenario(scenario_dict(nlos_share=0.2), "unit")
    a, b, c = simulate_pulses(sc, 4), simulate_pulses(sc, 4), simulate_pulses(sc, 5)
    key = [(p.sensor, p.t_s, p.snr_db) for p in a.pulses]
    assert key == [(p.sensor, p.t_s, p.snr_db) for p in b.pulses]
    assert key != [(p.sensor, p.t_s, p.snr_db) for p in c.pulses]
    assert a.truth.to_dict() == b.truth.to_dict()
    assert [p.t_s for p in a.pulses] == sorted(p.t_s for p in a.pulses)


def test_arrival_is_distance_over_c_plus_origin_plus_clock_offset() -> None:
    sc = parse_scenario(scenario_dict(**CLEAN), "unit")
    res = simulate_pulses(sc, 1)
    c = speed_of_sound_mps(20.0, sc.environment.relative_humidity)
    events = {e.event_id: e for e in res.truth.events}
    n = 0
    for p in res.pulses:
        tr = res.truth.pulses[p.pulse_id]
        assert tr.path is PathKind.DIRECT
        ev = events[tr.event_id or ""]
        d = math.dist((p.x_m, p.y_m, p.z_m), (ev.x_m, ev.y_m, ev.z_m))
        expected = ev.t_s + d / c + res.truth.clock_offset_s[p.sensor]
        assert abs(p.t_s - expected) < 1e-6
        assert abs(res.truth.clock_offset_s[p.sensor]) <= p.clock_error_s == 0.002
        n += 1
    assert n >= 2 * 10  # both rounds heard by most of the ~27 sensors


def test_wind_speeds_sound_downwind() -> None:
    sc = parse_scenario(scenario_dict(**CLEAN, wind_speed_mps=10.0, wind_from_deg=270.0), "u")
    res = simulate_pulses(sc, 1)
    c = speed_of_sound_mps(20.0, sc.environment.relative_humidity)
    events = {e.event_id: e for e in res.truth.events}
    for p in res.pulses:
        ev = events[res.truth.pulses[p.pulse_id].event_id or ""]
        dx, dy = p.x_m - ev.x_m, p.y_m - ev.y_m
        d = math.dist((p.x_m, p.y_m, p.z_m), (ev.x_m, ev.y_m, ev.z_m))
        along = 10.0 * dx / math.hypot(dx, dy)  # wind from the west blows east
        t = ev.t_s + d / (c + along) + res.truth.clock_offset_s[p.sensor]
        assert abs(p.t_s - t) < 1e-6


def test_levels_fall_with_distance() -> None:
    sc = parse_scenario(scenario_dict(**CLEAN), "unit")
    res = simulate_pulses(sc, 2)
    ev = res.truth.events[0]
    pts = [
        (math.dist((p.x_m, p.y_m), (ev.x_m, ev.y_m)), p.level_db_spl)
        for p in res.pulses
        if res.truth.pulses[p.pulse_id].event_id == ev.event_id
    ]
    d, lvl = np.array(pts).T
    assert np.corrcoef(np.log(d), lvl)[0, 1] < -0.9
    near, far = lvl[d < np.median(d)].mean(), lvl[d >= np.median(d)].mean()
    assert near > far + 5


def test_nlos_only_delays_and_attenuates() -> None:
    base = simulate_pulses(parse_scenario(scenario_dict(**CLEAN), "u"), 3)
    env = {**CLEAN, "nlos_share": 1.0, "nlos_delay_s": [0.002, 0.01]}
    blocked = simulate_pulses(parse_scenario(scenario_dict(**env), "u"), 3)
    clean_t = {(p.sensor, base.truth.pulses[p.pulse_id].event_id): p for p in base.pulses}
    n = 0
    for p in blocked.pulses:
        tr = blocked.truth.pulses[p.pulse_id]
        assert tr.path is PathKind.NLOS
        ref = clean_t[(p.sensor, tr.event_id)]
        assert 0.002 - 1e-9 <= p.t_s - ref.t_s <= 0.01 + 1e-9
        assert p.level_db_spl < ref.level_db_spl
        n += 1
    assert n > 10


def test_echoes_come_after_their_direct_path_and_false_pulses_have_no_event() -> None:
    sc = parse_scenario(
        scenario_dict(
            nlos_share=0.0,
            echoes_per_path=2.0,
            detection={"pick_error_s": 0.0, "false_pulse_ratio": 0.5, "dead_time_s": 0.0},
        ),
        "u",
    )
    res = simulate_pulses(sc, 6)
    first: dict[tuple[str, str | None], float] = {}
    kinds = {PathKind.DIRECT: 0, PathKind.ECHO: 0, PathKind.FALSE: 0}
    for p in res.pulses:
        tr = res.truth.pulses[p.pulse_id]
        kinds[tr.path] = kinds.get(tr.path, 0) + 1
        if tr.path is PathKind.DIRECT:
            first[(p.sensor, tr.event_id)] = p.t_s
    for p in res.pulses:
        tr = res.truth.pulses[p.pulse_id]
        if tr.path is PathKind.ECHO:
            assert p.t_s > first.get((p.sensor, tr.event_id), -math.inf)
        if tr.path is PathKind.FALSE:
            assert tr.event_id is None
    assert kinds[PathKind.ECHO] > 0
    assert abs(kinds[PathKind.FALSE] - 0.5 * (kinds[PathKind.DIRECT] + kinds[PathKind.ECHO])) <= 1


def test_detection_threshold_and_dead_time() -> None:
    sc = parse_scenario(
        scenario_dict(echoes_per_path=3.0, detection={"min_snr_db": 15.0, "dead_time_s": 0.05}),
        "u",
    )
    res = simulate_pulses(sc, 8)
    by_sensor: dict[str, list[float]] = {}
    for p in res.pulses:
        by_sensor.setdefault(p.sensor, []).append(p.t_s)
        if res.truth.pulses[p.pulse_id].path is not PathKind.FALSE:
            assert p.snr_db > 15.0 - 3.0  # reported SNR carries 0.5 dB measurement noise
    for times in by_sensor.values():
        assert np.all(np.diff(times) >= 0.05 - 1e-12)
    assert res.truth.masked_pulses >= 0


def test_absorption_matches_iso_9613_table() -> None:
    # ISO 9613-1 at 20 C, 70 % RH: 500 Hz 2.8, 1 kHz 5.0, 4 kHz 22.9, 8 kHz 76.6 dB/km
    for f, table in ((500, 2.8), (1000, 5.0), (4000, 22.9), (8000, 76.6)):
        got = 1000 * float(air_absorption_db_per_m(f, 20.0, 0.7))
        assert abs(got - table) / table < 0.06, (f, got)


def test_supersonic_crack_ahead_of_the_muzzle_blast() -> None:
    c, v = 343.0, 900.0
    delay, _ = crack_arrival(np.array([200.0, -100.0]), np.array([30.0, 30.0]), v, c)
    assert math.isnan(delay[1])  # behind the shooter: no crack
    assert delay[0] < math.hypot(200, 30) / c  # ahead: the crack beats the blast
    sc = parse_scenario(
        scenario_dict(
            **CLEAN,
            sources=[
                {
                    "kind": "gunfire",
                    "position_m": [200.0, 750.0, 1.5],
                    "calibre": "556",
                    "supersonic": True,
                    "aim_deg": 90.0,
                }
            ],
        ),
        "u",
    )
    res = simulate_pulses(sc, 1)
    cracks = [p for p in res.pulses if res.truth.pulses[p.pulse_id].path is PathKind.CRACK]
    assert cracks and all(p.x_m > 200.0 for p in cracks)


def test_validation_errors_name_the_file_and_field(tmp_path: Path) -> None:
    bad = scenario_dict()
    bad["sources"][0]["rounds"] = 0
    with pytest.raises(InputError) as e:
        parse_scenario(bad, "bad.toml")
    assert e.value.where == "bad.toml" and e.value.field == "sources.0.gunfire.rounds"
    missing = scenario_dict()
    del missing["duration_s"]
    with pytest.raises(InputError, match="duration_s"):
        parse_scenario(missing, "m.toml")
    geo = scenario_dict()
    geo["sources"][0] = {"kind": "gunfire", "lat_deg": 41.9, "lon_deg": -87.6}
    with pytest.raises(InputError, match="frame"):
        parse_scenario(geo, "g.toml")
    unknown = scenario_dict()
    unknown["sources"][0]["kind"] = "cannon"
    with pytest.raises(InputError, match=r"sources\.0"):
        parse_scenario(unknown, "k.toml")
    f = tmp_path / "broken.toml"
    f.write_text("name = 'x'\nduration_s = [", encoding="utf-8")
    with pytest.raises(InputError, match=r"broken\.toml"):
        load_scenario(f)


def test_sensor_positions_from_lat_lon_and_grid_density() -> None:
    data = scenario_dict()
    data["frame"] = {"lat0_deg": 40.44, "lon0_deg": -80.0}
    data["sensors"] = {
        "layout": "list",
        "positions": [
            {"serial": "N", "lat_deg": 40.449, "lon_deg": -80.0, "height_m": 5.0},
            {"serial": "E", "lat_deg": 40.44, "lon_deg": -79.99},
            {"serial": "L", "position_m": [-300.0, -200.0, 4.0]},
        ],
    }
    res = simulate_pulses(parse_scenario(data, "geo"), 1)
    s = {x.serial: x for x in res.sensors}
    assert 990 < s["N"].y_m < 1010 and abs(s["N"].x_m) < 1 and abs(s["N"].z_m - 5.0) < 0.2
    assert 840 < s["E"].x_m < 855 and s["L"].xyz == (-300.0, -200.0, 4.0)
    assert s["L"].lat_deg is not None
    grid = simulate_pulses(parse_scenario(scenario_dict(), "grid"), 1)
    assert abs(len(grid.sensors) - 12 * 1.5 * 1.5) <= 3


def test_audio_onsets_match_pulses() -> None:
    sc = parse_scenario(scenario_dict(**CLEAN), "u")
    scene = build_scene(sc, 2)
    res = simulate_pulses(sc, 2, scene)
    audio = simulate_audio(scene, snippet_s=2.0)
    assert audio and all(a.sample_rate_hz == 12_000 and a.pressure_pa.size == 24_000 for a in audio)
    checked = 0
    for a in audio[:8]:
        p = next(p for p in res.pulses if p.sensor == a.serial)
        k = (p.t_s - a.start_s) * a.sample_rate_hz
        x = a.pressure_pa
        k_peak = int(np.argmax(np.abs(x[: int(k) + 240])))
        assert abs(k_peak - k) < 0.004 * a.sample_rate_hz  # peak within 4 ms of the onset
        noise = float(np.std(x[: int(k) - 200]))
        assert abs(x[k_peak]) > 5 * noise
        checked += 1
    assert checked >= 4
    assert audio[0].pcm16().dtype == np.int16


def test_example_scenarios_load_and_simulate() -> None:
    ex = example_scenarios()
    assert {"city_single_shooter", "two_shooters_50m", "automatic_fire", "moving_shooter"} <= set(
        ex
    )
    assert {"fireworks_night", "edge_of_coverage"} <= set(ex)
    for path in ex.values():
        res = simulate_pulses(load_scenario(path), 1)
        assert res.pulses and res.truth.events


def test_cli_writes_pulses_audio_and_truth(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["sim", "run", "edge_of_coverage", "--out", str(tmp_path), "--seed", "3", "--audio"])
    assert rc == 0
    folder = tmp_path / "edge-of-coverage"
    pulses = json.loads((folder / "edge-of-coverage.allpulses.json").read_text())
    truth = json.loads((tmp_path / "truth.json").read_text())
    assert pulses and {"arrival_time_utc", "serial_number", "location"} <= set(pulses[0])
    assert "event_id" not in pulses[0]  # no truth in what the product reads
    assert len(truth["pulses"]) == len(pulses) and truth["seed"] == 3
    wavs = sorted(folder.glob("*.wav"))
    assert wavs
    info = sf.info(str(wavs[0]))
    assert info.samplerate == 12_000 and info.subtype == "PCM_16"
    meta = json.loads(wavs[0].with_suffix(".json").read_text())
    assert meta["serial_number"] in wavs[0].name and "timestamp" in meta
    assert main(["sim", "run", "no-such-scenario", "--out", str(tmp_path)]) == 2
    assert "no-such-scenario" in capsys.readouterr().err


def test_diffraction_delay_late_on_unblocked_paths_growing_with_distance() -> None:
    """Urban diffraction delays only unblocked paths, by amounts growing with path length
    (mean = rate x distance), and changes no other random draw of the scene."""
    src = [{"kind": "gunfire", "position_m": [700.0, 800.0, 1.5], "rounds": 12, "cadence_rps": 2}]
    base = parse_scenario(scenario_dict(nlos_share=0.3, sources=src), "base")
    bent = parse_scenario(
        scenario_dict(nlos_share=0.3, diffraction_delay_s_per_km=0.01, sources=src), "bent"
    )
    a, b = build_scene(base, 5).paths, build_scene(bent, 5).paths
    assert np.array_equal(a.sensor, b.sensor) and np.array_equal(a.kind, b.kind)
    assert np.array_equal(a.level_db, b.level_db)
    delay = b.t_true_s - a.t_true_s
    direct = a.kind == 0
    nlos = a.kind == 1
    assert nlos.any() and np.all(delay[nlos] == 0.0)
    assert np.all(delay[direct] >= 0.0)
    near = direct & (a.dist_m < 300)
    far = direct & (a.dist_m > 700)
    assert near.any() and far.any()
    assert np.mean(delay[far]) > 2 * np.mean(delay[near])
    # exponential with mean 10 ms/km x distance (loose: a few hundred paths)
    assert direct.sum() > 150
    ratio = np.mean(delay[direct] / (0.01 * a.dist_m[direct] / 1000.0))
    assert 0.7 < ratio < 1.3

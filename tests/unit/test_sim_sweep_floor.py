"""A small seeded sweep with floors: the simulator, associator, locator and incident builder
together must keep working (the full sweep is bench/sim_sweeps.py)."""

from __future__ import annotations

import math

from bench.simeval import (
    base_scenario,
    incident_case,
    oracle_shots,
    run_associator,
    run_case,
    score_association,
    score_incident,
)

from shotwatch.core.acoustics import speed_of_sound_mps
from shotwatch.core.settings import Settings
from shotwatch.sim import parse_scenario, simulate_pulses


def _shots_scenario(false_ratio: float, temp_error_c: float = 0.0) -> tuple:
    sources = [
        {"kind": "gunfire", "position_m": [x, y, 1.5], "start_s": t, "rounds": 1}
        for x, y, t in ((600, 700, 2.0), (1300, 1200, 6.0), (900, 1500, 10.0), (1500, 500, 14.0))
    ]
    data = base_scenario(
        "floor", sources, duration_s=20.0, detection={"false_pulse_ratio": false_ratio}
    )
    sc = parse_scenario(data, "floor")
    res = simulate_pulses(sc, 2)
    c = speed_of_sound_mps(sc.environment.temperature_c + temp_error_c)
    return res, c


def test_association_floor_with_false_pulses_and_wrong_temperature() -> None:
    settings = Settings()
    res, c = _shots_scenario(0.5)
    product = score_association(res, run_associator(res.pulses, c, settings, res.sensors).shots)
    oracle = score_association(res, oracle_shots(res, c, settings))
    assert oracle.recall == 1.0 and max(oracle.errors_m) < 5.0
    assert product.recall >= 0.75 and product.precision >= 0.75
    assert sorted(product.errors_m)[len(product.errors_m) // 2] < 5.0
    # a 10 C wrong temperature (6 m/s) biases the locations but keeps them within ~15 m
    res2, c_wrong = _shots_scenario(0.0, temp_error_c=10.0)
    wrong = score_association(res2, oracle_shots(res2, c_wrong, settings))
    assert wrong.recall == 1.0 and max(wrong.errors_m) < 15.0
    assert sum(wrong.errors_m) > sum(oracle.errors_m)


def test_incident_floor_on_true_grouping() -> None:
    settings = Settings()
    for kind in ("rounds", "two_shooters", "moving"):
        ok = 0
        for seed in range(2):
            res, incidents = run_case(
                incident_case(kind, seed),
                seed,
                settings,
                lambda r, c: oracle_shots(r, c, settings),
            )
            s = score_incident(kind, res, incidents)
            ok += bool(s["ok"])
            if kind == "moving" and s["heading_error_deg"] is not None:
                assert math.isfinite(s["heading_error_deg"])
        assert ok == 2, kind

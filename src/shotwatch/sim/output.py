"""The simulator's thin shell: write a simulated run to files in the published layout.

``OUT/<scenario>/<scenario>.allpulses.json`` (every reported pulse, Pittsburgh layout plus
``clock_error_s``), ``<scenario>.weather.json``, optionally ``<scenario>.audio.<serial>.wav``
(12 kHz 16-bit mono) with its JSON sidecar, so ``shotwatch locate OUT`` reads a simulation like
real data. ``OUT/truth.json`` (what really happened) and ``OUT/sensors.json`` sit beside it:
only evaluation code reads the truth.
"""

from __future__ import annotations

import json
from pathlib import Path

import soundfile as sf

from shotwatch.core.model import iso_utc
from shotwatch.sim.audio import SensorAudio
from shotwatch.sim.engine import SimResult


def _dump(path: Path, obj: object) -> None:
    path.write_text(json.dumps(obj, indent=1) + "\n", encoding="utf-8")


def pulse_records(result: SimResult) -> list[dict[str, object]]:
    """Reported pulses as published-layout records (no truth in them)."""
    return [
        {
            "pulse_uuid": p.pulse_id,
            "serial_number": p.sensor,
            "arrival_time_utc": iso_utc(p.t_s),
            "location": {"x": p.x_m, "y": p.y_m, "z": p.z_m},
            "location_error": 0.0,
            "signal_to_noise_dB": round(p.snr_db, 3),
            "power_dB_SPL": round(p.level_db_spl, 3),
            "clock_error_s": p.clock_error_s,
        }
        for p in result.pulses
    ]


def write_run(
    result: SimResult, out_dir: str | Path, audio: list[SensorAudio] | None = None
) -> dict[str, Path]:
    """Write pulses, weather, optional audio, sensors and truth; return the paths written."""
    out = Path(out_dir)
    name = result.scenario.name
    test_dir = out / name
    test_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    pulses_path = test_dir / f"{name}.allpulses.json"
    _dump(pulses_path, pulse_records(result))
    written["pulses"] = pulses_path
    env = result.scenario.environment
    weather_path = test_dir / f"{name}.weather.json"
    _dump(
        weather_path,
        {
            "fluid": "air",
            "temperature": env.temperature_c,
            "speed": env.wind_speed_mps,
            "direction": env.wind_from_deg,
            "relative_humidity": env.relative_humidity,
            "precipitation": "clear",
            "observation_time": iso_utc(result.scene.start_s),
            "source": "shotwatch-sim",
        },
    )
    written["weather"] = weather_path
    by_serial = {s.serial: s for s in result.sensors}
    index = {s.serial: i for i, s in enumerate(result.sensors)}
    for rec in audio or []:
        s = by_serial[rec.serial]
        wav = test_dir / f"{name}.audio.{rec.serial}.wav"
        sf.write(wav, rec.pcm16(), rec.sample_rate_hz, subtype="PCM_16")
        _dump(
            wav.with_suffix(".json"),
            {
                "serial_number": rec.serial,
                "timestamp": iso_utc(rec.start_s),
                "location": {"x": s.x_m, "y": s.y_m, "z": s.z_m},
                "latitude": s.lat_deg,
                "longitude": s.lon_deg,
                "full_scale_pa": rec.full_scale_pa,
                "clock_error_s": float(result.scene.clock_bound_s[index[s.serial]]),
                "creator": "shotwatch-sim",
                "description": f"simulated scenario {name}, seed {result.truth.seed}",
            },
        )
        written[f"audio:{rec.serial}"] = wav
    sensors_path = out / "sensors.json"
    _dump(
        sensors_path,
        [
            {
                "serial": s.serial,
                "x_m": s.x_m,
                "y_m": s.y_m,
                "z_m": s.z_m,
                "lat_deg": s.lat_deg,
                "lon_deg": s.lon_deg,
            }
            for s in result.sensors
        ],
    )
    written["sensors"] = sensors_path
    truth_path = out / "truth.json"
    _dump(truth_path, result.truth.to_dict())
    written["truth"] = truth_path
    return written

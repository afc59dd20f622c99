"""Pulses from raw sensor audio: read a folder of recordings, pick them, return sensors+pulses.

Two layouts are recognised in one folder (non-recursive):

(a) the published live-fire layout: ``<test>.audio.<serial>.wav`` with a JSON sidecar of the
    same stem holding ``serial_number``, ``timestamp`` (UTC of the first sample) and
    ``location`` {x, y, z} in metres of an arbitrary local frame. Only the WAVs and their
    sidecars are read (never ``allpulses.json``); a ``*.weather.json`` beside them gives the
    temperature when present.
(b) WAVs carrying an ``smj0`` chunk (a deployed sensor's own format): a :class:`LocalFrame`
    is centred on the sensors, their WGS84 positions are put into it, the clock-error bound
    comes from ``lambda`` and the temperature from the chunk's weather.

A bad file becomes an :class:`InputError` in ``errors`` naming the file and field; the other
files are still processed.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from shotwatch.core.errors import InputError
from shotwatch.core.geo import LocalFrame
from shotwatch.core.ids import stable_id
from shotwatch.core.model import Provenance, Pulse, Sensor, parse_utc
from shotwatch.core.settings import PickerSettings
from shotwatch.io.audio import AUDIO_SUFFIXES, read_audio
from shotwatch.io.smj0 import Smj0Metadata, has_smj0, read_smj0
from shotwatch.signal.picker import ALGORITHM, VERSION, PickerConfig, pick_array

#: Two picks of one sensor closer than this, from different files, are the same pulse.
_DUPLICATE_S = 0.001


@dataclass(frozen=True)
class AudioPulses:
    """What a folder of recordings yields.

    ``frame`` is set when the positions came from WGS84 (smj0 files); sensor and pulse
    coordinates are then metres in it. ``temperature_c`` is the median of the temperatures
    the files report (None when none do).
    """

    sensors: list[Sensor]
    pulses: list[Pulse]
    frame: LocalFrame | None
    errors: list[InputError]
    temperature_c: float | None = None
    files: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Recording:
    path: Path
    serial: str
    start_s: float
    xyz_m: tuple[float, float, float] | None
    smj0: Smj0Metadata | None


def _sidecar(wav: Path) -> _Recording:
    side = wav.with_suffix(".json")
    where = str(side)
    try:
        obj: Any = json.loads(side.read_text())
    except FileNotFoundError as exc:
        raise InputError(
            str(wav), "sidecar", f"no smj0 chunk and no JSON sidecar {side.name}"
        ) from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(where, "json", f"not readable JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise InputError(where, "json", "must be an object")
    serial = obj.get("serial_number")
    if not isinstance(serial, str) or not serial.strip():
        raise InputError(where, "serial_number", f"must be a non-empty string, got {serial!r}")
    start = parse_utc(obj.get("timestamp"), where=where, field_name="timestamp")  # type: ignore[arg-type]
    loc = obj.get("location")
    if not isinstance(loc, dict):
        raise InputError(where, "location", f"must be an object with x, y, z, got {loc!r}")
    xyz: list[float] = []
    for k in ("x", "y", "z"):
        v = loc.get(k, 0.0 if k == "z" else None)
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise InputError(where, f"location.{k}", f"must be a finite number, got {v!r}")
        xyz.append(float(v))
    return _Recording(wav, serial.strip(), start, (xyz[0], xyz[1], xyz[2]), None)


def _weather_temperature(folder: Path, errors: list[InputError]) -> float | None:
    temps: list[float] = []
    for wf in sorted(folder.glob("*.weather.json")):
        try:
            obj = json.loads(wf.read_text())
            t = obj.get("temperature") if isinstance(obj, dict) else None
            if isinstance(t, int | float) and not isinstance(t, bool) and math.isfinite(t):
                temps.append(float(t))
            else:
                errors.append(InputError(str(wf), "temperature", f"not a number: {t!r}"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            errors.append(InputError(str(wf), "json", f"not readable JSON: {exc}"))
    return statistics.median(temps) if temps else None


def audio_files(folder: str | Path) -> list[Path]:
    """Audio files directly in ``folder``, sorted by name."""
    return sorted(
        p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES
    )


def find_audio_dirs(root: str | Path) -> Iterator[Path]:
    """``root`` and every folder below it that directly holds audio files, sorted."""
    r = Path(root)
    for d in sorted([r, *[p for p in r.rglob("*") if p.is_dir()]]):
        if any(p.suffix.lower() in AUDIO_SUFFIXES for p in d.iterdir() if p.is_file()):
            yield d


def _recording(path: Path) -> _Recording:
    if path.suffix.lower() == ".wav" and has_smj0(path):
        meta = read_smj0(path)
        return _Recording(path, meta.serial, meta.start_utc_s, None, meta)
    return _sidecar(path)


def pulses_from_audio_dir(
    test_dir: str | Path,
    *,
    config: PickerConfig | None = None,
    picker_settings: PickerSettings | None = None,
    created_s: float | None = None,
    default_clock_error_s: float = 0.0,
) -> AudioPulses:
    """Pick every recording in ``test_dir`` and return sensors, pulses, frame and errors.

    ``config`` overrides the picker parameters (its sample rate is replaced by each file's);
    otherwise ``picker_settings`` (the ``[picker]`` settings section) or the defaults apply.
    ``created_s`` stamps the pulses' provenance (defaults to the latest recording start, so
    replays are deterministic). ``default_clock_error_s`` is used when a file states none.
    """
    folder = Path(test_dir)
    errors: list[InputError] = []
    if not folder.is_dir():
        return AudioPulses([], [], None, [InputError(str(folder), "folder", "not a directory")])
    recs: list[_Recording] = []
    for path in audio_files(folder):
        try:
            recs.append(_recording(path))
        except InputError as exc:
            errors.append(exc)

    frame: LocalFrame | None = None
    geo = [r for r in recs if r.smj0 is not None]
    if geo:
        frame = LocalFrame.centred_on(
            [(m.latitude_deg, m.longitude_deg, m.elevation_m) for r in geo if (m := r.smj0)]
        )
    temps = [r.smj0.temperature_c for r in geo if r.smj0 and r.smj0.temperature_c is not None]
    temperature = statistics.median(temps) if temps else _weather_temperature(folder, errors)

    stamp = created_s if created_s is not None else max((r.start_s for r in recs), default=0.0)
    prov = Provenance.automatic(ALGORITHM, VERSION, stamp)
    sensors: dict[str, Sensor] = {}
    pulses: list[Pulse] = []
    files: list[str] = []
    seen: dict[str, list[float]] = {}
    for rec in recs:
        where = str(rec.path)
        try:
            audio = read_audio(rec.path)
        except InputError as exc:
            errors.append(exc)
            continue
        meta = rec.smj0
        if meta is not None and frame is not None:
            x, y, z = frame.to_local(meta.latitude_deg, meta.longitude_deg, meta.elevation_m)
            sensor = Sensor(
                rec.serial, x, y, z, meta.latitude_deg, meta.longitude_deg, meta.elevation_m
            )
            clock_err = meta.clock_error_s
            full_scale = meta.full_scale_db_spl
        elif rec.xyz_m is not None:
            sensor = Sensor(rec.serial, *rec.xyz_m)
            clock_err = None
            full_scale = None
        else:  # pragma: no cover - every recording has either smj0 or a sidecar position
            errors.append(InputError(where, "position", "no sensor position"))
            continue
        if meta is not None and meta.duration_s > 0:
            # The chunk's duration and the samples must agree; a gap means a cut recording or
            # a wrong start time. Reported, and the samples that are there are still picked.
            actual_s = audio.n_samples / audio.sample_rate_hz
            if abs(actual_s - meta.duration_s) > max(0.002, 2.0 / audio.sample_rate_hz):
                errors.append(
                    InputError(
                        where,
                        "smj0.duration",
                        f"says {meta.duration_s} s but the file holds {actual_s:.4f} s of audio",
                    )
                )
        if rec.serial in sensors and sensors[rec.serial] != sensor:
            errors.append(
                InputError(where, "position", f"sensor {rec.serial} appears at two positions")
            )
            continue
        sensors[rec.serial] = sensor
        files.append(where)
        base = config or PickerConfig.from_settings(
            picker_settings or PickerSettings(), audio.sample_rate_hz
        )
        cfg = _with_rate(base, audio.sample_rate_hz)
        samples = audio.mono()
        if not np.any(samples):
            errors.append(InputError(where, "samples", "recording is all zeros (dead channel)"))
            continue
        for pk in pick_array(samples, cfg, rec.start_s):
            dup = seen.get(rec.serial)
            if dup is not None and np.min(np.abs(np.asarray(dup) - pk.t_s)) < _DUPLICATE_S:
                errors.append(
                    InputError(
                        where,
                        "pulse",
                        f"duplicate of a pulse of sensor {rec.serial} from another file "
                        f"(overlapping recordings); first copy kept",
                    )
                )
                continue
            seen.setdefault(rec.serial, []).append(pk.t_s)
            level_spl = pk.level_dbfs + full_scale if full_scale is not None else math.nan
            pulses.append(
                Pulse(
                    pulse_id=stable_id("pulse", rec.serial, round(pk.t_s, 7)),
                    sensor=rec.serial,
                    t_s=pk.t_s,
                    x_m=sensor.x_m,
                    y_m=sensor.y_m,
                    z_m=sensor.z_m,
                    snr_db=pk.snr_db,
                    level_db_spl=level_spl,
                    clock_error_s=clock_err if clock_err is not None else default_clock_error_s,
                    provenance=prov,
                )
            )
    pulses.sort(key=lambda p: (p.t_s, p.sensor))
    return AudioPulses(list(sensors.values()), pulses, frame, errors, temperature, files)


def _with_rate(cfg: PickerConfig, rate: int) -> PickerConfig:
    return cfg if cfg.sample_rate_hz == rate else replace(cfg, sample_rate_hz=float(rate))

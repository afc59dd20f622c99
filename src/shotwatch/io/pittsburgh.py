"""Reader for the published live-fire layout (ShotSpotter TN-098 Pittsburgh data set).

A *test folder* holds ``<test>.allpulses.json`` (every impulse any sensor reported), one
``<test>.audio.<serial>.json`` sidecar per WAV, and ``<test>.weather.json``. The reader turns
them into the shared model (:class:`~shotwatch.core.model.Pulse`,
:class:`~shotwatch.core.model.Sensor`) plus a :class:`Weather`.

Ground truth files of the same folder (``survey.json``, ``nlos-tuples.json``) are never opened
here: they belong to evaluation code only.

Bad input never stops the rest: each problem becomes an :class:`InputError` naming the file and
field, collected in :attr:`TestData.errors`; every record that could be read is kept.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shotwatch.core.errors import InputError
from shotwatch.core.model import Provenance, Pulse, Sensor, parse_utc

READER_VERSION = "1"
_ALLPULSES = ".allpulses.json"
_WEATHER = ".weather.json"
_AUDIO_MARK = ".audio."


@dataclass(frozen=True, slots=True)
class Weather:
    """Surface weather for a test (METAR): temperature, wind speed and the azimuth the wind
    blows from (degrees clockwise from north)."""

    temperature_c: float
    wind_speed_mps: float = 0.0
    wind_from_deg: float = 0.0
    observation_s: float | None = None
    source: str = ""


@dataclass(frozen=True)
class TestData:
    """Everything the product may read from one test folder."""

    name: str
    path: Path
    pulses: tuple[Pulse, ...]
    sensors: dict[str, Sensor]
    weather: Weather | None
    audio_sensors: tuple[str, ...] = ()
    errors: tuple[InputError, ...] = field(default_factory=tuple)


def is_test_dir(path: Path) -> bool:
    """A folder is a test folder when it holds an allpulses file or an audio sidecar."""
    if not path.is_dir():
        return False
    return any(
        p.name.endswith(_ALLPULSES) or (_AUDIO_MARK in p.name and p.suffix == ".json")
        for p in path.iterdir()
    )


def find_test_dirs(root: str | Path) -> list[Path]:
    """Every test folder at or under ``root`` (one test, one firing position or the whole
    set), sorted by path."""
    root = Path(root)
    if not root.exists():
        raise InputError(str(root), "path", "no such folder")
    if not root.is_dir():
        raise InputError(str(root), "path", "not a folder")
    found = [root] if is_test_dir(root) else []
    found += [p for p in sorted(root.rglob("*")) if p.is_dir() and is_test_dir(p)]
    return sorted(set(found))


def read_tree(root: str | Path) -> Iterator[TestData]:
    """Read every test folder under ``root`` in path order."""
    root = Path(root)
    for d in find_test_dirs(root):
        rel = d.relative_to(root).as_posix()
        yield read_test(d, name=rel if rel != "." else d.name)


def read_test(test_dir: str | Path, *, name: str | None = None) -> TestData:
    """Read one test folder; problems are collected in ``errors``, never raised."""
    d = Path(test_dir)
    errors: list[InputError] = []
    sensors: dict[str, Sensor] = {}
    audio_serials: list[str] = []
    for sidecar in sorted(d.glob(f"*{_AUDIO_MARK}*.json")):
        try:
            s = read_audio_sidecar(sidecar)
        except InputError as exc:
            errors.append(exc)
            continue
        if s.serial in sensors:
            errors.append(InputError(str(sidecar), "serial_number", f"{s.serial} given twice"))
            continue
        sensors[s.serial] = s
        audio_serials.append(s.serial)

    pulses: list[Pulse] = []
    pulse_files = sorted(d.glob(f"*{_ALLPULSES}"))
    for pf in pulse_files:
        got, errs = read_allpulses(pf)
        pulses.extend(got)
        errors.extend(errs)
    for p in pulses:
        if p.sensor not in sensors:
            sensors[p.sensor] = Sensor(p.sensor, p.x_m, p.y_m, p.z_m)

    weather: Weather | None = None
    for wf in sorted(d.glob(f"*{_WEATHER}")):
        try:
            weather = read_weather(wf)
        except InputError as exc:
            errors.append(exc)
    pulses.sort(key=lambda p: (p.t_s, p.sensor, p.pulse_id))
    return TestData(
        name=name if name is not None else d.name,
        path=d,
        pulses=tuple(pulses),
        sensors=sensors,
        weather=weather,
        audio_sensors=tuple(audio_serials),
        errors=tuple(errors),
    )


def _load_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(str(path), "file", f"cannot read: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise InputError(str(path), "file", f"not UTF-8 text: {exc}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            str(path), "json", f"malformed or truncated JSON at line {exc.lineno}: {exc.msg}"
        ) from exc


def _number(obj: dict[str, Any], key: str, where: str, field_name: str | None = None) -> float:
    fname = field_name or key
    if key not in obj:
        raise InputError(where, fname, "missing")
    v = obj[key]
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise InputError(where, fname, f"must be a number, got {v!r}")
    if not math.isfinite(v):
        raise InputError(where, fname, f"must be finite, got {v!r}")
    return float(v)


def _text(obj: dict[str, Any], key: str, where: str) -> str:
    v = obj.get(key)
    if not isinstance(v, str) or not v.strip():
        raise InputError(where, key, "missing" if v is None else f"must be a string, got {v!r}")
    return v.strip()


def _xyz(obj: dict[str, Any], where: str) -> tuple[float, float, float]:
    loc = obj.get("location")
    if not isinstance(loc, dict):
        raise InputError(where, "location", "missing or not an object with x, y, z")
    return (
        _number(loc, "x", where, "location.x"),
        _number(loc, "y", where, "location.y"),
        _number(loc, "z", where, "location.z"),
    )


def read_allpulses(path: str | Path) -> tuple[list[Pulse], list[InputError]]:
    """Pulses of one ``allpulses.json``; each bad record is reported and skipped, the rest
    kept. A repeated ``pulse_uuid`` or an exact repeat (same sensor and arrival time) is
    reported and only the first copy is kept."""
    p = Path(path)
    errors: list[InputError] = []
    try:
        data = _load_json(p)
    except InputError as exc:
        return [], [exc]
    if not isinstance(data, list):
        return [], [InputError(str(p), "json", "expected a list of pulse records")]
    pulses: list[Pulse] = []
    seen_ids: set[str] = set()
    seen_arrivals: dict[tuple[str, float], str] = {}
    prov = Provenance.automatic("sensor-pulse-report", READER_VERSION, 0.0)
    for i, rec in enumerate(data):
        where = f"{p}[{i}]"
        try:
            if not isinstance(rec, dict):
                raise InputError(where, "record", "expected an object")
            pid = _text(rec, "pulse_uuid", where)
            where = f"{p}[{i}] (pulse {pid})"
            serial = _text(rec, "serial_number", where)
            t_s = parse_utc(
                _text(rec, "arrival_time_utc", where), where=where, field_name="arrival_time_utc"
            )
            x, y, z = _xyz(rec, where)
            snr = _number(rec, "signal_to_noise_dB", where) if "signal_to_noise_dB" in rec else None
            spl = _number(rec, "power_dB_SPL", where) if "power_dB_SPL" in rec else None
            if pid in seen_ids:
                raise InputError(where, "pulse_uuid", "duplicate pulse id; first copy kept")
            key = (serial, round(t_s, 6))
            if key in seen_arrivals:
                raise InputError(
                    where,
                    "arrival_time_utc",
                    f"duplicate of pulse {seen_arrivals[key]} (same sensor and time); "
                    "first copy kept",
                )
            pulse = Pulse(
                pulse_id=pid,
                sensor=serial,
                t_s=t_s,
                x_m=x,
                y_m=y,
                z_m=z,
                snr_db=math.nan if snr is None else snr,
                level_db_spl=math.nan if spl is None else spl,
                provenance=prov,
            )
        except InputError as exc:
            errors.append(exc)
            continue
        seen_ids.add(pid)
        seen_arrivals[key] = pid
        pulses.append(pulse)
    return pulses, errors


def read_audio_sidecar(path: str | Path) -> Sensor:
    """The sensor described by one ``<test>.audio.<serial>.json``."""
    p = Path(path)
    data = _load_json(p)
    where = str(p)
    if not isinstance(data, dict):
        raise InputError(where, "json", "expected an object")
    serial = _text(data, "serial_number", where)
    x, y, z = _xyz(data, where)
    if "timestamp" in data:
        parse_utc(_text(data, "timestamp", where), where=where, field_name="timestamp")
    return Sensor(serial, x, y, z)


def read_audio_start_s(path: str | Path) -> float:
    """UTC time (POSIX seconds) of the first sample of the WAV an audio sidecar describes."""
    p = Path(path)
    data = _load_json(p)
    if not isinstance(data, dict):
        raise InputError(str(p), "json", "expected an object")
    return parse_utc(_text(data, "timestamp", str(p)), where=str(p), field_name="timestamp")


def read_weather(path: str | Path) -> Weather:
    """METAR weather of one test."""
    p = Path(path)
    data = _load_json(p)
    where = str(p)
    if not isinstance(data, dict):
        raise InputError(where, "json", "expected an object")
    temp = _number(data, "temperature", where)
    if not -60.0 <= temp <= 60.0:
        raise InputError(where, "temperature", f"outside [-60, 60] C: {temp}")
    speed = _number(data, "speed", where) if "speed" in data else 0.0
    if speed < 0:
        raise InputError(where, "speed", f"must be >= 0 m/s, got {speed}")
    direction = _number(data, "direction", where) if "direction" in data else 0.0
    obs: float | None = None
    if "observation_time" in data:
        obs = parse_utc(
            _text(data, "observation_time", where), where=where, field_name="observation_time"
        )
    src = data.get("source")
    return Weather(temp, speed, direction % 360.0, obs, src if isinstance(src, str) else "")

"""``shotwatch locate DIR``: associate and locate the shots in a folder of the published layout.

DIR may be one test folder, one firing position or the whole data set. Each test folder is
processed on its own (every firing position has its own arbitrary frame). Only the product's
inputs are read: ``allpulses.json``, the audio sidecars and ``weather.json`` (or, with
``--from-audio``, only the recordings). Ground-truth files are never opened.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shotwatch.association import Associator
from shotwatch.cli.common import add_config_option
from shotwatch.core.acoustics import speed_of_sound_mps
from shotwatch.core.errors import InputError
from shotwatch.core.geo import LocalFrame
from shotwatch.core.model import Pulse, Sensor, ShotLocation, iso_utc
from shotwatch.core.settings import Settings, load_settings
from shotwatch.incidents import IncidentBuilder
from shotwatch.io.pittsburgh import find_test_dirs, read_test
from shotwatch.signal.few_sensor import MAX_SENSORS as FEW_SENSORS
from shotwatch.signal.few_sensor import FewSensorGrouper


def register(sub: Any) -> None:
    p = sub.add_parser(
        "locate",
        help="associate pulses and locate shots in a folder of the published layout",
        description=__doc__,
    )
    p.add_argument("dir", type=Path, help="test folder, firing-position folder or data root")
    p.add_argument(
        "--from-audio",
        action="store_true",
        help="pick the recordings with our own picker instead of reading allpulses.json",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per located shot")
    p.add_argument("--dims", type=int, choices=(2, 3), default=None, help="2-D or 3-D solve")
    add_config_option(p)
    p.set_defaults(func=run)


@dataclass
class _Input:
    name: str
    sensors: list[Sensor]
    pulses: list[Pulse]
    temperature_c: float | None
    frame: LocalFrame | None
    errors: list[InputError]
    from_audio: bool = False


def _audio_dirs(root: Path) -> list[Path]:
    if not root.is_dir():
        raise InputError(str(root), "path", "no such folder")
    dirs = {p.parent for p in root.rglob("*.wav")}
    return sorted(dirs)


def _read_inputs(root: Path, from_audio: bool) -> list[_Input]:
    out: list[_Input] = []
    if from_audio:
        try:
            from shotwatch.io.audio_pulses import pulses_from_audio_dir
        except ImportError as exc:  # pragma: no cover - the picker is part of the package
            raise InputError("--from-audio", "picker", "audio picking is not available") from exc
        for d in _audio_dirs(root):
            ap = pulses_from_audio_dir(d)
            temp = ap.temperature_c
            if temp is None:
                # The published layout keeps the weather beside the audio.
                test = read_test(d)
                temp = test.weather.temperature_c if test.weather else None
            rel = d.relative_to(root).as_posix()
            out.append(
                _Input(
                    rel if rel != "." else d.name,
                    list(ap.sensors),
                    list(ap.pulses),
                    temp,
                    ap.frame,
                    list(ap.errors),
                    from_audio=True,
                )
            )
        return out
    for d in find_test_dirs(root):
        test = read_test(d)
        rel = d.relative_to(root).as_posix()
        out.append(
            _Input(
                rel if rel != "." else d.name,
                list(test.sensors.values()),
                list(test.pulses),
                test.weather.temperature_c if test.weather else None,
                None,
                list(test.errors),
            )
        )
    return out


def locate_input(
    item: _Input, settings: Settings, dims: int
) -> tuple[list[ShotLocation], dict[str, str]]:
    """Associate + locate one test's pulses; group its shots into incidents."""
    temp = item.temperature_c
    if temp is None:
        temp = settings.location.default_temperature_c
    c = speed_of_sound_mps(temp)
    shots: list[ShotLocation] = []
    n_sensors = len({p.sensor for p in item.pulses})
    if item.from_audio and n_sensors <= FEW_SENSORS:
        # A folder of a few recordings: exhaustive hypothesis testing (ADR 0022), which
        # carries its own echo and silent-sensor checks.
        shots = FewSensorGrouper(item.sensors, c, settings, dims=dims).run(item.pulses)
    else:
        assoc = Associator(settings, c, item.sensors, dims=dims)
        for p in sorted(item.pulses, key=lambda p: (p.t_s, p.sensor, p.pulse_id)):
            shots.extend(assoc.feed(p))
        shots.extend(assoc.flush())
    if item.frame is not None:
        geo = []
        for s in shots:
            lat, lon, _ = item.frame.to_geo(s.x_m, s.y_m, s.z_m)
            geo.append(s.with_geo(lat, lon))
        shots = geo
    shots.sort(key=lambda s: s.t0_s)
    builder = IncidentBuilder(settings.incidents)
    incidents = []
    for s in shots:
        incidents.extend(builder.feed(s))
    incidents.extend(builder.flush())
    by_shot: dict[str, str] = {}
    for inc in incidents:
        for sid in inc.shot_ids:
            by_shot[sid] = inc.incident_id
    return shots, by_shot


def shot_record(name: str, shot: ShotLocation, incident_id: str | None) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "test": name,
        "time_utc": iso_utc(shot.t0_s),
        "x_m": round(shot.x_m, 2),
        "y_m": round(shot.y_m, 2),
        "z_m": round(shot.z_m, 2),
        "sensors": sorted(shot.sensors),
        "n_sensors": shot.n_sensors,
        "residual_rms_s": round(shot.residual_rms_s, 5),
        "uncertainty_m": round(shot.uncertainty_m, 2),
        "incident_id": incident_id,
    }
    if shot.lat_deg is not None and shot.lon_deg is not None:
        rec["lat_deg"] = round(shot.lat_deg, 7)
        rec["lon_deg"] = round(shot.lon_deg, 7)
    if shot.ambiguous:
        rec["ambiguous"] = True
        rec["alternative_xy_m"] = [round(v, 2) for v in shot.alternative_xy_m or ()]
    return rec


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config) if args.config else Settings()
    dims = args.dims or settings.location.dims
    inputs = _read_inputs(args.dir, args.from_audio)
    if not inputs and not args.from_audio:
        # A folder of sensor recordings without a published pulse file (an smj0 incident
        # folder, say) is located from its audio, and the user is told so.
        inputs = _read_inputs(args.dir, True)
        if inputs:
            print(
                f"shotwatch locate: {args.dir}: no allpulses.json; locating from the sensor "
                "audio (as with --from-audio)",
                file=sys.stderr,
            )
    if not inputs:
        raise InputError(
            str(args.dir), "path", "no test folders found (neither allpulses.json nor WAVs)"
        )
    n_errors = 0
    rows: list[dict[str, Any]] = []
    for item in inputs:
        for err in item.errors:
            n_errors += 1
            print(f"shotwatch locate: warning: {err}", file=sys.stderr)
        shots, by_shot = locate_input(item, settings, dims)
        for s in shots:
            rows.append(shot_record(item.name, s, by_shot.get(s.shot_id)))
    if args.json:
        for r in rows:
            print(json.dumps(r))
    else:
        _table(rows)
    print(
        f"shotwatch locate: {len(rows)} shots in {len(inputs)} test folders; "
        f"{n_errors} input problems reported above",
        file=sys.stderr,
    )
    return 0


def _table(rows: list[dict[str, Any]]) -> None:
    geo = any("lat_deg" in r for r in rows)
    head = f"{'test':<16} {'time (UTC)':<27} {'x_m':>10} {'y_m':>10} "
    head += f"{'lat':>11} {'lon':>12} " if geo else ""
    head += f"{'n':>3} {'rms_ms':>7} {'unc_m':>6}  incident"
    print(head)
    for r in rows:
        line = f"{r['test']:<16} {r['time_utc']:<27} {r['x_m']:>10.1f} {r['y_m']:>10.1f} "
        if geo:
            line += (
                f"{r.get('lat_deg', float('nan')):>11.6f} {r.get('lon_deg', float('nan')):>12.6f} "
            )
        line += f"{r['n_sensors']:>3} {1000 * r['residual_rms_s']:>7.2f} {r['uncertainty_m']:>6.1f}"
        line += f"  {r['incident_id'] or '-'}"
        print(line)

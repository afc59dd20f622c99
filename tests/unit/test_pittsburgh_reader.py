"""Reader for the published live-fire layout: good input, and bad input named by file and
field while the rest is still read."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from shotwatch.core.errors import InputError
from shotwatch.io.pittsburgh import find_test_dirs, read_allpulses, read_test, read_tree


def _pulse(uid: str, serial: str, t: str, x: float = 1.0, **extra: object) -> dict[str, object]:
    rec: dict[str, object] = {
        "pulse_uuid": uid,
        "serial_number": serial,
        "arrival_time_utc": t,
        "location": {"x": x, "y": 2.0, "z": 3.0},
        "location_error": 0.03,
        "signal_to_noise_dB": 12.5,
        "power_dB_SPL": 88.0,
    }
    rec.update(extra)
    return rec


def _make_test(folder: Path, pulses: list[object] | str, weather: object | str = None) -> Path:
    folder.mkdir(parents=True)
    text = pulses if isinstance(pulses, str) else json.dumps(pulses)
    (folder / "test_001.allpulses.json").write_text(text)
    sidecar = {
        "serial_number": "S-A",
        "timestamp": "2018-12-19T00:49:26.000Z",
        "location": {"x": 1.0, "y": 2.0, "z": 3.0},
    }
    (folder / "test_001.audio.S-A.json").write_text(json.dumps(sidecar))
    w = weather if weather is not None else {"temperature": -1.5, "speed": 1.0, "direction": 90}
    (folder / "test_001.weather.json").write_text(w if isinstance(w, str) else json.dumps(w))
    # Ground truth lies beside the product's inputs; the reader must never open it.
    (folder / "test_001.survey.json").write_text("{ this is not read")
    (folder / "test_001.nlos-tuples.json").write_text("{ nor this")
    return folder


def test_reads_pulses_sensors_weather(tmp_path: Path) -> None:
    d = _make_test(
        tmp_path / "FP1" / "test_001",
        [
            _pulse("u1", "S-A", "2018-12-19T00:49:27.467Z"),
            _pulse("u2", "S-B", "2018-12-19T00:49:27.100Z", x=5.0),
        ],
    )
    t = read_test(d)
    assert t.errors == ()
    assert [p.pulse_id for p in t.pulses] == ["u2", "u1"]  # time order
    p = t.pulses[1]
    assert p.sensor == "S-A" and p.snr_db == 12.5 and p.level_db_spl == 88.0
    assert (p.x_m, p.y_m, p.z_m) == (1.0, 2.0, 3.0)
    assert math.isclose(p.t_s % 60, 27.467, abs_tol=1e-6)
    assert set(t.sensors) == {"S-A", "S-B"} and t.audio_sensors == ("S-A",)
    assert t.weather is not None and t.weather.temperature_c == -1.5
    assert t.weather.wind_from_deg == 90


def test_tree_walk_names_tests_relative_to_root(tmp_path: Path) -> None:
    for fp in ("FP1", "FP2"):
        _make_test(tmp_path / fp / "test_001", [_pulse("u", "S-A", "2018-12-19T00:49:27Z")])
    names = [t.name for t in read_tree(tmp_path)]
    assert names == ["FP1/test_001", "FP2/test_001"]
    assert [t.name for t in read_tree(tmp_path / "FP2")] == ["test_001"]
    assert len(find_test_dirs(tmp_path / "FP1" / "test_001")) == 1
    with pytest.raises(InputError, match="no such folder"):
        find_test_dirs(tmp_path / "missing")


def test_bad_records_are_named_and_the_rest_kept(tmp_path: Path) -> None:
    good = _pulse("ok", "S-A", "2018-12-19T00:49:27.000Z")
    no_time = _pulse("no-time", "S-A", "2018-12-19T00:49:27.000Z")
    del no_time["arrival_time_utc"]
    bad_time = _pulse("bad-time", "S-A", "yesterday")
    nan_x = _pulse("nan-x", "S-A", "2018-12-19T00:49:28Z")
    nan_x["location"] = {"x": float("nan"), "y": 1, "z": 1}
    str_snr = _pulse("str-snr", "S-A", "2018-12-19T00:49:29Z", signal_to_noise_dB="loud")
    dup_id = _pulse("ok", "S-B", "2018-12-19T00:49:30Z")
    dup_time = _pulse("twin", "S-A", "2018-12-19T00:49:27.000Z")
    no_loc = _pulse("no-loc", "S-A", "2018-12-19T00:49:31Z")
    del no_loc["location"]
    text = json.dumps([good, no_time, bad_time, nan_x, str_snr, dup_id, dup_time, no_loc, 7])
    text = text.replace("NaN", "NaN")  # json.dumps writes NaN, which json.loads accepts
    d = _make_test(tmp_path / "t", text)
    t = read_test(d)
    assert [p.pulse_id for p in t.pulses] == ["ok"]
    fields = sorted(e.field for e in t.errors)
    assert fields == sorted(
        [
            "arrival_time_utc",  # missing
            "arrival_time_utc",  # not ISO 8601
            "location.x",  # NaN
            "signal_to_noise_dB",
            "pulse_uuid",  # duplicate id
            "arrival_time_utc",  # duplicate of 'ok' (same sensor and time)
            "location",
            "record",
        ]
    )
    assert all("allpulses.json" in e.where for e in t.errors)
    assert any("no-time" in e.where for e in t.errors)


def test_truncated_json_is_reported_and_other_files_still_read(tmp_path: Path) -> None:
    full = json.dumps([_pulse("u1", "S-A", "2018-12-19T00:49:27Z")])
    d = _make_test(tmp_path / "t", full[: len(full) // 2], weather='{"temperature": ')
    t = read_test(d)
    assert t.pulses == ()
    assert {e.field for e in t.errors} == {"json"}
    assert {Path(e.where).name for e in t.errors} == {
        "test_001.allpulses.json",
        "test_001.weather.json",
    }
    assert "truncated" in str(t.errors[0])
    assert "S-A" in t.sensors  # the audio sidecar was still read


def test_weather_field_errors(tmp_path: Path) -> None:
    d = _make_test(tmp_path / "t", [], weather={"temperature": 99.0})
    t = read_test(d)
    assert t.weather is None
    assert [(e.field, "outside" in e.reason) for e in t.errors] == [("temperature", True)]
    d2 = _make_test(tmp_path / "u", [], weather={"speed": 1})
    assert [e.field for e in read_test(d2).errors] == ["temperature"]


def test_bad_sidecar_is_reported(tmp_path: Path) -> None:
    d = _make_test(tmp_path / "t", [_pulse("u1", "S-B", "2018-12-19T00:49:27Z")])
    (d / "test_001.audio.S-C.json").write_text(json.dumps({"serial_number": "S-C"}))
    t = read_test(d)
    assert [(Path(e.where).name, e.field) for e in t.errors] == [
        ("test_001.audio.S-C.json", "location")
    ]
    assert set(t.sensors) == {"S-A", "S-B"}


def test_not_a_list(tmp_path: Path) -> None:
    p = tmp_path / "x.allpulses.json"
    p.write_text('{"pulse_uuid": "u"}')
    pulses, errors = read_allpulses(p)
    assert pulses == [] and errors[0].field == "json"

"""RIFF walking and the smj0 chunk: round trip, malformed files, and the real Chicago files."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from shotwatch.core.errors import InputError
from shotwatch.io.audio import read_audio
from shotwatch.io.smj0 import (
    Smj0Metadata,
    decode_smj0,
    find_chunk,
    read_smj0,
    smj0_wav_bytes,
    walk_riff,
    write_smj0_wav,
)

META = Smj0Metadata(
    serial="SCP-TEST-0001",
    start_utc_s=1663478454.178125,
    duration_s=0.5,
    latitude_deg=41.697987,
    longitude_deg=-87.633597,
    elevation_m=195.6,
    temperature_c=25.0,
    wind_speed_mps=6.7,
    wind_direction_deg=210.0,
    zone="TestZone",
    pdop=2.0,
    clock_error_s=2.4e-5,
    sensor_type="Scepter2",
    full_scale_db_spl=93.09,
)


def _chunk(cid: bytes, payload: bytes) -> bytes:
    return struct.pack("<4sI", cid, len(payload)) + payload + (b"\0" if len(payload) & 1 else b"")


def _wav(*chunks: bytes) -> bytes:
    body = b"WAVE" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _fmt(rate: int = 12000) -> bytes:
    return _chunk(b"fmt ", struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16))


def _smj0_obj() -> dict[str, object]:
    return META.to_json()


def test_round_trip_metadata_and_samples(tmp_path: Path) -> None:
    x = 0.5 * np.sin(np.arange(6000) / 10.0)
    p = write_smj0_wav(tmp_path / "a.wav", x, 12000, META)
    got = read_smj0(p)
    assert got.serial == META.serial
    assert got.start_utc_s == pytest.approx(META.start_utc_s, abs=1e-6)
    assert (got.latitude_deg, got.longitude_deg, got.elevation_m) == (41.697987, -87.633597, 195.6)
    assert got.clock_error_s == 2.4e-5
    assert got.temperature_c == 25.0
    assert got.zone == "TestZone"
    assert got.pdop == 2.0
    assert got.full_scale_db_spl == 93.09
    audio = read_audio(p)
    assert audio.sample_rate_hz == 12000
    assert np.max(np.abs(audio.mono() - x)) < 1.0 / 32768 + 1e-7


def test_odd_sized_chunk_is_padded_and_walk_continues() -> None:
    text = json.dumps(_smj0_obj()).encode()
    payload = zlib.compress(text)
    pad = 0
    while len(payload) % 2 == 0:  # trailing JSON whitespace changes the compressed size
        pad += 1
        payload = zlib.compress(text + b" " * pad)
    data = _wav(
        _fmt(), _chunk(b"data", b"\0\0" * 10), _chunk(b"smj0", payload), _chunk(b"LIST", b"abcd")
    )
    chunks = walk_riff(data, "mem")
    assert [c.chunk_id for c in chunks] == ["fmt ", "data", "smj0", "LIST"]
    assert data[chunks[-1].offset : chunks[-1].end] == b"abcd"
    assert decode_smj0(data[chunks[2].offset : chunks[2].end], "mem").serial == META.serial


def test_writer_pads_odd_payloads() -> None:
    data = smj0_wav_bytes(np.zeros(3), 8000, META)  # 6 data bytes; smj0 payload size varies
    assert len(data) % 2 == 0
    assert struct.unpack_from("<I", data, 4)[0] == len(data) - 8
    assert [c.chunk_id for c in walk_riff(data, "mem")] == ["fmt ", "data", "smj0"]


def test_truncated_smj0_chunk_names_file_and_chunk(tmp_path: Path) -> None:
    full = smj0_wav_bytes(np.zeros(100), 12000, META)
    p = tmp_path / "cut.wav"
    p.write_bytes(full[:-40])
    with pytest.raises(InputError) as ei:
        read_smj0(p)
    assert ei.value.where == str(p)
    assert ei.value.field == "chunk 'smj0'"
    assert "truncated" in ei.value.reason


def test_missing_smj0_chunk(tmp_path: Path) -> None:
    p = tmp_path / "plain.wav"
    p.write_bytes(_wav(_fmt(), _chunk(b"data", b"\0\0" * 10)))
    with pytest.raises(InputError, match="missing") as ei:
        read_smj0(p)
    assert ei.value.field == "chunk 'smj0'"


def test_not_riff(tmp_path: Path) -> None:
    p = tmp_path / "x.wav"
    p.write_bytes(b"ID3\x03" + b"\0" * 40)
    with pytest.raises(InputError) as ei:
        read_smj0(p)
    assert ei.value.field == "RIFF header"


def test_bad_zlib(tmp_path: Path) -> None:
    p = tmp_path / "z.wav"
    p.write_bytes(_wav(_fmt(), _chunk(b"data", b"\0\0"), _chunk(b"smj0", b"not zlib at all")))
    with pytest.raises(InputError, match="zlib") as ei:
        read_smj0(p)
    assert ei.value.where == str(p)


def test_bad_json(tmp_path: Path) -> None:
    p = tmp_path / "j.wav"
    p.write_bytes(_wav(_fmt(), _chunk(b"smj0", zlib.compress(b'{"serialNumber": '))))
    with pytest.raises(InputError, match="JSON"):
        read_smj0(p)


@pytest.mark.parametrize(
    ("path", "field"),
    [
        (("serialNumber",), "smj0.serialNumber"),
        (("startTimeUTC",), "smj0.startTimeUTC"),
        (("duration",), "smj0.duration"),
        (("geolocation",), "smj0.geolocation"),
        (("geolocation", "latitude"), "smj0.geolocation.latitude"),
        (("geolocation", "longitude"), "smj0.geolocation.longitude"),
    ],
)
def test_missing_fields_are_named(tmp_path: Path, path: tuple[str, ...], field: str) -> None:
    obj = _smj0_obj()
    target: dict[str, object] = obj
    for key in path[:-1]:
        target = target[key]  # type: ignore[assignment]
    del target[path[-1]]
    p = tmp_path / "m.wav"
    p.write_bytes(_wav(_fmt(), _chunk(b"smj0", zlib.compress(json.dumps(obj).encode()))))
    with pytest.raises(InputError) as ei:
        read_smj0(p)
    assert ei.value.field == field
    assert ei.value.where == str(p)


@pytest.mark.parametrize(
    ("key", "value", "field"),
    [
        ("lambda", 5.0, "smj0.lambda"),
        ("lambda", "small", "smj0.lambda"),
        ("startTimeUTC", "yesterday", "smj0.startTimeUTC"),
        ("serialNumber", "", "smj0.serialNumber"),
    ],
)
def test_bad_values_are_named(key: str, value: object, field: str) -> None:
    obj = _smj0_obj()
    obj[key] = value
    with pytest.raises(InputError) as ei:
        decode_smj0(zlib.compress(json.dumps(obj).encode()), "mem")
    assert ei.value.field == field


def test_latitude_out_of_range() -> None:
    obj = _smj0_obj()
    obj["geolocation"] = {"latitude": 141.0, "longitude": 0.0, "elevation": 0.0}
    with pytest.raises(InputError, match="latitude"):
        decode_smj0(zlib.compress(json.dumps(obj).encode()), "mem")


def test_find_chunk_reports_present_chunks() -> None:
    chunks = walk_riff(_wav(_fmt()), "mem")
    with pytest.raises(InputError, match="'fmt '"):
        find_chunk(chunks, "data", "mem")


@pytest.mark.realdata
def test_real_chicago_files(chicago_dir: Path) -> None:
    d5 = sorted((chicago_dir / "district5-incident-556267").glob("*.wav"))
    metas = [read_smj0(p) for p in d5]
    assert sorted(m.serial for m in metas) == [
        "SCP-00-BNG-3866",
        "SCP-00-BNG-4089",
        "SCP-00-BNG-4827",
        "SCP-00-BNG-4922",
    ]
    by = {m.serial: m for m in metas}
    assert by["SCP-00-BNG-4089"].latitude_deg == pytest.approx(41.697987)
    assert by["SCP-00-BNG-4089"].longitude_deg == pytest.approx(-87.633597)
    assert by["SCP-00-BNG-4089"].duration_s == 2.0
    assert all(m.temperature_c == 25.0 and m.clock_error_s is None for m in metas)
    assert all(m.zone == "ChicagoILDistrict5" for m in metas)
    scepter = read_smj0(next((chicago_dir / "scepter-test").glob("*.wav")))
    assert scepter.serial == "SCP-00-BNG-8319"
    assert scepter.clock_error_s == pytest.approx(2.4072e-05)
    assert scepter.pdop == 2.0
    assert scepter.full_scale_db_spl == pytest.approx(93.09)
    d7 = [read_smj0(p) for p in (chicago_dir / "district7-request-4072698").glob("*.wav")]
    assert len({m.serial for m in d7}) == 6
    assert all(m.duration_s == pytest.approx(9.983) for m in d7)

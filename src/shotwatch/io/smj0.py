"""RIFF/WAVE chunk walking and the ``smj0`` sensor-metadata chunk.

A deployed commercial sensor writes its metadata into a private RIFF chunk ``smj0`` whose
payload is zlib-compressed JSON (serial, UTC time of the first sample, duration, WGS84
position, weather, zone, PDOP and ``lambda``, the clock-error bound in seconds). We walk the
RIFF structure ourselves rather than trust a library to expose unknown chunks: every chunk is
bounds-checked, odd-sized chunks are followed by their pad byte, and a truncated or missing
chunk raises :class:`InputError` naming the file and the chunk.

The writer produces the same layout (``fmt ``, ``data``, ``smj0``) so that the simulator and the
sensor agent can emit files that every reader of the real format accepts.
"""

from __future__ import annotations

import json
import math
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from shotwatch.core.errors import InputError
from shotwatch.core.geo import check_latlon
from shotwatch.core.model import iso_utc, parse_utc

SMJ0_ID = "smj0"
_HEADER = struct.Struct("<4sI")


@dataclass(frozen=True, slots=True)
class RiffChunk:
    """One chunk of a RIFF file: its four-character id, payload offset and declared size."""

    chunk_id: str
    offset: int
    size: int
    truncated: bool = False

    @property
    def end(self) -> int:
        return self.offset + self.size


@dataclass(frozen=True, slots=True)
class WavFormat:
    """The ``fmt `` chunk of a WAVE file."""

    format_tag: int
    channels: int
    sample_rate_hz: int
    byte_rate: int
    block_align: int
    bits_per_sample: int


def walk_riff(data: bytes, where: str) -> list[RiffChunk]:
    """List the chunks of a RIFF/WAVE byte string.

    Raises :class:`InputError` when the header is not RIFF/WAVE. A chunk whose declared size
    runs past the end of the data is returned with ``truncated=True`` (and the walk stops
    there) so that the caller decides whether that chunk matters.
    """
    if len(data) < 12:
        raise InputError(where, "RIFF header", f"file is {len(data)} bytes, too short for RIFF")
    riff, _riff_size, wave = struct.unpack_from("<4sI4s", data, 0)
    if riff != b"RIFF" or wave != b"WAVE":
        raise InputError(where, "RIFF header", f"not a RIFF/WAVE file (starts {data[:12]!r})")
    chunks: list[RiffChunk] = []
    pos = 12
    n = len(data)
    while pos < n:
        if n - pos < _HEADER.size:
            # A stray pad byte or a cut chunk header at the very end.
            if n - pos > 1:
                chunks.append(RiffChunk("?", pos, n - pos, truncated=True))
            break
        raw_id, size = _HEADER.unpack_from(data, pos)
        chunk_id = raw_id.decode("latin-1")
        start = pos + _HEADER.size
        if start + size > n:
            chunks.append(RiffChunk(chunk_id, start, size, truncated=True))
            break
        chunks.append(RiffChunk(chunk_id, start, size))
        pos = start + size + (size & 1)
    return chunks


def find_chunk(chunks: list[RiffChunk], chunk_id: str, where: str) -> RiffChunk:
    """The first chunk named ``chunk_id``; InputError if absent or truncated."""
    for c in chunks:
        if c.chunk_id == chunk_id:
            if c.truncated:
                raise InputError(
                    where,
                    f"chunk {chunk_id!r}",
                    f"truncated: declares {c.size} bytes at offset {c.offset}, file ends first",
                )
            return c
    present = ", ".join(repr(c.chunk_id) for c in chunks) or "none"
    raise InputError(where, f"chunk {chunk_id!r}", f"missing (chunks present: {present})")


def parse_fmt(data: bytes, chunk: RiffChunk, where: str) -> WavFormat:
    """Decode a ``fmt `` chunk."""
    if chunk.size < 16:
        raise InputError(where, "chunk 'fmt '", f"is {chunk.size} bytes, need at least 16")
    tag, ch, rate, byte_rate, align, bits = struct.unpack_from("<HHIIHH", data, chunk.offset)
    if ch < 1:
        raise InputError(where, "fmt channels", f"must be >= 1, got {ch}")
    if rate < 1:
        raise InputError(where, "fmt sample_rate", f"must be positive, got {rate}")
    return WavFormat(tag, ch, rate, byte_rate, align, bits)


@dataclass(frozen=True, slots=True)
class Smj0Metadata:
    """The sensor metadata carried in an ``smj0`` chunk.

    ``clock_error_s`` is the chunk's ``lambda`` (the clock-error bound; absent on older
    firmware, then ``None``). ``full_scale_db_spl`` is the first transducer's ``fullScale``:
    the sound pressure level of a digital full-scale sine, used to turn dBFS into dB SPL.
    """

    serial: str
    start_utc_s: float
    duration_s: float
    latitude_deg: float
    longitude_deg: float
    elevation_m: float
    temperature_c: float | None = None
    wind_speed_mps: float | None = None
    wind_direction_deg: float | None = None
    zone: str | None = None
    pdop: float | None = None
    clock_error_s: float | None = None
    sensor_type: str | None = None
    full_scale_db_spl: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The chunk's JSON object (the vendor's field names)."""
        obj: dict[str, Any] = dict(self.extra)
        obj.update(
            {
                "serialNumber": self.serial,
                "startTimeUTC": iso_utc(self.start_utc_s),
                "duration": self.duration_s,
                "geolocation": {
                    "latitude": self.latitude_deg,
                    "longitude": self.longitude_deg,
                    "elevation": self.elevation_m,
                },
            }
        )
        weather = dict(obj.get("weather") or {})
        weather.setdefault("medium", "air")
        if self.temperature_c is not None:
            weather["temperature"] = self.temperature_c
        if self.wind_speed_mps is not None:
            weather["speed"] = self.wind_speed_mps
        if self.wind_direction_deg is not None:
            weather["direction"] = self.wind_direction_deg
        obj["weather"] = weather
        if self.zone is not None:
            zone = dict(obj.get("zone") or {})
            zone["name"] = self.zone
            obj["zone"] = zone
        if self.pdop is not None:
            obj["pdop"] = self.pdop
        if self.clock_error_s is not None:
            obj["lambda"] = self.clock_error_s
        if self.sensor_type is not None:
            obj["sensorType"] = self.sensor_type
        if self.full_scale_db_spl is not None:
            obj["transducers"] = [
                {"name": "microphone", "channel": 0, "fullScale": self.full_scale_db_spl}
            ]
        return obj


_KNOWN = {
    "serialNumber",
    "startTimeUTC",
    "duration",
    "geolocation",
    "weather",
    "zone",
    "pdop",
    "lambda",
    "sensorType",
    "transducers",
}


def _number(obj: dict[str, Any], key: str, where: str, field_name: str) -> float:
    if key not in obj:
        raise InputError(where, field_name, "missing")
    v = obj[key]
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise InputError(where, field_name, f"must be a finite number, got {v!r}")
    return float(v)


def _opt_number(obj: dict[str, Any], key: str, where: str, field_name: str) -> float | None:
    if obj.get(key) is None:
        return None
    return _number(obj, key, where, field_name)


def parse_smj0_json(obj: object, where: str) -> Smj0Metadata:
    """Validate a decoded smj0 JSON object into :class:`Smj0Metadata`."""
    if not isinstance(obj, dict):
        raise InputError(where, "smj0", f"JSON must be an object, got {type(obj).__name__}")
    serial = obj.get("serialNumber")
    if not isinstance(serial, str) or not serial.strip():
        raise InputError(where, "smj0.serialNumber", f"must be a non-empty string, got {serial!r}")
    start = parse_utc(obj.get("startTimeUTC"), where=where, field_name="smj0.startTimeUTC")  # type: ignore[arg-type]
    duration = _number(obj, "duration", where, "smj0.duration")
    if duration < 0:
        raise InputError(where, "smj0.duration", f"must be >= 0 s, got {duration}")
    geo = obj.get("geolocation")
    if not isinstance(geo, dict):
        raise InputError(where, "smj0.geolocation", f"must be an object, got {geo!r}")
    lat = _number(geo, "latitude", where, "smj0.geolocation.latitude")
    lon = _number(geo, "longitude", where, "smj0.geolocation.longitude")
    check_latlon(lat, lon, f"{where}: smj0.geolocation")
    elev = _opt_number(geo, "elevation", where, "smj0.geolocation.elevation") or 0.0
    weather = obj.get("weather") or {}
    if not isinstance(weather, dict):
        raise InputError(where, "smj0.weather", f"must be an object, got {weather!r}")
    temp = _opt_number(weather, "temperature", where, "smj0.weather.temperature")
    if temp is not None and not -60.0 <= temp <= 60.0:
        raise InputError(where, "smj0.weather.temperature", f"implausible: {temp} degC")
    zone_obj = obj.get("zone")
    zone = zone_obj.get("name") if isinstance(zone_obj, dict) else None
    lam = _opt_number(obj, "lambda", where, "smj0.lambda")
    if lam is not None and not 0.0 <= lam < 1.0:
        raise InputError(where, "smj0.lambda", f"clock-error bound must be in [0, 1) s: {lam}")
    full_scale = None
    trans = obj.get("transducers")
    if isinstance(trans, list) and trans and isinstance(trans[0], dict):
        full_scale = _opt_number(trans[0], "fullScale", where, "smj0.transducers[0].fullScale")
    sensor_type = obj.get("sensorType")
    return Smj0Metadata(
        serial=serial.strip(),
        start_utc_s=start,
        duration_s=duration,
        latitude_deg=lat,
        longitude_deg=lon,
        elevation_m=elev,
        temperature_c=temp,
        wind_speed_mps=_opt_number(weather, "speed", where, "smj0.weather.speed"),
        wind_direction_deg=_opt_number(weather, "direction", where, "smj0.weather.direction"),
        zone=zone if isinstance(zone, str) else None,
        pdop=_opt_number(obj, "pdop", where, "smj0.pdop"),
        clock_error_s=lam,
        sensor_type=sensor_type if isinstance(sensor_type, str) else None,
        full_scale_db_spl=full_scale,
        extra={k: v for k, v in obj.items() if k not in _KNOWN},
    )


def decode_smj0(payload: bytes, where: str) -> Smj0Metadata:
    """zlib payload -> JSON -> :class:`Smj0Metadata`."""
    try:
        text = zlib.decompress(payload)
    except zlib.error as exc:
        raise InputError(where, "chunk 'smj0'", f"payload is not zlib data: {exc}") from exc
    try:
        obj = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(where, "chunk 'smj0'", f"payload is not valid JSON: {exc}") from exc
    return parse_smj0_json(obj, where)


def encode_smj0(meta: Smj0Metadata) -> bytes:
    """:class:`Smj0Metadata` -> zlib-compressed JSON payload."""
    return zlib.compress(json.dumps(meta.to_json(), separators=(",", ":")).encode())


def read_smj0_bytes(data: bytes, where: str) -> Smj0Metadata:
    chunks = walk_riff(data, where)
    c = find_chunk(chunks, SMJ0_ID, where)
    return decode_smj0(data[c.offset : c.end], where)


def read_smj0(path: str | Path) -> Smj0Metadata:
    """Read the ``smj0`` metadata of a WAV file (InputError names the file and chunk)."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise InputError(str(p), "file", f"cannot read: {exc.strerror or exc}") from exc
    return read_smj0_bytes(data, str(p))


def has_smj0(path: str | Path) -> bool:
    """True when a readable RIFF file holds an ``smj0`` chunk (never raises)."""
    try:
        data = Path(path).read_bytes()
        return any(c.chunk_id == SMJ0_ID for c in walk_riff(data, str(path)))
    except (OSError, InputError):
        return False


def _chunk(chunk_id: bytes, payload: bytes) -> bytes:
    pad = b"\x00" if len(payload) & 1 else b""
    return _HEADER.pack(chunk_id, len(payload)) + payload + pad


def smj0_wav_bytes(samples: np.ndarray, sample_rate_hz: int, meta: Smj0Metadata) -> bytes:
    """A 16-bit PCM WAVE file with ``fmt ``, ``data`` and ``smj0`` chunks.

    ``samples`` are floats in [-1, 1] (clipped), shape (n,) or (n, channels).
    """
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[1] < 1:
        raise InputError("smj0 writer", "samples", f"need shape (n,) or (n, ch), got {x.shape}")
    if sample_rate_hz < 1:
        raise InputError("smj0 writer", "sample_rate_hz", f"must be positive: {sample_rate_hz}")
    ch = x.shape[1]
    pcm = np.round(np.clip(x, -1.0, 32767 / 32768) * 32768.0).astype("<i2").tobytes()
    fmt = struct.pack("<HHIIHH", 1, ch, sample_rate_hz, sample_rate_hz * 2 * ch, 2 * ch, 16)
    body = (
        b"WAVE" + _chunk(b"fmt ", fmt) + _chunk(b"data", pcm) + _chunk(b"smj0", encode_smj0(meta))
    )
    return b"RIFF" + struct.pack("<I", len(body)) + body


def write_smj0_wav(
    path: str | Path, samples: np.ndarray, sample_rate_hz: int, meta: Smj0Metadata
) -> Path:
    """Write :func:`smj0_wav_bytes` to ``path``."""
    p = Path(path)
    p.write_bytes(smj0_wav_bytes(samples, sample_rate_hz, meta))
    return p
